"""The claims ledger: ``book/claims.yaml`` (the report's numbers) + our evidence → one class per claim.

Inputs, all passed in (pure functions; only :func:`load_claims` and :func:`load_gradcam` read files):

* the claims (:func:`load_claims`): each :class:`Claim` carries the report's value as printed, where it is
  stated, its ``kind`` and the rule of that kind (``tolerances:`` in the claims file, with why it is fair);
* the run records (:func:`se_res2net.audit.results.load_records`): one row per run, whose ``profile`` is the
  profile the record **satisfies** (:mod:`se_res2net.audit.conformance`), never its folder or its label;
* complexity rows computed live (:func:`se_res2net.models.complexity.complexity_table`, :func:`~se_res2net.models.complexity.block_table`);
* the Grad-CAM metrics (``book/gradcam/gradcam_metrics.json``);
* the literature (:func:`se_res2net.audit.literature.load_literature`), a second witness beside our runs.

Each claim gets three independent judgements and one class:

``verdict`` (our measurement)
    ``reproduced`` / ``not reproduced`` — measured under the report's protocol by records that satisfy
    it, from the report's number of seeds, and inside / outside the band of the claim's kind: for trained
    claims a 95 % interval from **our measured seed spread**, for counts the report's printing precision;
    ``inconclusive`` — measured so, but the measured spread cannot decide (a ranking gap within noise);
    ``not yet measured`` — no such measurement (a budget number is shown with its profile, and a smoke
    number only while no other profile has complete runs; too few seeds are counted and named);
    ``not testable as stated``; ``consistent by construction`` — our widths were searched to land on the
    report's counts, so agreement confirms nothing.
``report check`` (the report against itself)
    ``internally inconsistent`` when the claim contradicts other numbers of the same report under every
    reading of them (e.g. a p-value and Cohen's d against its means and ±σ, read as sd with ddof 1 or 0
    or as a standard error), else ``consistent`` with what it was checked against.
``literature`` (the report against the field)
    ``implausible against the literature`` (or ``contradicted by the literature``) when published results
    make the number implausible; it sits beside the verdict and never replaces a measurement.

``class`` is the one headline: internally inconsistent > a measured verdict (reproduced / not reproduced
/ inconclusive) > consistent by construction > the literature's judgement > not testable > not yet measured.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SCHEMA",
    "KINDS",
    "PROFILE_ORDER",
    "CLASSES",
    "LEDGER_COLUMNS",
    "Claim",
    "ReportCheck",
    "load_claims",
    "claims_table",
    "claim_models",
    "ledger",
    "verdict_category",
    "class_counts",
    "report_checks",
    "pm_readings_table",
    "report_statistics",
    "report_efficiency_rows",
    "load_gradcam",
    "book_ledger",
    "rules_table",
    "report_constants",
    "report_tables",
    "quote_html",
    "claim_details_html",
    "gradcam_profile",
    "gradcam_run",
    "gradcam_run_profile",
    "headline_profile",
    "profile_table",
    "run_pages",
]

SCHEMA = "se_res2net.claims/1"
KINDS: Tuple[str, ...] = (
    "test_error", "params", "macs", "block_params", "block_macs", "delta_params", "delta_error", "stat_diff",
    "stat_p", "stat_d", "overhead_params", "overhead_macs", "efficiency", "iou", "ranking", "ordering", "literature",
)
#: Profiles from least to most faithful to the report's protocol.
PROFILE_ORDER: Tuple[str, ...] = ("smoke", "budget", "full")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_YET, UNTESTABLE, BY_CONSTRUCTION = (
    "reproduced", "not reproduced", "inconclusive", "not yet measured", "not testable as stated",
    "consistent by construction",
)
INCONSISTENT, IMPLAUSIBLE, CONTRADICTED = (
    "internally inconsistent", "implausible against the literature", "contradicted by the literature",
)
#: Every class a claim can have, in the ledger's order.
CLASSES: Tuple[str, ...] = (INCONSISTENT, NOT_REPRODUCED, INCONCLUSIVE, REPRODUCED, BY_CONSTRUCTION, CONTRADICTED,
                            IMPLAUSIBLE, UNTESTABLE, NOT_YET)
LEDGER_COLUMNS = ["id", "claim", "claimed", "measured", "profile", "hardware", "verdict", "report check",
                  "literature", "class", "note", "kind", "rule"]

COUNTED = "— (counted at build)"
COUNTED_HW = "none needed (architecture count)"
_COUNTED_KINDS = ("params", "macs", "block_params", "block_macs", "delta_params", "overhead_params", "overhead_macs")

PathLike = Union[str, Path]


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One numeric claim of the report, as written in the claims file."""

    id: str
    text: str
    section: str
    quote: str
    kind: str
    models: Tuple[str, ...]
    value: float
    unit: str
    measure: str
    value_text: str = ""  # the value as printed (its digits set the rounding band of counted claims)
    sd: Optional[float] = None
    n: Optional[int] = None
    baseline: Optional[str] = None
    baselines: Tuple[str, ...] = ()
    order: Tuple[str, ...] = ()
    delta_params: Optional[float] = None
    delta_error: Optional[float] = None
    testable: bool = True
    why: str = ""
    by_construction: bool = False
    verdict_profile: str = "full"
    seeds_required: int = 3
    confidence: float = 0.95
    # A fact every verdict on this claim must carry (e.g. "our widths were searched to land here").
    caveat: str = ""
    tolerance: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def half_unit(self) -> float:
        """Half a unit of the last printed digit of the value ("0.80" → 0.005, "102" → 0.5)."""
        text = (self.value_text or f"{self.value:g}").lstrip("+-−")
        decimals = len(text.split(".")[1]) if "." in text else 0
        return 0.5 * 10.0 ** (-decimals)

    @property
    def claimed(self) -> str:
        """The claimed value as the report prints it (with ± σ and n where given)."""
        if self.kind == "ranking":
            return "rank 1 (lowest error)"
        if self.kind == "ordering":
            return " < ".join(self.order)
        v = self.value_text or f"{self.value:g}"
        if self.kind in ("delta_params", "delta_error", "overhead_params", "overhead_macs") and not v.startswith(("-", "−")):
            v = "+" + v
        if self.sd is not None:
            v += f" ± {self.sd:g}"
        unit = f" {self.unit}" if self.unit else ""
        return v + unit + (f" (n={self.n})" if self.n else "")


_REQUIRED = ("id", "text", "section", "quote", "kind", "models", "value", "unit", "measure")


