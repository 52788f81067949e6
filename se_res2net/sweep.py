"""The sweep: run ``notebooks/train.ipynb`` through papermill once per (model, seed) of a profile.

For profile ``P`` and run ``<model>_seed<k>`` it writes, under ``<out_root>/P/``:

* ``<model>_seed<k>.ipynb`` — the executed notebook (curves, summary table; the traceback when it failed),
* ``<model>_seed<k>.json`` — the run record, written by :func:`se_res2net.trainer.train`
  (or, when the trainer never got that far, a minimal ``failed`` record written here),
* ``checkpoints/<model>_seed<k>.pt`` — the trainer's checkpoint (git ignores ``*.pt``).

Rules
-----
* A run whose record is ``complete`` (with the planned configuration) is **skipped**: its notebook is not
  executed again and no file is touched. ``force=True`` re-runs it from scratch.
* A run with a checkpoint or an unfinished record is **resumed** (``resume=True`` in the notebook).
* papermill writes its output notebook cell by cell, so it executes into a hidden temporary file
  ``.<model>_seed<k>.<random>.ipynb.tmp`` beside the final one and renames it into place at the end — also when
  the run failed, so the executed notebook shows the error. No half-written notebook is ever left under the
  final name; stale temporary files of killed sweeps are removed before a run is executed again.
* A failed run does not stop the sweep; failures are listed at the end (:class:`SweepReport`) and the CLI exits
  with status 1.
* ``jobs > 1`` runs several notebooks at once (a thread pool, each thread driving one papermill kernel).
  Each kernel gets ``OMP_NUM_THREADS = cores // jobs`` torch threads so CPU runs do not oversubscribe; on a GPU
  the jobs share it.

The notebook runs in the ``python3`` Jupyter kernel of *this* interpreter: the sweep puts
``sys.prefix/share/jupyter`` first on ``JUPYTER_PATH`` and checks the kernelspec before starting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .atomic import PathLike, atomic_write_text, ensure_writable_dir
from .profiles import ALL_MODELS, DEFAULT_SEEDS, PROFILES, Profile, get_profile, scaled_milestones
from .records import SCHEMA, checkpoint_path, read_record, record_path, run_name, utc_now, write_record

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = "notebooks/train.ipynb"
DEFAULT_OUT_ROOT = "book/runs"
KERNEL_NAME = "python3"
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
)
_ENV_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What happened to one (model, seed): ``status`` is ``completed``, ``skipped`` or ``failed``."""

    model: str
    seed: int
    status: str
    record: Path
    notebook: Optional[Path]
    error: Optional[str] = None
    final_test_error: Optional[float] = None
    wall_time_s: float = 0.0
    resumed: bool = False

    @property
    def name(self) -> str:
        return run_name(self.model, self.seed)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "seed": self.seed,
            "status": self.status,
            "record": str(self.record),
            "notebook": None if self.notebook is None else str(self.notebook),
            "error": self.error,
            "final_test_error": self.final_test_error,
            "wall_time_s": round(self.wall_time_s, 2),
            "resumed": self.resumed,
        }


@dataclass
class SweepReport:
    """The runs of one sweep, by outcome."""

    profile: str
    out_dir: Path
    jobs: int = 1
    completed: List[RunOutcome] = field(default_factory=list)
    skipped: List[RunOutcome] = field(default_factory=list)
    failed: List[RunOutcome] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def runs(self) -> List[RunOutcome]:
        return self.completed + self.skipped + self.failed

    def add(self, outcome: RunOutcome) -> None:
        {"completed": self.completed, "skipped": self.skipped, "failed": self.failed}[outcome.status].append(outcome)

    def summary(self) -> str:
        """A few human-readable lines: counts, wall time, and one line per failure."""
        lines = [
            f"sweep {self.profile} -> {self.out_dir}: {len(self.completed)} completed, {len(self.skipped)} skipped "
            f"(already complete), {len(self.failed)} failed in {self.wall_time_s:.1f} s with {self.jobs} job(s)"
        ]
        for o in sorted(self.failed, key=lambda o: o.name):
            where = f" (see {o.notebook})" if o.notebook else ""
            lines.append(f"  FAILED {o.name}: {o.error}{where}")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "profile": self.profile,
            "out_dir": str(self.out_dir),
            "jobs": self.jobs,
            "wall_time_s": round(self.wall_time_s, 2),
            "completed": [o.to_dict() for o in self.completed],
            "skipped": [o.to_dict() for o in self.skipped],
            "failed": [o.to_dict() for o in self.failed],
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


