"""Where a sweep stands: which runs are done, which train right now, how fast, and when it will end.

``se-res2net progress --profile full`` reads the run records under ``<out_root>/<profile>/`` and the plan
the sweep wrote there (``.sweep-plan.json``: models, seeds, epochs, concurrency). A run is

``complete`` / ``failed``
    as its record says;
``training``
    its record is unfinished and a live process holds its lock (so it is being trained now);
``incomplete``
    its record is unfinished and nobody holds it (a killed sweep): the next sweep resumes it from its checkpoint;
``stranded``
    as ``incomplete``, but its record says a checkpoint was written and that checkpoint is not here (git ignores
    the checkpoints of models too big to commit, so they stay on the machine that trained): no sweep can resume
    it here, and ``train`` refuses to start it over unless forced (``records.is_stranded``);
``pending``
    no record yet.

Throughput is measured, not assumed: a run's images/s is its training images over its last epoch's training
time; the ETA divides the remaining epochs by the concurrency, at each model's measured seconds per epoch (the
mean of the runs measured so far when a model has not started yet). A run resumed on other hardware is timed on
the epochs of the device that trained its latest ones.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .atomic import PathLike
from .locks import RunLock, sweep_lock_path, train_lock_path
from .profiles import ALL_MODELS, DEFAULT_SEEDS, get_profile
from .records import checkpoint_path, is_stranded, read_record, record_path, run_name, trained_spans
from .sweep import DEFAULT_OUT_ROOT, PLAN_FILE


#: states a sweep trains no further epoch of (a stranded run needs its checkpoint back, or --force)
_NO_EPOCHS_LEFT = ("complete", "failed", "stranded")


def _mean(xs: Sequence[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def _run_row(out: Path, model: str, seed: int, planned_epochs: int, rec: Optional[Dict[str, Any]] = None,
             name: Optional[str] = None) -> Dict[str, Any]:
    """One run's state, pace and last error, from its record (read here unless given) and its locks."""
    name = name or run_name(model, seed)
    row: Dict[str, Any] = {"run": name, "model": model, "seed": seed, "state": "pending", "epochs_done": 0,
                           "epochs": planned_epochs, "epoch_s": None, "images_per_s": None,
                           "last_test_error": None, "final_test_error": None, "device_name": None,
                           "precision": None}
    if rec is None:
        try:
            rec = read_record(record_path(out, model, seed, name))
        except (FileNotFoundError, ValueError):
            rec = None
    if rec is not None:
        eps = rec["epochs"]
        train_size = rec["provenance"].get("train_size") or 0
        # the pace of the device that trains it now: a run resumed on other hardware (a GPU's 13 s epochs, then a
        # CPU's 1,500 s) is timed by its last span's epochs only
        spans = trained_spans(rec)
        _, entry, first, _ = spans[-1] if spans else (0, rec["provenance"], 0, 0)
        recent = eps[max(first, len(eps) - 3):]
        latest = (rec.get("resumes") or [None])[-1]
        if latest and int(latest.get("epoch", 0)) >= len(eps) and latest.get("device_name") != entry.get("device_name"):
            entry, recent = latest, []  # resumed on another device that has not finished an epoch: pace unknown
        row.update(
            epochs_done=len(eps),
            epochs=int(rec["config"].get("epochs") or planned_epochs),
            epoch_s=_mean([e.get("epoch_time_s") for e in recent]),
            images_per_s=(train_size / recent[-1]["train_time_s"]) if recent and recent[-1].get("train_time_s") else None,
            last_test_error=eps[-1]["test_error"] if eps else None,
            final_test_error=rec.get("final_test_error"),
            device_name=entry.get("device_name"),
            pace_unknown=bool(eps) and not recent,
            # bf16 as resolved when the run (last) started: a resume must match it (trainer.RESUME_FIXES)
            precision={True: "bf16", False: "fp32"}.get(rec["provenance"].get("bf16")),
        )
        if rec["status"] in ("complete", "failed"):
            row["state"] = rec["status"]
        else:
            live = RunLock(sweep_lock_path(out, name)).is_locked() or RunLock(train_lock_path(out, name)).is_locked()
            if live:
                row["state"] = "training"
            elif is_stranded(rec, checkpoint_path(out, model, seed, name)):
                row["state"] = "stranded"
            else:
                row["state"] = "incomplete"
    elif RunLock(sweep_lock_path(out, name)).is_locked():
        row["state"] = "starting"
    return row