def load_claims(path: PathLike = "book/claims.yaml") -> List[Claim]:
    """Read and validate the claims file; a problem is a ``ValueError`` naming the claim and the fix."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"claims file {p} does not exist; pass the path of book/claims.yaml")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"claims file {p} is not valid YAML ({exc}); fix the syntax") from None
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise ValueError(f"claims file {p} must be a mapping with schema: {SCHEMA}")
    tolerances = doc.get("tolerances") or {}
    verdict_profile = str(doc.get("verdict_profile", "full"))
    seeds_required = int(doc.get("seeds_required", 3))
    confidence = float(doc.get("confidence", 0.95))
    if seeds_required < 2 or not 0 < confidence < 1:
        raise ValueError(f"claims file {p}: seeds_required must be >= 2 and confidence in (0, 1)")
    out: List[Claim] = []
    seen = set()
    for i, raw in enumerate(doc.get("claims") or []):
        where = f"claims file {p}, claim #{i + 1} ({raw.get('id', '?') if isinstance(raw, Mapping) else '?'})"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} is not a mapping")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ValueError(f"{where} lacks {missing}; add them")
        kind = raw["kind"]
        if kind not in KINDS:
            raise ValueError(f"{where} has unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        if kind not in tolerances:
            raise ValueError(f"{where}: no tolerance for kind {kind!r}; add it under tolerances:")
        if raw["id"] in seen:
            raise ValueError(f"{where}: duplicate id {raw['id']!r}; ids must be unique")
        seen.add(raw["id"])
        models = raw["models"]
        models = (models,) if isinstance(models, str) else tuple(str(m) for m in models)
        if not models:
            raise ValueError(f"{where}: models is empty")
        try:
            value = float(str(raw["value"]).replace("−", "-"))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: value {raw['value']!r} is not a number") from None
        order = tuple(str(m) for m in (raw.get("order") or ()))
        if kind == "ordering" and len(order) < 2:
            raise ValueError(f"{where}: an ordering claim needs order: [at least two models, lowest error first]")
        if kind in ("delta_params", "delta_error", "overhead_params", "overhead_macs", "stat_diff", "stat_p",
                    "stat_d", "efficiency") and not raw.get("baseline"):
            raise ValueError(f"{where}: a {kind} claim needs baseline: <model>")
        out.append(Claim(
            id=str(raw["id"]), text=str(raw["text"]), section=str(raw["section"]), quote=str(raw["quote"]),
            kind=kind, models=models, value=value, unit=str(raw["unit"] or ""), measure=str(raw["measure"]),
            value_text=str(raw["value"]) if isinstance(raw["value"], str) else f"{value:g}",
            sd=None if raw.get("sd") is None else float(raw["sd"]),
            n=None if raw.get("n") is None else int(raw["n"]),
            baseline=raw.get("baseline"),
            baselines=tuple(raw.get("baselines") or ()),
            order=order,
            delta_params=None if raw.get("delta_params") is None else float(raw["delta_params"]),
            delta_error=None if raw.get("delta_error") is None else float(raw["delta_error"]),
            testable=bool(raw.get("testable", True)),
            why=str(raw.get("why") or ""),
            by_construction=bool(raw.get("by_construction", False)),
            verdict_profile=verdict_profile,
            seeds_required=seeds_required,
            confidence=confidence,
            caveat=str(raw.get("caveat") or ""),
            tolerance=MappingProxyType(dict(tolerances[kind])),
        ))
    if not out:
        raise ValueError(f"claims file {p} has no claims")
    return out


def _section(path: PathLike, key: str) -> Mapping[str, Any]:
    """One top-level section of the claims file, ``{}`` when absent."""
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8")).get(key) or {}


def report_constants(path: PathLike = "book/claims.yaml") -> Dict[str, Any]:
    """The report's constants named in the claims file (``report_constants:``), e.g. the block table's C, s, r."""
    return dict(_section(path, "report_constants"))


def report_tables(path: PathLike = "book/claims.yaml") -> Dict[str, Tuple[str, ...]]:
    """The header rows of the report's tables (``report_tables:``), keyed by the table's heading."""
    return {str(k): tuple(str(c) for c in v) for k, v in _section(path, "report_tables").items()}


_BOLD_RE = re.compile(r"\*\*(.+?)\*\*")


def _inline_html(text: str) -> str:
    """The report's inline markdown (``**bold**`` only) as HTML, everything else escaped."""
    import html

    return _BOLD_RE.sub(r"<b>\1</b>", html.escape(text.strip()))


# quote_html / claim_details_html build their small tables by hand: DataFrame.to_html would add the class "dataframe"
# (styled by the book's theme) and a right-aligned header row to tables nested in a ledger cell.
def quote_html(claim: Claim, tables: Optional[Mapping[str, Sequence[str]]] = None) -> str:
    """The report's words for a claim, as the report shows them: a table row under its table's header (from
    :func:`report_tables`, matched by the table's heading in the claim's section), prose as a block quote."""
    q = claim.quote.strip()
    if q.startswith("|") and q.endswith("|"):
        cells = [c.strip() for c in q.strip("|").split("|")]
        header = next((h for name, h in (tables or {}).items() if name in claim.section), None)
        head = ""
        if header is not None and len(header) == len(cells):
            head = "<thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in header) + "</tr></thead>"
        body = "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in cells) + "</tr>"
        return f"<table class='report-quote'>{head}<tbody>{body}</tbody></table>"
    return f"<blockquote class='report-quote'>{_inline_html(q)}</blockquote>"


def claim_details_html(claim: Claim, tables: Optional[Mapping[str, Sequence[str]]] = None,
                       extra: Optional[Mapping[str, str]] = None, badge: str = "") -> str:
    """One claim as a folded line: id, (badge), the claim; open it for the report's words, where they are,
    how we measure it and any ``extra`` rows (already HTML-escaped by the caller where needed)."""
    import html

    rows = [("the report says", quote_html(claim, tables)),
            ("where", html.escape(f"{claim.section} (report)")),
            ("claimed value", html.escape(claim.claimed)),
            ("how we measure it", html.escape(claim.measure))]
    if not claim.testable:
        rows.append(("testable", html.escape(f"no: {claim.why}")))
    rows += list((extra or {}).items())
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows if v not in ("", "—"))
    return (f"<details class='claim'><summary><b>{html.escape(claim.id)}</b> {badge}"
            f"{html.escape(claim.text)}</summary><table class='claim-details'>{body}</table></details>")


def claim_models(claims: Sequence[Claim]) -> List[str]:
    """Registered model names the claims are about (models, baselines, orders), in report order."""
    from ..models.registry import list_models
    from .results import model_order

    known = set(list_models())
    names = [m for c in claims for m in (*c.models, *c.baselines, *c.order, c.baseline or "") if m in known]
    return model_order(names)


def claims_table(claims: Sequence[Claim]) -> "pd.DataFrame":
    """The claims as a table for the book (no measurement)."""
    import pandas as pd

    return pd.DataFrame([{
        "id": c.id, "claim": c.text, "value": c.claimed, "kind": c.kind, "model(s)": ", ".join(c.order or c.models),
        "section": c.section, "quote": c.quote, "how we measure it": c.measure,
        "testable": "yes" if c.testable else f"no: {c.why}",
    } for c in claims])


def verdict_category(verdict: str) -> str:
    """The fixed head of a verdict or class string (one of :data:`CLASSES`)."""
    # longer heads first: "not reproduced" before "reproduced"
    for v in sorted(CLASSES, key=len, reverse=True):
        if verdict.startswith(v):
            return v
    raise ValueError(f"unknown verdict {verdict!r}")


def class_counts(table: "pd.DataFrame") -> Dict[str, int]:
    """How many claims have each class (:data:`CLASSES`), zero counts left out."""
    cats = [verdict_category(v) for v in table["class"]]
    return {v: cats.count(v) for v in CLASSES if cats.count(v)}


# --------------------------------------------------------------------------- the report against itself


def _find(claims: Sequence[Claim], kind: str, model: str, baseline: Optional[str] = None) -> Optional[Claim]:
    for c in claims:
        if c.kind == kind and c.model == model and (baseline is None or c.baseline == baseline):
            return c
    return None


