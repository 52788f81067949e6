"""The papermill sweep on a tiny profile: executed notebooks, records, skip, failure, no temp files."""

import dataclasses
import json
import os
import time

import nbformat
import pytest
from fakes import make_record

from se_res2net.training.profiles import get_profile
from se_res2net.training.records import read_record, write_record
from se_res2net.training.sweep import (
    _Run, _planned_config, _skip_reason, notebook_parameters, resolve_notebook, run_sweep,
)

TINY = {"train_subset": 64, "test_subset": 50, "data_source": "sample", "epochs": 1, "device": "cpu"}
MODELS = ["res2net29", "resnet56"]


def _temps(d):
    return sorted(p.name for p in d.rglob("*") if ".tmp" in p.name)


@pytest.mark.slow
def test_sweep_runs_skips_and_reports_failures(tmp_path):
    report = run_sweep("smoke", models=MODELS + ["no_such_model"], seeds=[0], jobs=2, out_root=tmp_path,
                       overrides=TINY, progress=False, threads=1)
    out = tmp_path / "smoke"
    assert sorted(o.model for o in report.completed) == sorted(MODELS)
    assert [o.model for o in report.failed] == ["no_such_model"]
    assert not report.ok and "no_such_model" in report.summary()

    for m in MODELS:
        rec = read_record(out / f"{m}_seed0.json")
        assert rec["status"] == "complete" and rec["profile"] == "smoke"
        assert rec["provenance"]["data_is_sample"] is True
        assert rec["config"]["train_subset"] == 64 and len(rec["epochs"]) == 1
        nb = nbformat.read(out / f"{m}_seed0.ipynb", as_version=4)
        outputs = [o for c in nb.cells for o in c.get("outputs", [])]
        assert not any(o.output_type == "error" for o in outputs)
        assert any(o.output_type == "display_data" for o in outputs)  # the curves

    # the failure: executed notebook with the error, failed record
    failed = read_record(out / "no_such_model_seed0.json")
    assert failed["status"] == "failed" and "unknown model" in failed["failure"]["message"]
    nb = nbformat.read(out / "no_such_model_seed0.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0].ename == "ValueError"
    assert _temps(tmp_path) == []

    # re-running skips the complete runs without touching them
    files = {p: p.stat().st_mtime_ns for m in MODELS for p in (out / f"{m}_seed0.ipynb", out / f"{m}_seed0.json")}
    again = run_sweep("smoke", models=MODELS, seeds=[0], jobs=1, out_root=tmp_path, overrides=TINY, progress=False)
    assert sorted(o.model for o in again.skipped) == sorted(MODELS) and not again.completed and again.ok
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert _temps(tmp_path) == []

    # a complete run whose notebook ended in an error (its kernel killed after the last epoch) is rendered again,
    # its record left as it is; a notebook that cannot be read, too
    nb_path, rec_path = out / "res2net29_seed0.ipynb", out / "res2net29_seed0.json"
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata["papermill"]["exception"] = True
    nbformat.write(nb, nb_path)
    (out / "resnet56_seed0.ipynb").write_text("{ not json")
    record = rec_path.read_bytes()
    third = run_sweep("smoke", models=MODELS, seeds=[0], jobs=1, out_root=tmp_path, overrides=TINY, progress=False)
    assert sorted(o.model for o in third.completed) == sorted(MODELS) and not third.skipped and third.ok
    assert rec_path.read_bytes() == record
    for m in MODELS:
        assert not nbformat.read(out / f"{m}_seed0.ipynb", as_version=4).metadata["papermill"]["exception"]


@pytest.mark.slow
def test_cli_exit_code_and_config_mismatch(tmp_path, capsys):
    from se_res2net.cli import main

    assert run_sweep("smoke", models=["res2net29"], seeds=[0], out_root=tmp_path, overrides=TINY,
                     progress=False).ok
    rec = tmp_path / "smoke" / "res2net29_seed0.json"
    before = rec.stat().st_mtime_ns
    # the plain smoke profile (256 images) does not match the complete 64-image record: reported, not overwritten
    rc = main(["sweep", "--profile", "smoke", "--models", "res2net29", "--seeds", "0", "--out-root", str(tmp_path),
               "--no-progress", "--json"])
    assert rc == 1
    result = json.loads(capsys.readouterr().out)
    assert "another configuration" in result["failed"][0]["error"]
    assert rec.stat().st_mtime_ns == before
    # a run whose trained epochs lost their checkpoint (stranded) is reported, and its record left as it is
    rec_data = read_record(rec)
    rec_data.update(status="running", final_test_error=None)
    rec_data["epochs"] = rec_data["epochs"][:1]
    write_record(rec, rec_data)
    (tmp_path / "smoke" / "checkpoints" / "res2net29_seed0.pt").unlink(missing_ok=True)
    stranded = rec.read_bytes()
    report = run_sweep("smoke", models=["res2net29"], seeds=[0], out_root=tmp_path, overrides=TINY, progress=False)
    (failed,) = report.failed
    assert "holds 1 trained epoch(s) but their checkpoint" in failed.error and "--force" in failed.error
    assert rec.read_bytes() == stranded
    # unknown model names are refused before anything runs
    assert main(["sweep", "--profile", "smoke", "--models", "nope", "--out-root", str(tmp_path)]) == 2


def test_resume_when_a_checkpoint_exists(tmp_path):
    prof = get_profile("smoke")
    params = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides=TINY)
    run = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(params.items()), "python3")
    assert _skip_reason(run, prof) == (None, False)
    run.checkpoint.parent.mkdir(parents=True)
    run.checkpoint.write_bytes(b"")
    assert _skip_reason(run, prof) == (None, True)


