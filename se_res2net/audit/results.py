"""Run records → tables and curves for the book.

Records are ``<root>/<folder>/<model>_seed<k>.json`` files in the ``se_res2net.run/1``
schema (see CONTRIBUTING.md); errors are in percent. Other JSON files in those folders
are ignored. The ``profile`` column is the profile the record **satisfies**, decided from its own
config, provenance and log by :func:`se_res2net.audit.conformance.satisfied_profile` (``full``, ``budget``,
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
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeGuard, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

from ..training.records import (
    SCHEMA,
    checkpoint_path,
    is_stranded,
    NOT_RECORDED,
    span_device_name,
    trained_on_text as _trained_on,
    trained_spans,
    training_devices,
    validate_record,
)
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
    "training_devices",
    "results_table",
    "ablation_table",
    "significance_table",
    "efficiency_rows",
    "plot_curves",
    "MODEL_LABELS",
    "model_label",
    "model_colors",
    "faithful_first",
    "PLUMBING_PROFILES",
    "page_profiles",
    "set_aside_html",
    "hardware",
    "device_kind",
    "data_description",
    "profile_note",
    "styled",
    "folded",
    "results_display",
    "runs_display",
    "ablation_display",
    "significance_display",
    "curve_bands",
    "plot_training_curves",
    "claimed_points",
    "plot_error_vs_params",
    "claimed_differences",
    "plot_differences",
    "published_sds",
    "power_at_published_sds",
    "seed_sd_sources",
    "plot_detectable_difference",
    "efficiency_display",
    "parity_data_text",
    "parity_display",
    "parity_noise_text",
    "plot_parity",
]

RECORD_COLUMNS = [
    "profile", "model", "seed", "status", "state", "final_test_error", "params", "macs", "epochs",
    "planned_epochs", "last_test_error", "wall_time_s", "device_name", "data_source", "data_is_sample", "path",
    "named_profile", "folder", "deviations", "device", "train_size", "test_size",
    "start_time", "end_time", "torch", "python", "platform", "git_commit", "trained_on", "devices", "device_kinds",
    "precision", "machines", "machine_names",
]
#: How the book names a record's status: a ``running`` record that no process is writing any more (the
#: book cannot tell the difference, and a result it is not) is an **incomplete** run.
STATES = {"complete": "complete", "failed": "failed", "running": "incomplete"}
#: An incomplete run whose record holds trained epochs but whose checkpoint is not beside it (git keeps out the
#: checkpoints of models too big to commit, so they stay on the machine that trained): no one can resume it from here.
STRANDED = "stranded"
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


def _is_number(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(rec: Any, path: Path) -> dict:
    """Schema check (:func:`se_res2net.training.records.validate_record`) plus what the tables rely on."""
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


def _iter_records(root: PathLike, profile, include_failed: bool):
    root = Path(root)
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"runs root {root} is not a directory; pass the folder holding <profile>/<model>_seed<k>.json")
    from .conformance import satisfied_profile

    wanted = None if profile is None else {profile} if isinstance(profile, str) else set(profile)
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


def _resume_device(entry: Mapping[str, Any]) -> str:
    """The device type (``cpu`` / ``cuda``) a resume entry trained on: its ``device`` where it names one, else
    from its ``cuda`` version (``None`` on a CPU); entries from before either was recorded name only the device,
    and ``torch.cuda.get_device_name`` names every CUDA device of this project's machines ``NVIDIA ...``."""
    if entry.get("device"):
        return str(entry["device"])
    if "cuda" in entry:
        return "cuda" if entry["cuda"] else "cpu"
    return "cuda" if str(entry.get("device_name") or "").startswith("NVIDIA") else "cpu"


def _entry_device(k: int, entry: Mapping[str, Any]) -> Optional[str]:
    """The device type of span ``k`` of :func:`trained_spans`: the start's ``provenance.device``, or a resume's."""
    return entry.get("device") if k == 0 else _resume_device(entry)


def training_device_kinds(rec: Mapping[str, Any]) -> str:
    """The kinds of device that trained a run's epochs, ``"CPU"``, ``"GPU"`` or ``"CPU + GPU"`` (a run resumed on
    another kind of machine): its start's ``provenance.device`` and each resume that trained an epoch."""
    kinds = {device_kind(_entry_device(k, entry)) for k, entry, _, _ in trained_spans(rec)}
    return " + ".join(sorted(kinds)) or device_kind((rec.get("provenance") or {}).get("device"))


def run_precision(rec: Mapping[str, Any]) -> str:
    """``"bf16"`` (autocast) or ``"fp32"``: what a run trained in, from its provenance (the trainer refuses a resume
    at another precision, so one value holds for the whole run). A record from before ``bf16`` was recorded trained
    at its device's default then: bf16 on CUDA, fp32 elsewhere."""
    prov = rec.get("provenance") or {}
    bf16 = prov.get("bf16")
    if bf16 is None:
        bf16 = device_kind(prov.get("device")) == "GPU"
    return "bf16" if bf16 else "fp32"


def _session_values(rec: Mapping[str, Any], key: str) -> Optional[str]:
    """The values of ``key`` (``torch``, ``python``, ``platform``, ``git_commit``) of the sessions that trained a
    run's epochs, in order, each once, joined by " + " (a run resumed in another environment names each:
    ``provenance`` holds the start's, always named, each entry of ``resumes`` that trained an epoch its own; an
    entry from before resumes recorded ``key`` adds nothing)."""
    used = [(rec.get("provenance") or {}).get(key)]
    used += [entry.get(key) for k, entry, _, _ in trained_spans(rec) if k > 0]
    return " + ".join(dict.fromkeys(str(v) for v in used if v)) or None