def report_statistics(claims: Sequence[Claim], model: str = "se_res2net29", baseline: str = "res2net29",
                      resolution: Optional[float] = 0.005) -> Dict[str, Any]:
    """Keyword arguments for :func:`se_res2net.audit.stats.report_consistency`, from the claims file.

    ``a`` is the baseline (``res2net29``), ``b`` the candidate; ``resolution`` is the rounding radius
    of the printed means/SDs (0.005 for two decimals; YAML drops trailing zeros, so it is passed).
    """
    ea, eb = _find(claims, "test_error", baseline), _find(claims, "test_error", model)
    if ea is None or eb is None or ea.sd is None or eb.sd is None or not ea.n or not eb.n:
        raise ValueError(f"the claims file needs test_error claims with sd and n for {baseline} and {model}")
    out: Dict[str, Any] = {"mean_a": ea.value, "sd_a": ea.sd, "n_a": ea.n, "mean_b": eb.value, "sd_b": eb.sd, "n_b": eb.n}
    for kind, key in (("stat_p", "p"), ("stat_d", "d"), ("stat_diff", "diff")):
        c = _find(claims, kind, model, baseline)
        if c is not None:
            out[key] = c.value
    if resolution is not None:
        out["resolution"] = resolution
    return out


def report_efficiency_rows(claims: Sequence[Claim]) -> List[Dict[str, Any]]:
    """Rows for :func:`se_res2net.audit.stats.efficiency_table` built from the report's own tables.

    Params and errors of each efficiency claim's model and baseline come from the report's
    results table (params/test_error claims), params printed to 0.01 M (``params_resolution``).
    """
    rows = []
    for c in claims:
        if c.kind != "efficiency" or not c.baseline:
            continue
        pv, pb = _find(claims, "params", c.model), _find(claims, "params", c.baseline)
        ev, eb = _find(claims, "test_error", c.model), _find(claims, "test_error", c.baseline)
        if None in (pv, pb, ev, eb):
            continue
        rows.append({"claim": c.id, "variant": c.model, "baseline": c.baseline,
                     "params_variant": pv.value, "params_baseline": pb.value,  # type: ignore[union-attr]
                     "error_variant": ev.value, "error_baseline": eb.value,  # type: ignore[union-attr]
                     "params_resolution": 0.005, "claimed_ratio": c.value})
    return rows


@dataclass(frozen=True)
class ReportCheck:
    """A claim against other numbers of the same report: ``consistent`` or not, and against what."""

    consistent: bool
    text: str

    @property
    def label(self) -> str:
        return ("consistent: " if self.consistent else f"{INCONSISTENT}: ") + self.text


def _interval(value: float, half: float) -> Tuple[float, float]:
    return value - half, value + half


