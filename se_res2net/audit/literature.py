"""The literature as a second witness: published CIFAR-10 results (``book/literature.yaml``) against the report.

Numbers from papers are data with a source, like the report's: each entry carries its error, parameter
count, MACs where given, training protocol and a BibTeX key of ``book/references.bib``. Nothing we
measure is typed into that file. From it this module computes

* :func:`baseline_comparison` — each of the report's errors against the published results for the same
  architecture (is the report's baseline stronger or weaker than the literature, by how much);
* :func:`frontier` — the published error-vs-parameters frontier, and :func:`plot_frontier` with the
  report's points and ours on it;
* :func:`sigma_check` — the report's ±σ against published seed-to-seed spreads and against the spread
  the 10,000-image test set alone implies (binomial), as chi-square probabilities;
* :func:`literature_checks` — the ledger's literature column: ``implausible against the literature``
  when a claimed error beats the published frontier at its size by more than three published seed-SDs,
  ``contradicted by the literature`` when a "state-of-the-art" claim is beaten by a published result.

The literature never replaces a measurement (see :mod:`se_res2net.audit.claims`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .claims import Claim

__all__ = [
    "SCHEMA",
    "TEST_SET_SIZE",
    "MARGIN_SDS",
    "Entry",
    "load_literature",
    "literature_table",
    "reference_sd",
    "frontier_error",
    "frontier",
    "baseline_comparison",
    "sigma_check",
    "literature_checks",
    "plot_frontier",
]

SCHEMA = "se_res2net.literature/1"
#: CIFAR-10's test set: the binomial spread of an error rate measured on it is sqrt(p(1-p)/10000).
TEST_SET_SIZE = 10_000
#: A claimed error this many published seed-SDs below the published frontier is implausible: a mean of
#: three seeds lies that far below its expectation with probability < 0.1 %.
MARGIN_SDS = 3.0
STATISTICS = ("single", "best", "mean", "median")
AUGMENTATIONS = ("standard", "none", "other")

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Entry:
    """One published CIFAR-10 result."""

    id: str
    model: str
    ours: Optional[str]
    family: str
    kind: str
    error: float
    statistic: str
    sd: Optional[float]
    runs: Optional[int]
    params_m: Optional[float]
    macs_m: Optional[float]
    flops_as_published: Optional[str]
    augmentation: str
    protocol: str
    source: str
    where: str
    url: str
    #: the source's author–year label and title, from the bibliography (:func:`load_literature` fills them in;
    #: an entry made without one is labelled by its key)
    cite: str = ""
    source_title: str = ""

    def __post_init__(self) -> None:
        if not self.cite:
            object.__setattr__(self, "cite", self.source)


#: fields :func:`load_literature` derives from the bibliography, which the literature file does not set
_DERIVED = ("cite", "source_title")


_REQUIRED = ("id", "model", "family", "kind", "error", "statistic", "augmentation", "protocol", "source", "where")


def load_literature(path: PathLike = "book/literature.yaml", bib: Optional[PathLike] = None) -> List[Entry]:
    """Read and validate the literature file; a problem is a ``ValueError`` naming the entry and the fix.

    Each entry's ``source`` must be a key of the BibTeX file ``bib`` (default: ``references.bib`` beside the
    literature file), which gives the entry its author–year label (``cite``) and title.
    """
    import yaml

    from .bibliography import load_bibliography

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"literature file {p} does not exist; pass the path of book/literature.yaml")
    bib_path = Path(bib) if bib is not None else p.with_name("references.bib")
    if not bib_path.is_file():
        raise FileNotFoundError(f"bibliography {bib_path} does not exist; each source of {p} is a key of it "
                                "(pass bib= the path of book/references.bib)")
    refs = load_bibliography(bib_path)
    doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise ValueError(f"literature file {p} must be a mapping with schema: {SCHEMA}")
    names = {f.name for f in fields(Entry)} - set(_DERIVED)
    out: List[Entry] = []
    seen = set()
    for i, raw in enumerate(doc.get("entries") or []):
        where = f"literature file {p}, entry #{i + 1} ({raw.get('id', '?') if isinstance(raw, Mapping) else '?'})"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} is not a mapping")
        missing = [k for k in _REQUIRED if raw.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{where} lacks {missing}; add them with their source")
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ValueError(f"{where} has unknown fields {unknown}; use {sorted(names)}")
        if raw["id"] in seen:
            raise ValueError(f"{where}: duplicate id {raw['id']!r}")
        seen.add(raw["id"])
        ref = refs.get(str(raw["source"]))
        if ref is None:
            raise ValueError(f"{where}: source {raw['source']!r} is not a key of {bib_path}; add its BibTeX entry there")
        if raw["statistic"] not in STATISTICS or raw["augmentation"] not in AUGMENTATIONS:
            raise ValueError(f"{where}: statistic must be one of {STATISTICS} and augmentation one of {AUGMENTATIONS}")
        err = float(raw["error"])
        if not 0 < err < 100:
            raise ValueError(f"{where}: error {err} is not a percentage")
        num = lambda k: None if raw.get(k) is None else float(raw[k])  # noqa: E731
        out.append(Entry(
            id=str(raw["id"]), model=str(raw["model"]), ours=raw.get("ours"), family=str(raw["family"]),
            kind=str(raw["kind"]), error=err, statistic=str(raw["statistic"]), sd=num("sd"),
            runs=None if raw.get("runs") is None else int(raw["runs"]), params_m=num("params_m"),
            macs_m=num("macs_m"), flops_as_published=raw.get("flops_as_published"),
            augmentation=str(raw["augmentation"]), protocol=str(raw["protocol"]), source=str(raw["source"]),
            where=str(raw["where"]), url=str(raw.get("url") or ""), cite=ref.label, source_title=ref.title,
        ))
    if not out:
        raise ValueError(f"literature file {p} has no entries")
    return out


def literature_table(entries: Sequence[Entry]) -> "pd.DataFrame":
    """The entries as a table for the book (source shown as its author–year label, e.g. "He et al., 2016b")."""
    import pandas as pd

    return pd.DataFrame([{
        "model": e.model, "error (%)": e.error, "statistic": e.statistic + (f", {e.runs:,} run{'s' if e.runs != 1 else ''}" if e.runs else ""),
        "seed SD (pp)": e.sd, "params (M)": e.params_m, "MACs (M)": e.macs_m, "augmentation": e.augmentation,
        "kind": e.kind, "source": e.cite, "where": e.where, "protocol": e.protocol, "ours": e.ours or "",
    } for e in entries])


def reference_sd(entries: Sequence[Entry]) -> Tuple[float, float, List[str]]:
    """(smallest, largest) published seed-to-seed SD in pp, and the entries they come from."""
    sds = [(e.sd, e.id) for e in entries if e.sd is not None]
    if not sds:
        raise ValueError("the literature file has no seed-to-seed SD (an entry with sd:); add one with its source")
    return min(s for s, _ in sds), max(s for s, _ in sds), [i for _, i in sds]


def _standard(entries: Sequence[Entry]) -> List[Entry]:
    """Results under the report's augmentation class (pad-and-crop + flip), with a parameter count."""
    return [e for e in entries if e.augmentation == "standard" and e.params_m is not None]