def sweep_progress(
    out_root: PathLike = DEFAULT_OUT_ROOT,
    profile: str = "full",
    models: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """The state of every planned run and the sweep's totals (JSON-ready). Unless ``models`` or ``seeds`` are
    given, the records in the folder that the plan does not name are listed too, under ``other_runs``."""
    prof = get_profile(profile)
    out = Path(out_root) / prof.name
    plan: Dict[str, Any] = {}
    if (out / PLAN_FILE).exists():
        try:
            plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
        except ValueError:
            plan = {}
    explicit_runs = models is not None or seeds is not None
    models = list(models or plan.get("models") or ALL_MODELS)
    seeds = [int(s) for s in (seeds or plan.get("seeds") or DEFAULT_SEEDS)]
    planned_epochs = int(plan.get("epochs") or prof.epochs)
    rows = [_run_row(out, model, seed, planned_epochs) for model in models for seed in seeds]
    # records in the folder that this plan does not name (an earlier sweep's, e.g. another device's seeds): listed
    # apart, so that a resumable run is not hidden by a later plan, and left out of this sweep's counts and ETA
    planned = {r["run"] for r in rows}
    others: List[Dict[str, Any]] = []
    if not explicit_runs:
        for path in sorted(out.glob("*.json")):
            try:
                rec = read_record(path)
            except (FileNotFoundError, ValueError):
                continue  # not a run record (or a broken one, which `se-res2net check` reports)
            if path.stem not in planned:
                other = _run_row(out, rec["model"], int(rec["seed"]), planned_epochs, rec=rec, name=path.stem)
                left = 0 if other["state"] in _NO_EPOCHS_LEFT else other["epochs"] - other["epochs_done"]
                # at its own pace; nothing left is 0 s, whatever the pace
                other["eta_s"] = 0.0 if not left else (left * other["epoch_s"] if other["epoch_s"] else None)
                others.append(other)

    # seconds per epoch: the run's own, else its model's, else every run's mean
    by_model = {m: _mean([r["epoch_s"] for r in rows if r["model"] == m]) for m in models}
    overall = _mean([r["epoch_s"] for r in rows])
    remaining_s: List[float] = []
    for r in rows:
        left = 0 if r["state"] in _NO_EPOCHS_LEFT else max(0, r["epochs"] - r["epochs_done"])
        # a run just resumed on other hardware has no pace there yet: its ETA is unknown, not another device's
        per = r["epoch_s"] or (None if r.get("pace_unknown") else (by_model.get(r["model"]) or overall))
        r["eta_s"] = None if per is None else left * per
        if left:
            remaining_s.append(r["eta_s"] if r["eta_s"] is not None else math.nan)
    concurrency = len(plan.get("slots") or []) or max(1, sum(r["state"] == "training" for r in rows))
    known = [s for s in remaining_s if math.isfinite(s)]
    eta: Optional[float] = 0.0 if not remaining_s else None
    if remaining_s and len(known) == len(remaining_s):
        eta = max(max(known), sum(known) / concurrency)
    states = {s: sum(r["state"] == s for r in rows) for s in
              ("complete", "training", "starting", "incomplete", "stranded", "failed", "pending")}
    return {
        "profile": prof.name,
        "out_dir": str(out),
        "runs": rows,
        "other_runs": others,
        "counts": states,
        "concurrency": concurrency,
        "images_per_s": sum(r["images_per_s"] or 0 for r in rows if r["state"] == "training"),
        "eta_s": eta,
        "plan_started": plan.get("started"),
    }


def _hms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_progress(p: Dict[str, Any]) -> str:
    c = p["counts"]
    lines = [
        f"{p['profile']} sweep in {p['out_dir']}: {c['complete']} complete, {c['training']} training, "
        f"{c['incomplete']} incomplete (resumable), "
        + (f"{c['stranded']} stranded (trained epochs, checkpoint not here), " if c["stranded"] else "")
        + f"{c['failed']} failed, {c['pending'] + c['starting']} pending"
        # the plan is the last sweep's that had runs to execute (one that skipped every run leaves it): say whose
        + (f" (the plan of the sweep started {p['plan_started']})" if p.get("plan_started") else ""),
        f"{'run':<34} {'state':<11} {'precision':<9} {'epochs':>9} {'s/epoch':>8} {'img/s':>8} {'test err %':>10} "
        f"{'ETA':>9}",
    ]
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731

    def line(r: Dict[str, Any]) -> str:
        err = r["final_test_error"] if r["final_test_error"] is not None else r["last_test_error"]
        eta = _hms(r["eta_s"]) if r.get("eta_s") else ""
        return (f"{r['run']:<34} {r['state']:<11} {r.get('precision') or '?':<9} {r['epochs_done']:>4}/{r['epochs']:<4} "
                f"{fmt(r['epoch_s'], '.1f'):>8} "
                f"{fmt(r['images_per_s'], '.0f'):>8} {fmt(err, '.2f'):>10} {eta:>9}")

    lines += [line(r) for r in p["runs"]]
    lines.append(f"now {p['images_per_s']:,.0f} training images/s over {c['training']} run(s); "
                 f"ETA of the sweep {_hms(p['eta_s'])} at concurrency {p['concurrency']}")
    others = p.get("other_runs") or []
    if others:
        lines.append(f"{len(others)} other run(s) in this folder, not in this sweep's plan "
                     f"({sum(r['state'] == 'incomplete' for r in others)} resumable by a sweep that names them):")
        lines += [line(r) for r in others]
    lines += _precision_hint(p["runs"] + list(others))
    return "\n".join(lines)


def _precision_hint(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """How the unfinished runs resume: at the precision each started with, which a sweep on the other device type
    must be told (bf16 "auto" is on for CUDA, off on a CPU; the trainer refuses a mismatch)."""
    left = [r for r in rows if r["state"] in ("incomplete", "training")]
    n = {prec: sum(r.get("precision") == prec for r in left) for prec in ("bf16", "fp32")}
    parts = ([f"{n['bf16']} in bf16 (a sweep on a CPU needs --bf16)"] if n["bf16"] else []) + (
        [f"{n['fp32']} in fp32 (a sweep on a GPU needs --no-bf16)"] if n["fp32"] else [])
    return [f"unfinished runs resume at the precision they started with: {', '.join(parts)}"] if parts else []


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="full", help="the sweep's profile (default full)")
    p.add_argument("--out-root", "--runs-root", dest="out_root", default=DEFAULT_OUT_ROOT, help="runs root (default book/runs)")
    p.add_argument("--models", nargs="+", default=None, help="default: the running sweep's plan, else all models")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the plan's, else 0 1 2")
    p.add_argument("--json", action="store_true", help="print JSON")


def run_progress(args: argparse.Namespace) -> int:
    p = sweep_progress(args.out_root, args.profile, args.models, args.seeds)
    print(json.dumps(p, indent=2) if args.json else format_progress(p))
    return 0