def _overlaps(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


#: Readings of the report's "±" and the factor that turns each into a sample SD (ddof=1) for n runs.
_PM_READINGS: Tuple[Tuple[str, Any], ...] = (
    ("sample SD (ddof=1)", lambda n: 1.0),
    ("population SD (ddof=0)", lambda n: math.sqrt(n / (n - 1))),
    ("standard error", lambda n: math.sqrt(n)),
)


def _readings(kw: Mapping[str, Any]) -> List[Tuple[str, float, float, Any]]:
    """``(reading, sample SD a, sample SD b, ConsistencyReport)`` for each reading of "±" (:data:`_PM_READINGS`);
    the rounding radius of the printed SDs scales with them."""
    from .stats import report_consistency

    out = []
    for name, factor in _PM_READINGS:
        fa, fb = factor(kw["n_a"]), factor(kw["n_b"])
        sa, sb = kw["sd_a"] * fa, kw["sd_b"] * fb
        out.append((name, sa, sb, report_consistency(**{**kw, "sd_a": sa, "sd_b": sb,
                                                         "resolution": kw.get("resolution", 0.005) * max(fa, fb)})))
    return out


def _stat_checks(claims: Sequence[Claim]) -> Dict[str, ReportCheck]:
    """p, d and Δ against the report's means ± σ, under every reading of "±" (:data:`_PM_READINGS`)."""
    out: Dict[str, ReportCheck] = {}
    stat_claims = [c for c in claims if c.kind in ("stat_p", "stat_d", "stat_diff")]
    for c in stat_claims:
        try:
            kw = report_statistics(claims, c.model, c.baseline or "")
        except ValueError as exc:
            out[c.id] = ReportCheck(True, f"not checked ({exc})")
            continue
        key = {"stat_p": "p", "stat_d": "d", "stat_diff": "diff"}[c.kind]
        parts, ok_any = [], False
        for name, _, _, rep in _readings(kw):
            chk = next(x for x in rep.checks if x.quantity == key)
            ok_any |= chk.consistent
            parts.append(f"± as {name}: {key} = {chk.implied:.3g} ({chk.implied_low:.3g}–{chk.implied_high:.3g})")
            if key == "diff":
                break  # the difference of means does not depend on the reading of ±
        what = (f"the report's means ± σ ({kw['mean_a']:g} ± {kw['sd_a']:g} vs {kw['mean_b']:g} ± {kw['sd_b']:g}, "
                f"n={kw['n_a']}) imply " + "; ".join(parts))
        if c.kind == "stat_d":
            from .stats import p_implied_by_d

            what += f"; the claimed d = {c.value:g} alone implies p = {p_implied_by_d(c.value, kw['n_a'], kw['n_b']):.2g} (Student)"
        out[c.id] = ReportCheck(ok_any, (f"{key} = {c.value_text} matches under at least one reading; " if ok_any
                                         else f"{key} = {c.value_text} matches under no reading of ±; ") + what)
    return out


def pm_readings_table(claims: Sequence[Claim], model: str = "se_res2net29", baseline: str = "res2net29") -> "pd.DataFrame":
    """The report's p, d and Δ recomputed from its means ± σ under each reading of "±" (sample SD, population
    SD, standard error), each with the range that the printed digits' rounding allows. Columns name the models
    (``sample SD, <baseline>``); p and d to two significant digits."""
    import pandas as pd

    from .results import model_label
    from .stats import format_p, format_sig

    fmt = {"p": format_p, "d": format_sig}
    rows = []
    for name, sa, sb, rep in _readings(report_statistics(claims, model, baseline)):
        row: Dict[str, Any] = {"± read as": name, f"sample SD, {model_label(baseline)}": sa,
                               f"sample SD, {model_label(model)}": sb}
        for chk in rep.checks:
            if chk.quantity in ("p", "d"):
                f = fmt[chk.quantity]
                row[f"implied {chk.quantity}"] = f"{f(chk.implied)} ({f(chk.implied_low)}–{f(chk.implied_high)})"
                row[f"claimed {chk.quantity} = {chk.claimed:g} fits"] = "yes" if chk.consistent else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def _table(claims: Sequence[Claim], kind: str) -> Dict[str, Claim]:
    return {c.model: c for c in claims if c.kind == kind}


def _delta_checks(claims: Sequence[Claim]) -> Dict[str, ReportCheck]:
    """Deltas, overheads and efficiency ratios against the report's own results table, and which of its rows
    the efficiency table's deltas are taken against (the report names no baseline)."""
    params, errors, macs = _table(claims, "params"), _table(claims, "test_error"), _table(claims, "macs")
    out: Dict[str, ReportCheck] = {}
    for c in claims:
        if c.kind == "delta_params" or c.kind == "delta_error":
            table = params if c.kind == "delta_params" else errors
            if c.model not in table or (c.baseline or "") not in table:
                continue
            v = table[c.model]
            want = _interval(c.value, c.half_unit)
            rows = _results_rows(claims) or set(table)
            fits = [b for b, bc in table.items() if b != c.model and b in rows
                    and _overlaps(want, _interval(v.value - bc.value, v.half_unit + bc.half_unit))]
            base = table.get(c.baseline or "")
            implied = v.value - base.value if base else math.nan
            ok = c.baseline in fits
            names = ", ".join(fits) or "none"
            out[c.id] = ReportCheck(ok, f"{c.model} − {c.baseline} in the report's results table = {implied:+.2f} "
                                        f"{c.unit}; rows that give {c.claimed}: {names}"
                                        + (" (the only one)" if fits == [c.baseline] else ""))
        elif c.kind == "overhead_params" or c.kind == "overhead_macs":
            table = params if c.kind == "overhead_params" else macs
            var, ref = table.get(c.model), table.get(c.baseline or "")
            if var is None or ref is None:
                continue
            lo = 100 * ((var.value - var.half_unit) / (ref.value + ref.half_unit) - 1)
            hi = 100 * ((var.value + var.half_unit) / (ref.value - ref.half_unit) - 1)
            ok = _overlaps(_interval(c.value, c.half_unit), (lo, hi))
            out[c.id] = ReportCheck(ok, f"{var.value_text} / {ref.value_text} in the report's table gives "
                                        f"{100 * (var.value / ref.value - 1):+.1f} % ({lo:+.1f} to {hi:+.1f} % under rounding)")
        elif c.kind == "efficiency" and c.baseline:
            pv, pb, ev, eb = params.get(c.model), params.get(c.baseline), errors.get(c.model), errors.get(c.baseline)
            if None in (pv, pb, ev, eb):
                continue
            dp, de = pv.value - pb.value, ev.value - eb.value  # type: ignore[union-attr]
            hp = pv.half_unit + pb.half_unit  # type: ignore[union-attr]
            he = ev.half_unit + eb.half_unit  # type: ignore[union-attr]
            lo, hi = (dp - hp) / (-de + he), (dp + hp) / (-de - he) if -de - he > 0 else math.inf
            ok = _overlaps(_interval(c.value, c.half_unit), (lo, hi))
            out[c.id] = ReportCheck(ok, f"the report's table gives ΔParams / −ΔError = {dp:+.2f} / {-de:.2f} = "
                                        f"{dp / -de:.3f} ({lo:.3f}–{hi:.3f} under rounding) against {c.baseline}")
        elif c.kind in ("ranking", "ordering"):
            group = c.order or (c.model, *c.baselines)
            vals = {m: errors[m].value for m in group if m in errors}
            if len(vals) < len(group):
                continue
            if c.kind == "ranking":
                ok = all(vals[c.model] < vals[m] for m in group if m != c.model)
            else:
                ok = all(vals[a] < vals[b] for a, b in zip(group, group[1:]))
            out[c.id] = ReportCheck(ok, "the report's own errors: " + ", ".join(f"{m} {vals[m]:g} %" for m in group))
    return out


def _results_rows(claims: Sequence[Claim]) -> set:
    """Models of the report's results table (test_error claims with a σ: the five-model table)."""
    return {c.model for c in claims if c.kind == "test_error" and c.sd is not None}


def _block_checks(claims: Sequence[Claim], constants: Mapping[str, Any]) -> Dict[str, ReportCheck]:
    """The block table's SE blocks against its plain blocks plus the SE the report defines.

    The report's SE is ``z = GAP(Z); u = ReLU(W₁z); g = σ(W₂u)`` with ``W₁ ∈ ℝ^{C/r×C}``, ``W₂ ∈ ℝ^{C×C/r}``:
    2·C²/r weights and as many multiply-adds, plus C·H·W adds for the mean and C·H·W multiplies for
    ``g ⊙ Z`` — whatever the resolution, the per-block table's SE rows can differ from their plain rows by
    no more than that.
    """
    C, r = constants.get("block_channels"), constants.get("se_ratio")
    if not C or not r:
        return {}
    se_weights = 2 * C * C / r
    pairs = {"SE-ResNet (r=16)": "ResNet (2 conv)", "SE-Res2Net": "Res2Net (s=4)"}
    out: Dict[str, ReportCheck] = {}
    for kind in ("block_params", "block_macs"):
        rows = _table(claims, kind)
        for se_block, plain in pairs.items():
            if se_block not in rows or plain not in rows:
                continue
            c, p = rows[se_block], rows[plain]
            diff = _interval(c.value - p.value, c.half_unit + p.half_unit)
            if kind == "block_params":
                extra = (se_weights / 1e6, se_weights / 1e6)
                what = f"{se_weights:.0f} weights (2·C²/r, C={C}, r={r})"
            else:  # at most a 32×32 map (the network's largest), pooling and gate on C channels
                hw = 32 * 32
                extra = (se_weights / 1e6, (se_weights + 2 * C * hw) / 1e6)
                what = f"{se_weights:.0f} MACs plus ≤ {2 * C * hw:,} adds and multiplies for the mean and gate on ≤ 32×32 maps"
            ok = _overlaps(diff, extra)
            out[c.id] = ReportCheck(ok, f"{se_block} − {plain} in the report's table = {c.value - p.value:+.2f} M "
                                        f"({diff[0]:+.3f} to {diff[1]:+.3f} under rounding); the report's own SE adds {what} "
                                        f"= {extra[1]:.4f} M")
    return out


def report_checks(claims: Sequence[Claim], constants: Optional[Mapping[str, Any]] = None) -> Dict[str, ReportCheck]:
    """Every claim that other numbers of the same report decide, by claim id (no training needed)."""
    out = _stat_checks(claims)
    out.update(_delta_checks(claims))
    out.update(_block_checks(claims, constants or {}))
    return out


# --------------------------------------------------------------------------- measurements


def _profile_rank(p: str) -> int:
    return PROFILE_ORDER.index(p) if p in PROFILE_ORDER else -1


def _complete(records: "pd.DataFrame") -> "pd.DataFrame":
    if records is None or len(records) == 0:
        return records.iloc[0:0] if records is not None else records
    return records[(records["status"] == "complete") & records["final_test_error"].notna()]


def _errors(records: "pd.DataFrame", profile: str, model: str) -> List[float]:
    """Final errors of complete runs of ``model`` under ``profile``, one per seed (the first record of a seed)."""
    ok = _complete(records)
    if ok is None or len(ok) == 0:
        return []
    sel = ok[(ok["profile"] == profile) & (ok["model"] == model)].drop_duplicates("seed")
    return sel["final_test_error"].astype(float).tolist()


def _profiles_with(records: "pd.DataFrame", models: Iterable[str]) -> List[str]:
    """Profiles where every model in ``models`` has ≥ 1 complete run, most faithful first."""
    ok = _complete(records)
    if ok is None or len(ok) == 0:
        return []
    models = list(models)
    profs = [p for p in ok["profile"].unique() if p in PROFILE_ORDER
             and all(((ok["profile"] == p) & (ok["model"] == m)).any() for m in models)]
    return sorted(profs, key=_profile_rank, reverse=True)


def _selected(records: "pd.DataFrame", profile: str, models: Iterable[str]) -> "pd.DataFrame":
    ok = _complete(records)
    return ok[(ok["profile"] == profile) & ok["model"].isin(list(models))]


def _hardware(records: "pd.DataFrame", profile: str, models: Iterable[str]) -> str:
    names = sorted({str(x) for x in _selected(records, profile, models)["device_name"].dropna()})
    return ", ".join(names) if names else "not recorded"


def _data_note(records: "pd.DataFrame", profile: str, models: Iterable[str]) -> str:
    sel = _selected(records, profile, models)
    if len(sel) and sel["data_is_sample"].any():
        return "trained on the embedded CIFAR-10 sample, not the full data set"
    return ""


def _t_interval(vals: Sequence[float], confidence: float) -> Tuple[float, float]:
    """The t interval of the mean (scipy.stats.t.interval), NaN for fewer than two values."""
    import numpy as np
    from scipy import stats as sps

    x = np.asarray(vals, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    sem = float(sps.sem(x))
    if sem == 0:
        return float(x.mean()), float(x.mean())
    lo, hi = sps.t.interval(confidence, len(x) - 1, loc=float(x.mean()), scale=sem)
    return float(lo), float(hi)


def _welch_interval(a: Sequence[float], b: Sequence[float], confidence: float) -> Tuple[float, float, float]:
    """mean(a) − mean(b) and its Welch interval (scipy.stats.ttest_ind(..., equal_var=False).confidence_interval)."""
    import numpy as np
    from scipy import stats as sps

    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean())
    if len(xa) < 2 or len(xb) < 2:
        return diff, math.nan, math.nan
    if xa.var() == 0 and xb.var() == 0:
        return diff, diff, diff
    ci = sps.ttest_ind(xa, xb, equal_var=False).confidence_interval(confidence)
    return diff, float(ci.low), float(ci.high)


def _fmt_welch(lo: float, hi: float, confidence: float) -> str:
    """The Welch interval as text; with one run on a side there is no variance to build it from, so say so."""
    if math.isnan(lo) or math.isnan(hi):
        return f"{confidence:.0%} Welch CI undefined: one run on a side"
    return f"{confidence:.0%} Welch CI {lo:+.2f} to {hi:+.2f}"


def _fmt_err(vals: Sequence[float], confidence: float = 0.95) -> str:
    import numpy as np

    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f} % (n=1)"
    lo, hi = _t_interval(vals, confidence)
    return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f} % (n={len(vals)}; {confidence:.0%} CI {lo:.2f}–{hi:.2f})"


