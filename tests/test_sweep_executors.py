"""Where runs execute: worker processes spread over GPUs, submitit jobs (its real local cluster), run locks."""

from __future__ import annotations

import json
import os

import pytest

from se_res2net.training.locks import LockBusy, RunLock, sweep_lock_path, train_lock_path
from se_res2net.training.records import read_record
from se_res2net.training.sweep import ClusterOptions, device_slots, run_sweep, visible_gpus

TINY = {"train_subset": 64, "test_subset": 50, "data_source": "sample", "epochs": 1, "device": "cpu"}


def test_device_slots_spread_jobs_over_every_gpu():
    assert device_slots(2, ["0", "1"]) == ["0", "1", "0", "1"]  # first runs land on different GPUs
    assert device_slots(1, ["3"]) == ["3"]
    assert device_slots(3, []) == [None, None, None]
    with pytest.raises(ValueError, match="--jobs"):
        device_slots(0, ["0"])


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1f2e")
    assert visible_gpus() == ["GPU-1f2e"]


def test_cluster_options_are_checked():
    with pytest.raises(ValueError, match="cluster"):
        ClusterOptions(cluster="pbs")
    with pytest.raises(ValueError, match="time_min"):
        ClusterOptions(time_min=0)


@pytest.mark.slow
def test_each_worker_gets_its_own_gpu_and_the_sweep_reports_throughput(tmp_path):
    # Two fake GPU ids: each worker process starts with CUDA_VISIBLE_DEVICES set to one of them (torch then
    # sees no GPU here and trains on the CPU, which is all this machine has).
    over = {**TINY, "device": "auto"}
    report = run_sweep("smoke", models=["res2net29", "resnet56"], seeds=[0], jobs=1, out_root=tmp_path,
                       overrides=over, progress=False, threads=1, gpus=["7", "8"])
    assert report.ok and len(report.completed) == 2
    assert report.slots == ["7", "8"]
    assert sorted(o.device for o in report.completed) == ["7", "8"]
    out = tmp_path / "smoke"
    for o in report.completed:
        log = (out / "logs" / f"{o.name}.log").read_text()
        assert f"CUDA_VISIBLE_DEVICES={o.device}" in log
        rec = read_record(o.record)
        assert o.images_trained == rec["provenance"]["train_size"] * len(rec["epochs"]) == 64
        # one run per fake GPU at a time, and no GPU here: no MPS
        assert rec["provenance"]["sharing"] == {"jobs_per_device": 1, "cuda_mps": False}
    assert report.images_per_s == pytest.approx(128 / report.wall_time_s)
    assert "training images/s" in report.summary()
    assert not list(out.rglob("*.lock"))  # released locks leave no file


@pytest.mark.slow
def test_submitit_local_cluster_runs_a_real_sweep(tmp_path):
    pytest.importorskip("submitit")
    cluster = ClusterOptions(cluster="local", gpus_per_job=0, time_min=10)
    report = run_sweep("smoke", models=["res2net29", "resnet56", "no_such_model"], seeds=[0], jobs=2,
                       out_root=tmp_path, overrides=TINY, progress=False, executor="submitit", cluster=cluster)
    assert sorted(o.model for o in report.completed) == ["res2net29", "resnet56"]
    # a failed job keeps its executed notebook (with the error) and a failed record, as locally
    assert [o.model for o in report.failed] == ["no_such_model"] and not report.ok
    failed = read_record(tmp_path / "smoke" / "no_such_model_seed0.json")
    assert failed["status"] == "failed" and "unknown model" in failed["failure"]["message"]
    assert (tmp_path / "smoke" / "no_such_model_seed0.ipynb").exists()
    out = tmp_path / "smoke"
    for m in ("res2net29", "resnet56"):
        rec = read_record(out / f"{m}_seed0.json")
        assert rec["status"] == "complete" and rec["provenance"]["data_is_sample"] is True
        assert (out / f"{m}_seed0.ipynb").exists()
    # submitit's own job folders: a pickled result per job, and its logs
    job_dirs = [d for d in (out / "submitit").iterdir() if d.is_dir()]
    assert len(job_dirs) >= 1 and any(p.name.endswith("_result.pkl") for d in job_dirs for p in d.iterdir())
    # the same sweep again: both runs complete, nothing executed
    again = run_sweep("smoke", models=["res2net29", "resnet56"], seeds=[0], jobs=2, out_root=tmp_path,
                      overrides=TINY, progress=False, executor="submitit", cluster=cluster)
    assert len(again.skipped) == 2 and not again.completed