def check_kernel(kernel_name: str = KERNEL_NAME) -> str:
    """Check that the Jupyter kernel ``kernel_name`` runs this interpreter; return its argv[0].

    Call it with ``sys.prefix/share/jupyter`` first on ``JUPYTER_PATH`` (as :func:`sweep` does).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = f"install it with: {sys.executable} -m ipykernel install --prefix {sys.prefix} --name {kernel_name}"
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise ValueError(f"no Jupyter kernel named {kernel_name!r}; {fix}") from None
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


@contextlib.contextmanager
def _environment(threads: int) -> Iterator[None]:
    """Kernels inherit the environment: this venv's kernelspecs first, OMP threads per job."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        try:
            jp = [str(_jupyter_data_dir())] + [p for p in (saved["JUPYTER_PATH"] or "").split(os.pathsep) if p]
            os.environ["JUPYTER_PATH"] = os.pathsep.join(jp)
            os.environ["OMP_NUM_THREADS"] = str(threads)
            os.environ["MKL_NUM_THREADS"] = str(threads)
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


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
    model: str
    seed: int
    out_dir: Path
    notebook_in: Path
    parameters: Tuple[Tuple[str, Any], ...]
    kernel_name: str

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

    def params(self) -> Dict[str, Any]:
        return dict(self.parameters)


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


def _planned_config(profile: Profile, params: Mapping[str, Any]) -> Any:
    """The TrainConfig the notebook will build (what the notebook's setup cell does), or None if invalid."""
    keys = ("epochs", "milestones", "batch_size", "lr", "weight_decay", "train_subset", "test_subset",
            "data_source", "data_dir", "device")
    kw = {k: params[k] for k in keys if params.get(k) is not None}
    if "milestones" in kw:
        kw["milestones"] = tuple(kw["milestones"])
    try:
        return profile.train_config(params["model"], params["seed"], **kw)
    except (ValueError, TypeError):
        return None


def _skip_reason(run: _Run, profile: Profile) -> Tuple[Optional[RunOutcome], bool]:
    """(outcome if the run is not to be executed, resume flag)."""
    from .trainer import RESULT_KEYS

    rec_exists = run.record.exists()
    if rec_exists:
        try:
            record = read_record(run.record)
        except ValueError as exc:
            return RunOutcome(run.model, run.seed, "failed", run.record, _existing(run.notebook),
                              error=f"unreadable record: {exc}"), False
        if record["status"] == "complete":
            planned = _planned_config(profile, run.params())
            if planned is not None:
                want = planned.to_dict()
                diff = [k for k in RESULT_KEYS if record["config"].get(k) != want.get(k)]
                if diff:
                    return RunOutcome(
                        run.model, run.seed, "failed", run.record, _existing(run.notebook),
                        error=(f"{run.record} is a complete run with another configuration (differs in {diff}); "
                               "use --force to replace it or another --out-root"),
                    ), False
            return RunOutcome(run.model, run.seed, "skipped", run.record, _existing(run.notebook),
                              final_test_error=record.get("final_test_error")), False
    return None, rec_exists or run.checkpoint.exists()