@dataclass
class _Row:
    measured: str = "—"
    profile: str = "—"
    hardware: str = "—"
    verdict: str = NOT_YET
    note: str = ""


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _not_at_verdict_profile(c: Claim, row: _Row, profile: str) -> None:
    row.verdict = NOT_YET
    row.note = _notes(f"measured under the {profile} profile only, not the report's protocol ({c.verdict_profile}); "
                      f"no verdict until runs that satisfy {c.verdict_profile} exist", row.note)


def _seed_shortfall(c: Claim, records: "pd.DataFrame", models: Sequence[str]) -> str:
    """'' when every model has the report's number of seeds under the verdict profile, else what is missing."""
    short = [f"{m} {len(_errors(records, c.verdict_profile, m))} of {c.seeds_required}" for m in models
             if len(_errors(records, c.verdict_profile, m)) < c.seeds_required]
    return ("seeds under the report's protocol: " + ", ".join(short)) if short else ""


def _pick_profile(c: Claim, records: "pd.DataFrame", models: Sequence[str], row: _Row) -> Optional[str]:
    """The verdict profile when all ``models`` have runs under it, else the most faithful one that has them
    (shown, not judged), else None with a note. A plumbing profile (smoke) counts only while no other profile has
    complete runs, as on the results pages (:func:`se_res2net.audit.results.page_profiles`): its chance-level
    errors beside trained ones would read as results."""
    from .results import page_profiles

    profs = _profiles_with(records, models)
    ok = _complete(records)
    present = [p for p in ok["profile"].unique() if p in PROFILE_ORDER] if ok is not None and len(ok) else []
    shown, set_aside = page_profiles(present)
    aside = [p for p in profs if p in set_aside]
    profs = [p for p in profs if p not in set_aside]
    if not profs:
        row.note = f"no complete run of {' and '.join(models)} under any profile"
        if aside:
            row.note = (f"no complete run of {' and '.join(models)} under {' or '.join(shown)}; the {', '.join(aside)} "
                        f"runs are a plumbing check, set aside now that {', '.join(shown)} has complete runs")
        return None
    prof = c.verdict_profile if c.verdict_profile in profs else profs[0]
    row.profile, row.hardware = prof, _hardware(records, prof, models)
    return prof


def _gate(c: Claim, records: "pd.DataFrame", models: Sequence[str], prof: str, row: _Row) -> bool:
    """True when a verdict may be given: the verdict profile, the report's number of seeds."""
    if prof != c.verdict_profile:
        _not_at_verdict_profile(c, row, prof)
        return False
    short = _seed_shortfall(c, records, models)
    if short:
        row.verdict = f"{NOT_YET} ({short})"
        return False
    return True


def _trained_error(c: Claim, records: "pd.DataFrame") -> _Row:
    row = _Row()
    prof = _pick_profile(c, records, [c.model], row)
    if prof is None:
        return row
    vals = _errors(records, prof, c.model)
    row.measured = _fmt_err(vals, c.confidence)
    row.note = _data_note(records, prof, [c.model])
    if not _gate(c, records, [c.model], prof, row):
        return row
    lo, hi = _t_interval(vals, c.confidence)
    inside = lo <= c.value <= hi
    row.verdict = (f"{REPRODUCED if inside else NOT_REPRODUCED} (claimed {c.value:g} % "
                   f"{'inside' if inside else 'outside'} our {c.confidence:.0%} CI {lo:.2f}–{hi:.2f} %)")
    return row


def _pair_outcomes(c: Claim, records: "pd.DataFrame", pairs: Sequence[Tuple[str, str]], prof: str) -> List[Tuple[str, str, float, float, float]]:
    """(better, worse, gap, low, high) per claimed pair: gap = mean(worse) − mean(better) with its Welch interval."""
    out = []
    for better, worse in pairs:
        gap, lo, hi = _welch_interval(_errors(records, prof, worse), _errors(records, prof, better), c.confidence)
        out.append((better, worse, gap, lo, hi))
    return out


def _order_verdict(outcomes: Sequence[Tuple[str, str, float, float, float]], confidence: float) -> Tuple[str, str]:
    against = [o for o in outcomes if o[4] < 0]
    unresolved = [o for o in outcomes if not (o[3] > 0 or o[4] < 0)]
    fmt = lambda o: f"{o[1]} − {o[0]} = {o[2]:+.2f} pp ({confidence:.0%} CI {o[3]:+.2f} to {o[4]:+.2f})"  # noqa: E731
    detail = "; ".join(fmt(o) for o in outcomes)
    if against:
        return f"{NOT_REPRODUCED} (resolved the other way: " + ", ".join(f"{o[1]} < {o[0]}" for o in against) + ")", detail
    if unresolved:
        return (f"{INCONCLUSIVE} (gap within the measured noise: " + ", ".join(f"{o[0]} vs {o[1]}" for o in unresolved)
                + ")"), detail
    return f"{REPRODUCED} (every gap resolved)", detail


def _ordering(c: Claim, records: "pd.DataFrame") -> _Row:
    import numpy as np

    row = _Row()
    group = list(c.order) if c.kind == "ordering" else [c.model, *c.baselines]
    pairs = list(zip(group, group[1:])) if c.kind == "ordering" else [(c.model, b) for b in c.baselines]
    ok = _complete(records)
    present = sorted({p for p in ok["profile"] if p in PROFILE_ORDER}, key=_profile_rank, reverse=True) if len(ok) else []
    if not present:
        row.note = "no complete runs"
        return row
    prof = c.verdict_profile if c.verdict_profile in present else present[0]
    means = {m: float(np.mean(_errors(records, prof, m))) for m in group if _errors(records, prof, m)}
    row.profile, row.hardware = prof, _hardware(records, prof, group)
    missing = [m for m in group if m not in means]
    by_mean = sorted(means, key=means.get)  # type: ignore[arg-type]
    row.measured = "by mean: " + " < ".join(f"{m} {means[m]:.2f} %" for m in by_mean) if means else "—"
    row.note = _notes(_data_note(records, prof, group), f"missing under {prof}: {', '.join(missing)}" if missing else "")
    if missing:
        if prof != c.verdict_profile:
            _not_at_verdict_profile(c, row, prof)
        return row
    if not _gate(c, records, group, prof, row):
        return row
    verdict, detail = _order_verdict(_pair_outcomes(c, records, pairs, prof), c.confidence)
    row.verdict = verdict
    row.note = _notes(detail, row.note)
    return row


