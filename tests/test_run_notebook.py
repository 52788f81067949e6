"""notebooks/train.ipynb describes the run it holds (from its record), not its own default parameters."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

from se_res2net.training.records import describe_run

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "train.ipynb"

RECORD = {
    "status": "complete",
    "model": "res2net29",
    "model_kwargs": {},
    "seed": 2,
    "profile": "budget",
    "config": {"epochs": 30, "batch_size": 128, "lr": 0.1, "gamma": 0.1, "milestones": [15, 22],
               "data_source": "auto", "train_subset": None, "test_subset": None, "device": "auto"},
    "epochs": [{"epoch": e} for e in range(1, 31)],
    "failure": None,
    "provenance": {"device": "cuda", "device_name": "NVIDIA H100", "bf16": True, "compile": True,
                   "compile_mode": "max-autotune", "data_source": "folder", "data_is_sample": False,
                   "train_size": 50000, "test_size": 10000},
}


def test_describe_run_full_data_on_a_gpu():
    text = describe_run(RECORD)
    assert "`res2net29`" in text and "**seed**: 2" in text and "`budget`" in text
    assert "class-folder copy (`folder`), the whole splits: 50,000 training / 10,000 test images" in text
    assert "30 of 30; batch 128, lr 0.1, x0.1 at epochs 15, 22" in text
    assert "`cuda` (NVIDIA H100), bf16 autocast, torch.compile `max-autotune`" in text
    assert "sample" not in text.lower()
    assert "at once" not in text  # a record older than the sharing field says nothing of it
    shared = copy.deepcopy(RECORD)
    shared["provenance"]["sharing"] = {"jobs_per_device": 4, "cuda_mps": True}
    assert "`max-autotune`, up to 4 run(s) at once on it under CUDA MPS" in describe_run(shared)


def test_describe_run_names_every_device_of_a_resumed_run():
    # a run started on an H100 and resumed on a CPU: provenance names only the start, the resumes the rest
    rec = copy.deepcopy(RECORD)
    rec["resumes"] = [{"epoch": 12, "device": "cpu", "device_name": "AMD EPYC"},
                      {"epoch": 20, "device": "cpu", "device_name": "AMD EPYC"}]
    text = describe_run(rec)
    assert ("trained on NVIDIA H100 (epochs 1–12), AMD EPYC (epochs 13–30); started as `cuda` (NVIDIA H100), "
            "bf16 autocast") in text
    rec["resumes"] = [{"epoch": 30, "device": "cpu", "device_name": "AMD EPYC"}]  # resumed, nothing left to train
    assert "trained on" not in describe_run(rec) and "`cuda` (NVIDIA H100)" in describe_run(rec)
    assert "augmentation" not in text  # resumes from before the augment_rng entry say nothing of it


def test_describe_run_says_where_a_resume_reseeded_the_augmentation():
    rec = copy.deepcopy(RECORD)
    rec["resumes"] = [{"epoch": 18, "device": "cpu", "device_name": "Intel Xeon",
                       "augment_rng": {"restored": False, "device": "cpu", "checkpoint_device": "cuda", "seed": 7}},
                      {"epoch": 24, "device": "cpu", "device_name": "Intel Xeon",
                       "augment_rng": {"restored": True, "device": "cpu"}}]
    text = describe_run(rec)
    assert ("- **augmentation**: a fresh random stream from epoch 19 (resumed on a CPU from a CUDA checkpoint)"
            in text)
    assert "epoch 25" not in text  # a resume that restored its stream is not named


def test_describe_run_sample_subset_and_failure():
    rec = copy.deepcopy(RECORD)
    rec["config"].update(train_subset=64, test_subset=100, milestones=[])
    rec["provenance"].update(data_source="sample", data_is_sample=True, train_size=64, test_size=100,
                             device="cpu", device_name="AMD EPYC", bf16=False, compile=False)
    rec["status"], rec["epochs"] = "failed", rec["epochs"][:3]
    rec["failure"] = {"type": "nan", "message": "loss is NaN", "epoch": 3}
    text = describe_run(rec)
    assert "embedded CIFAR-10 **sample**" in text and "64 training / 100 test images" in text
    assert "3 of 30" in text and "lr 0.1 constant" in text and "`cpu` (AMD EPYC), fp32" in text
    assert "failed at epoch 3: nan: loss is NaN" in text


def test_describe_run_before_data_and_device():
    rec = copy.deepcopy(RECORD)
    rec["provenance"] = {"data_source": None}
    rec["epochs"], rec["status"] = [], "failed"
    text = describe_run(rec)
    assert "not loaded (asked for `auto`)" in text and "not started (asked for `auto`)" in text


def test_the_static_intro_claims_nothing_about_this_run():
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    intro = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown"
    assert not re.search(r"\d+ (training|test) images", intro) and "sample" not in intro.lower()
    assert "*This run*" in intro


@pytest.mark.slow
def test_an_executed_notebook_describes_its_own_parameters(tmp_path):
    """Executed with parameters other than its defaults, the notebook says what it really ran."""
    import papermill as pm

    out = tmp_path / "run.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
        parameters={"model": "res2net29", "seed": 3, "profile": "custom", "epochs": 1, "batch_size": 16,
                    "train_subset": 32, "test_subset": 20, "data_source": "sample", "device": "cpu",
                    "out_dir": str(tmp_path / "runs")},
    )
    nb = nbformat.read(str(out), as_version=4)
    heading = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source == "## This run")
    outputs = nb.cells[heading + 1].outputs
    shown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "`res2net29`" in shown and "**seed**: 3" in shown and "`custom`" in shown
    assert "**sample**" in shown and "32 training / 20 test images" in shown
    assert "1 of 1; batch 16" in shown and "`cpu`" in shown and "**status**: complete" in shown
