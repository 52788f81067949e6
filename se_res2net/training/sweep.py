"""The sweep: run ``notebooks/train.ipynb`` through papermill once per (model, seed) of a profile.

For profile ``P`` and run ``<model>_seed<k>`` it writes, under ``<out_root>/P/``:

* ``<model>_seed<k>.ipynb`` — the executed notebook (curves, summary table; the traceback when it failed),
* ``<model>_seed<k>.json`` — the run record, written by :func:`se_res2net.training.trainer.train`
  (or, when the trainer never got that far, a minimal ``failed`` record written here),
* ``checkpoints/<model>_seed<k>.pt`` — the trainer's checkpoint (git ignores ``*.pt``),
* ``logs/<model>_seed<k>.log`` — what the process that executed the notebook printed (local executor).

Where runs execute (``executor``; :mod:`se_res2net.training.executors`)
---------------------------------------------------------------
``local`` (default)
    Each run in its own worker process (``python -m se_res2net.training._worker``), ``jobs`` runs at a time **per
    device**: with CUDA devices visible, the slots are spread over every GPU (``jobs`` × GPUs concurrent runs,
    each worker started with its own ``CUDA_VISIBLE_DEVICES``); on CPU, ``jobs`` runs with
    ``cores // jobs`` threads each. A worker dies with the sweep (``PR_SET_PDEATHSIG``), and its kernel
    exits within about a second once its parent is gone.
``submitit``
    Each run is a job of `submitit <https://github.com/facebookincubator/submitit>`_: ``cluster="slurm"``
    submits a Slurm job array (``partition``, ``gpus_per_job``, ``time_min``, at most ``jobs`` at once),
    ``cluster="local"`` runs the same jobs as local subprocesses (how CI tests it), ``"debug"`` in this
    process. Job logs go to ``<out>/submitit/``.

Rules, whatever the executor
----------------------------
* Everything about a run is decided by the process that executes it, **under the run's sweep lock**
  (:mod:`se_res2net.training.locks`): a run whose record is ``complete`` (with the planned configuration) and whose
  notebook exists is **skipped** without touching any file; a complete run whose notebook is missing (its
  sweep was killed after training, before the notebook was renamed into place) has its notebook executed
  again, which renders the record without training; a run with a checkpoint or an unfinished record is
  **resumed**; a run whose lock another live process holds is reported **busy** and left alone.
  ``force=True`` re-runs from scratch.
* Whether a run starts afresh or goes on from its checkpoint is the trainer's call, made under its own lock: the
  sweep executes every run it does not skip with ``resume=True`` (which starts at epoch 0 where there is no
  checkpoint). A decision taken here, before that lock, could be overtaken by the kernel of a killed sweep writing
  the run's first record on its way out, and the trainer would then refuse the unfinished run.
* The trainer holds a second lock while it trains (:func:`se_res2net.training.trainer.train`), so even the kernel of a
  killed sweep that has not yet exited cannot write at the same time as the restarted sweep.
* papermill writes its output notebook cell by cell, so it executes into a hidden temporary file
  ``.<model>_seed<k>.<random>.ipynb.tmp`` beside the final one and renames it into place at the end — also when
  the run failed, so the executed notebook shows the error. No half-written notebook is ever left under the
  final name; stale temporary files of killed sweeps are removed before a run is executed again.
* A failed run does not stop the sweep; failures are listed at the end (:class:`SweepReport`) and the CLI exits
  with status 1. A sweep killed at any moment (SIGKILL included) and started again ends with every run
  complete, each trained exactly once (``tests/test_sweep_kill.py``).

The notebook runs in the ``python3`` Jupyter kernel of *this* interpreter: workers put
``sys.prefix/share/jupyter`` first on ``JUPYTER_PATH``, and the sweep checks the kernelspec before starting.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .atomic import PathLike, atomic_write_json, atomic_write_text, ensure_writable_dir
from .executors import CLUSTERS, ClusterOptions, device_slots, execute_local, execute_submitit, visible_gpus
from .locks import LockBusy, RunLock, sweep_lock_path
from .profiles import ALL_MODELS, DEFAULT_SEEDS, PROFILES, Profile, get_profile, scaled_milestones
from .records import (
    SCHEMA,
    checkpoint_path,
    is_stranded,
    read_record,
    record_path,
    run_name,
    stranded_message,
    utc_now,
    write_record,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOK = "notebooks/train.ipynb"
DEFAULT_OUT_ROOT = "book/runs"
KERNEL_NAME = "python3"
PLAN_FILE = ".sweep-plan.json"  # what the running sweep planned (read by `se-res2net progress`)
EXECUTORS = ("local", "submitit")
# Notebook parameters a sweep may override for every run (the rest come from the profile).
OVERRIDABLE = (
    "epochs",
    "milestones",
    "batch_size",
    "lr",
    "weight_decay",
    "train_subset",
    "test_subset",
    "data_source",
    "device",
    "compile_mode",
    "checkpoint_every",
    "bf16",
)
STATUSES = ("completed", "skipped", "failed", "busy")
# The TrainConfig fields a run's notebook parameters set (the notebook's setup cell passes these through).
_CONFIG_KEYS = ("epochs", "milestones", "batch_size", "lr", "weight_decay", "train_subset", "test_subset",
                "data_source", "data_dir", "device", "checkpoint_every", "bf16")


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What happened to one (model, seed): ``status`` is ``completed``, ``skipped``, ``failed`` or ``busy``
    (another live process holds the run). ``images_trained``: training images processed in this attempt."""

    model: str
    seed: int
    status: str
    record: Path
    notebook: Optional[Path]
    error: Optional[str] = None
    final_test_error: Optional[float] = None
    wall_time_s: float = 0.0
    resumed: bool = False
    images_trained: int = 0
    device: Optional[str] = None

    @property
    def name(self) -> str:
        return run_name(self.model, self.seed)

    def to_dict(self) -> Dict[str, Any]:
        return {**dataclasses.asdict(self), "record": str(self.record),
                "notebook": None if self.notebook is None else str(self.notebook),
                "wall_time_s": round(self.wall_time_s, 2)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunOutcome":
        kw = dict(d)
        kw["record"] = Path(kw["record"])
        kw["notebook"] = None if kw.get("notebook") is None else Path(kw["notebook"])
        return cls(**kw)


@dataclass
class SweepReport:
    """The runs of one sweep, by outcome."""

    profile: str
    out_dir: Path
    jobs: int = 1
    completed: List[RunOutcome] = field(default_factory=list)
    skipped: List[RunOutcome] = field(default_factory=list)
    failed: List[RunOutcome] = field(default_factory=list)
    busy: List[RunOutcome] = field(default_factory=list)
    wall_time_s: float = 0.0
    executor: str = "local"
    slots: List[Optional[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def runs(self) -> List[RunOutcome]:
        return [o for status in STATUSES for o in getattr(self, status)]

    @property
    def images_per_s(self) -> float:
        """Aggregate training throughput of this sweep: images trained by its runs / its wall time."""
        images = sum(o.images_trained for o in self.runs)
        return images / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def add(self, outcome: RunOutcome) -> None:
        getattr(self, outcome.status).append(outcome)

    def summary(self) -> str:
        """A few human-readable lines: counts, wall time, throughput, one line per failure / busy run."""
        where = self.executor
        if self.executor == "local":
            gpus = sorted({s for s in self.slots if s is not None})
            where = f"{len(self.slots)} concurrent run(s)" + (f" on GPU(s) {', '.join(gpus)}" if gpus else "")
        lines = [
            f"sweep {self.profile} -> {self.out_dir}: {len(self.completed)} completed, {len(self.skipped)} skipped "
            f"(already complete), {len(self.failed)} failed"
            + (f", {len(self.busy)} busy (running elsewhere)" if self.busy else "")
            + f" in {self.wall_time_s:.1f} s ({where})",
        ]
        if any(o.images_trained for o in self.runs):
            lines.append(f"  aggregate throughput: {self.images_per_s:,.0f} training images/s")
        for o in sorted(self.failed, key=lambda o: o.name):
            at = f" (see {o.notebook})" if o.notebook else ""
            lines.append(f"  FAILED {o.name}: {o.error}{at}")
        for o in sorted(self.busy, key=lambda o: o.name):
            lines.append(f"  BUSY {o.name}: {o.error}")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "profile": self.profile,
            "out_dir": str(self.out_dir),
            "jobs": self.jobs,
            "executor": self.executor,
            "slots": self.slots,
            "wall_time_s": round(self.wall_time_s, 2),
            "images_per_s": round(self.images_per_s, 1),
            **{status: [o.to_dict() for o in getattr(self, status)] for status in STATUSES},
        }


# --------------------------------------------------------------------------------------------------
# Locating things
# --------------------------------------------------------------------------------------------------


def resolve_notebook(notebook: PathLike = DEFAULT_NOTEBOOK) -> Path:
    """The training notebook: ``notebook`` as given (absolute or relative to the working directory), else
    relative to the repository root that holds this package; ``FileNotFoundError`` naming both otherwise."""
    p = Path(notebook).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"training notebook {notebook} not found (tried {tried}); run from a checkout of the repository "
        "(it lives in notebooks/train.ipynb) or pass --notebook PATH"
    )


def _jupyter_data_dir() -> Path:
    return Path(sys.prefix) / "share" / "jupyter"


def jupyter_path() -> str:
    """``JUPYTER_PATH`` with this interpreter's kernelspecs first."""
    parts = [str(_jupyter_data_dir())] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


def check_kernel(kernel_name: str = KERNEL_NAME) -> str:
    """Check that the Jupyter kernel ``kernel_name`` runs this interpreter; return its argv[0].

    Looks with ``sys.prefix/share/jupyter`` first on ``JUPYTER_PATH``, as the workers do.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = f"install it with: {sys.executable} -m ipykernel install --prefix {sys.prefix} --name {kernel_name}"
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = jupyter_path()
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise ValueError(f"no Jupyter kernel named {kernel_name!r}; {fix}") from None
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved
    argv0 = spec.argv[0] if spec.argv else ""
    generic = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if argv0 not in generic:  # jupyter_client replaces a generic "python" by sys.executable
        same = False
        with contextlib.suppress(OSError):
            same = Path(argv0).resolve() == Path(sys.executable).resolve() or Path(argv0).absolute() == Path(
                sys.executable
            ).absolute()
        if not same:
            raise ValueError(
                f"the Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {argv0}, not this interpreter "
                f"{sys.executable}; {fix}"
            )
    return argv0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover (non-Linux)
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One (model, seed) to execute: everything a worker process or a cluster job needs (picklable)."""

    model: str
    seed: int
    out_dir: Path
    notebook_in: Path
    parameters: Tuple[Tuple[str, Any], ...]
    kernel_name: str
    profile: Optional[Profile] = None  # None: the registered profile named by the parameters

    @property
    def name(self) -> str:
        return run_name(self.model, self.seed)

    @property
    def record(self) -> Path:
        return record_path(self.out_dir, self.model, self.seed)

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.out_dir, self.model, self.seed)

    @property
    def notebook(self) -> Path:
        return self.out_dir / f"{self.name}.ipynb"

    @property
    def log(self) -> Path:
        return self.out_dir / "logs" / f"{self.name}.log"

    def params(self) -> Dict[str, Any]:
        return dict(self.parameters)

    def get_profile(self) -> Profile:
        return self.profile if self.profile is not None else get_profile(self.params()["profile"])