def _stat(c: Claim, records: "pd.DataFrame", claimed_diff: Optional[float] = None) -> _Row:
    """``claimed_diff``: the report's Δ for the same pair (its ``stat_diff`` claim). A significance claim found not
    reproduced then says how likely our test was to detect that Δ at our own spread: a miss at low power is weak
    evidence against the claim."""
    from .stats import cohens_d, pooled_sd, summarize, t_test_power, welch_t

    row = _Row()
    models = [c.baseline or "", c.model]
    prof = _pick_profile(c, records, models, row)
    if prof is None:
        return row
    a, b = _errors(records, prof, c.baseline or ""), _errors(records, prof, c.model)
    p_welch, d = welch_t(a, b).p, cohens_d(a, b)
    diff, lo, hi = _welch_interval(a, b, c.confidence)
    n = f"n={len(a)} vs {len(b)}"
    if c.kind == "stat_diff":
        row.measured = f"Δ = {diff:+.3g} pp ({n}; {_fmt_welch(lo, hi, c.confidence)})"
    elif c.kind == "stat_p":
        row.measured = f"Welch p = {p_welch:.3g} ({n})" if not math.isnan(p_welch) else f"Welch p undefined ({n})"
    else:
        row.measured = f"d = {d:.3g} ({n})" if not math.isnan(d) else f"d undefined ({n})"
    row.note = _data_note(records, prof, [c.model])
    if not _gate(c, records, models, prof, row):
        return row
    if c.kind == "stat_diff":
        inside = lo <= c.value <= hi
        row.verdict = f"{REPRODUCED if inside else NOT_REPRODUCED} (claimed {c.value:+g} pp {'inside' if inside else 'outside'} the interval)"
    elif c.kind == "stat_p":
        alpha = float(c.tolerance.get("alpha", 0.05))
        ok = p_welch <= alpha and diff * (1 if c.value >= 0 else -1) > 0
        row.verdict = (f"{REPRODUCED} (p ≤ {alpha:g}, an improvement)" if ok
                       else f"{NOT_REPRODUCED} (p = {p_welch:.2g} > {alpha:g}, or no improvement)")
        sa, sb = summarize(a), summarize(b)
        if not ok and claimed_diff is not None and sa.n >= 2 and sb.n >= 2:
            s = pooled_sd(sa.std, sa.n, sb.std, sb.n)
            if s > 0:
                power = t_test_power(claimed_diff, s, sa.n, sb.n, alpha)
                row.note = _notes(row.note, f"at our pooled σ = {s:.2f} pp, {sa.n} + {sb.n} seeds detect the claimed "
                                            f"Δ = {claimed_diff:g} pp with a power of {power:.2f} (two-sided t test, "
                                            f"α = {alpha:g})")
    else:
        from scipy import stats as sps

        na, nb = len(a), len(b)
        se = math.sqrt((na + nb) / (na * nb) + d * d / (2 * (na + nb)))  # Hedges & Olkin (1985), eq. 5.15
        z = float(sps.norm.ppf(0.5 + c.confidence / 2))
        dlo, dhi = d - z * se, d + z * se
        row.measured += f"; {c.confidence:.0%} CI {dlo:.2f} to {dhi:.2f}"
        inside = dlo <= c.value <= dhi
        row.verdict = f"{REPRODUCED if inside else NOT_REPRODUCED} (claimed d = {c.value:g} {'inside' if inside else 'outside'} the interval)"
    return row


def _by_model(rows: Optional[Iterable[Mapping[str, Any]]], key: str) -> Dict[str, Mapping[str, Any]]:
    return {str(r[key]): r for r in (rows or [])}


def _counted(c: Claim, complexity: Dict[str, Mapping[str, Any]], blocks: Dict[str, Mapping[str, Any]]) -> _Row:
    row = _Row(profile=COUNTED, hardware=COUNTED_HW)
    band = 2 * c.half_unit if c.kind == "delta_params" else c.half_unit
    if c.kind in ("params", "macs"):
        r = complexity.get(c.model)
        if r is None:
            row.note = f"{c.model} not in the complexity table"
            return row
        val = r["params"] / 1e6 if c.kind == "params" else r["macs"] / 1e6
        row.measured = f"{val:.3f} {c.unit}"
    elif c.kind in ("block_params", "block_macs"):
        r = blocks.get(c.model)
        if r is None:
            row.note = f"block {c.model!r} not in the per-block table"
            return row
        val = r["params_M"] if c.kind == "block_params" else r["macs_M"]
        row.measured = f"{val:.3f} {c.unit}"
        row.note = f"one block, C=64 in/out, {r.get('resolution', '?')} map (the report gives no resolution)"
    else:  # delta or overhead against the baseline
        r, base = complexity.get(c.model), complexity.get(c.baseline or "")
        if r is None or base is None:
            row.note = f"{c.model} or {c.baseline} not in the complexity table"
            return row
        if c.kind == "delta_params":
            val = (r["params"] - base["params"]) / 1e6
            row.measured = f"{val:+.4f} M"
        elif c.kind == "overhead_params":
            val = 100 * (r["params"] / base["params"] - 1)
            row.measured = f"{val:+.2f} %"
            row.note = f"absolute: {(r['params'] - base['params']) / 1e6:+.4f} M params"
        else:
            val = 100 * (r["flops_all_M"] / base["flops_all_M"] - 1)
            thop = 100 * (r["macs"] / base["macs"] - 1)
            conv = 100 * (r["flops_torch_M"] / base["flops_torch_M"] - 1)
            row.measured = f"{val:+.2f} % (every op)"
            row.note = (f"thop MACs: {thop:+.3f} % (misses the SE mean and multiply); FlopCounterMode convs/matmuls only: "
                        f"{conv:+.3f} %; every op: {val:+.3f} %, of which the SE gates' {r.get('flops_se_M', math.nan):.3f} M FLOPs")
    ok = abs(val - c.value) <= band + 1e-12
    rounding = f"±{band:g}{' pp' if c.kind.startswith('overhead') else ' ' + c.unit}"
    if c.by_construction:
        row.verdict = (f"{BY_CONSTRUCTION} (the count {'lands within' if ok else 'lands outside'} the report's rounding "
                       f"{rounding}, and confirms nothing either way)")
    else:
        row.verdict = f"{REPRODUCED if ok else NOT_REPRODUCED} ({'within' if ok else 'outside'} the report's rounding {rounding})"
    return row