@pytest.mark.slow
def test_a_run_held_by_another_process_is_busy_and_untouched(tmp_path):
    out = tmp_path / "smoke"
    with RunLock(sweep_lock_path(out, "res2net29_seed0"), what="a test holding it"):
        report = run_sweep("smoke", models=["res2net29"], seeds=[0], out_root=tmp_path, overrides=TINY,
                           progress=False, threads=1)
    assert [o.status for o in report.runs] == ["busy"] and report.ok
    assert "a test holding it" in report.busy[0].error and "BUSY" in report.summary()
    assert not (out / "res2net29_seed0.json").exists() and not (out / "res2net29_seed0.ipynb").exists()


def test_run_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = train_lock_path(tmp_path, "m_seed0")
    with RunLock(path, what="first") as first:
        assert first.is_locked() and RunLock(path).is_locked()
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}.*first"):
            RunLock(path).acquire(timeout_s=0.2)
        assert json.loads(path.read_text())["what"] == "first"
    assert not path.exists() and not RunLock(path).is_locked()


@pytest.mark.slow
def test_a_killed_holder_releases_its_lock(tmp_path):
    import subprocess
    import sys
    import time

    path = tmp_path / "x.lock"
    code = ("import sys, time; from se_res2net.training.locks import RunLock; RunLock(sys.argv[1], what='child').acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy, match="child"):
            RunLock(path).acquire()
        proc.kill()
        proc.wait(timeout=30)
        t0 = time.monotonic()
        RunLock(path).acquire(timeout_s=5).release()
        assert time.monotonic() - t0 < 5
    finally:
        proc.kill()


def test_trainer_refuses_a_run_another_process_trains(tmp_path):
    from se_res2net.training.trainer import TrainConfig, train

    cfg = TrainConfig("res2net29", model_kwargs={"layers": (1, 1, 1), "planes": (4, 8, 16), "stem_width": 8},
                      epochs=1, milestones=(), batch_size=32, data_source="sample", train_subset=64, test_subset=20,
                      device="cpu")
    with RunLock(train_lock_path(tmp_path, "res2net29_seed0"), what="another trainer"):
        with pytest.raises(RuntimeError, match="being trained by another process.*another trainer"):
            train(cfg, tmp_path, progress=False, lock_timeout_s=0.3)
    assert not (tmp_path / "res2net29_seed0.json").exists()


def test_a_run_records_how_many_runs_its_sweep_let_share_its_device_and_whether_under_mps(monkeypatch):
    from se_res2net.training.executors import _worker_env
    from se_res2net.training.records import JOBS_PER_DEVICE_ENV, sharing_info

    monkeypatch.delenv(JOBS_PER_DEVICE_ENV, raising=False)
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/tmp/mps-pipe")
    assert sharing_info("cpu") == {"jobs_per_device": None, "cuda_mps": False}  # alone; MPS is CUDA's alone
    assert sharing_info("cuda") == {"jobs_per_device": None, "cuda_mps": True}  # (no CUDA call is made)
    for slots, slot, want in ((["0", "1", "0", "1"], "0", "2"), ([None] * 3, None, "3")):
        env = _worker_env(1, slot, slots.count(slot))
        assert env[JOBS_PER_DEVICE_ENV] == want
        monkeypatch.setenv(JOBS_PER_DEVICE_ENV, env[JOBS_PER_DEVICE_ENV])
        assert sharing_info("cpu")["jobs_per_device"] == int(want)
    monkeypatch.setenv(JOBS_PER_DEVICE_ENV, "lots")
    assert sharing_info("cpu")["jobs_per_device"] is None
    # and the sweep counts the slots of each device: 2 runs per GPU on 2 GPUs
    from se_res2net.training import executors

    seen = []
    monkeypatch.setattr(executors, "_spawn_worker",
                        lambda run, force, slot, threads, per_device=1: seen.append((slot, per_device)) or run)
    executors.execute_local(["a", "b", "c"], False, executors.device_slots(2, ["0", "1"]), 1, lambda o: None)
    assert len(seen) == 3 and all(n == 2 for _, n in seen)
