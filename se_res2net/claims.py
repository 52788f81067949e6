"""The claims ledger: ``book/claims.yaml`` (the report's numbers) + our measurements → verdicts.

Inputs, all passed in (pure functions, no file is read except by :func:`load_claims` /
:func:`load_gradcam`):

* the claims (:func:`load_claims`): each :class:`Claim` carries the report's value, where it is
  stated, its ``kind`` and the tolerance of that kind from the claims file;
* the run records (:func:`se_res2net.results.load_records`): errors in percent, one row per run,
  with the profile (``smoke`` / ``budget`` / ``full``) and the hardware it ran on;
* complexity rows computed live (:func:`se_res2net.complexity.complexity_table` and
  :func:`~se_res2net.complexity.block_table`);
* the Grad-CAM metrics (``book/gradcam/gradcam_metrics.json``, :mod:`se_res2net.gradcam`).

Verdicts (the first words are fixed; :func:`verdict_category` maps a verdict to one of them):

``reproduced (within …)``
    measured under the verdict profile (the report's protocol, ``full``) and within tolerance;
    complexity claims need no training and are judged at once;
``not reproduced (outside …)``
    measured under the verdict profile and outside tolerance;
``not yet measured``
    no measurement under the verdict profile — a smoke or budget number, when there is one, is
    shown in ``measured`` with its profile, and the note says it is not the report's protocol;
``not testable as stated``
    the report's claim lacks what a test needs (Grad-CAM IoU: no protocol, no masks); our
    measurement under a protocol we define is shown for information.
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
    "VERDICTS",
    "LEDGER_COLUMNS",
    "Claim",
    "load_claims",
    "claims_table",
    "claim_models",
    "ledger",
    "verdict_category",
    "verdict_counts",
    "report_statistics",
    "report_efficiency_rows",
    "load_gradcam",
    "gradcam_profile",
    "profile_summary",
    "headline_profile",
    "profile_table",
    "run_pages",
]

SCHEMA = "se_res2net.claims/1"
KINDS: Tuple[str, ...] = (
    "test_error", "params", "macs", "block_params", "block_macs", "stat_diff", "stat_p", "stat_d",
    "overhead_params", "overhead_macs", "efficiency", "iou", "ranking",
)
#: Profiles from least to most faithful to the report's protocol.
PROFILE_ORDER: Tuple[str, ...] = ("smoke", "budget", "full")
REPRODUCED, NOT_REPRODUCED, NOT_YET, UNTESTABLE = (
    "reproduced", "not reproduced", "not yet measured", "not testable as stated",
)
VERDICTS: Tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, NOT_YET, UNTESTABLE)
LEDGER_COLUMNS = ["id", "claim", "claimed", "measured", "profile", "hardware", "verdict", "note", "kind", "tolerance"]

COUNTED = "— (counted at build)"
COUNTED_HW = "none needed (architecture count)"

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
    sd: Optional[float] = None
    n: Optional[int] = None
    baseline: Optional[str] = None
    baselines: Tuple[str, ...] = ()
    delta_params: Optional[float] = None
    delta_error: Optional[float] = None
    testable: bool = True
    why: str = ""
    verdict_profile: str = "full"
    # A fact every verdict on this claim must carry (e.g. "our widths were searched to land here").
    caveat: str = ""
    tolerance: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def claimed(self) -> str:
        """The claimed value as the report prints it (with ± σ and n where given)."""
        v = _fmt_value(self.value)
        if self.sd is not None:
            v += f" ± {_fmt_value(self.sd)}"
        unit = f" {self.unit}" if self.unit and self.unit not in ("rank",) else ""
        if self.kind == "ranking":
            return f"rank {int(self.value)} (lowest error)"
        return v + unit + (f" (n={self.n})" if self.n else "")


def _fmt_value(x: float) -> str:
    return f"{x:g}"


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
            value = float(raw["value"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: value {raw['value']!r} is not a number") from None
        out.append(Claim(
            id=str(raw["id"]), text=str(raw["text"]), section=str(raw["section"]), quote=str(raw["quote"]),
            kind=kind, models=models, value=value, unit=str(raw["unit"] or ""), measure=str(raw["measure"]),
            sd=None if raw.get("sd") is None else float(raw["sd"]),
            n=None if raw.get("n") is None else int(raw["n"]),
            baseline=raw.get("baseline"),
            baselines=tuple(raw.get("baselines") or ()),
            delta_params=None if raw.get("delta_params") is None else float(raw["delta_params"]),
            delta_error=None if raw.get("delta_error") is None else float(raw["delta_error"]),
            testable=bool(raw.get("testable", True)),
            why=str(raw.get("why") or ""),
            verdict_profile=verdict_profile,
            caveat=str(raw.get("caveat") or ""),
            tolerance=MappingProxyType(dict(tolerances[kind])),
        ))
    if not out:
        raise ValueError(f"claims file {p} has no claims")
    return out


def claim_models(claims: Sequence[Claim]) -> List[str]:
    """Registered model names the claims are about (models and baselines), in report order."""
    from .registry import list_models
    from .results import model_order

    known = set(list_models())
    names = [m for c in claims for m in (*c.models, *(c.baselines or ()), c.baseline or "") if m in known]
    return model_order(names)


def claims_table(claims: Sequence[Claim]) -> "pd.DataFrame":
    """The claims as a table for the book (no measurement)."""
    import pandas as pd

    return pd.DataFrame([{
        "id": c.id, "claim": c.text, "value": c.claimed, "kind": c.kind, "model(s)": ", ".join(c.models),
        "section": c.section, "quote": c.quote, "how we measure it": c.measure,
        "testable": "yes" if c.testable else f"no: {c.why}",
    } for c in claims])


def verdict_category(verdict: str) -> str:
    """The fixed head of a verdict string (one of :data:`VERDICTS`)."""
    for v in (NOT_REPRODUCED, NOT_YET, UNTESTABLE, REPRODUCED):  # "not reproduced" before "reproduced"
        if verdict.startswith(v):
            return v
    raise ValueError(f"unknown verdict {verdict!r}")


def verdict_counts(table: "pd.DataFrame") -> Dict[str, int]:
    cats = [verdict_category(v) for v in table["verdict"]]
    return {v: cats.count(v) for v in VERDICTS}


# --------------------------------------------------------------------------- the report's own numbers


def _find(claims: Sequence[Claim], kind: str, model: str, baseline: Optional[str] = None) -> Optional[Claim]:
    for c in claims:
        if c.kind == kind and c.model == model and (baseline is None or c.baseline == baseline):
            return c
    return None


def report_statistics(claims: Sequence[Claim], model: str = "se_res2net29", baseline: str = "res2net29",
                      resolution: Optional[float] = 0.005) -> Dict[str, Any]:
    """Keyword arguments for :func:`se_res2net.stats.report_consistency`, from the claims file.

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
    """Rows for :func:`se_res2net.stats.efficiency_table` built from the report's own tables.

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


# --------------------------------------------------------------------------- measurements


def _profile_rank(p: str) -> int:
    return PROFILE_ORDER.index(p) if p in PROFILE_ORDER else -1


def _complete(records: "pd.DataFrame") -> "pd.DataFrame":
    if records is None or len(records) == 0:
        return records.iloc[0:0] if records is not None else records
    return records[(records["status"] == "complete") & records["final_test_error"].notna()]


def _errors(records: "pd.DataFrame", profile: str, model: str) -> List[float]:
    ok = _complete(records)
    if ok is None or len(ok) == 0:
        return []
    return ok[(ok["profile"] == profile) & (ok["model"] == model)]["final_test_error"].astype(float).tolist()


def _profiles_with(records: "pd.DataFrame", models: Iterable[str]) -> List[str]:
    """Profiles where every model in ``models`` has ≥ 1 complete run, most faithful first."""
    ok = _complete(records)
    if ok is None or len(ok) == 0:
        return []
    models = list(models)
    profs = [p for p in ok["profile"].unique() if all(((ok["profile"] == p) & (ok["model"] == m)).any() for m in models)]
    return sorted(profs, key=_profile_rank, reverse=True)


def _hardware(records: "pd.DataFrame", profile: str, models: Iterable[str]) -> str:
    ok = _complete(records)
    sel = ok[(ok["profile"] == profile) & ok["model"].isin(list(models))]
    names = sorted({str(x) for x in sel["device_name"].dropna()})
    return ", ".join(names) if names else "not recorded"


def _data_note(records: "pd.DataFrame", profile: str, models: Iterable[str]) -> str:
    ok = _complete(records)
    sel = ok[(ok["profile"] == profile) & ok["model"].isin(list(models))]
    if len(sel) and sel["data_is_sample"].any():
        return "trained on the embedded CIFAR-10 sample, not the full data set"
    return ""


def _fmt_err(vals: Sequence[float]) -> str:
    import numpy as np

    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f} % (n=1)"
    return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f} % (n={len(vals)})"


@dataclass
class _Row:
    measured: str = "—"
    profile: str = "—"
    hardware: str = "—"
    verdict: str = NOT_YET
    note: str = ""


def _within(c: Claim, measured: float) -> Tuple[bool, str]:
    """Tolerance check of one measured number against the claim; returns (ok, short description)."""
    tol = c.tolerance
    if "rel" in tol:
        rel = float(tol["rel"])
        ok = abs(measured / c.value - 1) <= rel if c.value else False
        return ok, f"±{rel:.0%}"
    if c.kind == "test_error":
        band = max(float(tol.get("sigma_mult", 0)) * (c.sd or 0.0), float(tol.get("abs", 0.0)))
        return abs(measured - c.value) <= band, f"±{band:.2f} pp"
    band = float(tol["abs"])
    return abs(measured - c.value) <= band, f"±{band:g} {'pp' if c.unit in ('%', 'pp') else c.unit}".rstrip()


def _judge(c: Claim, measured: float) -> str:
    ok, desc = _within(c, measured)
    return f"{REPRODUCED} (within {desc})" if ok else f"{NOT_REPRODUCED} (outside {desc})"


def _not_at_verdict_profile(c: Claim, row: _Row, profile: str) -> None:
    row.verdict = NOT_YET
    row.note = (f"measured under the {profile} profile only, not the report's protocol ({c.verdict_profile}); "
                f"no verdict until {c.verdict_profile} runs exist" + (f"; {row.note}" if row.note else ""))


def _trained_error(c: Claim, records: "pd.DataFrame") -> _Row:
    row = _Row()
    profs = _profiles_with(records, [c.model])
    if not profs:
        row.note = f"no complete run of {c.model} under any profile"
        return row
    prof = c.verdict_profile if c.verdict_profile in profs else profs[0]
    vals = _errors(records, prof, c.model)
    row.measured, row.profile = _fmt_err(vals), prof
    row.hardware = _hardware(records, prof, [c.model])
    row.note = _data_note(records, prof, [c.model])
    if prof != c.verdict_profile:
        _not_at_verdict_profile(c, row, prof)
        return row
    import numpy as np

    row.verdict = _judge(c, float(np.mean(vals)))
    if c.n and len(vals) != c.n:
        row.note = "; ".join(x for x in (row.note, f"{len(vals)} run(s) vs the report's {c.n}") if x)
    return row


def _ranking(c: Claim, records: "pd.DataFrame") -> _Row:
    import numpy as np

    row = _Row()
    group = [c.model, *c.baselines]
    ok = _complete(records)
    present = sorted(set(ok["profile"]), key=_profile_rank, reverse=True) if ok is not None and len(ok) else []
    if not present:
        row.note = "no complete runs"
        return row
    prof = c.verdict_profile if c.verdict_profile in present else present[0]
    means = {m: float(np.mean(_errors(records, prof, m))) for m in group if _errors(records, prof, m)}
    missing = [m for m in group if m not in means]
    row.profile, row.hardware = prof, _hardware(records, prof, group)
    if c.model not in means:
        row.note = f"no {c.model} runs under {prof}"
        if prof != c.verdict_profile:
            _not_at_verdict_profile(c, row, prof)
        return row
    order = sorted(means, key=means.get)  # type: ignore[arg-type]
    rank = order.index(c.model) + 1
    row.measured = f"rank {rank} of {len(order)} (" + ", ".join(f"{m} {means[m]:.2f} %" for m in order) + ")"
    notes = [_data_note(records, prof, group)]
    if missing:
        notes.append(f"missing under {prof}: {', '.join(missing)}")
    row.note = "; ".join(x for x in notes if x)
    if prof != c.verdict_profile:
        _not_at_verdict_profile(c, row, prof)
    elif missing:
        row.verdict = NOT_YET
    else:
        row.verdict = f"{REPRODUCED} (lowest mean error)" if rank == 1 else f"{NOT_REPRODUCED} (rank {rank})"
    return row


def _stat(c: Claim, records: "pd.DataFrame", claims: Sequence[Claim], seed: int) -> _Row:
    from .stats import compare, report_consistency

    row = _Row()
    consistency = ""
    try:
        rep = report_consistency(**report_statistics(claims, c.model, c.baseline or "res2net29"))
        key = {"stat_p": "p", "stat_d": "d", "stat_diff": "diff"}[c.kind]
        chk = [x for x in rep.checks if x.quantity == key]
        if chk:
            x = chk[0]
            consistency = (f"the report's own table (means ± σ, n=3) implies {key} = {x.implied:.3g} "
                           f"(range {x.implied_low:.3g}–{x.implied_high:.3g} under rounding): the claimed value is "
                           + ("consistent with it" if x.consistent else "INCONSISTENT with it"))
    except ValueError as exc:
        consistency = f"report consistency not computed: {exc}"
    profs = _profiles_with(records, [c.model, c.baseline or ""])
    if not profs:
        row.note = "; ".join(x for x in (f"no runs of both {c.baseline} and {c.model}", consistency) if x)
        return row
    prof = c.verdict_profile if c.verdict_profile in profs else profs[0]
    a, b = _errors(records, prof, c.baseline or ""), _errors(records, prof, c.model)
    cmp = compare(a, b, names=(c.baseline or "a", c.model), seed=seed, n_resamples=2000)
    row.profile, row.hardware = prof, _hardware(records, prof, [c.model, c.baseline or ""])
    value = {"stat_diff": cmp.diff, "stat_p": cmp.welch.p, "stat_d": cmp.d}[c.kind]
    label = {"stat_diff": "Δ", "stat_p": "Welch p", "stat_d": "d"}[c.kind]
    row.measured = (f"{label} = {value:.3g} (n={cmp.a.n} vs {cmp.b.n})" if not math.isnan(value)
                    else f"{label} undefined (n={cmp.a.n} vs {cmp.b.n})")
    notes = [_data_note(records, prof, [c.model]), consistency]
    if math.isnan(value):
        notes.insert(0, cmp.as_row()["note"])
    row.note = "; ".join(x for x in notes if x)
    if prof != c.verdict_profile:
        _not_at_verdict_profile(c, row, prof)
        return row
    if math.isnan(value):
        row.verdict = NOT_YET
        return row
    if c.kind == "stat_p":
        alpha = float(c.tolerance.get("alpha", 0.05))
        ok = value <= alpha and cmp.diff * (1 if c.value >= 0 else -1) > 0
        row.verdict = (f"{REPRODUCED} (p ≤ {alpha:g}, same sign)" if ok
                       else f"{NOT_REPRODUCED} (p > {alpha:g} or opposite sign)")
    elif c.kind == "stat_d":
        same = (value > 0) == (c.value > 0)
        ok, desc = _within(c, value)
        row.verdict = f"{REPRODUCED} (within {desc})" if ok and same else f"{NOT_REPRODUCED} (outside {desc} or opposite sign)"
    else:
        same = (value > 0) == (c.value > 0)
        ok, desc = _within(c, value)
        row.verdict = f"{REPRODUCED} (within {desc})" if ok and same else f"{NOT_REPRODUCED} (outside {desc} or opposite sign)"
    return row


def _by_model(rows: Optional[Iterable[Mapping[str, Any]]], key: str) -> Dict[str, Mapping[str, Any]]:
    return {str(r[key]): r for r in (rows or [])}


def _counted(c: Claim, complexity: Dict[str, Mapping[str, Any]], blocks: Dict[str, Mapping[str, Any]]) -> _Row:
    row = _Row(profile=COUNTED, hardware=COUNTED_HW)
    if c.kind in ("params", "macs"):
        r = complexity.get(c.model)
        if r is None:
            row.note = f"{c.model} not in the complexity table"
            return row
        val = r["params"] / 1e6 if c.kind == "params" else r["macs"] / 1e6
    elif c.kind in ("block_params", "block_macs"):
        r = blocks.get(c.model)
        if r is None:
            row.note = f"block {c.model!r} not in the per-block table"
            return row
        val = r["params_M"] if c.kind == "block_params" else r["macs_M"]
        row.note = f"one block, C=64 in/out, {r.get('resolution', '?')} map (the report gives no resolution)"
    else:  # overhead
        r, base = complexity.get(c.model), complexity.get(c.baseline or "")
        if r is None or base is None:
            row.note = f"{c.model} or {c.baseline} not in the complexity table"
            return row
        key = "params" if c.kind == "overhead_params" else "macs"
        val = 100 * (r[key] / base[key] - 1)
        row.note = f"absolute: {(r[key] - base[key]) / 1e6:+.4f} M {'params' if key == 'params' else 'MACs'}"
    if c.kind.startswith("overhead"):
        row.measured = f"{val:+.2f} %"
    else:
        row.measured = f"{val:.3f} {c.unit} (×{val / c.value:.2f} of claimed)"
    row.verdict = _judge(c, val)
    return row


def _efficiency(c: Claim, records: "pd.DataFrame", complexity: Dict[str, Mapping[str, Any]]) -> _Row:
    import numpy as np

    from .stats import efficiency_table

    row = _Row()
    own = ""
    if c.delta_params is not None and c.delta_error:
        own = f"the report's own ΔParams / −ΔError = {c.delta_params:g} / {-c.delta_error:g} = {c.delta_params / -c.delta_error:.3f}"
    profs = _profiles_with(records, [c.model, c.baseline or ""])
    base_m, var_m = complexity.get(c.baseline or ""), complexity.get(c.model)
    if not profs or base_m is None or var_m is None:
        row.note = "; ".join(x for x in (f"needs runs of {c.baseline} and {c.model}", own) if x)
        return row
    prof = c.verdict_profile if c.verdict_profile in profs else profs[0]
    t = efficiency_table([{
        "variant": c.model, "baseline": c.baseline,
        "params_variant": var_m["params"] / 1e6, "params_baseline": base_m["params"] / 1e6,
        "error_variant": float(np.mean(_errors(records, prof, c.model))),
        "error_baseline": float(np.mean(_errors(records, prof, c.baseline or ""))),
    }]).iloc[0]
    ratio = float(t["params_per_1pct_drop_m"])
    row.profile, row.hardware = prof, _hardware(records, prof, [c.model, c.baseline or ""])
    row.measured = (f"{ratio:.3f} M per pp (ΔParams {t['delta_params_m']:+.3f} M, ΔError {t['delta_error_pct']:+.2f} pp)"
                    if not math.isnan(ratio) else f"undefined (ΔError {t['delta_error_pct']:+.2f} pp)")
    row.note = "; ".join(x for x in (t["note"], _data_note(records, prof, [c.model]), own) if x)
    if prof != c.verdict_profile:
        _not_at_verdict_profile(c, row, prof)
    elif math.isnan(ratio):
        row.verdict = f"{NOT_REPRODUCED} (the error did not drop)"
    else:
        row.verdict = _judge(c, ratio)
    return row


_RUNS_RE = re.compile(r"runs[\\/](?P<profile>[A-Za-z0-9_-]+)[\\/]")


def gradcam_profile(entry: Mapping[str, Any]) -> str:
    """The training profile of a Grad-CAM model entry, from its checkpoint path (``…/runs/<profile>/…``)."""
    ckpt = entry.get("checkpoint")
    if not entry.get("trained", True) or not ckpt:
        return "untrained"
    m = _RUNS_RE.search(str(ckpt).replace("\\", "/") + "/")
    return m["profile"] if m else "unknown"


def _gradcam_entry(gradcam: Mapping[str, Any], model: str) -> Optional[Mapping[str, Any]]:
    models = gradcam.get("models") or {}
    if model in models:
        return models[model]
    for entry in models.values():
        if entry.get("model") == model:
            return entry
    return None


def _iou(c: Claim, gradcam: Optional[Mapping[str, Any]], records: "pd.DataFrame") -> _Row:
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
    row.profile = gradcam_profile(entry)
    row.hardware = _hardware(records, row.profile, [c.model]) if row.profile in set(records["profile"]) else "not recorded"
    settings = gradcam.get("settings") or {}
    notes = [f"{settings.get('n_mosaics', '?')} mosaics, confidence ≥ {settings.get('confidence', '?')}"]
    if settings.get("confidence_filter", "on") != "on":
        notes.append("confidence filter off")
    if (gradcam.get("data") or {}).get("is_sample"):
        notes.append("CAMs on the embedded sample")
    if row.profile != c.verdict_profile:
        notes.append(f"checkpoint from the {row.profile} profile, not the report's protocol")
    notes.append("not comparable to the report's number (its protocol is unknown)")
    row.note = "; ".join(notes)
    return row


def ledger(
    claims: Sequence[Claim],
    records_df: "pd.DataFrame",
    complexity_rows: Optional[Iterable[Mapping[str, Any]]] = None,
    gradcam: Optional[Mapping[str, Any]] = None,
    block_rows: Optional[Iterable[Mapping[str, Any]]] = None,
    seed: int = 0,
) -> "pd.DataFrame":
    """One row per claim (columns :data:`LEDGER_COLUMNS`): claimed, measured, profile, hardware, verdict, note.

    ``records_df`` from :func:`se_res2net.results.load_records` (may be empty);
    ``complexity_rows`` from :func:`se_res2net.complexity.complexity_table`;
    ``block_rows`` from :func:`~se_res2net.complexity.block_table`; ``gradcam`` the parsed
    ``gradcam_metrics.json``. A claim whose measurement is missing is ``not yet measured``.
    """
    import pandas as pd

    from .results import RECORD_COLUMNS

    records = records_df if records_df is not None else pd.DataFrame(columns=RECORD_COLUMNS)
    complexity = _by_model(complexity_rows, "model")
    blocks = _by_model(block_rows, "block")
    out = []
    for c in claims:
        if c.kind == "test_error":
            row = _trained_error(c, records)
        elif c.kind == "ranking":
            row = _ranking(c, records)
        elif c.kind in ("stat_diff", "stat_p", "stat_d"):
            row = _stat(c, records, claims, seed)
        elif c.kind in ("params", "macs", "block_params", "block_macs", "overhead_params", "overhead_macs"):
            row = _counted(c, complexity, blocks)
        elif c.kind == "efficiency":
            row = _efficiency(c, records, complexity)
        elif c.kind == "iou":
            row = _iou(c, gradcam, records)
        else:  # pragma: no cover - load_claims rejects unknown kinds
            raise ValueError(f"unknown kind {c.kind!r}")
        if not c.testable and not row.verdict.startswith(UNTESTABLE):
            row.verdict = f"{UNTESTABLE}: {c.why}" if c.why else UNTESTABLE
        if c.caveat:
            row.note = "; ".join(x for x in (c.caveat, row.note) if x)
        out.append({"id": c.id, "claim": c.text, "claimed": c.claimed, "measured": row.measured,
                    "profile": row.profile, "hardware": row.hardware, "verdict": row.verdict, "note": row.note,
                    "kind": c.kind, "tolerance": str(c.tolerance.get("rule", ""))})
    return pd.DataFrame(out, columns=LEDGER_COLUMNS)


# --------------------------------------------------------------------------- book helpers


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


def profile_summary(records_df: "pd.DataFrame") -> "pd.DataFrame":
    """Per profile present: runs (complete / other), models, seeds, epochs, hardware, data, wall time."""
    import pandas as pd

    cols = ["profile", "complete runs", "incomplete or failed", "models", "seeds", "epochs", "hardware",
            "data", "total wall time (h)"]
    if records_df is None or len(records_df) == 0:
        return pd.DataFrame(columns=cols)
    rows = []
    for prof in sorted(records_df["profile"].unique(), key=_profile_rank, reverse=True):
        g = records_df[records_df["profile"] == prof]
        ok = _complete(g)
        data = sorted({f"{s}{' (sample)' if smp else ''}" for s, smp in zip(g["data_source"], g["data_is_sample"])})
        rows.append({
            "profile": prof, "complete runs": int(len(ok)), "incomplete or failed": int(len(g) - len(ok)),
            "models": int(g["model"].nunique()), "seeds": ", ".join(str(s) for s in sorted(g["seed"].unique())),
            "epochs": ", ".join(str(e) for e in sorted(g["epochs"].unique())),
            "hardware": ", ".join(sorted({str(d) for d in g["device_name"].dropna()})) or "not recorded",
            "data": ", ".join(str(d) for d in data),
            "total wall time (h)": round(float(g["wall_time_s"].sum()) / 3600, 3),
        })
    return pd.DataFrame(rows, columns=cols)


def profile_table() -> "pd.DataFrame":
    """The training profiles (:data:`se_res2net.profiles.PROFILES`) side by side."""
    import pandas as pd

    from .profiles import PROFILES

    rows = []
    for p in PROFILES.values():
        s = dict(p.summary())
        s["milestones"] = ", ".join(str(m) for m in s["milestones"]) or "none"
        for k in ("train_subset", "test_subset"):
            s[k] = "all" if s[k] is None else s[k]
        rows.append(s)
    return pd.DataFrame(rows).set_index("name")


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
                         "wall_time_s": r["wall_time_s"], "hardware": r["device_name"],
                         "notebook": f"runs/{r['profile']}/{stem}.html" if nb.is_file() else ""})
    return pd.DataFrame(rows, columns=["profile", "model", "seed", "state", "final_test_error", "epochs",
                                       "last logged test error (not a result)", "wall_time_s", "hardware",
                                       "notebook"])