def frontier_error(entries: Sequence[Entry], params_m: float) -> Optional[Entry]:
    """The published standard-augmentation result with the lowest error among models of at most
    ``params_m`` parameters (the frontier at that size), or None when none is that small."""
    small = [e for e in _standard(entries) if e.params_m <= params_m + 1e-9]  # type: ignore[operator]
    return min(small, key=lambda e: e.error) if small else None


def frontier(entries: Sequence[Entry]) -> List[Entry]:
    """The published error-vs-parameters frontier (standard augmentation): each entry no smaller model beats."""
    out, best = [], math.inf
    for e in sorted(_standard(entries), key=lambda e: (e.params_m, e.error)):
        if e.error < best:
            out.append(e)
            best = e.error
    return out


def _params_claimed(claims: Sequence["Claim"], model: str) -> Optional[float]:
    return next((c.value for c in claims if c.kind == "params" and c.model == model), None)


def baseline_comparison(claims: Sequence["Claim"], entries: Sequence[Entry]) -> "pd.DataFrame":
    """Each of the report's test-error claims against every published result for the same architecture
    (``ours`` equal to the claim's model): the report minus the published error (negative: the report's
    number is better than the published one)."""
    import pandas as pd

    rows = [{"claim": c.id, "model": c.model, "report (%)": c.value, "published": e.model, "published (%)": e.error,
             "statistic": e.statistic, "kind": e.kind, "source": e.cite,
             "report − published (pp)": round(c.value - e.error, 4)}
            for c in claims if c.kind == "test_error" for e in entries if e.ours == c.model]
    return pd.DataFrame(rows, columns=["claim", "model", "report (%)", "published", "published (%)", "statistic",
                                       "kind", "source", "report − published (pp)"])