def epoch_devices(rec: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """``(device name, kind)`` of each logged epoch, in order (from :func:`trained_spans`: the start's
    ``provenance`` until the first resume, then each resume's device from its ``epoch`` on)."""
    out: List[Tuple[str, str]] = []
    for k, entry, start, end in trained_spans(rec):
        out += [(span_device_name(entry), device_kind(_entry_device(k, entry)))] * (end - start)
    return out


EPOCH_LOG_COLUMNS = ["profile", "path", "model", "epoch", "device", "epoch_time_s", "start", "end"]


def _utc_seconds(stamp: Any) -> float:
    """A record's ISO time (``2026-12-04T14:46:36Z``) as seconds since the epoch; NaN when absent or unreadable."""
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def epoch_log(root: PathLike = "book/runs") -> "pd.DataFrame":
    """One row per logged epoch of every record, complete, failed and unfinished alike (columns
    :data:`EPOCH_LOG_COLUMNS`): the device that trained it, ``"name (kind)"`` (:func:`epoch_devices`), its wall
    time (s; the fp32 evaluation included, and a session's first epoch holds the compile), and when it ran
    (``start``/``end``, seconds since the epoch, UTC). A record logs each epoch's duration, not its clock time,
    so the epochs of a span are placed one after another from the time the span began (the start's
    ``provenance.start_time``, a resume's ``time``); what lies between epochs (data loading, checkpoints) is not
    counted. An epoch without a duration, or whose span has no time, has NaN there."""
    import pandas as pd

    rows = []
    for prof, path, rec in _iter_records(root, None, include_failed=True):
        epochs = rec.get("epochs") or []
        for k, entry, first, stop in trained_spans(rec):
            device = f"{span_device_name(entry)} ({device_kind(_entry_device(k, entry))})"
            clock = _utc_seconds(entry.get("start_time") if k == 0 else entry.get("time"))
            for ep in epochs[first:stop]:
                took = float(ep["epoch_time_s"]) if _is_number(ep.get("epoch_time_s")) else math.nan
                rows.append({"profile": prof, "path": str(path), "model": rec["model"], "epoch": ep.get("epoch"),
                             "device": device, "epoch_time_s": took, "start": clock, "end": clock + took})
                clock += took  # NaN from an epoch without a duration on: the rest of the span cannot be placed
    return pd.DataFrame(rows, columns=EPOCH_LOG_COLUMNS)


def covered_seconds(intervals: Iterable[Tuple[float, float]]) -> float:
    """The length of the union of ``(start, end)`` intervals: the time in which at least one of them ran."""
    total, reach = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def device_seconds(log: "pd.DataFrame") -> float:
    """The device time of the epochs of ``log`` (rows of :func:`epoch_log` of one device): the union of the placed
    epochs' intervals, so epochs that ran side by side count once, plus the duration of each epoch that cannot be
    placed, as if nothing ran beside it."""
    timed = log.dropna(subset=["epoch_time_s"])
    placed = timed.dropna(subset=["start", "end"])
    return covered_seconds(zip(placed["start"], placed["end"])) + float(
        timed["epoch_time_s"].sum() - placed["epoch_time_s"].sum())


TIME_COLUMNS = ["profile", "device", "runs", "models", "epochs_logged", "s_per_epoch", "run_min",
                "device_s_per_epoch", "measured_h"]


def epoch_times(root: PathLike = "book/runs") -> "pd.DataFrame":
    """Per (profile, device): how many runs trained epochs on it and of which models (sorted, joined by ", "), how
    many epochs, their mean wall time (s; the fp32 evaluation included, and the first epoch's compile), what a
    whole run of the profile takes at that pace (min), the device's time per epoch of all its runs together
    (s; :func:`device_seconds` ÷ epochs: runs that shared the device count once, so a sweep of k at once shows
    what sharing gained) and the time measured (h, the runs' epochs summed). Every logged epoch counts, of
    complete and unfinished runs alike, on the device that trained it (:func:`epoch_log`), so a pace is never
    another machine's."""
    import pandas as pd

    df = epoch_log(root).dropna(subset=["epoch_time_s"])
    if df.empty:
        return pd.DataFrame(columns=TIME_COLUMNS)
    from ..training.profiles import PROFILES

    out = df.groupby(["profile", "device"], sort=False).agg(
        runs=("path", "nunique"), epochs_logged=("epoch_time_s", "size"), s_per_epoch=("epoch_time_s", "mean"),
        measured_s=("epoch_time_s", "sum"), models=("model", lambda m: ", ".join(sorted(set(m))))).reset_index()
    planned = out["profile"].map(lambda p: PROFILES[p].epochs if p in PROFILES else math.nan)
    out["run_min"] = planned * out["s_per_epoch"] / 60
    device_s = {key: device_seconds(g) for key, g in df.groupby(["profile", "device"], sort=False)}
    out["device_s_per_epoch"] = [device_s[(p, d)] / n for p, d, n in zip(out["profile"], out["device"], out["epochs_logged"])]
    out["measured_h"] = out["measured_s"] / 3600
    order = {p: i for i, p in enumerate(PROFILES)}
    out = out.sort_values(["profile", "device"], key=lambda c: c.map(order) if c.name == "profile" else c)
    return out[TIME_COLUMNS].reset_index(drop=True)


def _state(rec: Mapping[str, Any], path: Path) -> str:
    state = STATES[rec["status"]]
    if state == "incomplete" and is_stranded(rec, checkpoint_path(path.parent, rec["model"], rec["seed"], path.stem)):
        return STRANDED
    return state


def load_records(root: PathLike = "book/runs", profile: Union[None, str, Sequence[str]] = None,
                 include_failed: bool = False) -> "pd.DataFrame":
    """One row per run record (columns :data:`RECORD_COLUMNS`).

    ``profile`` filters by the satisfied profile (a name or a list). Only ``complete`` runs unless
    ``include_failed`` (then ``failed`` and unfinished records too, with NaN final errors).
    ``epochs`` is the number of logged epochs, ``planned_epochs`` the configured number,
    ``last_test_error`` the test error after the last logged epoch (for an unfinished run: where it
    stopped, not a result); ``state`` is ``complete``, ``failed`` or ``incomplete`` (:data:`STATES`), or
    ``stranded`` (:data:`STRANDED`).
    """
    import pandas as pd

    from .conformance import deviations
    from ..training.profiles import PROFILES

    rows = []
    for prof, path, rec in _iter_records(root, profile, include_failed):
        prov = rec["provenance"]
        spans = training_devices(rec)
        # every device that trained it, in order (a run resumed on other hardware names them all)
        names = list(dict.fromkeys(n for n, _, _ in spans)) or ([prov["device_name"]] if prov.get("device_name") else [])
        named = str(rec.get("profile") or (rec.get("config") or {}).get("profile") or "")
        planned = (rec.get("config") or {}).get("epochs")
        rows.append({
            "profile": prof,
            "model": rec["model"],
            "seed": int(rec["seed"]),
            "status": rec["status"],
            "state": _state(rec, path),
            "final_test_error": _num(rec.get("final_test_error")),
            "params": _num(rec.get("params")),
            "macs": _num(rec.get("macs")),
            "epochs": len(rec["epochs"]),
            "planned_epochs": int(planned) if _is_number(planned) else len(rec["epochs"]),
            "last_test_error": _num(rec["epochs"][-1].get("test_error")) if rec["epochs"] else math.nan,
            "wall_time_s": _num(prov.get("wall_time_s")),
            "device_name": " + ".join(names) if names else None,
            "data_source": prov.get("data_source"),
            "data_is_sample": bool(prov.get("data_is_sample", False)),
            "path": str(path),
            "named_profile": named,
            "folder": path.parent.name,
            # why the record is not the profile it names (empty when it is, or names none we know)
            "deviations": "; ".join(deviations(rec, named)) if named != prof and named in PROFILES else "",
            "device": prov.get("device"),
            "train_size": _num(prov.get("train_size")),
            "test_size": _num(prov.get("test_size")),
            # where and when it ran, for the summary and status pages
            **{k: prov.get(k) for k in ("start_time", "end_time")},
            # of every session that trained an epoch (a resumed run may name several, joined by " + ")
            **{k: _session_values(rec, k) for k in ("torch", "python", "platform", "git_commit")},
            "trained_on": _trained_on(spans) if spans else (names[0] if names else NOT_RECORDED),
            "devices": len(names),
            "device_kinds": training_device_kinds(rec),
            "precision": run_precision(rec),
            # each machine that trained an epoch, "name (KIND)", once, in order (the start's when none did yet)
            "machines": tuple(dict.fromkeys(f"{n} ({k})" for n, k in epoch_devices(rec)))
            or ((f"{prov['device_name']} ({device_kind(prov.get('device'))})",) if prov.get("device_name") else ()),
            "machine_names": tuple(names),  # the same, by name alone
        })
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    return df.astype({"seed": "int64", "epochs": "int64", "planned_epochs": "int64", "final_test_error": "float64",
                      "last_test_error": "float64", "params": "float64", "macs": "float64", "wall_time_s": "float64",
                      "data_is_sample": "bool", "train_size": "float64", "test_size": "float64", "devices": "int64"})


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


def complete_runs(df: "pd.DataFrame") -> "pd.DataFrame":
    """The rows of ``df`` that are results: complete runs with a final test error. What a page says about its
    results (hardware, data) comes from these, not from the unfinished runs beside them."""
    return df[(df["status"] == "complete") & df["final_test_error"].notna()]


_complete = complete_runs


INCOMPLETE_COLUMNS = ["profile", "model", "seed", "state", "epochs", "last_test_error", "trained_on", "path"]


def incomplete_runs(df: "pd.DataFrame") -> "pd.DataFrame":
    """The runs that are not results: incomplete (stopped between epochs) or failed, with how far they got
    (``epochs`` as ``"k of N"``) and the test error after their last logged epoch."""
    import pandas as pd

    if df is None or len(df) == 0:
        return pd.DataFrame(columns=INCOMPLETE_COLUMNS)
    bad = df[df["state"] != "complete"].sort_values(["profile", "model", "seed"])
    epochs = [f"{e} of {p}" for e, p in zip(bad["epochs"], bad["planned_epochs"])]
    return bad.assign(epochs=epochs)[INCOMPLETE_COLUMNS].reset_index(drop=True)


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
        s = _complete(g)["final_test_error"]  # pandas: mean of none and std of one are NaN
        params = _first_param(g["params"], "params", model)
        macs = _first_param(g["macs"], "macs", model)
        rows.append({
            "profile": prof, "model": model, "n": len(s), "n_failed": len(g) - len(s),
            "mean_error": float(s.mean()), "std_error": float(s.std(ddof=1)),
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


def _hardware_mix(df: "pd.DataFrame", profile: str, model: str) -> Dict[str, int]:
    """How many complete runs of ``model`` in ``profile`` trained on each kind of device (``CPU``, ``GPU``; a
    run resumed on another machine counts as the kinds of all its devices joined, e.g. ``CPU + GPU``) at each
    precision: keys such as ``"CPU, fp32"`` or ``"CPU + GPU, bf16"`` (a bf16 run on a CPU and an fp32 one on a
    CPU are not the same mix)."""
    if "device_kinds" not in df.columns:  # a frame built by hand, without the records: nothing to tell
        return {}
    sel = _complete(df)
    sel = sel[(sel["profile"] == profile) & (sel["model"] == model)]
    precisions = sel["precision"] if "precision" in sel.columns else [""] * len(sel)
    mix: Dict[str, int] = {}
    for kinds, precision in zip(sel["device_kinds"], precisions):
        key = f"{kinds}, {precision}" if precision else kinds
        mix[key] = mix.get(key, 0) + 1
    return dict(sorted(mix.items()))


def hardware_mix_note(df: "pd.DataFrame", profile: str, baseline: str, candidate: str) -> str:
    """A note when the two sides of a comparison were trained on different mixes of device kinds and precisions
    (say one model's seed 0 on a CPU in fp32 and the other's on a GPU in bf16, or both on a CPU, one in bf16): Δ then
    holds that difference too. Empty when the mixes match (or a side has no complete run)."""
    a, b = _hardware_mix(df, profile, baseline), _hardware_mix(df, profile, candidate)
    if not a or not b or a == b:
        return ""
    return (f"the sides trained on different hardware ({model_label(baseline)}: {say_mix(a)}; "
            f"{model_label(candidate)}: {say_mix(b)}), so Δ may hold the devices' or precisions' difference too")


def counted(n: int, noun: str, plural: Optional[str] = None) -> str:
    """``counted(1, "run")`` -> ``"1 run"``, ``counted(2, "run")`` -> ``"2 runs"`` (prose reads better than "run(s)")."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def say_mix(mix: Mapping[str, int]) -> str:
    """``{"CPU": 1, "GPU": 3}`` -> ``"1 on a CPU, 3 on a GPU"``; a ``"CPU + GPU"`` run (resumed from one onto the
    other) reads ``"on a CPU and a GPU"``, and a precision after a comma (:func:`_hardware_mix`) ``"... in bf16"``."""
    def one(key: str, n: int) -> str:
        kinds, _, precision = key.partition(", ")
        return f"{n} on " + " and ".join(f"a {k}" for k in kinds.split(" + ")) + (f" in {precision}" if precision else "")

    return ", ".join(one(key, n) for key, n in mix.items())


def hardware_mix_text(df: "pd.DataFrame", profile: str, pairs: Iterable[Tuple[str, str]]) -> str:
    """One markdown sentence, shown under a profile's comparison table, naming the comparisons whose two sides
    trained on different kinds of device (:func:`hardware_mix_note`, which the table only folds); ``""`` when none."""
    def mix(model: str) -> str:
        return say_mix(_hardware_mix(df, profile, model))

    bad = [(a, b) for a, b in pairs if hardware_mix_note(df, profile, a, b)]
    if not bad:
        return ""
    listed = "; ".join(f"{model_label(a)} → {model_label(b)} ({model_label(a)}: {mix(a)}; {model_label(b)}: {mix(b)})"
                       for a, b in bad)
    return (f"**The two sides trained on different hardware** in {counted(len(bad), 'comparison')}: {listed}. Their Δ mixes "
            "the models' difference with the devices' and precisions' (by default this trainer runs fp32 on a CPU, bf16 on "
            "a GPU); it becomes a comparison of the models alone once both sides hold the same mix of devices and "
            "precisions.")


def _join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _fmt_pm(mean: float, std: float) -> str:
    """``mean ± SD``; one run has no sample SD: its error alone (the table's n says 1), not "± n/a"."""
    if math.isnan(mean):
        return ""
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


ABLATION_COLUMNS = ["profile", "model", "variant", "n", "n_not_complete", "mean_error", "std_error", "error",
                    "params_m", "diff_vs_baseline", "welch_p", "cohens_d", "note"]


def ablation_table(df: "pd.DataFrame", variants: Sequence[Tuple[str, str]] = ABLATION_VARIANTS,
                   baseline: str = ABLATION_BASELINE, seed: int = 0) -> "pd.DataFrame":
    """The SE placement / recursion ablation, per profile, for the variants that have runs.

    Each row: mean ± σ, n, params (M) and :func:`~se_res2net.audit.stats.compare` against
    ``baseline`` (``diff_vs_baseline`` = baseline − variant, positive = variant has lower
    error; Welch p; Cohen's d, same sign).

    ``df`` may hold unfinished runs too (``load_records(..., include_failed=True)``): in a profile where some
    variant has a complete run, a variant whose runs are all unfinished then has its row with ``n`` 0 and
    ``n_not_complete`` counted, so that the table lists the whole ablation and the report's value of each variant
    beside ours, measured or not yet. A profile without any complete run of a variant has no rows.
    """
    import pandas as pd

    rows = []
    models = [m for m, _ in variants]
    done = _complete(df)
    with_results = set(done[done["model"].isin(models)]["profile"])
    for prof in sorted(with_results):
        base = _errors(df, prof, baseline)
        for model, desc in variants:
            g = df[(df["profile"] == prof) & (df["model"] == model)]
            if g.empty:
                continue
            errs = _errors(df, prof, model)
            params = _first_param(g["params"], "params", model) / 1e6
            c = compare(base, errs, names=(baseline, model), seed=seed, n_resamples=2000)
            is_base = model == baseline
            note = "reference" if is_base else _join_notes(c.as_row()["note"], hardware_mix_note(df, prof, baseline, model))
            if not is_base and not base:
                note = f"no complete {baseline} runs in this profile"
            if not errs and not is_base:
                note = ""  # nothing measured to compare yet; the n column says how many runs are under way
            rows.append({
                "profile": prof, "model": model, "variant": desc, "n": c.b.n, "n_not_complete": len(g) - c.b.n,
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
            row = c.as_row()
            row["note"] = _join_notes(row["note"], hardware_mix_note(df, prof, a, b))
            rows.append({"profile": prof, **row})
    cols = ["profile", *compare([], [], names=("a", "b"), n_resamples=10).as_row().keys()]
    return pd.DataFrame(rows, columns=cols)


def efficiency_rows(table: "pd.DataFrame", pairs: Iterable[Tuple[str, str]], profile: Optional[str] = None) -> List[dict]:
    """Rows for :func:`se_res2net.audit.stats.efficiency_table` from a :func:`results_table` (params in M, errors in %)."""
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


# --------------------------------------------------------------------------- names, hardware, data

#: Human names of the registered models, for tables and figures (links and commands keep the registry names).
MODEL_LABELS: Dict[str, str] = {
    "resnet56": "ResNet-56",
    "densenet_bc100": "DenseNet-BC-100",
    "se_resnet110": "SE-ResNet-110",
    "res2net29": "Res2Net-29",
    "se_res2net29": "SE-Res2Net-29",
    "se_res2net29_last_stream": "SE-Res2Net-29, SE on the largest stream (i=s) only",
    "se_res2net29_streams12": "SE-Res2Net-29, SE on streams i=1,2 only",
    "se_res2net29_output": "SE-Res2Net-29, SE at the block output",
    "res2net29_report": "Res2Net-29, report's recursion",
    "se_res2net29_report": "SE-Res2Net-29, report's recursion",
}


def model_label(model: str) -> str:
    """The human name of a registered model (:data:`MODEL_LABELS`); unknown names are returned unchanged."""
    return MODEL_LABELS.get(str(model), str(model))


def model_colors(models: Iterable[str]) -> Dict[str, Any]:
    """One colour per model, the same on every page: tab10 in the order of :data:`MODEL_LABELS` (the sweep's
    models), then tab20's light shades for other names."""
    import matplotlib

    tab10, tab20 = matplotlib.colormaps["tab10"], matplotlib.colormaps["tab20"]
    known = list(MODEL_LABELS)
    out: Dict[str, Any] = {}
    extra = 0
    for m in models:
        if m in known and known.index(m) < 10:
            out[m] = tab10(known.index(m))
        else:
            out[m] = tab20(2 * (extra % 10) + 1)
            extra += 1
    return out


def faithful_first(profiles: Iterable[str]) -> List[str]:
    """The named profiles present from most to least faithful (``full``, ``budget``, ``smoke``), then any others
    (``custom``: a record that satisfies none) alphabetically: the order a reader meets them in on a page."""
    from ..training.profiles import PROFILES

    present = list(dict.fromkeys(str(p) for p in profiles))
    return [p for p in reversed(list(PROFILES)) if p in present] + sorted(p for p in present if p not in PROFILES)


#: Profiles that check the plumbing and measure nothing the report claims (the smoke profile's errors sit near
#: chance). Once a more faithful profile has complete runs, a results page sets them aside (see page_profiles).
PLUMBING_PROFILES: Tuple[str, ...] = ("smoke",)


def page_profiles(profiles: Iterable[str]) -> Tuple[List[str], List[str]]:
    """``(shown, set_aside)``: the profiles present, most faithful first (``full``, ``budget``, ``smoke``, then
    any others such as ``custom``), split for a results page.

    A plumbing profile (:data:`PLUMBING_PROFILES`) is set aside as soon as any other profile is present: its
    chance-level errors beside trained ones would squash a plot's scale and read as results. With nothing else
    present it is shown, as the only measurement there is. A page folds the set-aside tables away and leaves
    those profiles out of its plots.
    """
    ordered = faithful_first(profiles)
    kept = [p for p in ordered if p not in PLUMBING_PROFILES]
    if not kept:
        return ordered, []
    return kept, [p for p in ordered if p in PLUMBING_PROFILES]


def set_aside_html(notes: Mapping[str, str], tables: Mapping[str, Any], shown: Sequence[str]) -> str:
    """The tables of set-aside profiles (:func:`page_profiles`) folded into one HTML ``<details>``: the summary
    names each profile and the profile(s) ``shown`` instead; inside, each profile's ``notes`` sentence (from
    :func:`profile_note`) above its table (a Styler from :func:`styled`, or anything with ``to_html``)."""
    import html

    if not tables:
        return ""
    names = ", ".join(tables)
    body = "".join(f"<p><strong>{html.escape(notes.get(p, p))}</strong></p>{t.to_html()}" for p, t in tables.items())
    return (f"<details class=\"set-aside\"><summary>Profile {html.escape(names)} (a plumbing check, not a result): "
            f"its table, set aside and left out of the plots now that profile {html.escape(', '.join(shown))} has "
            f"runs</summary>{body}</details>")


def device_kind(device: Any) -> str:
    """``GPU`` for a CUDA device, ``CPU`` for the CPU, from a record's ``provenance.device``."""
    d = str(device or "").lower()
    return "GPU" if d.startswith("cuda") else ("CPU" if d == "cpu" else (d.upper() or "device not recorded"))


def hardware(df: "pd.DataFrame", profile: Union[None, str, Sequence[str]] = None) -> str:
    """The hardware the runs (of ``profile``, or of any of several profiles) ran on, from their records:
    ``"AMD EPYC (CPU)"``, several joined by ``", "``, each machine once (a run resumed on another counts on both;
    a machine that ran two profiles' runs too); ``"not recorded"`` when no record names its device."""
    if profile is not None and "profile" in df:
        df = df[df["profile"] == profile] if isinstance(profile, str) else df[df["profile"].isin(list(profile))]
    if "machines" in df:  # from load_records: every machine that trained, once, with its kind
        listed = {m for ms in df["machines"] if isinstance(ms, tuple) for m in ms}
        if listed:
            return ", ".join(sorted(listed))
    if "device_name" not in df or df["device_name"].dropna().empty:
        return NOT_RECORDED
    kinds = df["device"] if "device" in df else [None] * len(df)
    names = {f"{n} ({device_kind(k)})" if k is not None and str(k) not in ("", "nan") else str(n)
             for n, k in zip(df["device_name"], kinds) if isinstance(n, str) and n}
    return ", ".join(sorted(names)) or NOT_RECORDED


def data_description(df: "pd.DataFrame", profile: Optional[str] = None) -> str:
    """What the runs (of ``profile``) trained and tested on: the embedded sample, CIFAR-10 subsets
    (``k`` training / ``m`` test images) or the whole CIFAR-10, from the records' provenance."""
    if profile is not None and "profile" in df:
        df = df[df["profile"] == profile]
    if df.empty:
        return "no runs"
    if "data_is_sample" in df and df["data_is_sample"].astype(bool).any():
        return "the embedded CIFAR-10 sample"
    sizes = sorted({(int(a), int(b)) for a, b in zip(df.get("train_size", []), df.get("test_size", []))
                    if _is_number(a) and _is_number(b) and not (math.isnan(a) or math.isnan(b))})
    if not sizes:
        return "CIFAR-10 (sizes not recorded)"
    parts = [f"{a:,} training / {b:,} test images" for a, b in sizes]
    return "CIFAR-10, " + "; ".join(parts)


def profile_note(df: "pd.DataFrame", profile: str) -> str:
    """One sentence on a profile's runs: how many are complete, of how many models and seeds, how many are not
    (stopped between epochs, or failed), on what hardware and data."""
    part = df[df["profile"] == profile]
    ok = _complete(part) if "status" in part else part
    not_complete = len(part) - len(ok)
    if ok.empty:
        runs = "no complete run yet" + (f", {not_complete} not complete" if not_complete else "")
    else:
        seeds = sorted({int(s) for s in ok["seed"]})
        seed_text = (f"seeds {seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1
                     else ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds)))
        runs = f"{counted(len(ok), 'complete run')} of {counted(ok['model'].nunique(), 'model')}, {seed_text}"
        rest = part.drop(ok.index)
        if not_complete and hardware(rest) != hardware(ok):
            # the results' hardware is theirs alone: unfinished runs on other hardware are named apart
            runs += f", on {hardware(ok)}; {not_complete} more not complete, on {hardware(rest)}"
            return f"Profile {profile}: {runs}; data: {data_description(ok)}."
        runs += f" ({not_complete} more not complete)" if not_complete else ""
    return f"Profile {profile}: {runs}, on {hardware(part)}; data: {data_description(part)}."


def profiles_with_results(table: "pd.DataFrame") -> List[str]:
    """The profiles of a :func:`results_table` with at least one complete run, most faithful first.

    Only these lead a results page and set the plumbing checks aside (:func:`page_profiles`): a profile whose
    runs are all stopped between epochs or failed has no result yet (its runs are listed as not results), and
    letting it in would fold away the only measured table and plot for an empty one.
    """
    if table is None or table.empty:
        return []
    return faithful_first(table.loc[table["n"] > 0, "profile"])


def no_result_note(df: "pd.DataFrame", profile: str,
                   listed: str = "listed under *Runs that are not results* below") -> str:
    """Markdown for a profile without a complete run on a results page: none at all, or only runs that are not
    results. ``listed`` says where the reader finds those (the results page lists them under its heading "Runs that
    are not results"; another page points there). ``df`` holds every state (``load_records(include_failed=True)``),
    restricted by the caller to the models its page compares."""
    part = df[df["profile"] == profile]
    if part.empty:
        return f"No runs under profile **{profile}** yet."
    return (f"No complete run under profile **{profile}** yet: {counted(len(part), 'run')} stopped between epochs "
            f"or failed, {listed}.")


# --------------------------------------------------------------------------- tables for a reader

#: The look of every table the book renders from this module: the article column's width at most, wrapped
#: header and cell text, a smaller font (the column is ~770 px at a 1400 px window).
TABLE_STYLES: List[Dict[str, Any]] = [
    {"selector": "", "props": [("font-size", "0.85em"), ("max-width", "100%"), ("border-collapse", "collapse")]},
    {"selector": "th", "props": [("white-space", "normal"), ("vertical-align", "bottom"), ("text-align", "left"),
                                 ("padding", "0.25em 0.5em")]},
    # no white-space here: a rule on "#table td" would outrank the per-cell nowrap of styled(nowrap=...)
    {"selector": "td", "props": [("vertical-align", "top"), ("padding", "0.25em 0.5em")]},
    {"selector": "details", "props": [("font-size", "0.95em")]},
]


def styled(df: "pd.DataFrame", formats: Optional[Mapping[str, Any]] = None, *, decimals: Optional[int] = None,
           font_size: str = "0.85em", left: Sequence[str] = (), nowrap: Sequence[str] = ()) -> Any:
    """A pandas Styler for the book: no index, ``formats`` per column (format strings or callables), every other
    float column to ``decimals`` places when given, NaN as "—", :data:`TABLE_STYLES` (with ``font_size``),
    ``left``-aligned text columns and ``nowrap`` columns kept on one line (short values such as "3.45 ± 0.05"
    that read wrongly when broken)."""
    formats = dict(formats or {})
    if decimals is not None:
        formats.update({c: f"{{:.{decimals}f}}" for c in df.columns if c not in formats and df[c].dtype.kind == "f"})
    styles = [dict(s) for s in TABLE_STYLES]
    styles[0] = {"selector": "", "props": [("font-size", font_size)] + styles[0]["props"][1:]}
    st = df.style.hide(axis="index").format(formats, na_rep="—").set_table_styles(styles)
    for names, prop in ((left, {"text-align": "left"}), (nowrap, {"white-space": "nowrap"})):
        cols = [c for c in names if c in df.columns]
        if cols:
            st = st.set_properties(subset=cols, **prop)
    return st


def folded(text: Any, summary: str = "note") -> str:
    """``text`` folded into an HTML ``<details>`` (for a long note in a table cell); "" for empty text."""
    import html

    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    if not text:
        return ""
    return f"<details><summary>{html.escape(summary)}</summary>{html.escape(text)}</details>"


def _minus(text: str) -> str:
    """Typographic minus signs (U+2212) for printed numbers."""
    return text.replace("-", "−")


def _fmt_diff(x: float, decimals: int = 2) -> str:
    # "+ 0.0": a difference that rounds to zero prints as +0.00, not as a negative zero
    return "—" if x is None or math.isnan(x) else _minus(f"{round(x, decimals) + 0.0:+.{decimals}f}")


def _claims_by(claims: Iterable[Any], kind: str) -> Dict[str, Any]:
    return {c.model: c for c in claims if getattr(c, "kind", None) == kind}


def _claimed_error(c: Any) -> str:
    if c is None:
        return "—"
    sd = f" ± {c.sd:.2f}" if getattr(c, "sd", None) is not None else ""
    return f"{c.value:.2f}{sd}"


def results_display(table: "pd.DataFrame", claims: Iterable[Any] = (), profile: Optional[str] = None) -> "pd.DataFrame":
    """A :func:`results_table` (of one ``profile``) for a reader: human column names, mean ± SD as text (2
    decimals), the report's claimed error (from ``claims``: objects with ``kind``, ``model``, ``value``, ``sd``)
    and measured − claimed in pp, params and MACs in M. Numbers stay numbers where a Styler formats them."""
    import pandas as pd

    claims = list(claims)
    err = _claims_by(claims, "test_error")
    t = table if profile is None else table[table["profile"] == profile]
    rows = []
    for _, r in t.iterrows():
        c = err.get(r["model"])
        runs = f"{int(r['n'])}" + (f" (+{int(r['n_failed'])} not complete)" if r.get("n_failed", 0) else "")
        rows.append({
            "model": model_label(r["model"]),
            "runs": runs,
            "test error (%)": _fmt_pm(r["mean_error"], r["std_error"]) or "—",
            "report (%)": _claimed_error(c),
            "ours − report (pp)": _fmt_diff(r["mean_error"] - c.value) if c is not None else "—",
            "params (M)": r["params_m"],
            "MACs (M)": r["macs_m"],
        })
    return pd.DataFrame(rows, columns=["model", "runs", "test error (%)", "report (%)", "ours − report (pp)",
                                       "params (M)", "MACs (M)"])


RESULTS_FORMATS = {"params (M)": "{:.3f}", "MACs (M)": "{:.1f}"}
RESULTS_NOWRAP = ("test error (%)", "report (%)", "ours − report (pp)")


def runs_display(pages: "pd.DataFrame", profile: Optional[str] = None) -> "pd.DataFrame":
    """The run list (:func:`se_res2net.audit.claims.run_pages`, of one ``profile``) for a reader: the run as a link to
    its notebook, its state, final test error, epochs and wall time; where it stopped only when a run did not
    complete; hardware only when the runs differ in it or one ran on several machines (which epochs where),
    otherwise the page states it once."""
    import html

    import pandas as pd

    p = pages if profile is None else pages[pages["profile"] == profile]
    runs = []
    for model, seed, url in zip(p["model"], p["seed"], p["notebook"]):
        name = html.escape(f"{model_label(model)}, seed {int(seed)}")
        runs.append(f'<a href="{html.escape(url)}">{name}</a>' if url else name)
    out = pd.DataFrame({"run": runs, "state": list(p["state"]), "test error (%)": list(p["final_test_error"]),
                        "epochs": list(p["epochs"]), "wall time (s)": list(p["wall_time_s"])})
    unfinished = p["last logged test error (not a result)"]
    if unfinished.notna().any():
        out.insert(3, "stopped at test error (%), not a result", list(unfinished))
    if p["hardware"].nunique(dropna=True) > 1 or ("devices" in p and (p["devices"] > 1).any()):
        out["hardware"] = list(p["hardware"])
    return out


RUNS_FORMATS = {"test error (%)": "{:.2f}", "stopped at test error (%), not a result": "{:.2f}",
                "wall time (s)": "{:.1f}"}


def ablation_display(abl: "pd.DataFrame", claims: Iterable[Any] = (), profile: Optional[str] = None) -> "pd.DataFrame":
    """An :func:`ablation_table` (of one ``profile``) for a reader: the variant, n (and the runs not complete yet),
    measured error mean ± SD and the report's, params measured and claimed, Δ vs the baseline (pp; "reference" on
    the baseline's row), Welch p (2 significant digits), Cohen's d and the note folded into a ``<details>`` (no
    note column without notes)."""
    import pandas as pd

    from .stats import format_p, format_sig

    claims = list(claims)
    err, par = _claims_by(claims, "test_error"), _claims_by(claims, "params")
    t = abl if profile is None else abl[abl["profile"] == profile]
    rows = []
    for _, r in t.iterrows():
        c, cp = err.get(r["model"]), par.get(r["model"])
        ref = r["model"] == ABLATION_BASELINE
        rows.append({
            "variant": r["variant"],
            "n": f"{int(r['n'])}" + (f" (+{int(r['n_not_complete'])} not complete)" if r["n_not_complete"] else ""),
            "test error (%)": r["error"] or "—",
            "report (%)": _claimed_error(c),
            "params (M)": r["params_m"],
            "report params (M)": f"{cp.value:.2f}" if cp is not None else "—",
            f"Δ vs {model_label(ABLATION_BASELINE)} (pp)": "reference" if ref else _fmt_diff(r["diff_vs_baseline"]),
            "Welch p": format_p(r["welch_p"]),
            "Cohen's d": _minus(format_sig(r["cohens_d"])),
            "note": "" if ref else folded(r["note"]),
        })
    cols = ["variant", "n", "test error (%)", "report (%)", "params (M)", "report params (M)",
            f"Δ vs {model_label(ABLATION_BASELINE)} (pp)", "Welch p", "Cohen's d", "note"]
    out = pd.DataFrame(rows, columns=cols)
    return out.drop(columns="note") if len(out) and not out["note"].astype(bool).any() else out


ABLATION_FORMATS = {"params (M)": "{:.3f}"}
ABLATION_NOWRAP = ("test error (%)", "report (%)")


def significance_display(sig: "pd.DataFrame", profile: Optional[str] = None) -> "pd.DataFrame":
    """A :func:`significance_table` (of one ``profile``) for a reader: the comparison, n, both means, Δ with its
    Welch CI, Welch t (df), p (2 significant digits), Cohen's d, the bootstrap CI and the note folded (no note
    column when no comparison has a note)."""
    import pandas as pd

    from .stats import CI_LEVEL, format_p, format_sig

    t = sig if profile is None else sig[sig["profile"] == profile]
    welch_ci, boot_ci = f"Welch {CI_LEVEL:.0%} CI (pp)", f"bootstrap {CI_LEVEL:.0%} CI (pp)"

    def ci(lo: float, hi: float) -> str:
        return "—" if math.isnan(lo) or math.isnan(hi) else f"{_fmt_diff(lo)} to {_fmt_diff(hi)}"

    rows = []
    for _, r in t.iterrows():
        rows.append({
            "baseline → candidate": f"{model_label(r['baseline'])} → {model_label(r['candidate'])}",
            "n": f"{int(r['n_baseline'])} + {int(r['n_candidate'])}",
            "mean error (%)": f"{r['mean_baseline']:.2f} → {r['mean_candidate']:.2f}",
            "Δ (pp)": _fmt_diff(r["diff"]),
            welch_ci: ci(r["welch_ci_low"], r["welch_ci_high"]),
            "Welch t (df)": "—" if math.isnan(r["welch_t"]) else _minus(f"{r['welch_t']:.2f} ({r['welch_df']:.1f})"),
            "p": format_p(r["welch_p"]),
            "Cohen's d": _minus(format_sig(r["cohens_d"])),
            boot_ci: ci(r["ci_low"], r["ci_high"]),
            "note": folded(r["note"]),
        })
    cols = ["baseline → candidate", "n", "mean error (%)", "Δ (pp)", welch_ci, "Welch t (df)", "p",
            "Cohen's d", boot_ci, "note"]
    out = pd.DataFrame(rows, columns=cols)
    return out.drop(columns="note") if len(out) and not out["note"].astype(bool).any() else out


SIGNIFICANCE_NOWRAP = ("n", "mean error (%)", "Δ (pp)", "p", "Cohen's d")


# --------------------------------------------------------------------------- figures

#: Width of a figure that fills the article column (~770 px) at :data:`FIG_DPI` without being scaled down,
#: so that its fonts print at the size they are set to.
FIG_WIDTH = 7.6
FIG_DPI = 100
#: Marker of each profile in figures that mix profiles.
PROFILE_MARKERS = {"smoke": "o", "budget": "s", "full": "D"}

CURVE_LABELS = {"test_error": "test error (%)", "train_loss": "training loss (cross-entropy)",
                "train_acc": "training accuracy (%)", "test_loss": "test loss (cross-entropy)", "lr": "learning rate"}


def curve_bands(curves: "pd.DataFrame", metric: str = "test_error") -> "pd.DataFrame":
    """Per (profile, model, epoch): ``n`` seeds, ``mean``, ``sd`` (sample SD, ddof=1; NaN for one seed),
    ``lo`` = mean − sd, ``hi`` = mean + sd, ``min`` and ``max`` of ``metric`` over the seeds."""
    if metric not in curves.columns or metric in ("profile", "model", "seed", "epoch"):
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(CURVE_COLUMNS[4:])}")
    g = curves.dropna(subset=[metric]).groupby(["profile", "model", "epoch"])[metric]
    out = g.agg(n="count", mean="mean", sd="std", min="min", max="max").reset_index()
    out["lo"], out["hi"] = out["mean"] - out["sd"], out["mean"] + out["sd"]
    return out[["profile", "model", "epoch", "n", "mean", "sd", "lo", "hi", "min", "max"]]


def _seed_text(counts: Iterable[int]) -> str:
    c = sorted(set(int(x) for x in counts))
    if not c:
        return "no seeds"
    return f"{c[0]} seed{'s' if c[0] != 1 else ''}" if len(c) == 1 else f"{c[0]}–{c[-1]} seeds"


def plot_training_curves(curves: "pd.DataFrame", profile: str, hardware_text: str = "",
                         metrics: Sequence[str] = ("test_error", "train_loss")) -> "Figure":
    """Training curves of one profile: one panel per metric (default test error and training loss), per model the
    mean over seeds with a ±1 SD band (:func:`curve_bands`), legend below the panels, titled with the profile and
    ``hardware_text``.

    A profile that logs a single epoch has no curve to draw: each panel is then a dot plot, one row per model,
    the mean ± 1 SD as a point with an error bar and every seed as an open circle.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    data = curves[curves["profile"] == profile]
    if data.empty:
        raise ValueError(f"no curves of profile {profile!r}; plot only the profiles that have complete runs")
    models = model_order(data["model"])
    colors = model_colors(models)
    epochs = sorted(data["epoch"].unique())
    single = len(epochs) == 1
    seeds = _seed_text(data.groupby("model")["seed"].nunique())
    fig = Figure(figsize=(FIG_WIDTH, 1.6 + 0.32 * len(models) if single else 5.4), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(1, len(metrics), sharey=single, squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        bands = curve_bands(data, metric)
        if single:
            for y, m in enumerate(models):
                b = bands[bands["model"] == m]
                vals = data.loc[data["model"] == m, metric].dropna()
                ax.scatter(vals, [y] * len(vals), s=28, facecolors="none", edgecolors=[colors[m]], linewidths=1,
                           zorder=2)
                if len(b):
                    sd = float(b["sd"].iloc[0])
                    ax.errorbar(float(b["mean"].iloc[0]), y, xerr=None if math.isnan(sd) else sd, fmt="o", ms=6,
                                color=colors[m], capsize=3, zorder=3)
            ax.set_yticks(range(len(models)), [model_label(m) for m in models])
            ax.set_ylim(len(models) - 0.5, -0.5)
            ax.set_xlabel(CURVE_LABELS.get(metric, metric))
            ax.grid(True, axis="x", alpha=0.3)
        else:
            for m in models:
                b = bands[bands["model"] == m].sort_values("epoch")
                ax.plot(b["epoch"], b["mean"], color=colors[m], lw=1.6, marker="o" if len(b) <= 15 else None, ms=3)
                ax.fill_between(b["epoch"], b["lo"], b["hi"], color=colors[m], alpha=0.2, lw=0)
            ax.set_xlabel("epoch")
            ax.set_ylabel(CURVE_LABELS.get(metric, metric))
            ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
    title = f"Training curves, profile {profile}" + (f", on {hardware_text}" if hardware_text else "")
    if single:
        title += f"\none epoch per run: the values after epoch {epochs[0]}"
    fig.suptitle(title, fontsize=11)
    if single:
        fig.legend(handles=[Line2D([], [], marker="o", color="0.3", ls="", label="mean ± 1 SD over " + seeds),
                            Line2D([], [], marker="o", mfc="none", color="0.3", ls="", label="one seed")],
                   loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    else:
        handles = [Line2D([], [], color=colors[m], lw=2, label=model_label(m)) for m in models]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9, frameon=False,
                   title=f"line: mean over {seeds}; band: ± 1 SD (sample SD across seeds)", title_fontsize=9)
    return fig


def claimed_points(claims: Iterable[Any]) -> "pd.DataFrame":
    """The report's (params, test error) points: every model with both a ``test_error`` and a ``params`` claim
    (columns ``model``, ``ids`` "E1/P1", ``params_m``, ``error``, ``sd``)."""
    import pandas as pd

    claims = list(claims)
    err, par = _claims_by(claims, "test_error"), _claims_by(claims, "params")
    rows = [{"model": m, "ids": f"{err[m].id}/{par[m].id}", "params_m": float(par[m].value),
             "error": float(err[m].value),
             "sd": float(err[m].sd) if getattr(err[m], "sd", None) is not None else math.nan}
            for m in err if m in par]
    return pd.DataFrame(rows, columns=["model", "ids", "params_m", "error", "sd"])


def _log_ticks(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))

    def minor(v: float, _: Any) -> str:
        # over more than a decade, label the minor ticks at 2, 3 and 5 times a power of ten only (all nine crowd
        # the axis); within one (trained networks only: 4-7 %, say) every minor tick, or the axis has one label
        lo, hi = sorted(ax.get_ylim())
        if v <= 0:
            return ""
        if lo > 0 and hi / lo < 10:
            return f"{v:g}"
        return f"{v:g}" if round(v / 10 ** math.floor(math.log10(v) + 1e-9)) in (2, 3, 5) else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def plot_error_vs_params(table: "pd.DataFrame", claims: Iterable[Any] = (), hardware_text: str = "") -> "Figure":
    """Test error against parameters: each measured model of each profile in ``table`` (:func:`results_table`)
    as mean ± 1 SD over its seeds (marker per profile), and the report's claimed points (:func:`claimed_points`)
    as stars with the claim ids, one colour per model. Test error on a log scale, so that a shortened profile
    far from the report's numbers and the report's numbers both stay readable."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    claimed = claimed_points(claims)
    models = model_order(list(table["model"]) + list(claimed["model"]))
    colors = model_colors(models)
    fig = Figure(figsize=(FIG_WIDTH, 6.0), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    profiles = faithful_first(table["profile"]) if len(table) else []
    for prof in profiles:
        t = table[table["profile"] == prof]
        for _, r in t.iterrows():
            sd = r["std_error"]
            ax.errorbar(r["params_m"], r["mean_error"], yerr=None if math.isnan(sd) else sd, color=colors[r["model"]],
                        marker=PROFILE_MARKERS.get(prof, "P"), ms=7, capsize=3, ls="", zorder=3)
    for _, c in claimed.iterrows():
        ax.errorbar(c["params_m"], c["error"], yerr=None if math.isnan(c["sd"]) else c["sd"], color=colors[c["model"]],
                    marker="*", ms=14, mec="black", mew=0.6, capsize=3, ls="", zorder=4)
    # claims on top of each other share one label
    placed: List[Tuple[float, float, List[str]]] = []
    for _, c in claimed.sort_values("error").iterrows():
        # "on top of each other": within 0.03 M and 6 % of the error, about a star's width on this plot
        home = next((g for g in placed if abs(g[0] - c["params_m"]) < 0.03 and abs(math.log(g[1] / c["error"])) < 0.06),
                    None)
        if home is None:
            placed.append((c["params_m"], c["error"], [c["ids"]]))
        else:
            home[2].append(c["ids"])
    for x, y, ids in placed:
        ax.annotate(", ".join(ids), (x, y), textcoords="offset points", xytext=(9, -4), fontsize=8)
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("CIFAR-10 test error (%, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    title = "Test error against parameters: ours and the report's"
    if hardware_text:
        title += f"\nours measured on {hardware_text}"
    ax.set_title(title, fontsize=11)
    handles = [Line2D([], [], marker="s", color=colors[m], ls="", ms=8, label=model_label(m)) for m in models]
    handles += [Line2D([], [], marker=PROFILE_MARKERS.get(p, "P"), color="0.3", ls="", ms=7,
                       label=f"ours, profile {p}: mean ± 1 SD") for p in profiles]
    handles.append(Line2D([], [], marker="*", color="0.3", mec="black", ls="", ms=12,
                          label="the report's claim (± its σ), claim ids"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)
    return fig


def claimed_differences(claims: Iterable[Any], pairs: Iterable[Tuple[str, str]]) -> Dict[Tuple[str, str], float]:
    """Baseline − candidate of the report's claimed mean errors, for each pair both of whose models it claims."""
    err = _claims_by(claims, "test_error")
    return {(a, b): float(err[a].value) - float(err[b].value) for a, b in pairs if a in err and b in err}


def plot_differences(sig: "pd.DataFrame", claimed: Optional[Mapping[Tuple[str, str], float]] = None,
                     hardware_text: str = "", title: str = "", name_baseline: bool = True) -> "Figure":
    """Each comparison of ``sig`` (:func:`significance_table`) as Δ = baseline − candidate with its Welch CI
    (:data:`se_res2net.audit.stats.CI_LEVEL`) against zero (positive = the candidate has the lower error); the report's
    Δ for that pair (``claimed``) as a star; p and d under each comparison's name; the profile in each row's
    label when several are present. ``name_baseline=False`` names only the candidate (one baseline for all rows,
    as in the ablation, which the title then says)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .stats import CI_LEVEL, format_p, format_sig

    if sig.empty:
        raise ValueError("no comparisons to plot; plot only when significance_table found pairs with runs")
    claimed = dict(claimed or {})
    profiles = faithful_first(sig["profile"])
    several = len(profiles) > 1
    rows = [r for p in profiles for _, r in sig[sig["profile"] == p].iterrows()]
    fig = Figure(figsize=(FIG_WIDTH, 1.6 + 0.62 * len(rows)), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    colors = {p: c for p, c in zip(["smoke", "budget", "full"], ["tab:gray", "tab:orange", "tab:blue"])}
    labels = []
    no_interval = set()  # profiles with a row whose CI is undefined (one run on a side): the legend says why
    for y, r in enumerate(rows):
        lo, hi, d = r["welch_ci_low"], r["welch_ci_high"], r["diff"]
        xerr = None if math.isnan(lo) or math.isnan(hi) else [[d - lo], [hi - d]]
        if xerr is None:
            no_interval.add(r["profile"])
        ax.errorbar(d, y, xerr=xerr, fmt=PROFILE_MARKERS.get(r["profile"], "o"), ms=7, capsize=4, lw=1.6,
                    color=colors.get(r["profile"], "tab:purple"), zorder=3)
        key = (r["baseline"], r["candidate"])
        if key in claimed:
            ax.plot(claimed[key], y, marker="*", ms=14, color="tab:red", mec="black", mew=0.6, ls="", zorder=4)
        name = (f"{model_label(r['baseline'])} → " if name_baseline else "") + model_label(r["candidate"])
        labels.append((f"[{r['profile']}] " if several else "") + name +
                      f"\np = {format_p(r['welch_p'])}, d = {_minus(format_sig(r['cohens_d']))}, "
                      f"n = {int(r['n_baseline'])} + {int(r['n_candidate'])}")
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("Δ = baseline error − candidate error (pp)\n> 0: the candidate has the lower error")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Line2D([], [], marker=PROFILE_MARKERS.get(p, "o"), color=colors.get(p, "tab:purple"), ls="-",
                      label=f"ours, profile {p}: Δ and Welch {CI_LEVEL:.0%} CI"
                            + (" (none where a side has one run)" if p in no_interval else "")) for p in profiles]
    if claimed:
        handles.append(Line2D([], [], marker="*", color="tab:red", mec="black", ls="", ms=12,
                              label="the report: difference of its claimed means"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    text = title or f"Welch difference of the mean test errors, with its {CI_LEVEL:.0%} CI"
    if hardware_text:
        text += f"\nours measured on {hardware_text}"
    ax.set_title(text, fontsize=11)
    return fig


def published_sds(entries: Sequence[Any]) -> Dict[str, float]:
    """Each seed-to-seed SD (pp) the literature ``entries`` publish, labelled by model, runs and source; one per model
    and source (an entry listed twice, as the best and the mean of the same runs, has one key)."""
    return {f"{e.model}{f', {e.runs:,} runs' if e.runs else ''} ({e.cite})": float(e.sd)
            for e in entries if e.sd is not None}


def power_at_published_sds(report: Mapping[str, Any], entries: Sequence[Any], n: int = 3) -> str:
    """One sentence: the power of ``n`` + ``n`` seeds to detect the report's difference of claimed means at the
    published seed SDs, and the seeds per model that 80 % power takes (:func:`se_res2net.audit.stats.power_table`);
    "" when the literature has no SD."""
    from .stats import format_sig, power_table

    sds = published_sds(entries)
    if not sds:
        return ""
    diff = report["mean_a"] - report["mean_b"]
    t = power_table(diff, sds, n=n)
    lo, hi = t["σ (pp)"].min(), t["σ (pp)"].max()
    weakest = float(t["power"].min())
    return (f"At the published seed spreads ({lo:.2f}–{hi:.2f} pp), {n} + {n} seeds detect the report's Δ = {diff:.2f} pp "
            f"with a power of {format_sig(weakest, 2)}–{format_sig(float(t['power'].max()), 2)} (two-sided t test, "
            f"α = 0.05); 80 % power takes {int(t['seeds needed'].min())}–{int(t['seeds needed'].max())} seeds per model."
            + (f" So, at those spreads, a {n}-seed result that does not separate the two models is weak evidence "
               f"against the report's Δ: the test would miss a true Δ of that size with a probability of up to "
               f"{format_sig(1 - weakest, 2)}." if weakest < 0.8 else ""))


def seed_sd_sources(report: Mapping[str, Any], entries: Sequence[Any], records: "pd.DataFrame",
                    pair: Tuple[str, str] = ("res2net29", "se_res2net29"),
                    profiles: Sequence[str] = ("budget", "full")) -> Dict[str, float]:
    """Seed-to-seed SDs (pp) to judge a test of ``pair`` by, label → σ: the report's own (its two ±σ pooled, read as
    sample SDs; ``report`` as :func:`se_res2net.audit.claims.report_statistics` gives it), each published seed SD in
    the literature ``entries`` (one per source and model), and ours: the pooled SD of the pair's complete runs in each
    of ``profiles`` where both models have at least 2 (smoke is left out: its spread is that of a plumbing check).
    Ordered by σ, smallest first."""
    from .stats import pooled_sd as pooled, summarize  # the pooled SD of Cohen's d

    out = {f"the report's ±σ, pooled ({model_label(pair[0])} {report['sd_a']:g}, {model_label(pair[1])} "
           f"{report['sd_b']:g}; n = {report['n_a']} + {report['n_b']})":
           pooled(report["sd_a"], report["n_a"], report["sd_b"], report["n_b"])}
    out.update(published_sds(entries))
    for prof in profiles:
        a, b = summarize(_errors(records, prof, pair[0])), summarize(_errors(records, prof, pair[1]))
        if a.n >= 2 and b.n >= 2:
            out[f"ours, profile {prof} (n = {a.n} + {b.n}, {hardware(records, prof)})"] = pooled(a.std, a.n, b.std, b.n)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))  # smallest σ first: the plot numbers them in this order


def plot_detectable_difference(sds: Mapping[str, float], claimed_diff: float, ns: Sequence[int] = (3, 5, 10),
                               alpha: float = 0.05, power: float = 0.8) -> "Figure":
    """The smallest true Δ a two-sided t test of n + n seeds detects with probability ``power``, against the
    seed-to-seed SD σ, one line per n in ``ns``; the report's Δ as a dashed line; each σ of ``sds`` (label → σ, as
    :func:`seed_sd_sources` gives them) as a marker numbered 1, 2, ... in the order of ``sds`` on the first n's
    line, named in the legend."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .stats import detectable_difference

    if not sds:
        raise ValueError("no seed-to-seed SD to mark; seed_sd_sources gives at least the report's own")
    top = max(0.3, 1.25 * max(sds.values()))
    grid = np.linspace(top / 200, top, 120)
    fig = Figure(figsize=(FIG_WIDTH, 4.6), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    handles = []
    for n, color in zip(ns, ["tab:blue", "tab:green", "tab:purple", "tab:brown"]):
        ax.plot(grid, [detectable_difference(s, n, n, alpha, power) for s in grid], color=color, lw=1.8)
        handles.append(Line2D([], [], color=color, lw=1.8, label=f"{n} + {n} seeds"))
    ax.axhline(claimed_diff, color="tab:red", ls="--", lw=1.4)
    handles.append(Line2D([], [], color="tab:red", ls="--", label=f"the report's Δ = {claimed_diff:.2f} pp"))
    n0 = ns[0]
    for k, (label, s) in enumerate(sds.items(), start=1):
        y = detectable_difference(s, n0, n0, alpha, power)
        ax.plot(s, y, "o", ms=15, color="white", mec="black", zorder=4)
        ax.annotate(str(k), (s, y), ha="center", va="center", fontsize=8, zorder=5)
        handles.append(Line2D([], [], marker=f"${k}$", color="black", ls="", ms=7, label=f"σ: {label}"))
    ax.set_xlim(0, top)
    ax.set_ylim(0, None)
    ax.set_xlabel("seed-to-seed SD of the test error, σ (pp)")
    ax.set_ylabel(f"Δ detected with {power:.0%} power (pp)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"The smallest difference a two-sided t test at α = {alpha:g} detects with {power:.0%} power",
                 fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=1, fontsize=8.5, frameon=False)
    return fig


def efficiency_display(eff: "pd.DataFrame", params_decimals: int = 3) -> "pd.DataFrame":
    """An :func:`se_res2net.audit.stats.efficiency_table` for a reader: the comparison by model name, ΔParams (M, to
    ``params_decimals``: 2 for the report's counts, printed to 0.01 M), ΔError (pp), params per 1 pp error drop
    with the range the parameter counts' rounding allows (2 significant digits), and, when ``eff`` has them, its
    ``profile``, ``claim`` and ``claimed ratio`` (as the report printed it) columns; the note folded (no note
    column without notes)."""
    import pandas as pd

    from .stats import format_sig

    rows = []
    for _, r in eff.iterrows():
        row: Dict[str, Any] = {}
        for extra in ("profile", "claim"):
            if extra in eff.columns:
                row[extra] = r[extra]
        ratio = format_sig(r["params_per_1pct_drop_m"])
        if not (math.isnan(r["ratio_low"]) or math.isnan(r["ratio_high"])):
            ratio += f" ({format_sig(r['ratio_low'])}–{format_sig(r['ratio_high'])})"
        row.update({
            "baseline → variant": f"{model_label(r['baseline'])} → {model_label(r['variant'])}",
            "ΔParams (M)": _minus(f"{r['delta_params_m']:+.{params_decimals}f}"),
            "ΔError (pp)": _fmt_diff(r["delta_error_pct"]),
            "M params per 1 pp error drop": ratio,
        })
        if "claimed ratio" in eff.columns:
            row["report's ratio"] = f"{r['claimed ratio']:g}"
        row["note"] = folded(r["note"])
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.drop(columns="note") if len(out) and not out["note"].astype(bool).any() else out


# --------------------------------------------------------------------------- fast-path parity records


def parity_display(record: Mapping[str, Any]) -> "pd.DataFrame":
    """A ``se-res2net parity`` record's switches for a reader: the variant, its setup, the largest per-epoch
    difference of its mean training loss from eager fp32 (nats), the tolerance, the limit it was judged by (the
    larger of the tolerance and the seed-to-seed noise measured in the same run; the tolerance in a record
    without noise), whether it is within ("yes" / "NO": the record's ``ok``, or ``within_tolerance`` in a
    record older than the noise runs) and its final test error (%). The noise itself is stated by
    :func:`parity_noise_text`."""
    import pandas as pd

    from ..training.parity import run_limit, run_ok

    return pd.DataFrame([{"variant": k, "setup": v["describe"], "max |Δ| (nats)": v["max_abs_diff"],
                          "tolerance": v["tolerance"], "limit (nats)": run_limit(v),
                          "within": "yes" if run_ok(v) else "NO",
                          "test error (%)": v["final_test_error"]} for k, v in record["runs"].items()])


def parity_data_text(record: Mapping[str, Any]) -> str:
    """What a parity record trained on, for a sentence "... training images of <this>": the resolved source its
    reference run recorded, or, in a record older than that field, the source it asked for (``auto`` may have
    resolved to the full set or to the embedded sample; such a record does not say which)."""
    data = record.get("data") or {}
    if data.get("data_is_sample"):
        return "the embedded CIFAR-10 sample"
    if data.get("data_source"):
        return f"CIFAR-10 (source {data['data_source']}, fingerprint {str(data.get('data_fingerprint'))[:8]}…)"
    asked = (record.get("config") or {}).get("data_source")
    if asked == "sample":
        return "the embedded CIFAR-10 sample"
    return f"CIFAR-10 (asked for as source {asked!r}; this record does not say what that resolved to)"


PARITY_FORMATS = {"max |Δ| (nats)": "{:.4f}", "tolerance": "{:.2f}", "limit (nats)": "{:.4f}",
                  "test error (%)": "{:.1f}"}


def parity_noise_text(record: Mapping[str, Any]) -> str:
    """One sentence (markdown) on the noise a parity record measured: the reference's other seeds and the largest
    per-epoch difference of their training loss from the reference seed's, from the record; or that it ran none
    (an older record, or ``--noise-seeds 0``) and was judged by the fixed tolerances only."""
    from ..training.parity import noise_seed_list, record_noise

    noise, seeds = record_noise(record), noise_seed_list(record)
    if noise is None:
        return "No noise run: fixed tolerances only."
    return (f"Noise: {record.get('reference', 'the reference')} again at seed(s) {', '.join(map(str, seeds))}; "
            f"the largest per-epoch difference of its training loss from seed {record.get('seed', '?')} is "
            f"{noise:.4f} nats, so a switch's limit is the larger of its tolerance and {noise:.4f}.")


def plot_parity(record: Mapping[str, Any]) -> "Figure":
    """Mean training loss per epoch of every fast-path switch of a parity record, the eager fp32 reference as a
    thick black line, each of the reference's other seeds (the noise, when the record ran any) as a dashed grey
    line, legend below the axes, titled with the device the record was measured on."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from ..training.parity import curves_frame

    curves = curves_frame(record)
    fig = Figure(figsize=(FIG_WIDTH, 4.6), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    for name, g in curves.groupby("variant", sort=False):
        ref = name == record["reference"]
        ax.plot(g["epoch"], g["train_loss"], marker="o", ms=4, lw=2.5 if ref else 1, color="black" if ref else None,
                label=f"{name} (reference)" if ref else name, alpha=0.85, zorder=3 if ref else 2)
    # the seed noise: how far the reference's curve moves when only its seed changes
    for seed, losses in ((record.get("noise") or {}).get("train_loss") or {}).items():
        ax.plot(range(1, len(losses) + 1), losses, ls="--", lw=1.2, color="grey", alpha=0.8, zorder=1,
                label=f"{record['reference']}, seed {seed} (noise)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (nats)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Fast-path switches against eager fp32, on {record.get('device_name', '?')} "
                 f"({device_kind(record.get('device'))})", fontsize=11)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)
    return fig


def load_checkpoint_checks(path: PathLike) -> List[Dict[str, Any]]:
    """The JSON lines ``se-res2net test CHECKPOINT... --json`` printed (one per checkpoint), each of which compares a
    checkpoint's test error here with the one its own record measured where it trained; ``[]`` when no file."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if "reproduces_record" not in r or "evaluated_on" not in r:
            raise ValueError(f"{p}: a line lacks reproduces_record / evaluated_on; write it with "
                             "'se-res2net test CHECKPOINT... --json' of this version")
    return rows


def checkpoint_checks_display(rows: Sequence[Mapping[str, Any]]) -> "pd.DataFrame":
    """One row per checked checkpoint: the run (from the checkpoint's name), its epoch, the device its record
    evaluated it on and the error there, the device of the check and the error there, the test losses' difference
    and whether the error is the same (yes / NO; — when the check had other data than the record)."""
    import pandas as pd

    out = []
    for r in rows:
        rec = r.get("record") or {}
        same = r.get("reproduces_record")
        out.append({"run": Path(r["checkpoint"]).stem, "epoch": r["epoch"],
                    "recorded on": rec.get("evaluated_on"), "recorded error (%)": rec.get("test_error"),
                    "checked on": f"{r['evaluated_on']['device_name']} (torch {r['evaluated_on']['torch']})",
                    "checked error (%)": r["test_error"],
                    "test loss difference (abs.)": abs(r["test_loss"] - rec["test_loss"]) if rec else float("nan"),
                    "same error": "—" if same is None else ("yes" if same else "NO")})
    return pd.DataFrame(out)


CHECKPOINT_CHECK_FORMATS = {"recorded error (%)": "{:.2f}", "checked error (%)": "{:.2f}",
                            "test loss difference (abs.)": "{:.1e}"}


def checkpoint_checks_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """One sentence (markdown) summing up :func:`checkpoint_checks_display`: how many checkpoints give their
    record's test error again on which device(s), against which recorded device(s), and the largest loss
    difference."""
    judged = [r for r in rows if r.get("reproduces_record") is not None]
    if not judged:
        return "No checkpoint has been checked against its record on another device yet."
    same = sum(bool(r["reproduces_record"]) for r in judged)
    here = ", ".join(sorted({r["evaluated_on"]["device_name"] for r in judged}))
    there = ", ".join(sorted({str(r["record"]["evaluated_on"]) for r in judged}))
    worst = max(abs(r["test_loss"] - r["record"]["test_loss"]) for r in judged)
    return (f"**{same} of {len(judged)}** checkpoints trained and evaluated on {there} give their record's test "
            f"error again on {here}, to the last digit; their test losses differ by at most {worst:.1e} nats "
            "(another device's fp32 kernels round differently).")
