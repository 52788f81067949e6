"""SIGKILL a real ``se-res2net train`` process, resume it, and get bit-identical epochs.

Three subprocesses on the embedded sample with a tiny Res2Net-29 (one thread each):
an uninterrupted run, and a run that is SIGKILLed right after its first checkpoint,
resumed, SIGKILLed again in the middle of an epoch, and resumed to the end. Its
final record must equal the uninterrupted one on every per-epoch number (exact
float equality), and no temporary file may be left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from se_res2net.training.checkpoint import load_checkpoint  # noqa: E402
from se_res2net.training.records import read_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 6
NUMBERS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_error")


def _command(out: Path, *extra: str) -> list:
    return [
        sys.executable, "-m", "se_res2net", "train",
        "--model", "res2net29",
        "--model-arg", "layers=[1,1,1]", "--model-arg", "planes=[4,8,16]", "--model-arg", "stem_width=8",
        "--data", "sample", "--subset", "300", "--test-subset", "100",
        "--epochs", str(EPOCHS), "--schedule", "3", "5", "--batch-size", "32",
        "--device", "cpu", "--checkpoint-every", "1", "--no-progress", "--out", str(out), *extra,
    ]


def _env() -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    return env


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        _command(out, *extra), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _epochs_done(record: Path) -> int:
    try:
        return len(read_record(record)["epochs"])
    except (FileNotFoundError, ValueError):
        return 0


def _numbers(rec):
    return [{k: e[k] for k in NUMBERS} for e in rec["epochs"]]


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    full_out, cut_out = tmp_path / "full", tmp_path / "cut"
    record = cut_out / "res2net29_seed0.json"
    ckpt = cut_out / "checkpoints" / "res2net29_seed0.pt"

    reference = _start(full_out)  # runs alongside the interrupted one

    # 1. kill right after the first checkpoint appears
    proc = _start(cut_out)
    _wait_for(ckpt.exists, proc)
    _kill(proc)
    first = load_checkpoint(ckpt)["epoch"]
    assert 1 <= first < EPOCHS
    assert read_record(record)["status"] == "running"  # valid JSON, never half a file

    # 2. resume, then kill in the middle of an epoch
    proc = _start(cut_out, "--resume")
    _wait_for(lambda: _epochs_done(record) > first, proc)
    epoch_time = read_record(record)["epochs"][-1]["epoch_time_s"]
    time.sleep(0.4 * epoch_time)
    _kill(proc)
    partial = read_record(record)
    assert partial["status"] == "running" and len(partial["epochs"]) < EPOCHS
    assert load_checkpoint(ckpt)["epoch"] <= len(partial["epochs"])

    # 3. resume to the end
    proc = _start(cut_out, "--resume")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    resumed = read_record(record)

    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out
    full = read_record(full_out / "res2net29_seed0.json")

    assert full["status"] == resumed["status"] == "complete"
    assert len(resumed["epochs"]) == EPOCHS
    assert _numbers(resumed) == _numbers(full)  # exact float equality
    assert resumed["final_test_error"] == full["final_test_error"]
    assert len(resumed["resumes"]) == 2 and resumed["resumes"][0]["epoch"] == first
    assert [e["lr"] for e in full["epochs"]] == pytest.approx([0.1] * 3 + [0.01] * 2 + [0.001])

    import torch

    a = load_checkpoint(full_out / full["checkpoint"])["state_dict"]
    b = load_checkpoint(cut_out / resumed["checkpoint"])["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [p for p in cut_out.rglob("*") if p.name.endswith(".tmp")]
