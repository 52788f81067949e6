"""SIGKILL a real ``se-res2net sweep`` twice, start it again, and get every run complete exactly once.

Three runs, two at a time, several epochs each with a checkpoint after every epoch. The sweep process is
killed (SIGKILL, no clean-up of any kind) first as soon as a checkpoint exists, then again right after the
first run completes. The third sweep finishes. Every run must then be complete, with epochs 1..N exactly
once, numbers bit-identical to an uninterrupted sweep, its executed notebook in place; a run that was
complete before a kill is not touched again; no worker, lock or temporary file is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from se_res2net.training.records import read_record

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["res2net29", "resnet56", "se_res2net29"]
EPOCHS = 3
NUMBERS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_error")


def _command(out_root: Path) -> list:
    sets = {"epochs": EPOCHS, "train_subset": 128, "test_subset": 50, "batch_size": 32, "data_source": "sample",
            "checkpoint_every": 1}
    cmd = [sys.executable, "-m", "se_res2net", "sweep", "--profile", "smoke", "--models", *MODELS, "--seeds", "0",
           "--jobs", "2", "--threads", "1", "--device", "cpu", "--out-root", str(out_root), "--no-progress"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def _start(out_root: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    # start_new_session: killing the sweep must not take the test's process group with it
    return subprocess.Popen(_command(out_root), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _records(out: Path) -> dict:
    found = {}
    for m in MODELS:
        try:
            found[m] = read_record(out / f"{m}_seed0.json")
        except (FileNotFoundError, ValueError):
            pass
    return found


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.05)


def _sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)  # the sweep process only, not its workers: they must die on their own
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _workers_alive(sweep: subprocess.Popen) -> list:
    # this sweep's workers only: they share its session (started with start_new_session), other sweeps' do not
    out = subprocess.run(["pgrep", "-s", str(sweep.pid), "-f", "se_res2net.training._worker"], capture_output=True,
                         text=True)
    return [int(p) for p in out.stdout.split()]


def _numbers(rec):
    return [{k: e[k] for k in NUMBERS} for e in rec["epochs"]]


@pytest.mark.slow
def test_sigkilled_sweep_started_again_completes_every_run_exactly_once(tmp_path):
    ref_root, cut_root = tmp_path / "reference", tmp_path / "killed"
    reference = _start(ref_root)
    out, _ = reference.communicate(timeout=900)
    assert reference.returncode == 0, out
    ref = _records(ref_root / "smoke")

    cut = cut_root / "smoke"
    # 1. kill as soon as some run has written a checkpoint (mid-run, others queued or starting)
    proc = _start(cut_root)
    _wait_for(lambda: any((cut / "checkpoints").glob("*.pt")), proc)
    _sigkill(proc)
    time.sleep(0.5)
    assert not _workers_alive(proc), "a worker outlived the killed sweep"

    # 2. start again, kill right after a run completes
    proc = _start(cut_root)
    _wait_for(lambda: any(r["status"] == "complete" for r in _records(cut).values()), proc)
    _sigkill(proc)
    complete_before = {m: (cut / f"{m}_seed0.json").stat().st_mtime_ns
                       for m, r in _records(cut).items() if r["status"] == "complete"}
    assert complete_before

    # 3. start again and let it finish
    proc = _start(cut_root)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out

    final = _records(cut)
    assert sorted(final) == sorted(MODELS)
    for m in MODELS:
        rec = final[m]
        assert rec["status"] == "complete", (m, rec["status"])
        assert [e["epoch"] for e in rec["epochs"]] == list(range(1, EPOCHS + 1))  # each epoch exactly once
        assert _numbers(rec) == _numbers(ref[m])  # bit-identical to the uninterrupted sweep
        assert rec["final_test_error"] == ref[m]["final_test_error"]
        assert (cut / f"{m}_seed0.ipynb").exists()
    assert any(rec.get("resumes") for rec in final.values())  # something really was resumed
    for m, mtime in complete_before.items():  # completed runs were not trained (or written) again
        if (cut / f"{m}_seed0.ipynb").exists():
            assert (cut / f"{m}_seed0.json").stat().st_mtime_ns == mtime
    assert not _workers_alive(proc)
    assert not [p.name for p in cut.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]