@pytest.mark.slow
def test_a_run_unfinished_after_the_sweep_looked_is_resumed_not_refused(tmp_path, monkeypatch):
    """Whether to resume is the trainer's call, under its lock. The sweep looked when the run had no file; then the
    kernel of a killed sweep wrote its first epoch on its way out. Deciding "start afresh" from the earlier look made
    the trainer refuse the unfinished run (FileExistsError); it now goes on from that epoch's checkpoint."""
    import se_res2net.training.sweep as sw
    from se_res2net.training import trainer

    prof = get_profile("smoke")
    tiny = {**TINY, "epochs": 2, "checkpoint_every": 1}
    params = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides=tiny)
    run = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(params.items()), "python3")
    assert _skip_reason(run, prof) == (None, False)  # what the sweep saw: nothing to go on from

    # the leftover kernel: trains epoch 1 (checkpoint written), then is stopped
    def stop_after_epoch_1(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "_report_epoch", stop_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(dataclasses.replace(_planned_config(prof, params), checkpoint_every=1), tmp_path, progress=False)
    assert len(read_record(run.record)["epochs"]) == 1 and run.checkpoint.exists()

    monkeypatch.setattr(sw, "_skip_reason", lambda r, p: (None, False))  # the look taken before that kernel wrote
    outcome = sw.run_one(run)
    assert outcome.status == "completed", outcome.error
    rec = read_record(run.record)
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2] and len(rec["resumes"]) == 1

def test_a_complete_run_on_the_sample_is_not_skipped_once_real_data_is_configured(tmp_path, monkeypatch):
    """Decided from the record's own provenance: a sample result is neither kept where real data is asked for
    nor replaced silently; the error names --force. Real data asked for again later, or the sample again: skipped."""
    from se_res2net.training import data

    # no data set configured, whatever this machine has (CI sets SE_RES2NET_DATA_DIR): "auto" is the sample
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "_torchvision_present", lambda root: False)
    prof = get_profile("smoke")
    tiny = {k: v for k, v in TINY.items() if k != "data_source"}  # the profile's "auto"
    on_sample = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides=tiny)
    run = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(on_sample.items()), "python3")
    rec = make_record("res2net29", 0, 80.0, profile="smoke", sample=True)
    rec["config"] = _planned_config(prof, on_sample).to_dict()
    write_record(run.record, rec)
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"exception": None}})
    nbformat.write(nb, run.notebook)
    before = run.record.read_bytes()

    assert _skip_reason(run, prof)[0].status == "skipped"  # no data set configured: the sample is what is asked

    real = notebook_parameters(prof, "res2net29", 0, tmp_path, data_dir=str(tmp_path / "cifar10"), overrides=tiny)
    run_real = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(real.items()), "python3")
    outcome, resume = _skip_reason(run_real, prof)
    assert outcome.status == "failed" and not resume
    assert "embedded CIFAR-10 sample" in outcome.error and "--force" in outcome.error
    assert run.record.read_bytes() == before

    rec["provenance"].update(data_is_sample=False, data_source="folder")
    write_record(run.record, rec)
    assert _skip_reason(run_real, prof)[0].status == "skipped"