def sigma_check(claims: Sequence["Claim"], entries: Sequence[Entry]) -> "pd.DataFrame":
    """The report's ±σ (n seeds) against published seed spreads and the test set's binomial spread.

    For a true seed-to-seed SD σ, ``(n−1)s²/σ² ~ χ²(n−1)``, so ``P(s ≤ s_claimed) = χ²_cdf((n−1)s²/σ²)``.
    Columns give that probability for σ = the smallest published seed SD and for σ = the binomial
    spread ``100·sqrt(p(1−p)/10000)`` at the claimed error p (the spread of one model's error over test
    sets of that size). A last row multiplies the
    probabilities of all claims (independent runs).
    """
    import pandas as pd
    from scipy import stats as sps

    lo_sd, _, _ = reference_sd(entries)
    rows = []
    for c in claims:
        if c.kind != "test_error" or c.sd is None or not c.n or c.n < 2:
            continue
        p = c.value / 100
        binom = 100 * math.sqrt(p * (1 - p) / TEST_SET_SIZE)
        k = c.n - 1
        rows.append({"claim": c.id, "model": c.model, "claimed σ (pp)": c.sd, "n": c.n,
                     "smallest published σ (pp)": lo_sd, "binomial σ at the claimed error (pp)": binom,
                     "P(s ≤ claimed | published σ)": float(sps.chi2.cdf(k * c.sd**2 / lo_sd**2, k)),
                     "P(s ≤ claimed | binomial σ)": float(sps.chi2.cdf(k * c.sd**2 / binom**2, k))})
    df = pd.DataFrame(rows)
    if len(df) > 1:
        joint = {"claim": "all", "model": "all together",
                 "P(s ≤ claimed | published σ)": float(df["P(s ≤ claimed | published σ)"].prod()),
                 "P(s ≤ claimed | binomial σ)": float(df["P(s ≤ claimed | binomial σ)"].prod())}
        df = pd.concat([df, pd.DataFrame([joint])], ignore_index=True)
    return df


