"""Run records → tables and curves for the book.

Records are ``<root>/<folder>/<model>_seed<k>.json`` files in the ``se_res2net.run/1``
schema (see CONTRIBUTING.md); errors are in percent. Other JSON files in those folders
are ignored. The ``profile`` column is the profile the record **satisfies**, decided from its own
config, provenance and log by :func:`se_res2net.conformance.satisfied_profile` (``full``, ``budget``,
``smoke`` or ``custom``); neither the folder a record sits in (``folder``) nor the profile it names
(``named_profile``) decides it, and ``deviations`` says why the two differ.

A missing ``root`` gives empty frames (the book builds before any run); a record with
broken JSON or the wrong schema raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from .records import SCHEMA, STATUSES, validate_record
from .stats import compare

log = logging.getLogger(__name__)

__all__ = [
    "SCHEMA",
    "RECORD_COLUMNS",
    "CURVE_COLUMNS",
    "REPORT_ORDER",
    "ABLATION_VARIANTS",
    "model_order",
    "load_records",
    "load_curves",
    "incomplete_runs",
    "results_table",
    "ablation_table",
    "significance_table",
    "efficiency_rows",
    "plot_curves",
]

RECORD_COLUMNS = [
    "profile", "model", "seed", "status", "state", "final_test_error", "params", "macs", "epochs",
    "planned_epochs", "last_test_error", "wall_time_s", "device_name", "data_source", "data_is_sample", "path",
    "named_profile", "folder", "deviations",
]
#: How the book names a record's status: a ``running`` record that no process is writing any more (the
#: book cannot tell the difference, and a result it is not) is an **incomplete** run.
STATES = {"complete": "complete", "failed": "failed", "running": "incomplete"}
CURVE_COLUMNS = ["profile", "model", "seed", "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_error"]

#: The report's results-table order; other models follow alphabetically.
REPORT_ORDER = ("resnet56", "densenet_bc100", "se_resnet110", "res2net29", "se_res2net29")

#: Ablation rows: (model name, description). ``res2net29`` is the reference.
ABLATION_VARIANTS: Tuple[Tuple[str, str], ...] = (
    ("res2net29", "Res2Net-29, no SE"),
    ("se_res2net29_last_stream", "SE on the largest stream (i=s)"),
    ("se_res2net29_streams12", "SE on streams i=1,2"),
    ("se_res2net29", "SE on all streams (fused output), full SE-Res2Net-29"),
    ("se_res2net29_output", "SE at the block output (SENet placement; not in the report)"),
    ("res2net29_report", "Res2Net-29, the report's recursion"),
    ("se_res2net29_report", "SE-Res2Net-29, the report's recursion"),
)
ABLATION_BASELINE = "res2net29"

_NAME_RE = re.compile(r"^(?P<model>.+)_seed(?P<seed>\d+)\.json$")

PathLike = Union[str, Path]


def model_order(models: Iterable[str]) -> List[str]:
    """Report order first (resnet56, densenet_bc100, se_resnet110, res2net29, se_res2net29), then alphabetical."""
    models = list(dict.fromkeys(models))
    head = [m for m in REPORT_ORDER if m in models]
    return head + sorted(m for m in models if m not in REPORT_ORDER)


# --------------------------------------------------------------------------- loading


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(rec: Any, path: Path) -> dict:
    """Schema check (:func:`se_res2net.records.validate_record`) plus what the tables rely on."""
    validate_record(rec, source=f"run record {path}")

    def bad(why: str) -> ValueError:
        return ValueError(f"run record {path}: {why}; fix or delete the file (or re-run that model/seed)")

    if not isinstance(rec["model"], str) or not isinstance(rec["seed"], int) or isinstance(rec["seed"], bool):
        raise bad("'model' must be a string and 'seed' an integer")
    if not isinstance(rec["provenance"], dict):
        raise bad("'provenance' must be an object")
    fte = rec.get("final_test_error")
    if rec["status"] == "complete" and (not _is_number(fte) or not 0 <= fte <= 100):
        raise bad(f"complete run needs final_test_error in percent (0-100), got {fte!r}")
    if fte is not None and not _is_number(fte):
        raise bad(f"final_test_error must be a number or null, got {fte!r}")
    m = _NAME_RE.match(path.name)
    if m and (m["model"] != rec["model"] or int(m["seed"]) != rec["seed"]):
        raise bad(f"file name says {m['model']} seed {m['seed']} but the record says {rec['model']} seed {rec['seed']}")
    return rec


def _profiles_filter(profile: Union[None, str, Sequence[str]]) -> Optional[set]:
    if profile is None:
        return None
    return {profile} if isinstance(profile, str) else set(profile)


def _iter_records(root: PathLike, profile, include_failed: bool):
    root = Path(root)
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"runs root {root} is not a directory; pass the folder holding <profile>/<model>_seed<k>.json")
    from .conformance import satisfied_profile

    wanted = _profiles_filter(profile)
    for pdir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(pdir.glob("*.json")):
            if not _NAME_RE.match(path.name):
                continue
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"run record {path} is not valid JSON ({exc}); delete it and re-run that model/seed") from None
            rec = _validate(rec, path)
            if rec["status"] != "complete" and not include_failed:
                continue
            prof = satisfied_profile(rec)
            if wanted is not None and prof not in wanted:
                continue
            yield prof, path, rec


def _num(x: Any) -> float:
    return float(x) if _is_number(x) else math.nan


def load_records(root: PathLike = "book/runs", profile: Union[None, str, Sequence[str]] = None,
                 include_failed: bool = False) -> "pd.DataFrame":
    """One row per run record (columns :data:`RECORD_COLUMNS`).

    ``profile`` filters by the satisfied profile (a name or a list). Only ``complete`` runs unless
    ``include_failed`` (then ``failed`` and unfinished records too, with NaN final errors).
    ``epochs`` is the number of logged epochs, ``planned_epochs`` the configured number,
    ``last_test_error`` the test error after the last logged epoch (for an unfinished run: where it
    stopped, not a result); ``state`` is ``complete``, ``failed`` or ``incomplete`` (:data:`STATES`).
    """
    import pandas as pd

    from .conformance import deviations
    from .profiles import PROFILES

    rows = []
    for prof, path, rec in _iter_records(root, profile, include_failed):
        prov = rec["provenance"]
        named = str(rec.get("profile") or (rec.get("config") or {}).get("profile") or "")
        planned = (rec.get("config") or {}).get("epochs")
        rows.append({
            "profile": prof,
            "model": rec["model"],
            "seed": int(rec["seed"]),
            "status": rec["status"],
            "state": STATES[rec["status"]],
            "final_test_error": _num(rec.get("final_test_error")),
            "params": _num(rec.get("params")),
            "macs": _num(rec.get("macs")),
            "epochs": len(rec["epochs"]),
            "planned_epochs": int(planned) if _is_number(planned) else len(rec["epochs"]),
            "last_test_error": _num(rec["epochs"][-1].get("test_error")) if rec["epochs"] else math.nan,
            "wall_time_s": _num(prov.get("wall_time_s")),
            "device_name": prov.get("device_name"),
            "data_source": prov.get("data_source"),
            "data_is_sample": bool(prov.get("data_is_sample", False)),
            "path": str(path),
            "named_profile": named,
            "folder": path.parent.name,
            # why the record is not the profile it names (empty when it is, or names none we know)
            "deviations": "; ".join(deviations(rec, named)) if named != prof and named in PROFILES else "",
        })
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    return df.astype({"seed": "int64", "epochs": "int64", "planned_epochs": "int64", "final_test_error": "float64",
                      "last_test_error": "float64", "params": "float64", "macs": "float64", "wall_time_s": "float64",
                      "data_is_sample": "bool"})


def load_curves(root: PathLike = "book/runs", profile: Union[None, str, Sequence[str]] = None,
                include_failed: bool = False) -> "pd.DataFrame":
    """Per-epoch curves in long form (columns :data:`CURVE_COLUMNS`), one row per (run, epoch)."""
    import pandas as pd

    rows = []
    for prof, _path, rec in _iter_records(root, profile, include_failed):
        for e in rec["epochs"]:
            rows.append({
                "profile": prof, "model": rec["model"], "seed": int(rec["seed"]),
                "epoch": int(e.get("epoch", 0)),
                **{k: _num(e.get(k)) for k in ("lr", "train_loss", "train_acc", "test_loss", "test_error")},
            })
    df = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return df.astype({"seed": "int64", "epoch": "int64", "lr": "float64", "train_loss": "float64",
                      "train_acc": "float64", "test_loss": "float64", "test_error": "float64"})


# --------------------------------------------------------------------------- tables


def _complete(df: "pd.DataFrame") -> "pd.DataFrame":
    return df[(df["status"] == "complete") & df["final_test_error"].notna()]


INCOMPLETE_COLUMNS = ["profile", "model", "seed", "state", "epochs", "last_test_error", "path"]


def incomplete_runs(df: "pd.DataFrame") -> "pd.DataFrame":
    """The runs that are not results: incomplete (stopped between epochs) or failed, with how far they got
    (``epochs`` as ``"k of N"``) and the test error after their last logged epoch."""
    import pandas as pd

    if df is None or len(df) == 0:
        return pd.DataFrame(columns=INCOMPLETE_COLUMNS)
    bad = df[df["state"] != "complete"].sort_values(["profile", "model", "seed"])
    out = pd.DataFrame({
        "profile": bad["profile"], "model": bad["model"], "seed": bad["seed"], "state": bad["state"],
        "epochs": [f"{e} of {p}" for e, p in zip(bad["epochs"], bad["planned_epochs"])],
        "last_test_error": bad["last_test_error"], "path": bad["path"],
    }, columns=INCOMPLETE_COLUMNS)
    return out.reset_index(drop=True)


def _first_param(values: "pd.Series", what: str, model: str) -> float:
    vals = values.dropna().unique()
    if len(vals) > 1:
        log.warning("%s differs across seeds of %s (%s); using the first", what, model, sorted(vals))
    return float(vals[0]) if len(vals) else math.nan


RESULTS_COLUMNS = ["profile", "model", "n", "n_failed", "mean_error", "std_error", "params_m", "macs_m", "flops_m"]


def results_table(df: "pd.DataFrame", models: Optional[Sequence[str]] = None) -> "pd.DataFrame":
    """Per (profile, model): n complete runs, incomplete/failed count (``n_failed``), mean and std (ddof=1) of the
    final test error (%), params (M), MACs (M) and FLOPs (M) = 2 × MACs.

    ``models`` restricts and orders the rows; otherwise :func:`model_order`.
    """
    import pandas as pd

    if models is not None:
        df = df[df["model"].isin(models)]
    rows = []
    for (prof, model), g in df.groupby(["profile", "model"], sort=False):
        ok = _complete(g)
        s = ok["final_test_error"]
        params = _first_param(g["params"], "params", model)
        macs = _first_param(g["macs"], "macs", model)
        rows.append({
            "profile": prof, "model": model, "n": int(len(ok)), "n_failed": int(len(g) - len(ok)),
            "mean_error": float(s.mean()) if len(s) else math.nan,
            "std_error": float(s.std(ddof=1)) if len(s) >= 2 else math.nan,
            "params_m": params / 1e6, "macs_m": macs / 1e6, "flops_m": 2 * macs / 1e6,
        })
    out = pd.DataFrame(rows, columns=RESULTS_COLUMNS)
    if out.empty:
        return out
    order = list(models) if models is not None else model_order(out["model"])
    rank = {m: i for i, m in enumerate(order)}
    out["_r"] = out["model"].map(rank)
    return out.sort_values(["profile", "_r"], kind="stable").drop(columns="_r").reset_index(drop=True)


def _errors(df: "pd.DataFrame", profile: str, model: str) -> List[float]:
    sel = _complete(df)
    return sel[(sel["profile"] == profile) & (sel["model"] == model)]["final_test_error"].tolist()


def _fmt_pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.2f} ± {std:.2f}" if not math.isnan(std) else f"{mean:.2f} ± n/a"


ABLATION_COLUMNS = ["profile", "model", "variant", "n", "mean_error", "std_error", "error", "params_m",
                    "diff_vs_baseline", "welch_p", "cohens_d", "note"]


def ablation_table(df: "pd.DataFrame", variants: Sequence[Tuple[str, str]] = ABLATION_VARIANTS,
                   baseline: str = ABLATION_BASELINE, seed: int = 0) -> "pd.DataFrame":
    """The SE placement / recursion ablation, per profile, for the variants that have runs.

    Each row: mean ± σ, n, params (M) and :func:`~se_res2net.stats.compare` against
    ``baseline`` (``diff_vs_baseline`` = baseline − variant, positive = variant has lower
    error; Welch p; Cohen's d, same sign).
    """
    import pandas as pd

    rows = []
    present = set(zip(df["profile"], df["model"]))
    for prof in sorted(df["profile"].unique()):
        base = _errors(df, prof, baseline)
        for model, desc in variants:
            if (prof, model) not in present:
                continue
            errs = _errors(df, prof, model)
            g = df[(df["profile"] == prof) & (df["model"] == model)]
            params = _first_param(g["params"], "params", model) / 1e6
            c = compare(base, errs, names=(baseline, model), seed=seed, n_resamples=2000)
            is_base = model == baseline
            note = "reference" if is_base else c.as_row()["note"]
            if not is_base and not base:
                note = f"no complete {baseline} runs in this profile"
            rows.append({
                "profile": prof, "model": model, "variant": desc, "n": c.b.n,
                "mean_error": c.b.mean, "std_error": c.b.std, "error": _fmt_pm(c.b.mean, c.b.std),
                "params_m": params,
                "diff_vs_baseline": math.nan if is_base else c.diff,
                "welch_p": math.nan if is_base else c.welch.p,
                "cohens_d": math.nan if is_base else c.d,
                "note": note,
            })
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS)


def significance_table(df: "pd.DataFrame", pairs: Iterable[Tuple[str, str]], seed: int = 0,
                       n_resamples: int = 10000) -> "pd.DataFrame":
    """:meth:`Comparison.as_row` for each (baseline, candidate) pair in each profile where both have records."""
    import pandas as pd

    pairs = list(pairs)
    rows = []
    present = set(zip(df["profile"], df["model"]))
    for prof in sorted(df["profile"].unique()):
        for a, b in pairs:
            if (prof, a) not in present or (prof, b) not in present:
                continue
            c = compare(_errors(df, prof, a), _errors(df, prof, b), names=(a, b), seed=seed, n_resamples=n_resamples)
            rows.append({"profile": prof, **c.as_row()})
    cols = ["profile", *compare([], [], names=("a", "b"), n_resamples=10).as_row().keys()]
    return pd.DataFrame(rows, columns=cols)


def efficiency_rows(table: "pd.DataFrame", pairs: Iterable[Tuple[str, str]], profile: Optional[str] = None) -> List[dict]:
    """Rows for :func:`se_res2net.stats.efficiency_table` from a :func:`results_table` (params in M, errors in %)."""
    if profile is not None:
        table = table[table["profile"] == profile]
    rows = []
    for prof in table["profile"].unique():
        t = table[table["profile"] == prof].set_index("model")
        for base, var in pairs:
            if base in t.index and var in t.index:
                rows.append({
                    "profile": prof, "baseline": base, "variant": var,
                    "params_baseline": float(t.at[base, "params_m"]), "params_variant": float(t.at[var, "params_m"]),
                    "error_baseline": float(t.at[base, "mean_error"]), "error_variant": float(t.at[var, "mean_error"]),
                })
    return rows


# --------------------------------------------------------------------------- plots


def plot_curves(curves: "pd.DataFrame", ax=None, metric: str = "test_error", models: Optional[Sequence[str]] = None,
                band: str = "range"):
    """Line per model of ``metric`` vs epoch, mean over seeds with a band (``"range"`` = min–max, ``"sd"``).

    Returns the matplotlib Axes. An empty frame gives an empty, labelled Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if metric not in curves.columns:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(CURVE_COLUMNS[4:])}")
    if band not in ("range", "sd"):
        raise ValueError(f"band must be 'range' or 'sd', got {band!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    data = curves if models is None else curves[curves["model"].isin(models)]
    if not data.empty:
        order = list(models) if models is not None else model_order(data["model"])
        sns.lineplot(data=data, x="epoch", y=metric, hue="model", hue_order=order,
                     errorbar=("pi", 100) if band == "range" else "sd", ax=ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel({"test_error": "test error (%)", "train_acc": "train accuracy (%)"}.get(metric, metric))
    return ax