def notebook_parameters(
    profile: Profile,
    model: str,
    seed: int,
    out_dir: PathLike,
    *,
    data_dir: Optional[PathLike] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    threads: Optional[int] = None,
    force: bool = False,
    resume: bool = False,
) -> Dict[str, Any]:
    """The papermill parameters of one run: the profile's values, then ``overrides``.

    ``data_source`` stays ``auto`` for the notebook to resolve (a profile with a sample fallback uses the
    embedded sample when no dataset is configured); overriding ``epochs`` alone rescales the milestones.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"cannot override {unknown} in a sweep; overridable: {', '.join(OVERRIDABLE)}")
    params: Dict[str, Any] = {
        "model": model,
        "seed": int(seed),
        "profile": profile.name,
        "epochs": profile.epochs,
        "milestones": list(profile.milestones),
        "batch_size": profile.batch_size,
        "lr": profile.lr,
        "weight_decay": profile.weight_decay,
        "train_subset": profile.train_subset,
        "test_subset": profile.test_subset,
        "data_source": profile.data_source,
        "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()),
        "device": "auto",
        "compile_mode": None,
        "checkpoint_every": None,
        # None: the device type's default (on for CUDA); True/False to resume a run on another device type at the
        # precision it started with (the trainer refuses a resume whose bf16 differs from its checkpoint's)
        "bf16": None,
        "threads": threads,
        # papermill runs the notebook with cwd = the run directory: a relative path keeps machine
        # paths out of the committed notebooks.
        "out_dir": ".",
        "force": bool(force),
        "resume": bool(resume),
    }
    if "epochs" in overrides and "milestones" not in overrides:
        params["milestones"] = list(scaled_milestones(int(overrides["epochs"])))
    for k, v in overrides.items():
        params[k] = list(v) if k == "milestones" else v
    return params


def _notebook_config(profile: Profile, params: Mapping[str, Any]) -> Any:
    """The TrainConfig the notebook will build (what the notebook's setup cell does); ValueError if invalid."""
    kw = {k: params[k] for k in _CONFIG_KEYS if params.get(k) is not None}
    if "milestones" in kw:
        kw["milestones"] = tuple(kw["milestones"])
    if params.get("compile_mode"):
        kw.update(compile=True, compile_mode=params["compile_mode"])
    return profile.train_config(params["model"], params["seed"], **kw)


def _planned_config(profile: Profile, params: Mapping[str, Any]) -> Any:
    """The TrainConfig the notebook will build, or None if invalid."""
    try:
        return _notebook_config(profile, params)
    except (ValueError, TypeError):
        return None


def _skip_reason(run: _Run, profile: Profile) -> Tuple[Optional[RunOutcome], bool]:
    """(outcome if the run is not to be executed, whether it has a record or a checkpoint to go on from)."""
    from .trainer import RESULT_KEYS

    rec_exists = run.record.exists()
    if rec_exists:
        try:
            record = read_record(run.record)
        except ValueError as exc:
            return RunOutcome(run.model, run.seed, "failed", run.record, _existing(run.notebook),
                              error=f"unreadable record: {exc}"), False
        if record["status"] == "complete":
            params = run.params()
            planned = _planned_config(profile, params)
            if planned is not None:
                want = planned.to_dict()
                diff = [k for k in RESULT_KEYS if record["config"].get(k) != want.get(k)]
                if diff:
                    return RunOutcome(
                        run.model, run.seed, "failed", run.record, _existing(run.notebook),
                        error=(f"{run.record} is a complete run with another configuration (differs in {diff}); "
                               "use --force to replace it or another --out-root"),
                    ), False
            if (record.get("provenance") or {}).get("data_is_sample") and profile.resolve_data_source(
                    params.get("data_dir"), params.get("data_source")) != "sample":
                # trained on the embedded sample before a data set was configured: skipping it would keep a
                # sample result where real data is asked for, and replacing it silently would lose a result
                return RunOutcome(
                    run.model, run.seed, "failed", run.record, _existing(run.notebook),
                    error=(f"{run.record} is a complete run on the embedded CIFAR-10 sample, and real data is "
                           "configured now; use --force to train it again on the real data, or another --out-root"),
                ), False
            if _rendered(run.notebook):
                return RunOutcome(run.model, run.seed, "skipped", run.record, run.notebook,
                                  final_test_error=record.get("final_test_error")), False
            # trained, but its sweep died before the executed notebook was in place (or left one that ended in an
            # error, e.g. a kernel killed after the last epoch): render it again
            log.info("%s is complete but has no executed notebook that ran to its end; executing it to render the "
                     "record", run.name)
            return None, True
        if record["status"] == "running" and is_stranded(record, run.checkpoint):
            # stranded (se_res2net.training.progress): the trainer would refuse it; say so without touching the
            # record, which keeps its epochs and its state for the day the checkpoint comes back
            return RunOutcome(
                run.model, run.seed, "failed", run.record, _existing(run.notebook),
                error=stranded_message(run.record, run.checkpoint, len(record["epochs"])),
            ), False
    return None, rec_exists or run.checkpoint.exists()


def _existing(p: Path) -> Optional[Path]:
    return p if p.exists() else None


def _rendered(notebook: Path) -> bool:
    """Whether ``notebook`` is an executed notebook that papermill ran to its end (no ``metadata.papermill.
    exception``): a readable one, since the book renders it as the run's page."""
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return False
    return not (meta.get("papermill") or {}).get("exception")


def _epochs_done(path: Path) -> Tuple[int, int]:
    """(epochs in the record, training images per epoch) — (0, 0) without a readable record."""
    try:
        rec = read_record(path)
    except (FileNotFoundError, ValueError):
        return 0, 0
    return len(rec["epochs"]), int(rec["provenance"].get("train_size") or 0)


# --------------------------------------------------------------------------------------------------
# Executing one run
# --------------------------------------------------------------------------------------------------


def _temp_notebook(final: Path) -> Path:
    return final.parent / f".{final.stem}.{os.getpid()}-{secrets.token_hex(4)}.ipynb.tmp"


def _remove_stale_temps(final: Path) -> None:
    for tmp in final.parent.glob(f".{final.stem}.*.ipynb.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            log.debug("removed stale temporary notebook %s", tmp)


def _error_text(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def _write_error_notebook(path: Path, run: _Run, error: str) -> None:
    """When papermill failed before writing anything: a one-cell notebook naming the error."""
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    params = json.dumps(run.params(), indent=1)
    nb = new_notebook(cells=[new_markdown_cell(
        f"# {run.name}: the notebook could not be executed\n\n```\n{error}\n```\n\nParameters:\n\n```json\n{params}\n```"
    )])
    atomic_write_text(path, nbformat.writes(nb))


def _mark_failed(run: _Run, profile_name: str, error: str, etype: str, started: float) -> None:
    """Make sure the run's record says ``failed``; a complete record is never touched, one the trainer
    marked failed during this attempt is kept as it is, and so is the record of a run that another process is
    training (its train lock held, after a few seconds' grace for a kernel on its way out): that trainer writes
    it, and a "failed" written between its writes could replace its complete record."""
    from .locks import LockBusy, RunLock, train_lock_path

    lock = RunLock(train_lock_path(run.out_dir, run.name), what=f"se-res2net sweep marking {run.name} failed")
    try:
        lock.acquire(timeout_s=5.0)
    except LockBusy as exc:
        log.warning("%s: its record is left as it is, another process is training it (%s)", run.name, exc)
        return
    try:
        _mark_failed_locked(run, profile_name, error, etype, started)
    finally:
        lock.release()


def _mark_failed_locked(run: _Run, profile_name: str, error: str, etype: str, started: float) -> None:
    rec = run.record
    record: Optional[Dict[str, Any]] = None
    if rec.exists():
        try:
            record = read_record(rec)
        except ValueError:
            record = None
        if record is not None:
            if record["status"] == "complete":
                return
            if record["status"] == "failed" and rec.stat().st_mtime >= started - 1e-3:
                return  # written by the trainer in this attempt
    message = error.split(": ", 1)[1] if ": " in error else error
    failure = {"type": etype, "message": message, "epoch": len(record["epochs"]) if record else 0,
               "source": "sweep", "notebook": run.notebook.name}
    if record is None:
        params = run.params()
        record = {
            "schema": SCHEMA,
            "status": "failed",
            "name": run.name,
            "model": run.model,
            "model_kwargs": {},
            "seed": run.seed,
            "profile": profile_name,
            "config": {k: params[k] for k in _CONFIG_KEYS},
            "params": None,
            "macs": None,
            "epochs": [],
            "final_test_error": None,
            "failure": failure,
            "checkpoint": None,
            "provenance": {
                "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "end_time": utc_now(),
                "wall_time_s": round(time.time() - started, 3),
                "executable": sys.executable,
                "data_source": None,
                "data_is_sample": None,
            },
        }
    else:
        record["status"] = "failed"
        record["final_test_error"] = None
        record["failure"] = failure
    try:
        write_record(rec, record)
    except Exception:  # never hide the run's error behind a failure to record it
        log.exception("could not write the failed record %s", rec)


def _retitle(path: Path, title: str) -> None:
    """Give an executed run notebook its own title (the book's table of contents lists every run)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:  # an unreadable notebook keeps its bytes: the error report matters more than a title
        log.debug("cannot retitle %s", path, exc_info=True)
        return
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            if lines and lines[0].startswith("# "):
                cell.source = "\n".join([f"# {title}", *lines[1:]])
            else:
                cell.source = f"# {title}\n\n{cell.source}"
            break
    nbformat.write(nb, str(path))


def _execute(run: _Run, resumed: bool, force: bool, profile_name: str) -> RunOutcome:
    """Execute the run's notebook. ``resumed``: whether the run had a record or a checkpoint when it was looked at
    (for the report); the trainer itself decides, under its lock, whether there is anything to resume."""
    import papermill as pm

    params = run.params()
    params["resume"] = not force
    params["force"] = bool(force)
    final = run.notebook
    _remove_stale_temps(final)
    tmp = _temp_notebook(final)
    started = time.time()
    t0 = time.perf_counter()
    epochs_before = 0 if force else _epochs_done(run.record)[0]
    error: Optional[str] = None
    etype = "NotebookError"
    # papermill warns on every save that the temporary name does not end in .ipynb
    warnings.filterwarnings("ignore", message=r".*does not end in one of.*", category=UserWarning)
    try:
        pm.execute_notebook(
            str(run.notebook_in),
            str(tmp),
            parameters=params,
            kernel_name=run.kernel_name,
            progress_bar=False,
            log_output=False,
            cwd=str(run.out_dir),
        )
    except Exception as exc:  # PapermillExecutionError (a cell raised), DeadKernelError, timeouts, ...
        error = _error_text(exc)
        etype = getattr(exc, "ename", None) or type(exc).__name__
    finally:
        if tmp.exists():
            _retitle(tmp, f"{run.model}, seed {run.seed} ({profile_name} profile)")
            os.replace(tmp, final)
    wall = time.perf_counter() - t0
    epochs_after, train_size = _epochs_done(run.record)
    images = max(0, epochs_after - epochs_before) * train_size
    device = os.environ.get("CUDA_VISIBLE_DEVICES")

    def outcome(status: str, **kw: Any) -> RunOutcome:
        return RunOutcome(run.model, run.seed, status, run.record, final, wall_time_s=wall, resumed=resumed,
                          images_trained=images, device=device, **kw)

    if error is not None:
        if not final.exists() or final.stat().st_mtime < started - 1e-3:
            _write_error_notebook(final, run, error)
        _mark_failed(run, profile_name, error, etype, started)
        return outcome("failed", error=error)
    try:
        record = read_record(run.record)
    except (FileNotFoundError, ValueError) as exc:
        error = f"the notebook ran but its record is missing or invalid: {exc}"
        _mark_failed(run, profile_name, error, "MissingRecord", started)
        return outcome("failed", error=error)
    if record["status"] != "complete":
        return outcome("failed", error=f"the notebook ran but the record's status is {record['status']!r}")
    return outcome("completed", final_test_error=record["final_test_error"])


LOCK_PROBE_GRACE_S = 2.0  # s a run's start waits for its sweep lock (RunLock.is_locked holds it for microseconds)


def run_one(run: _Run, force: bool = False) -> RunOutcome:
    """Execute one run in this process: take its sweep lock, decide (skip / resume / busy), execute.

    This is what a local worker process and a submitit job call. It never raises for a run's own failure
    (that is a ``failed`` outcome with the notebook and record kept); it does for bugs in the sweep.
    """
    lock = RunLock(sweep_lock_path(run.out_dir, run.name), what=f"se-res2net sweep {run.name}")
    try:
        # a few seconds: `progress` and `settle` probe the lock by taking it for an instant, and a probe that
        # meets this start must not make the run "busy" for the whole sweep
        lock.acquire(timeout_s=LOCK_PROBE_GRACE_S)
    except LockBusy as exc:
        return RunOutcome(run.model, run.seed, "busy", run.record, _existing(run.notebook),
                          error=f"another process is executing it ({exc})")
    try:
        prof = run.get_profile()
        resumed = False
        if not force:
            skipped, resumed = _skip_reason(run, prof)
            if skipped is not None:
                return skipped
        os.environ["JUPYTER_PATH"] = jupyter_path()  # the kernel inherits this process's environment
        return _execute(run, resumed, force, prof.name)
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------------


def sweep(
    profile: Union[str, Profile],
    models: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    jobs: int = 1,
    out_root: PathLike = DEFAULT_OUT_ROOT,
    force: bool = False,
    data_dir: Optional[PathLike] = None,
    notebook: PathLike = DEFAULT_NOTEBOOK,
    progress: bool = True,
    *,
    overrides: Optional[Mapping[str, Any]] = None,
    threads: Optional[int] = None,
    kernel_name: str = KERNEL_NAME,
    check_data: bool = True,
    executor: str = "local",
    cluster: Optional[ClusterOptions] = None,
    gpus: Optional[Sequence[str]] = None,
) -> SweepReport:
    """Execute the training notebook for every (model, seed) and return a :class:`SweepReport`.

    ``models`` default to the report's and the ablation's models, ``seeds`` to ``(0, 1, 2)``. Runs go to
    ``<out_root>/<profile>/``. ``overrides`` replace profile values for every run (keys in ``OVERRIDABLE``).
    ``executor``: ``local`` (worker processes; ``jobs`` per GPU over ``gpus``, default every visible GPU) or
    ``submitit`` (``cluster`` options; ``jobs`` caps concurrent Slurm array tasks).
    ``threads``: torch threads per local run (default ``cores // concurrent runs``). ``check_data``: load the
    data set once before starting (verifies it, fills the cache, fails early instead of once per run).
    Model names are not checked here: an unknown one is a failed run (the CLI checks them first).
    """
    from tqdm.auto import tqdm

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    models = list(ALL_MODELS if models is None else models)
    seeds = [int(s) for s in (DEFAULT_SEEDS if seeds is None else seeds)]
    if not models or not seeds:
        raise ValueError("nothing to run: give at least one model and one seed")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be integers >= 0, got {seeds}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    overrides = dict(overrides or {})
    _check_overrides(prof, notebook_parameters(prof, _ANY_MODEL, 0, out_root, overrides=overrides))
    on_cpu = str(overrides.get("device") or "auto") == "cpu"
    slots = device_slots(jobs, [] if on_cpu else list(visible_gpus() if gpus is None else gpus))
    nb_in = resolve_notebook(notebook)
    out_dir = ensure_writable_dir(Path(out_root) / prof.name).resolve()
    ensure_writable_dir(out_dir / "checkpoints")
    threads = threads or max(1, available_cores() // len(slots))
    report = SweepReport(profile=prof.name, out_dir=out_dir, jobs=jobs, executor=executor,
                         slots=list(slots) if executor == "local" else [])
    t_start = time.perf_counter()

    plan: List[_Run] = []
    for model, seed in run_order(models, seeds):
        params = notebook_parameters(prof, model, seed, out_dir, data_dir=data_dir, overrides=overrides,
                                     threads=threads if executor == "local" else None)
        run = _Run(model, seed, out_dir, nb_in, tuple(params.items()), kernel_name,
                   None if prof.name in PROFILES and PROFILES[prof.name] == prof else prof)
        if not force:
            skipped, _ = _skip_reason(run, prof)  # a cheap look; the worker decides again under the lock
            if skipped is not None and skipped.status == "skipped":
                log.info("skipping %s: already complete", run.name)
                report.add(skipped)
                continue
        plan.append(run)
    plan = resumable_first(plan)

    if plan:
        check_kernel(kernel_name)
        if check_data:
            _check_data(prof, plan[0].params())
        _write_plan(out_dir, prof, models, seeds, jobs, slots, executor, overrides)
        where = (f"{len(slots)} slot(s) x {threads} thread(s)"
                 + (f" on GPU(s) {', '.join(sorted(set(s for s in slots if s)))}" if any(slots) else "")
                 if executor == "local" else f"submitit/{(cluster or ClusterOptions()).cluster}")
        log.info("sweep %s: %d run(s) to execute, %d skipped, %s -> %s", prof.name, len(plan), len(report.skipped),
                 where, out_dir)
        bar = tqdm(total=len(plan), disable=not progress, desc=f"sweep {prof.name}", unit="run", dynamic_ncols=True)

        def on_done(outcome: RunOutcome) -> None:
            report.add(outcome)
            if outcome.status == "failed":
                log.warning("%s failed: %s", outcome.name, outcome.error)
            elif outcome.status == "busy":
                log.warning("%s is busy: %s", outcome.name, outcome.error)
            bar.update(1)
            bar.set_postfix(done=len(report.completed), failed=len(report.failed))

        try:
            if executor == "local":
                execute_local(plan, force, slots, threads, on_done)
            else:
                opts = cluster or ClusterOptions()
                if opts.max_parallel is None and jobs > 1:
                    opts = dataclasses.replace(opts, max_parallel=jobs)
                execute_submitit(plan, force, opts, out_dir, on_done)
        finally:
            bar.close()
    report.wall_time_s = time.perf_counter() - t_start
    for status in STATUSES:
        getattr(report, status).sort(key=lambda o: (models.index(o.model) if o.model in models else 0, o.seed))
    log.info("%s", report.summary())
    return report


def _write_plan(out_dir: Path, prof: Profile, models: Sequence[str], seeds: Sequence[int], jobs: int,
                slots: Sequence[Optional[str]], executor: str, overrides: Mapping[str, Any]) -> None:
    """What this sweep runs, for ``se-res2net progress`` (a hidden file beside the records)."""
    atomic_write_json(out_dir / PLAN_FILE, {
        "profile": prof.name, "models": list(models), "seeds": list(seeds), "jobs": jobs,
        "slots": list(slots), "executor": executor, "overrides": dict(overrides), "epochs": int(
            overrides.get("epochs") or prof.epochs), "started": utc_now(), "pid": os.getpid(),
    })


# Overrides are the same for every run and none of them is the model, so any registered model checks them.
_ANY_MODEL = "res2net29"


def _check_overrides(prof: Profile, params: Mapping[str, Any]) -> None:
    """One clear error before anything runs for an override every run's trainer would refuse (``--set lr=-1``,
    ``--set bf16=yes``), instead of one failed run per (model, seed)."""
    try:
        _notebook_config(prof, params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid override for the sweep's runs: {exc}") from None


def _check_data(prof: Profile, params: Mapping[str, Any]) -> None:
    """Load the sweep's data set once (clear error, warm cache) unless it is the embedded sample."""
    from .data import load_cifar10

    source = prof.resolve_data_source(params.get("data_dir"), params.get("data_source"))
    if source == "sample":
        log.info("sweep %s uses the embedded CIFAR-10 SAMPLE (no dataset configured)", prof.name)
        return
    data = load_cifar10(source, params.get("data_dir"), progress=False)
    log.info("sweep %s data: %s (%d train / %d test images)", prof.name, data.source, len(data.train), len(data.test))


def run_order(models: Sequence[str], seeds: Sequence[int]) -> List[Tuple[str, int]]:
    """The (model, seed) pairs of a sweep in the order they start: seed by seed, every model of a seed before the
    next seed, each pair once.

    A GPU block ends after minutes and a sweep is stopped there: seed-major order finishes matched comparisons
    (res2net29 and se_res2net29 of one seed) before it starts the next seed, where model-major order (all seeds
    of res2net29 first) could end a block with three runs of one model and none of the other. Seen in the first
    GPU block (stop 27), which started the six runs of the headline pair at once."""
    order: List[Tuple[str, int]] = []
    for seed in seeds:
        for model in models:
            if (model, seed) not in order:
                order.append((model, seed))
    return order


def resumable_first(plan: Sequence["_Run"]) -> List["_Run"]:
    """The runs that have a checkpoint to resume from, then the others, each group in its :func:`run_order`.

    A run half trained in an earlier GPU block gives a result in the least GPU time, and once complete its
    checkpoint leaves the repository (each travels to the next block and back). So a sweep that also names new
    runs, to keep the GPU busy to the end of a block, finishes the old ones first."""
    has = [r for r in plan if r.checkpoint.exists()]
    return has + [r for r in plan if r not in has]


def run_sweep(profile: Any, *args: Any, **kwargs: Any) -> Union[SweepReport, int]:
    """Library form: ``run_sweep(profile, models=None, seeds=None, jobs=1, out_root="book/runs", force=False,
    data_dir=None, notebook="notebooks/train.ipynb", progress=True) -> SweepReport`` (see :func:`sweep`).

    CLI form: ``run_sweep(args)`` with the ``argparse.Namespace`` of ``se-res2net sweep``; prints the summary and
    returns the exit code (0, or 1 when a run failed).
    """
    if isinstance(profile, argparse.Namespace):
        return _run_sweep_cli(profile)
    return sweep(profile, *args, **kwargs)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parse_set(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if key not in OVERRIDABLE:
        raise argparse.ArgumentTypeError(f"--set {key}: not overridable; choose from {', '.join(OVERRIDABLE)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    from .trainer import COMPILE_MODES, DATA_SOURCES

    p.add_argument("--profile", required=True, choices=list(PROFILES), help="smoke (CPU minutes), budget (GPU "
                   "< 1 h for the table), full (the report's 300 epochs)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="models to run (default: the 5 report models and the 5 ablation variants)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED", help="seeds (default: 0 1 2)")
    p.add_argument("--jobs", type=int, default=1,
                   help="concurrent runs per GPU (local; over every visible GPU), or in all on CPU; with "
                        "--executor submitit: at most this many jobs at once (default 1)")
    p.add_argument("--gpus", default=None, metavar="LIST",
                   help="local executor: the GPUs to use, e.g. 0,1 (default: every visible GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per local run (default: cores // runs)")
    p.add_argument("--out-root", "--runs-root", dest="out_root", default=DEFAULT_OUT_ROOT, help="runs go to OUT_ROOT/<profile>/ (default book/runs)")
    p.add_argument("--force", action="store_true", help="re-run runs that are already complete")
    p.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="CIFAR-10 source of every run, as in 'se-res2net train --data' (default: the profile's, "
                        "auto; smoke falls back to the embedded sample); the same as --set data_source=...")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (default: $SE_RES2NET_DATA_DIR)")
    p.add_argument("--device", default=None, help="override the device of every run (auto, cpu, cuda)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast in every run (default: the device's, on for CUDA); to resume runs on "
                        "another device type, as they started; the same as --set bf16=true|false")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile every run (MODE: " + ", ".join(COMPILE_MODES) + ")")
    p.add_argument("--set", action="append", type=_parse_set, default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a profile value for every run (JSON value), repeatable: "
                        + ", ".join(OVERRIDABLE))
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local worker processes (default) or submitit jobs")
    p.add_argument("--cluster", choices=CLUSTERS, default="slurm",
                   help="submitit: slurm (default), local (subprocesses, for testing) or debug (in process)")
    p.add_argument("--partition", default=None, help="submitit/slurm: the Slurm partition")
    p.add_argument("--gpus-per-job", type=int, default=1, help="submitit: GPUs per job (default 1)")
    p.add_argument("--cpus-per-job", type=int, default=None, help="submitit: CPUs per job")
    p.add_argument("--time", type=int, default=24 * 60, metavar="MINUTES",
                   help="submitit: time limit per job in minutes (default 1440; a run that hits it resumes "
                        "from its checkpoint when the sweep is started again)")
    p.add_argument("--notebook", default=DEFAULT_NOTEBOOK, help="the papermill notebook (default notebooks/train.ipynb)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_sweep_cli(args: argparse.Namespace) -> int:
    from ..models.registry import get_factory

    for m in args.models or ():
        get_factory(m)  # ValueError listing the registered names
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)  # its per-notebook INFO lines
    overrides = dict(args.overrides or [])
    if args.data:
        if overrides.get("data_source", args.data) != args.data:
            raise ValueError(f"--data {args.data} and --set data_source={overrides['data_source']} disagree; give one")
        overrides["data_source"] = args.data
    if args.device:
        overrides["device"] = args.device
    if args.bf16 is not None:
        if overrides.get("bf16", args.bf16) != args.bf16:
            raise ValueError(f"--{'' if args.bf16 else 'no-'}bf16 and --set bf16={json.dumps(overrides['bf16'])} "
                             "disagree; give one")
        overrides["bf16"] = args.bf16
    if args.compile:
        overrides["compile_mode"] = args.compile
    cluster = None
    if args.executor == "submitit":
        cluster = ClusterOptions(cluster=args.cluster, partition=args.partition, gpus_per_job=args.gpus_per_job,
                                 cpus_per_job=args.cpus_per_job, time_min=args.time)
    gpus = None if args.gpus is None else [g.strip() for g in args.gpus.split(",") if g.strip()]
    report = sweep(args.profile, models=args.models, seeds=args.seeds, jobs=args.jobs, out_root=args.out_root,
                   force=args.force, data_dir=args.data_dir, notebook=args.notebook, progress=not args.no_progress,
                   overrides=overrides, threads=args.threads, executor=args.executor, cluster=cluster, gpus=gpus)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1