def literature_checks(claims: Sequence["Claim"], entries: Sequence[Entry]) -> Dict[str, Tuple[str, str]]:
    """The ledger's literature column, by claim id: ``(head, text)``.

    * ``test_error`` claims: against the frontier at the claim's parameter count (the report's own params
      claim of that model); ``implausible against the literature`` below it by more than
      :data:`MARGIN_SDS` × the largest published seed-SD, else ``in line with the literature``; the
      same-architecture comparison and the σ probabilities are added to the text.
    * ``literature`` claims (state of the art): ``contradicted by the literature`` when a published result
      has a lower error (any protocol), else ``in line with the literature``.
    """
    from .claims import CONTRADICTED, IMPLAUSIBLE

    _, hi_sd, _ = reference_sd(entries)
    margin = MARGIN_SDS * hi_sd
    sig = sigma_check(claims, entries)
    sig_by = {r["claim"]: r for _, r in sig.iterrows()} if len(sig) else {}
    out: Dict[str, Tuple[str, str]] = {}
    for c in claims:
        if c.kind == "test_error":
            params = _params_claimed(claims, c.model)
            if params is None:
                continue
            f = frontier_error(entries, params)
            same = [e for e in entries if e.ours == c.model]
            parts = []
            if f is None:
                head = "no published comparison"
                parts.append(f"no published standard-augmentation result with ≤ {params:g} M params")
            else:
                gap = f.error - c.value
                head = IMPLAUSIBLE if gap > margin else "in line with the literature"
                parts.append(f"the best published result with ≤ {params:g} M params is {f.error:g} % ({f.model}, "
                             f"{f.params_m:g} M, {f.cite}); the claim is {abs(gap):.2f} pp "
                             f"{'below' if gap > 0 else 'above'} it (margin {MARGIN_SDS:g} × {hi_sd:g} pp)")
            if same:
                lo, hi = min(e.error for e in same), max(e.error for e in same)
                span = f"{lo:g} %" if lo == hi else f"{lo:g}–{hi:g} %"
                parts.append(f"published {c.model}: {span} ({len(same)} result{'s' if len(same) > 1 else ''}): the report's is "
                             + ("better than all" if c.value < lo else "worse than all" if c.value > hi else "within them"))
            if c.id in sig_by:
                r = sig_by[c.id]
                parts.append(f"σ = {c.sd:g} pp from {c.n} seeds has probability {r['P(s ≤ claimed | published σ)']:.2g} "
                             f"if the true seed SD is the smallest published ({r['smallest published σ (pp)']:g} pp)")
            out[c.id] = (head, "; ".join(parts))
        elif c.kind == "literature":
            better = sorted((e for e in entries if e.error < c.value), key=lambda e: e.error)
            if better:
                std = [e for e in better if e.augmentation == "standard"]
                text = (f"{len(better)} published result(s) below {c.value:g} %, lowest {better[0].error:g} % "
                        f"({better[0].model}, {better[0].cite}; {better[0].augmentation} augmentation)")
                if std:
                    text += f"; with standard augmentation: {std[0].error:g} % ({std[0].model}, {std[0].cite})"
                out[c.id] = (CONTRADICTED, text)
            else:
                out[c.id] = ("in line with the literature", f"no published result in book/literature.yaml is below {c.value:g} %")
    return out


def plot_frontier(entries: Sequence[Entry], claims: Sequence["Claim"], ours: Optional["pd.DataFrame"] = None, ax: Any = None) -> Any:
    """Error vs parameters (log scale): published results (standard augmentation), the frontier, the
    report's claimed points and, when given, ours (``ours``: rows with model, params_m, mean_error, profile)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.6))
    std = _standard(entries)
    ax.scatter([e.params_m for e in std], [e.error for e in std], s=22, color="0.55", label="published (standard aug.)", zorder=2)
    fr = frontier(entries)
    xs = [e.params_m for e in fr] + [max(e.params_m for e in std if e.params_m is not None) * 1.5]
    ys = [e.error for e in fr] + [fr[-1].error]
    ax.step(xs, ys, where="post", color="0.3", lw=1, ls="--", label="published frontier", zorder=1)
    rep: List[Tuple["Claim", float]] = []  # each test-error claim at the report's parameter count, where it gives one
    for c in claims:
        p = _params_claimed(claims, c.model) if c.kind == "test_error" else None
        if p is not None:
            rep.append((c, p))
    ax.scatter([p for _, p in rep], [c.value for c, _ in rep], marker="*", s=110, color="tab:red", label="the report's claims", zorder=3)
    clusters: List[List[Tuple["Claim", float]]] = []  # points on top of each other share one label (E1, A3, A1)
    for c, p in sorted(rep, key=lambda cp: cp[0].value):
        home = next((g for g in clusters if abs(math.log(g[0][1] / p)) < 0.15 and abs(g[-1][0].value - c.value) < 0.2), None)
        if home is None:
            clusters.append([(c, p)])
        else:
            home.append((c, p))
    for g in clusters:
        c0, p0 = g[0]
        ax.annotate(", ".join(c.id for c, _ in g), (p0, c0.value), textcoords="offset points", xytext=(7, -4),
                    fontsize=8, color="tab:red")
    if ours is not None and len(ours):
        for prof, g in ours.groupby("profile"):
            ax.scatter(g["params_m"], g["mean_error"], marker="o", s=40, facecolors="none", edgecolors="tab:blue",
                       label=f"ours ({prof} profile)", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (M, log scale)")
    ax.set_ylabel("CIFAR-10 test error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return ax