def test_parameters_and_notebook(tmp_path):
    prof = get_profile("budget")
    p = notebook_parameters(prof, "se_res2net29", 2, tmp_path, overrides={"epochs": 10})
    assert p["milestones"] == [5, 8] and p["epochs"] == 10 and p["profile"] == "budget" and p["seed"] == 2
    with pytest.raises(ValueError, match="overridable"):
        notebook_parameters(prof, "se_res2net29", 0, tmp_path, overrides={"momentum": 0.5})
    # bf16: the device's default unless given, and what is given reaches the config the notebook builds
    assert p["bf16"] is None and _planned_config(prof, p).bf16 is None
    on = notebook_parameters(prof, "se_res2net29", 0, tmp_path, overrides={"bf16": True})
    assert _planned_config(prof, on).bf16 is True
    nb = nbformat.read(resolve_notebook(), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("model", "seed", "profile", "epochs", "milestones", "batch_size", "lr", "weight_decay",
                 "train_subset", "test_subset", "data_source", "data_dir", "out_dir", "force", "resume"):
        assert f"\n{name} = " in "\n" + tagged[0].source
    assert set(p) <= {line.split(" = ")[0] for line in tagged[0].source.splitlines() if " = " in line}
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    with pytest.raises(FileNotFoundError, match="--notebook"):
        resolve_notebook(os.path.join(str(tmp_path), "missing.ipynb"))


def test_runs_start_seed_by_seed_so_a_stopped_block_leaves_matched_pairs(tmp_path, monkeypatch):
    """The first GPU block started all six runs of the headline pair at once and finished none; with two at a
    time, model-major order would have run res2net29's three seeds before any se_res2net29. The executor gets the
    runs seed by seed, each (model, seed) once."""
    from se_res2net.training import sweep
    from se_res2net.training.sweep import run_order

    assert run_order(["a", "b"], [1, 2, 3]) == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert run_order(["a", "a", "b"], [0, 0]) == [("a", 0), ("b", 0)]
    handed = []
    monkeypatch.setattr(sweep, "execute_local", lambda plan, *args: handed.extend(r.name for r in plan))
    run_sweep("smoke", models=["res2net29", "se_res2net29"], seeds=[1, 2], jobs=2, out_root=tmp_path,
              overrides=TINY, progress=False)
    assert handed == ["res2net29_seed1", "se_res2net29_seed1", "res2net29_seed2", "se_res2net29_seed2"]


def test_runs_with_a_checkpoint_to_resume_start_before_new_ones(tmp_path, monkeypatch):
    """A block that also names new runs (so the GPU does not idle once the old ones end) finishes the half-trained
    runs of earlier blocks first, seed by seed among themselves."""
    from se_res2net.training import sweep

    ckpts = tmp_path / "smoke" / "checkpoints"
    ckpts.mkdir(parents=True)
    for name in ("se_res2net29_seed2", "res2net29_seed2"):
        (ckpts / f"{name}.pt").write_bytes(b"a checkpoint of an earlier block")  # only its presence counts here
    handed = []
    monkeypatch.setattr(sweep, "execute_local", lambda plan, *args: handed.extend(r.name for r in plan))
    run_sweep("smoke", models=["res2net29", "se_res2net29", "resnet56"], seeds=[1, 2], jobs=2, out_root=tmp_path,
              overrides=TINY, progress=False)
    assert handed == ["res2net29_seed2", "se_res2net29_seed2", "res2net29_seed1", "se_res2net29_seed1",
                      "resnet56_seed1", "resnet56_seed2"]


def test_a_lock_probe_at_a_runs_start_does_not_make_it_busy(tmp_path, monkeypatch):
    """`progress` (polled during a GPU block) and `settle` probe a run's lock by taking it for an instant; a run
    starting at that instant waits for it rather than being reported busy and left out of its sweep."""
    import threading

    import se_res2net.training.sweep as sw
    from se_res2net.training.locks import RunLock, sweep_lock_path

    prof = get_profile("smoke")
    params = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides=TINY)
    run = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(params.items()), "python3")
    done = sw.RunOutcome(run.model, run.seed, "skipped", run.record, None)
    monkeypatch.setattr(sw, "_skip_reason", lambda r, p: (done, False))
    probe = RunLock(sweep_lock_path(run.out_dir, run.name)).acquire()
    threading.Timer(0.3, probe.release).start()
    assert sw.run_one(run).status == "skipped"
    held = RunLock(sweep_lock_path(run.out_dir, run.name)).acquire()  # a live holder: busy, after the grace
    monkeypatch.setattr(sw, "LOCK_PROBE_GRACE_S", 0.2)
    try:
        assert sw.run_one(run).status == "busy"
    finally:
        held.release()


