"""Where a sweep's runs execute: worker processes spread over the GPUs of this machine, or submitit jobs.

``execute_local``
    Each run in its own worker process (``python -m se_res2net.training._worker``), one per slot of
    :func:`device_slots`: ``jobs`` slots per visible GPU, each worker started with its own
    ``CUDA_VISIBLE_DEVICES`` and ``OMP_NUM_THREADS``; its output is appended to ``logs/<run>.log``. A worker
    asks to die with the sweep (``PR_SET_PDEATHSIG``), and its notebook kernel exits once its parent is gone.
``execute_submitit``
    One `submitit <https://github.com/facebookincubator/submitit>`_ job per run (a Slurm job array, at most
    ``max_parallel`` at once), or the same jobs as local subprocesses (``cluster="local"``) or in this process
    (``"debug"``). Logs and pickled results in ``<out>/submitit/``.

Both call :func:`se_res2net.training.sweep.run_one` for each run, which takes the run's lock and decides what to do,
and report each :class:`~se_res2net.training.sweep.RunOutcome` through ``on_done`` as it arrives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from .atomic import ensure_writable_dir
from .locks import LockBusy, RunLock, sweep_lock_path
from .records import utc_now

if TYPE_CHECKING:  # pragma: no cover
    from .sweep import RunOutcome, _Run

log = logging.getLogger(__name__)

CLUSTERS = ("slurm", "local", "debug")


def visible_gpus() -> List[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs).

    ``CUDA_VISIBLE_DEVICES`` when it is set (its entries, in order), else ``0..n-1`` for the
    ``torch.cuda.device_count()`` devices torch sees (none without CUDA).
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:  # pragma: no cover
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def device_slots(jobs: int, gpus: Sequence[str]) -> List[Optional[str]]:
    """One entry per concurrent run: the ``CUDA_VISIBLE_DEVICES`` value its worker gets (``None``: leave the
    environment alone, i.e. CPU or whatever the run's device says).

    ``jobs`` runs per GPU, interleaved so the first runs land on different GPUs; ``jobs`` slots without GPUs.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}; pass --jobs 1 or more")
    if not gpus:
        return [None] * jobs
    return [g for _ in range(jobs) for g in gpus]


def _worker_env(threads: int, slot: Optional[str], per_device: int) -> Dict[str, str]:
    from .records import JOBS_PER_DEVICE_ENV
    from .sweep import REPO_ROOT, jupyter_path

    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "JUPYTER_PATH": jupyter_path(),
                "SE_RES2NET_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1",
                JOBS_PER_DEVICE_ENV: str(per_device)})  # recorded with the run: its wall time depends on it
    if slot is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot
    # the worker must import this very package, also when it is not installed (a plain checkout)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _spawn_worker(run: "_Run", force: bool, slot: Optional[str], threads: int, per_device: int = 1) -> "RunOutcome":
    """Run :func:`se_res2net.training.sweep.run_one` in a fresh worker process (its output appended to the run's log)."""
    from .sweep import RunOutcome

    ensure_writable_dir(run.log.parent)
    with tempfile.TemporaryDirectory(prefix="se_res2net_worker_") as tmp:
        spec, result = Path(tmp) / "run.pkl", Path(tmp) / "outcome.json"
        spec.write_bytes(pickle.dumps({"run": run, "force": force}))
        started = time.time()
        with open(run.log, "a", encoding="utf-8") as fh:
            fh.write(f"\n==== {utc_now()} worker for {run.name} (CUDA_VISIBLE_DEVICES={slot}, {threads} thread(s))\n")
            fh.flush()
            proc = subprocess.Popen([sys.executable, "-m", "se_res2net.training._worker", str(spec), str(result)],
                                    stdout=fh, stderr=subprocess.STDOUT, env=_worker_env(threads, slot, per_device),
                                    cwd=str(run.out_dir))
            rc = proc.wait()
        if result.exists():
            return RunOutcome.from_dict(json.loads(result.read_text(encoding="utf-8")))
    error = f"the worker process exited with status {rc} without a result; see {run.log}"
    return _died(run, error, "WorkerDied", started, device=slot)


def _died(run: "_Run", error: str, etype: str, started: float, device: Optional[str] = None) -> "RunOutcome":
    """The process executing ``run`` died without an outcome: mark its record failed (unless another live
    process holds the run by now) and report it."""
    from .sweep import RunOutcome, _existing, _mark_failed

    with contextlib.suppress(LockBusy), RunLock(sweep_lock_path(run.out_dir, run.name)):
        _mark_failed(run, run.get_profile().name, error, etype, started)
    return RunOutcome(run.model, run.seed, "failed", run.record, _existing(run.notebook), error=error, device=device)