def _error_drop(c: Claim, records: "pd.DataFrame", complexity: Dict[str, Mapping[str, Any]]) -> _Row:
    """``efficiency`` (params per pp of error drop) and ``delta_error`` claims."""
    row = _Row()
    models = [c.baseline or "", c.model]
    prof = _pick_profile(c, records, models, row)
    if prof is None:
        return row
    base, var = _errors(records, prof, c.baseline or ""), _errors(records, prof, c.model)
    de, lo, hi = _welch_interval(var, base, c.confidence)  # error change of the variant: negative = a drop
    row.note = _data_note(records, prof, [c.model])
    if c.kind == "delta_error":
        row.measured = f"ΔError = {de:+.2f} pp (n={len(base)} vs {len(var)}; {_fmt_welch(lo, hi, c.confidence)})"
        if _gate(c, records, models, prof, row):
            inside = lo <= c.value <= hi
            row.verdict = f"{REPRODUCED if inside else NOT_REPRODUCED} (claimed {c.value:+g} pp {'inside' if inside else 'outside'} the interval)"
        return row
    pv, pb = complexity.get(c.model), complexity.get(c.baseline or "")
    if pv is None or pb is None:
        row.note = _notes(row.note, f"{c.model} or {c.baseline} not in the complexity table")
        return row
    dp = (pv["params"] - pb["params"]) / 1e6
    ratio = dp / -de if de < 0 else math.nan
    drop_lo, drop_hi = -hi, -lo  # interval of the error drop
    row.measured = (f"{ratio:.3f} M per pp (ΔParams {dp:+.3f} M, ΔError {de:+.2f} pp)" if not math.isnan(ratio)
                    else f"undefined (ΔError {de:+.2f} pp: the error did not drop)")
    if not _gate(c, records, models, prof, row):
        return row
    if drop_hi <= 0:
        row.verdict = f"{NOT_REPRODUCED} (the error did not drop: ΔError CI {lo:+.2f} to {hi:+.2f} pp)"
    elif drop_lo <= 0:
        row.verdict = f"{INCONCLUSIVE} (the error drop's interval {drop_lo:+.2f} to {drop_hi:+.2f} pp includes 0: the ratio is unbounded)"
    else:
        rlo, rhi = dp / drop_hi, dp / drop_lo
        inside = rlo <= c.value <= rhi
        row.verdict = (f"{REPRODUCED if inside else NOT_REPRODUCED} (claimed {c.value:g} {'inside' if inside else 'outside'} "
                       f"{rlo:.3f}–{rhi:.3f} M per pp)")
    return row


def _class_of(verdict: str, report: Optional[ReportCheck], lit: Optional[Tuple[str, str]]) -> str:
    if report is not None and not report.consistent:
        return INCONSISTENT
    head = verdict_category(verdict)
    if head in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, BY_CONSTRUCTION):
        return head
    if lit is not None and lit[0] in (IMPLAUSIBLE, CONTRADICTED):
        return lit[0]
    return head


_RUNS_RE = re.compile(r"runs[\\/](?P<profile>[A-Za-z0-9_-]+)[\\/]")


def gradcam_profile(entry: Mapping[str, Any]) -> str:
    """The training profile of a Grad-CAM model entry, from its checkpoint path (``…/runs/<profile>/…``)."""
    ckpt = entry.get("checkpoint")
    if not entry.get("trained", True) or not ckpt:
        return "untrained"
    m = _RUNS_RE.search(str(ckpt).replace("\\", "/") + "/")
    return m["profile"] if m else "unknown"


def gradcam_run(entry: Mapping[str, Any], records: "pd.DataFrame") -> "Optional[pd.Series]":
    """The run record a Grad-CAM checkpoint belongs to (``<folder>/checkpoints/<run>.pt`` or
    ``<folder>/weights/<run>.pt`` belongs to ``<folder>/<run>.json``), or None (untrained, or no such record).
    Its profile and hardware are that one run's, never those of its model's other runs."""
    ckpt = entry.get("checkpoint")
    if not entry.get("trained", True) or not ckpt or records is None or not len(records) or "folder" not in records:
        return None
    p = Path(str(ckpt))
    folder, stem = p.parent.parent.name, p.stem
    hit = records[(records["folder"] == folder) & (records["path"].map(lambda x: Path(str(x)).stem) == stem)]
    return hit.iloc[0] if len(hit) else None


def gradcam_run_profile(entry: Mapping[str, Any], records: "pd.DataFrame") -> str:
    """The profile the Grad-CAM checkpoint's own run record satisfies (:func:`gradcam_run`;
    :mod:`se_res2net.audit.conformance` decides), ``untrained`` for an untrained model, else
    ``unknown (no run record)``."""
    if not entry.get("trained", True) or not entry.get("checkpoint"):
        return "untrained"
    run = gradcam_run(entry, records)
    return "unknown (no run record)" if run is None else str(run["profile"])


def _gradcam_entry(gradcam: Mapping[str, Any], model: str) -> Optional[Mapping[str, Any]]:
    models = gradcam.get("models") or {}
    return models[model] if model in models else next((e for e in models.values() if e.get("model") == model), None)


def _iou(c: Claim, gradcam: Optional[Mapping[str, Any]], records: "pd.DataFrame") -> _Row:
    import pandas as pd

    row = _Row(verdict=f"{UNTESTABLE}: {c.why}" if c.why else UNTESTABLE)
    if not gradcam:
        row.note = "no Grad-CAM metrics file (run se-res2net grad-cam)"
        return row
    entry = _gradcam_entry(gradcam, c.model)
    if entry is None:
        row.note = f"{c.model} not in the Grad-CAM metrics"
        return row
    iou = entry.get("mean_iou") or {}
    key = "0.5" if "0.5" in iou else (next(iter(iou)) if iou else None)
    parts = [f"IoU@{key} {float(iou[key]):.3f}"] if key else []
    if entry.get("mean_energy") is not None:
        parts.append(f"energy {float(entry['mean_energy']):.3f}")
    row.measured = ", ".join(parts) + " (our grid pointing game)"
    row.profile = gradcam_run_profile(entry, records)
    run = gradcam_run(entry, records)
    # the hardware of the checkpoint's own run: the model's other seeds may have trained elsewhere
    row.hardware = str(run["device_name"]) if run is not None and pd.notna(run["device_name"]) else "not recorded"
    settings = gradcam.get("settings") or {}
    notes = [f"{settings.get('n_mosaics', '?')} mosaics, confidence ≥ {settings.get('confidence', '?')}"]
    if settings.get("confidence_filter", "on") != "on":
        notes.append("confidence filter off")
    if (gradcam.get("data") or {}).get("is_sample"):
        notes.append("CAMs on the embedded sample")
    if row.profile != c.verdict_profile:
        notes.append(f"checkpoint from the {row.profile} profile, not the report's protocol")
    if run is not None and run["state"] != "complete":
        notes.append(f"checkpoint of an unfinished run (epoch {entry.get('epoch', '?')} of {run['planned_epochs']})")
    elif run is not None:
        notes.append(f"one run (seed {run['seed']})")
    notes.append("not comparable to the report's number (its protocol is unknown)")
    row.note = "; ".join(notes)
    return row