def test_the_sweep_never_marks_failed_a_run_that_another_process_is_training(tmp_path, monkeypatch):
    """The sweep's attempt failed (e.g. its trainer gave up waiting for the train lock of a hand-started
    `se-res2net train --resume`): the live trainer writes that record, and a "failed" written between its writes
    could replace its complete record. A run nobody trains is marked failed as before."""
    import se_res2net.training.sweep as sw
    from se_res2net.training.locks import RunLock, train_lock_path

    prof = get_profile("smoke")
    params = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides=TINY)
    run = _Run("res2net29", 0, tmp_path, resolve_notebook(), tuple(params.items()), "python3")
    live = RunLock(train_lock_path(run.out_dir, run.name)).acquire()
    try:
        t0 = time.monotonic()
        sw._mark_failed(run, "smoke", "RuntimeError: run res2net29_seed0 is being trained", "RuntimeError", 0.0)
        assert not run.record.exists() and time.monotonic() - t0 >= 4.5  # waited its grace, wrote nothing
    finally:
        live.release()
    sw._mark_failed(run, "smoke", "RuntimeError: the kernel died", "DeadKernelError", 0.0)
    assert read_record(run.record)["status"] == "failed"


def test_bad_overrides_fail_once_before_any_run(tmp_path, capsys):
    """An override every run would refuse is one error naming it, and nothing is written (not one failed run per
    model and seed)."""
    from se_res2net.cli import main

    for bad in ({"bf16": "yes"}, {"lr": -1}, {"checkpoint_every": 0}, {"compile_mode": "fastest"}):
        with pytest.raises(ValueError, match="invalid override for the sweep's runs: "):
            run_sweep("smoke", models=MODELS, seeds=[0, 1], out_root=tmp_path, overrides={**TINY, **bad},
                      progress=False)
    assert not (tmp_path / "smoke").exists()
    args = ["sweep", "--profile", "smoke", "--models", "res2net29", "--out-root", str(tmp_path), "--no-progress"]
    assert main(args + ["--set", "bf16=yes"]) == 2
    assert "bf16 must be None (the device's default), True or False, got 'yes'" in capsys.readouterr().err
    assert main(args + ["--bf16", "--set", "bf16=false"]) == 2
    assert "--bf16 and --set bf16=false disagree" in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()


@pytest.mark.slow
def test_a_run_resumes_on_another_device_type_at_the_precision_it_started(tmp_path, monkeypatch):
    """A run started with bf16 on (as "auto" is on a GPU) resumed by a sweep whose device resolves it off (a CPU) is
    refused with the fix named; with --bf16, as the run started, it goes on from its checkpoint and completes."""
    from se_res2net.training import trainer

    prof = get_profile("smoke")
    tiny = {**TINY, "epochs": 2, "checkpoint_every": 1}
    started = notebook_parameters(prof, "res2net29", 0, tmp_path, overrides={**tiny, "bf16": True})

    def stop_after_epoch_1(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(trainer, "_report_epoch", stop_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            trainer.train(_planned_config(prof, started), tmp_path / "smoke", progress=False)
    rec_path = tmp_path / "smoke" / "res2net29_seed0.json"
    ckpt = tmp_path / "smoke" / "checkpoints" / "res2net29_seed0.pt"
    before = ckpt.read_bytes()

    refused = run_sweep("smoke", models=["res2net29"], seeds=[0], out_root=tmp_path, overrides=tiny, progress=False)
    (failed,) = refused.failed
    assert "bf16_resolved: checkpoint=True now=False" in failed.error and "pass --bf16 to" in failed.error
    assert ckpt.read_bytes() == before

    resumed = run_sweep("smoke", models=["res2net29"], seeds=[0], out_root=tmp_path, overrides={**tiny, "bf16": True},
                        progress=False, force=False)
    assert [o.model for o in resumed.completed] == ["res2net29"], resumed.summary()
    rec = read_record(rec_path)
    assert rec["status"] == "complete" and [e["epoch"] for e in rec["epochs"]] == [1, 2]
    assert len(rec["resumes"]) == 1 and rec["config"]["bf16"] is True and rec["provenance"]["bf16"] is True