def execute_local(plan: Sequence["_Run"], force: bool, slots: Sequence[Optional[str]], threads: int,
                  on_done: Callable[["RunOutcome"], None]) -> None:
    """Execute ``plan`` in worker processes, one per slot at a time (see :func:`device_slots`)."""
    from .sweep import RunOutcome, _error_text, _existing

    free: "queue.Queue[Optional[str]]" = queue.Queue()
    for s in slots:
        free.put(s)

    def work(run: "_Run") -> "RunOutcome":
        slot = free.get()
        try:
            return _spawn_worker(run, force, slot, threads, per_device=list(slots).count(slot))
        finally:
            free.put(slot)

    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="sweep") as pool:
        futures = {pool.submit(work, run): run for run in plan}
        try:
            for fut in as_completed(futures):
                run = futures[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # a bug in the sweep itself: report it, go on
                    log.exception("run %s crashed the sweep worker", run.name)
                    outcome = RunOutcome(run.model, run.seed, "failed", run.record, _existing(run.notebook),
                                         error=_error_text(exc))
                on_done(outcome)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


@dataclass(frozen=True)
class ClusterOptions:
    """Where submitit sends the jobs: ``cluster`` (slurm | local | debug) and the Slurm job's resources."""

    cluster: str = "slurm"
    partition: Optional[str] = None
    gpus_per_job: int = 1
    cpus_per_job: Optional[int] = None
    time_min: int = 24 * 60
    max_parallel: Optional[int] = None  # at most this many array tasks at once (Slurm)
    folder: Optional[Path] = None  # submitit's logs; default <out_dir>/submitit

    def __post_init__(self) -> None:
        if self.cluster not in CLUSTERS:
            raise ValueError(f"cluster must be one of {', '.join(CLUSTERS)}, got {self.cluster!r}")
        for name, lo in (("gpus_per_job", 0), ("time_min", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.cpus_per_job is not None and (not isinstance(self.cpus_per_job, int) or self.cpus_per_job < 1):
            raise ValueError(f"cpus_per_job must be an integer >= 1, got {self.cpus_per_job!r}")


def execute_submitit(plan: Sequence["_Run"], force: bool, opts: ClusterOptions, out_dir: Path,
                     on_done: Callable[["RunOutcome"], None], poll_s: float = 2.0) -> None:
    """Submit one submitit job per run of ``plan`` and report each outcome as its job ends."""
    from .sweep import RunOutcome, _error_text

    try:
        import submitit
    except ImportError:  # pragma: no cover (a dependency)
        raise ValueError("--executor submitit needs the submitit package: pip install submitit") from None

    folder = opts.folder or (out_dir / "submitit")
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=opts.cluster)
    params: Dict[str, Any] = {"name": f"se-res2net-{out_dir.name}", "timeout_min": opts.time_min,
                              "gpus_per_node": opts.gpus_per_job, "cpus_per_task": opts.cpus_per_job,
                              "tasks_per_node": 1, "nodes": 1}
    if opts.cluster == "slurm":
        params["slurm_partition"] = opts.partition
        params["slurm_array_parallelism"] = opts.max_parallel
    executor.update_parameters(**params)
    submitted = time.time()
    jobs = executor.map_array(_submitit_job, list(plan), [force] * len(plan))
    log.info("submitted %d job(s) to %s (%s); logs in %s", len(jobs), opts.cluster,
             ", ".join(str(j.job_id) for j in jobs[:5]) + (" ..." if len(jobs) > 5 else ""), folder)
    pending = dict(zip(jobs, plan))
    while pending:
        for job in [j for j in pending if j.done()]:
            run = pending.pop(job)
            try:
                outcome = RunOutcome.from_dict(job.result())
            except Exception as exc:  # the job itself died (time limit, node failure, ...): its error
                error = f"submitit job {job.job_id} failed: {_error_text(exc).splitlines()[0]}"
                outcome = _died(run, error, "JobFailed", submitted)
            on_done(outcome)
        if pending:
            time.sleep(poll_s)


def _submitit_job(run: "_Run", force: bool) -> Dict[str, Any]:
    """Entry point of a submitit job: torch threads from the job's CPUs, then :func:`se_res2net.training.sweep.run_one`."""
    from .sweep import run_one

    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = cpus
    return run_one(run, force).to_dict()