def _existing(p: Path) -> Optional[Path]:
    return p if p.exists() else None


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
    marked failed during this attempt is kept as it is."""
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
            "config": {k: params[k] for k in ("epochs", "milestones", "batch_size", "lr", "weight_decay",
                                              "train_subset", "test_subset", "data_source", "data_dir", "device")},
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


def _execute(run: _Run, resume: bool, force: bool, profile_name: str) -> RunOutcome:
    import papermill as pm

    params = run.params()
    params["resume"] = bool(resume)
    params["force"] = bool(force)
    final = run.notebook
    _remove_stale_temps(final)
    tmp = _temp_notebook(final)
    started = time.time()
    t0 = time.perf_counter()
    error: Optional[str] = None
    etype = "NotebookError"
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
    if error is not None:
        if not final.exists() or final.stat().st_mtime < started - 1e-3:
            _write_error_notebook(final, run, error)
        _mark_failed(run, profile_name, error, etype, started)
        return RunOutcome(run.model, run.seed, "failed", run.record, final, error=error, wall_time_s=wall,
                          resumed=resume)
    try:
        record = read_record(run.record)
    except (FileNotFoundError, ValueError) as exc:
        error = f"the notebook ran but its record is missing or invalid: {exc}"
        _mark_failed(run, profile_name, error, "MissingRecord", started)
        return RunOutcome(run.model, run.seed, "failed", run.record, final, error=error, wall_time_s=wall,
                          resumed=resume)
    if record["status"] != "complete":
        error = f"the notebook ran but the record's status is {record['status']!r}"
        return RunOutcome(run.model, run.seed, "failed", run.record, final, error=error, wall_time_s=wall,
                          resumed=resume)
    return RunOutcome(run.model, run.seed, "completed", run.record, final,
                      final_test_error=record["final_test_error"], wall_time_s=wall, resumed=resume)


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
) -> SweepReport:
    """Execute the training notebook for every (model, seed) and return a :class:`SweepReport`.

    ``models`` default to the report's and the ablation's models, ``seeds`` to ``(0, 1, 2)``. Runs go to
    ``<out_root>/<profile>/``. ``overrides`` replace profile values for every run (keys in ``OVERRIDABLE``).
    ``threads``: torch threads per kernel (default ``cores // jobs``). ``check_data``: load the data set once
    before starting (verifies it, fills the cache, and fails early instead of once per run).
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
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}; pass --jobs 1 or more")
    nb_in = resolve_notebook(notebook)
    out_dir = ensure_writable_dir(Path(out_root) / prof.name).resolve()
    ensure_writable_dir(out_dir / "checkpoints")
    threads = threads or max(1, available_cores() // jobs)
    report = SweepReport(profile=prof.name, out_dir=out_dir, jobs=jobs)
    t_start = time.perf_counter()

    plan: List[Tuple[_Run, bool]] = []
    seen = set()
    for model in models:
        for seed in seeds:
            if (model, seed) in seen:
                continue
            seen.add((model, seed))
            params = notebook_parameters(prof, model, seed, out_dir, data_dir=data_dir, overrides=overrides,
                                         threads=threads)
            run = _Run(model, seed, out_dir, nb_in, tuple(params.items()), kernel_name)
            if force:
                plan.append((run, False))
                continue
            outcome, resume = _skip_reason(run, prof)
            if outcome is not None:
                if outcome.status == "skipped":
                    log.info("skipping %s: already complete", run.name)
                report.add(outcome)
            else:
                plan.append((run, resume))

    if plan:
        with _environment(threads):
            check_kernel(kernel_name)
            if check_data:
                _check_data(prof, plan[0][0].params())
            # papermill warns on every save that the temporary name does not end in .ipynb
            warnings.filterwarnings("ignore", message=r".*does not end in one of.*", category=UserWarning)
            log.info("sweep %s: %d run(s) to execute, %d skipped, %d job(s) x %d thread(s) -> %s",
                     prof.name, len(plan), len(report.skipped), jobs, threads, out_dir)
            bar = tqdm(total=len(plan), disable=not progress, desc=f"sweep {prof.name}", unit="run", dynamic_ncols=True)
            try:
                with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sweep") as pool:
                    futures = {pool.submit(_execute, run, resume, force, prof.name): run for run, resume in plan}
                    try:
                        for fut in as_completed(futures):
                            run = futures[fut]
                            try:
                                outcome = fut.result()
                            except Exception as exc:  # a bug in the sweep itself: report it, go on
                                log.exception("run %s crashed the sweep worker", run.name)
                                outcome = RunOutcome(run.model, run.seed, "failed", run.record,
                                                     _existing(run.notebook), error=_error_text(exc))
                            report.add(outcome)
                            if outcome.status == "failed":
                                log.warning("%s failed: %s", run.name, outcome.error)
                            bar.update(1)
                            bar.set_postfix(done=len(report.completed), failed=len(report.failed))
                    except KeyboardInterrupt:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
            finally:
                bar.close()
    report.wall_time_s = time.perf_counter() - t_start
    for lst in (report.completed, report.skipped, report.failed):
        lst.sort(key=lambda o: (models.index(o.model) if o.model in models else 0, o.seed))
    log.info("%s", report.summary())
    return report


def _check_data(prof: Profile, params: Mapping[str, Any]) -> None:
    """Load the sweep's data set once (clear error, warm cache) unless it is the embedded sample."""
    from .data import load_cifar10

    source = prof.resolve_data_source(params.get("data_dir"), params.get("data_source"))
    if source == "sample":
        log.info("sweep %s uses the embedded CIFAR-10 SAMPLE (no dataset configured)", prof.name)
        return
    data = load_cifar10(source, params.get("data_dir"), progress=False)
    log.info("sweep %s data: %s (%d train / %d test images)", prof.name, data.source, len(data.train), len(data.test))


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


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, choices=list(PROFILES), help="smoke (CPU minutes), budget (GPU "
                   "< 1 h for the table), full (the report's 300 epochs)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="models to run (default: the 5 report models and the 5 ablation variants)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED", help="seeds (default: 0 1 2)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks executed at once (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per job (default: cores // jobs)")
    p.add_argument("--out-root", default=DEFAULT_OUT_ROOT, help="runs go to OUT_ROOT/<profile>/ (default book/runs)")
    p.add_argument("--force", action="store_true", help="re-run runs that are already complete")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (default: $SE_RES2NET_DATA_DIR)")
    p.add_argument("--device", default=None, help="override the device of every run (auto, cpu, cuda, cuda:N)")
    p.add_argument("--notebook", default=DEFAULT_NOTEBOOK, help="the papermill notebook (default notebooks/train.ipynb)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_sweep_cli(args: argparse.Namespace) -> int:
    from .registry import get_factory

    for m in args.models or ():
        get_factory(m)  # ValueError listing the registered names
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)  # its per-notebook INFO lines
    overrides = {"device": args.device} if args.device else None
    report = sweep(
        args.profile,
        models=args.models,
        seeds=args.seeds,
        jobs=args.jobs,
        out_root=args.out_root,
        force=args.force,
        data_dir=args.data_dir,
        notebook=args.notebook,
        progress=not args.no_progress,
        overrides=overrides,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1