def ledger(
    claims: Sequence[Claim],
    records_df: "pd.DataFrame",
    complexity_rows: Optional[Iterable[Mapping[str, Any]]] = None,
    gradcam: Optional[Mapping[str, Any]] = None,
    block_rows: Optional[Iterable[Mapping[str, Any]]] = None,
    *,
    literature: Optional[Any] = None,
    constants: Optional[Mapping[str, Any]] = None,
) -> "pd.DataFrame":
    """One row per claim (columns :data:`LEDGER_COLUMNS`).

    ``records_df`` from :func:`se_res2net.audit.results.load_records` (its ``profile`` is the satisfied one);
    ``complexity_rows`` from :func:`se_res2net.models.complexity.complexity_table`; ``block_rows`` from
    :func:`~se_res2net.models.complexity.block_table`; ``gradcam`` the parsed ``gradcam_metrics.json``;
    ``literature`` the entries of :func:`se_res2net.audit.literature.load_literature`; ``constants`` the
    claims file's ``report_constants``.
    """
    import pandas as pd

    from .results import RECORD_COLUMNS

    records = records_df if records_df is not None else pd.DataFrame(columns=RECORD_COLUMNS)
    complexity = _by_model(complexity_rows, "model")
    blocks = _by_model(block_rows, "block")
    checks = report_checks(claims, constants)
    lit: Dict[str, Tuple[str, str]] = {}
    if literature is not None:
        from .literature import literature_checks

        lit = literature_checks(claims, literature)
    out = []
    for c in claims:
        if c.kind == "test_error":
            row = _trained_error(c, records)
        elif c.kind in ("ranking", "ordering"):
            row = _ordering(c, records)
        elif c.kind in ("stat_diff", "stat_p", "stat_d"):
            row = _stat(c, records, next((d.value for d in claims if d.kind == "stat_diff" and d.model == c.model
                                          and d.baseline == c.baseline), None))
        elif c.kind in _COUNTED_KINDS:
            row = _counted(c, complexity, blocks)
        elif c.kind in ("efficiency", "delta_error"):
            row = _error_drop(c, records, complexity)
        elif c.kind == "iou":
            row = _iou(c, gradcam, records)
        elif c.kind == "literature":
            row = _Row(verdict=f"{UNTESTABLE}: a claim about the field; see the literature column")
        else:  # pragma: no cover - load_claims rejects unknown kinds
            raise ValueError(f"unknown kind {c.kind!r}")
        if not c.testable and not row.verdict.startswith(UNTESTABLE):
            row.verdict = f"{UNTESTABLE}: {c.why}" if c.why else UNTESTABLE
        if c.caveat:
            row.note = _notes(c.caveat, row.note)
        report, literature_row = checks.get(c.id), lit.get(c.id)
        out.append({"id": c.id, "claim": c.text, "claimed": c.claimed, "measured": row.measured,
                    "profile": row.profile, "hardware": row.hardware, "verdict": row.verdict,
                    "report check": report.label if report else "—",
                    "literature": (f"{literature_row[0]}: {literature_row[1]}" if literature_row else "—"),
                    "class": _class_of(row.verdict, report, literature_row), "note": row.note,
                    "kind": c.kind, "rule": str(c.tolerance.get("rule", ""))})
    return pd.DataFrame(out, columns=LEDGER_COLUMNS)


# --------------------------------------------------------------------------- book helpers


def book_ledger(book_dir: PathLike = ".", records_df: Optional["pd.DataFrame"] = None) -> "pd.DataFrame":
    """:func:`ledger` from the book's own files (``claims.yaml``, ``runs/``, ``gradcam/``, ``literature.yaml``
    under ``book_dir``) and counts computed now: what the ledger page and the introduction show."""
    from ..models import complexity
    from . import literature
    from . import results

    book = Path(book_dir)
    claim_list = load_claims(book / "claims.yaml")
    records = results.load_records(book / "runs") if records_df is None else records_df
    lit_path = book / "literature.yaml"
    return ledger(claim_list, records, complexity.complexity_table(claim_models(claim_list)),
                  load_gradcam(book / "gradcam" / "gradcam_metrics.json"), complexity.block_table(),
                  literature=literature.load_literature(lit_path) if lit_path.is_file() else None,
                  constants=report_constants(book / "claims.yaml"))


def rules_table(path: PathLike = "book/claims.yaml") -> "pd.DataFrame":
    """The rule of each kind of claim and why it is fair (``tolerances:`` of the claims file)."""
    import pandas as pd

    return pd.DataFrame([{"kind": k, "rule": v.get("rule", ""), "why it is fair": v.get("why", "")}
                         for k, v in _section(path, "tolerances").items()])


def load_gradcam(path: PathLike = "book/gradcam/gradcam_metrics.json") -> Optional[Dict[str, Any]]:
    """The Grad-CAM metrics, or ``None`` when the file does not exist yet."""
    import json

    p = Path(path)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON ({exc}); delete it and re-run se-res2net grad-cam") from None


def headline_profile(records_df: "pd.DataFrame") -> Optional[str]:
    """The most faithful profile with at least one complete run (``full`` > ``budget`` > ``smoke``), or None."""
    ok = _complete(records_df)
    if ok is None or len(ok) == 0:
        return None
    return sorted(set(ok["profile"]), key=_profile_rank, reverse=True)[0]


#: The rows of :func:`profile_table`: a profile setting and how a reader calls it.
_PROFILE_ROWS = (("epochs", "epochs"), ("batch_size", "batch size"), ("lr", "learning rate"),
                 ("milestones", "lr milestones (epochs)"), ("gamma", "lr factor at a milestone"),
                 ("momentum", "momentum"), ("weight_decay", "weight decay"), ("augment", "augmentation"), ("train_subset", "training images"), ("test_subset", "test images"),
                 ("device_hint", "meant for"))
_AUGMENT_NAMES = {"crop4-flip": "pad 4, random crop, flip", "none": "none"}


def profile_table() -> "pd.DataFrame":
    """The training profiles (:data:`se_res2net.training.profiles.PROFILES`) side by side: one row per setting (a
    reader's name for it), one column per profile, values as text; the descriptions are the profiles' own."""
    import pandas as pd

    from ..training.profiles import PROFILES

    cols = {}
    for name, p in PROFILES.items():
        s = dict(p.summary(), gamma=p.gamma)
        s["milestones"] = ", ".join(str(m) for m in s["milestones"]) or "none"
        for k in ("train_subset", "test_subset"):
            s[k] = "all" if s[k] is None else f"{s[k]:,}"
        s["augment"] = _AUGMENT_NAMES.get(str(s["augment"]), str(s["augment"]))
        s["device_hint"] = {"cpu": "CPU", "cuda": "GPU"}.get(str(s["device_hint"]), str(s["device_hint"]))
        cols[name] = [f"{s[k]:g}" if isinstance(s[k], float) else str(s[k]) for k, _ in _PROFILE_ROWS]
    return pd.DataFrame(cols, index=pd.Index([label for _, label in _PROFILE_ROWS], name="setting"))


def _is_count(x: Any) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def run_pages(records_df: "pd.DataFrame", book_dir: PathLike = ".") -> "pd.DataFrame":
    """Each run with the relative HTML link of its executed notebook (``runs/<profile>/<model>_seed<k>.html``)
    when the notebook exists beside its record, else an empty link."""
    import pandas as pd

    rows = []
    if records_df is not None and len(records_df):
        book = Path(book_dir)
        for _, r in records_df.sort_values(["profile", "model", "seed"]).iterrows():
            stem = f"{r['model']}_seed{int(r['seed'])}"
            nb = book / "runs" / str(r["profile"]) / f"{stem}.ipynb"
            done = r["state"] == "complete"
            rows.append({"profile": r["profile"], "model": r["model"], "seed": int(r["seed"]), "state": r["state"],
                         "final_test_error": r["final_test_error"],
                         "epochs": f"{int(r['epochs'])} of {int(r['planned_epochs'])}",
                         # where an unfinished run stopped: shown as such, never as its result
                         "last logged test error (not a result)": math.nan if done else r["last_test_error"],
                         # every machine that trained it, with its epochs when there were several
                         "wall_time_s": r["wall_time_s"],
                         "hardware": r["trained_on"] if isinstance(r.get("trained_on"), str) else r["device_name"],
                         "devices": int(r["devices"]) if _is_count(r.get("devices")) else 1,
                         "notebook": f"runs/{r['profile']}/{stem}.html" if nb.is_file() else ""})
    return pd.DataFrame(rows, columns=["profile", "model", "seed", "state", "final_test_error", "epochs",
                                       "last logged test error (not a result)", "wall_time_s", "hardware",
                                       "devices", "notebook"])
