"""se-res2net progress: states from records and live locks, measured images/s, ETA."""

from __future__ import annotations

import json

import pytest

from se_res2net.training.locks import RunLock, sweep_lock_path
from se_res2net.training.progress import format_progress, sweep_progress
from se_res2net.training.records import read_record, write_record
from se_res2net.training.trainer import TrainConfig, train

TINY = {"layers": (1, 1, 1), "planes": (4, 8, 16), "stem_width": 8}


@pytest.mark.slow
def test_progress_reports_states_throughput_and_eta(tmp_path, capsys):
    out = tmp_path / "smoke"
    for seed in (0, 1, 2):
        cfg = TrainConfig("res2net29", model_kwargs=TINY, epochs=3, milestones=(), batch_size=32,
                          data_source="sample", train_subset=64, test_subset=20, device="cpu", seed=seed,
                          profile="smoke")
        train(cfg, out, progress=False)
    # seed 1: unfinished, nobody holds it (a killed sweep) -> incomplete; seed 2: unfinished and held -> training
    for seed in (1, 2):
        path = out / f"res2net29_seed{seed}.json"
        rec = read_record(path)
        rec.update(status="running", final_test_error=None)
        rec["epochs"] = rec["epochs"][:1]
        write_record(path, rec)
    with RunLock(sweep_lock_path(out, "res2net29_seed2")):
        p = sweep_progress(tmp_path, "smoke", models=["res2net29", "resnet56"], seeds=[0, 1, 2])
    states = {r["run"]: r["state"] for r in p["runs"]}
    assert states == {"res2net29_seed0": "complete", "res2net29_seed1": "incomplete", "res2net29_seed2": "training",
                      "resnet56_seed0": "pending", "resnet56_seed1": "pending", "resnet56_seed2": "pending"}
    assert p["counts"]["complete"] == 1 and p["counts"]["pending"] == 3
    rows = {r["run"]: r for r in p["runs"]}
    r2 = rows["res2net29_seed2"]
    last = read_record(out / "res2net29_seed2.json")["epochs"][-1]
    assert r2["images_per_s"] == pytest.approx(64 / last["train_time_s"])
    assert p["images_per_s"] == pytest.approx(r2["images_per_s"])  # only the run training now counts
    assert r2["eta_s"] == pytest.approx(2 * last["epoch_time_s"])  # 2 epochs left at its own pace
    # resnet56 has no measurement: it is costed at the mean of the measured runs
    assert rows["resnet56_seed0"]["eta_s"] > 0 and p["eta_s"] >= max(r["eta_s"] for r in p["runs"])
    text = format_progress(p)
    assert "1 complete, 1 training, 1 incomplete" in text and "ETA of the sweep" in text
    # started on a CPU (bf16 off): the unfinished two resume on a GPU only with --no-bf16; pending runs are not counted
    assert text.splitlines()[-1].endswith(": 2 in fp32 (a sweep on a GPU needs --no-bf16)")

    from se_res2net.cli import main

    assert main(["progress", "--profile", "smoke", "--out-root", str(tmp_path), "--models", "res2net29",
                 "--seeds", "0", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["counts"]["complete"] == 1 and got["eta_s"] == 0.0


def test_progress_lists_the_folders_other_runs_apart_from_the_plan(tmp_path):
    """A later sweep's plan (here: seed 0 on a CPU) must not hide the resumable runs of an earlier one (seeds 1-3
    of a GPU block) in the same folder; they are listed apart and left out of the sweep's counts and ETA."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "book" / "runs" / "budget" / "res2net29_seed1.json"
    rec = read_record(committed)
    rec.update(status="running", final_test_error=None)  # unfinished, whatever the committed run has reached since
    rec["epochs"] = rec["epochs"][:5]
    rec["resumes"] = [r for r in rec.get("resumes") or [] if r["epoch"] < 5]  # as the record stood at epoch 5
    out = tmp_path / "budget"
    out.mkdir()
    write_record(out / "res2net29_seed1.json", rec)
    (out / "notes.json").write_text('{"not": "a run record"}', encoding="utf-8")
    (out / ".sweep-plan.json").write_text(json.dumps({"models": ["res2net29"], "seeds": [0], "epochs": 30,
                                                      "slots": ["cpu"], "started": "2026-12-07T04:55:42Z"}),
                                          encoding="utf-8")
    # its epochs without their checkpoint (left on the machine that trained): stranded, not resumable here
    (stranded,) = sweep_progress(tmp_path, "budget")["other_runs"]
    assert stranded["state"] == "stranded" and stranded["eta_s"] == 0
    with_plan = sweep_progress(tmp_path, "budget", models=["res2net29"], seeds=[1])
    assert with_plan["counts"]["stranded"] == 1 and with_plan["eta_s"] == 0
    assert "1 stranded (trained epochs, checkpoint not here)" in format_progress(with_plan)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "res2net29_seed1.pt").write_bytes(b"its checkpoint")  # progress only asks whether it is here
    p = sweep_progress(tmp_path, "budget")
    assert [r["run"] for r in p["runs"]] == ["res2net29_seed0"] and p["counts"]["pending"] == 1
    assert p["counts"]["incomplete"] == 0  # the other run is not this sweep's
    (other,) = p["other_runs"]
    assert other["run"] == "res2net29_seed1" and other["state"] == "incomplete"
    assert other["epochs_done"] == len(rec["epochs"])
    assert other["eta_s"] == pytest.approx((30 - len(rec["epochs"])) * other["epoch_s"])
    text = format_progress(p)
    assert text.splitlines()[0].endswith("(the plan of the sweep started 2026-12-07T04:55:42Z)")
    assert "1 other run(s) in this folder, not in this sweep's plan (1 resumable" in text
    # it started on a GPU (bf16 "auto" on): the line and the hint say what a sweep on a CPU must pass
    assert other["precision"] == "bf16" and text.splitlines()[-2].startswith("res2net29_seed1")
    assert text.splitlines()[-2].split()[2] == "bf16"
    assert text.splitlines()[-1] == ("unfinished runs resume at the precision they started with: 1 in bf16 (a sweep "
                                     "on a CPU needs --bf16)")
    # naming the runs asks for exactly those
    assert sweep_progress(tmp_path, "budget", models=["res2net29"], seeds=[1])["other_runs"] == []


def test_a_run_resumed_on_other_hardware_is_timed_on_the_device_that_trains_it_now(tmp_path):
    """Six budget runs started on a GPU (≈ 13 s per epoch) went on on a CPU (≈ 1,500 s): their pace and ETA must
    be the CPU's, not a mean over both, and the device named the CPU."""
    out = tmp_path / "budget"
    out.mkdir()
    gpu = [{"epoch": e, "epoch_time_s": 13.0, "train_time_s": 11.5, "test_error": 20.0, "lr": 0.1,
            "train_loss": 1.0, "train_acc": 60.0, "test_loss": 1.0} for e in range(1, 19)]
    cpu = [{"epoch": e, "epoch_time_s": 1500.0, "train_time_s": 1380.0, "test_error": 12.0, "lr": 0.01,
            "train_loss": 0.5, "train_acc": 85.0, "test_loss": 0.5} for e in range(19, 21)]
    rec = {"schema": "se_res2net.run/1", "status": "running", "name": "res2net29_seed1", "model": "res2net29",
           "model_kwargs": {}, "params": 1, "macs": 1,
           "seed": 1, "profile": "budget", "config": {"epochs": 30}, "epochs": gpu + cpu, "final_test_error": None,
           "failure": None, "checkpoint": "checkpoints/res2net29_seed1.pt",
           "provenance": {"device": "cuda", "device_name": "NVIDIA H200", "bf16": True, "train_size": 50000},
           "resumes": [{"epoch": 18, "device": "cpu", "device_name": "Intel Xeon", "bf16": True}]}
    write_record(out / "res2net29_seed1.json", rec)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "res2net29_seed1.pt").write_bytes(b"its checkpoint")
    (row,) = sweep_progress(tmp_path, "budget", models=["res2net29"], seeds=[1])["runs"]
    assert row["epoch_s"] == pytest.approx(1500.0)
    assert row["eta_s"] == pytest.approx(10 * 1500.0)
    assert row["images_per_s"] == pytest.approx(50000 / 1380.0)
    assert row["device_name"] == "Intel Xeon"
    # resumed on the CPU, no epoch finished there yet: its pace is unknown, not the GPU's (nor its seeds' on the GPU)
    rec["epochs"] = gpu
    write_record(out / "res2net29_seed1.json", rec)
    other = dict(rec, name="res2net29_seed2", seed=2, resumes=[])
    write_record(out / "res2net29_seed2.json", other)
    (out / "checkpoints" / "res2net29_seed2.pt").write_bytes(b"its checkpoint")
    p = sweep_progress(tmp_path, "budget", models=["res2net29"], seeds=[1, 2])
    row, gpu_row = p["runs"]
    assert row["device_name"] == "Intel Xeon" and row["epoch_s"] is None and row["images_per_s"] is None
    assert row["eta_s"] is None and p["eta_s"] is None
    assert gpu_row["epoch_s"] == pytest.approx(13.0) and gpu_row["eta_s"] == pytest.approx(12 * 13.0)
    assert "ETA of the sweep ? at concurrency" in format_progress(p)
