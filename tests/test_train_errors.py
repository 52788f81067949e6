"""Every bad input to ``train`` gives one clear error and leaves no half-written file."""

from __future__ import annotations

import json
import os
import shutil

import pytest

torch = pytest.importorskip("torch")

from se_res2net.training.checkpoint import load_checkpoint  # noqa: E402
from se_res2net.cli import main  # noqa: E402
from se_res2net.training.records import read_record, record_path  # noqa: E402
from se_res2net.training.trainer import TrainConfig, train  # noqa: E402

TINY = {"layers": (1, 1, 1), "planes": (4, 8, 16), "stem_width": 8}
TINY_ARGS = ["--model-arg", "layers=[1,1,1]", "--model-arg", "planes=[4,8,16]", "--model-arg", "stem_width=8"]


def tiny_config(**kw):
    base = dict(model="res2net29", model_kwargs=TINY, epochs=2, milestones=(1,), batch_size=32, data_source="sample",
                train_subset=60, test_subset=20, device="cpu", checkpoint_every=1)
    base.update(kw)
    return TrainConfig(**base)


def files_under(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) if path.exists() else []


# ----------------------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "changes, match",
    [
        ({"model": "nope"}, r"unknown model 'nope'.*res2net29"),
        ({"epochs": 0}, r"epochs must be an integer >= 1.*--epochs"),
        ({"epochs": -3}, r"epochs must be"),
        ({"batch_size": 0}, r"batch_size must be"),
        ({"lr": 0.0}, r"lr must be a finite number > 0"),
        ({"lr": float("nan")}, r"lr must be a finite number > 0"),
        ({"weight_decay": -1e-4}, r"weight_decay"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"milestones": (2, 1)}, r"strictly increasing"),
        ({"milestones": (1, 1)}, r"strictly increasing"),
        ({"epochs": 2, "milestones": (2,)}, r"milestones \[2\] lie outside epochs 1\.\.1"),
        ({"epochs": 300, "milestones": (150, 300)}, r"milestones \[300\] lie outside"),
        ({"milestones": (0,)}, r"lie outside"),
        ({"device": "tpu"}, r"unknown device 'tpu'"),
        ({"data_source": "web"}, r"data_source must be one of"),
        ({"train_subset": 0}, r"train_subset must be"),
        ({"checkpoint_every": 0}, r"checkpoint_every"),
        ({"model_kwargs": 3}, r"model_kwargs must be a dict"),
    ],
)
def test_bad_config_is_a_clear_value_error(changes, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**changes)


def test_unknown_model_override_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no_such_option"):
        train(tiny_config(model_kwargs={"no_such_option": 1}), tmp_path, progress=False)
    assert files_under(tmp_path) == []


def test_missing_cuda_is_a_value_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(tiny_config(device="cuda"), tmp_path, progress=False)


# ----------------------------------------------------------------------------- data errors
def test_missing_data_dir(tmp_path):
    out = tmp_path / "out"
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        train(tiny_config(data_source="folder", data_dir=str(tmp_path / "nowhere")), out, progress=False)
    assert files_under(out) == []


def test_corrupt_data_dir(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "test"):
        d = data / split / "airplane"
        d.mkdir(parents=True)
        (d / "garbage.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        train(tiny_config(data_source="folder", data_dir=str(data)), out, progress=False)
    assert str(data) in str(info.value)
    assert files_under(out) == []


def test_empty_data_dir(tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    out = tmp_path / "out"
    with pytest.raises((FileNotFoundError, ValueError)):
        train(tiny_config(data_source="folder", data_dir=str(data)), out, progress=False)
    assert files_under(out) == []


# ----------------------------------------------------------------------------- output directory
def test_out_dir_under_a_regular_file_is_a_permission_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="choose another --out"):
        train(tiny_config(), blocker / "runs", progress=False)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_out_dir_is_a_permission_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            train(tiny_config(), ro, progress=False)
    finally:
        ro.chmod(0o700)
    assert files_under(ro) == []


# ----------------------------------------------------------------------------- existing runs
def test_complete_record_is_not_overwritten_without_force(tmp_path):
    cfg = tiny_config(epochs=1, milestones=())
    rec = train(cfg, tmp_path, progress=False)
    path = record_path(tmp_path, "res2net29", 0)
    before = path.read_bytes()
    assert train(cfg, tmp_path, progress=False) == rec
    assert train(cfg, tmp_path, resume=True, progress=False) == rec
    assert path.read_bytes() == before
    # a complete record of another configuration is an error, not a silent skip
    with pytest.raises(ValueError, match=r"another configuration.*lr.*--force"):
        train(cfg.replace(lr=0.05), tmp_path, progress=False)
    assert path.read_bytes() == before
    # force starts afresh and replaces it
    forced = train(cfg.replace(lr=0.05), tmp_path, force=True, progress=False)
    assert forced["config"]["lr"] == 0.05 and read_record(path)["config"]["lr"] == 0.05
    with pytest.raises(ValueError, match="either force"):
        train(cfg, tmp_path, force=True, resume=True, progress=False)


def test_corrupt_record_is_a_clear_error(tmp_path):
    path = record_path(tmp_path, "res2net29", 0)
    path.write_text('{"schema": "se_res2net.run/1", "status": "comp')
    with pytest.raises(ValueError, match="not valid JSON.*delete it"):
        train(tiny_config(), tmp_path, progress=False)
    path.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(ValueError, match="schema"):
        read_record(path)


def _interrupted_run(tmp_path, monkeypatch, cfg, stop_at=2, resume=False):
    """A run (resumed when ``resume``) that stops (KeyboardInterrupt) in the evaluation of the ``stop_at``-th
    epoch it trains; by default a new run stopped in epoch 2, leaving the epoch-1 checkpoint."""
    import se_res2net.training.trainer as trainer_mod

    real = trainer_mod.evaluate
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(trainer_mod, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, resume=resume, progress=False)
    monkeypatch.setattr(trainer_mod, "evaluate", real)


def test_resume_with_another_config_is_refused(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, milestones=(2,))
    _interrupted_run(tmp_path, monkeypatch, cfg)
    ckpt = tmp_path / "checkpoints" / "res2net29_seed0.pt"
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"another configuration \(lr: checkpoint=0\.1 now=0\.05\)"):
        train(cfg.replace(lr=0.05), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"train_subset"):
        train(cfg.replace(train_subset=50), tmp_path, resume=True, progress=False)
    # bf16 resolved by device type: a run started with bf16 off (a CPU) and resumed with it on (as on a GPU) is
    # refused, and the error names the flag that matches the checkpoint
    with pytest.raises(ValueError, match=r"bf16_resolved: checkpoint=False now=True\); bf16 after 'auto' depends on "
                                         r"the device type: .* pass --no-bf16 to 'se-res2net train' or 'se-res2net sweep', as "
                                         r"the run started; resume with"):
        train(cfg.replace(bf16=True), tmp_path, resume=True, progress=False)
    assert ckpt.read_bytes() == before
    # non-result settings may change on resume
    rec = train(cfg.replace(checkpoint_every=5, eval_batch_size=7), tmp_path, resume=True, progress=False)
    assert rec["status"] == "complete"


def test_resume_with_a_checkpoint_of_another_model_is_refused(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, milestones=(2,))
    _interrupted_run(tmp_path, monkeypatch, cfg)
    # pretend the checkpoint belongs to se_res2net29's run
    other = tmp_path / "checkpoints" / "se_res2net29_seed0.pt"
    shutil.copy(tmp_path / "checkpoints" / "res2net29_seed0.pt", other)
    with pytest.raises(ValueError, match="is of model 'res2net29', not 'se_res2net29'"):
        train(cfg.replace(model="se_res2net29", model_kwargs={**TINY, "se_ratio": 2}), tmp_path, resume=True,
              progress=False)
    assert not (tmp_path / "se_res2net29_seed0.json").exists()


def test_corrupt_checkpoint_on_resume(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, milestones=(2,))
    _interrupted_run(tmp_path, monkeypatch, cfg)
    (tmp_path / "checkpoints" / "res2net29_seed0.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        train(cfg, tmp_path, resume=True, progress=False)


def test_resume_without_the_checkpoint_of_trained_epochs_keeps_the_record(tmp_path, monkeypatch):
    # a checkpoint git ignores (too big to commit) stays on the machine that trained: a resume elsewhere must not
    # start over from epoch 0 and overwrite the epochs the record already holds
    cfg = tiny_config(epochs=3, milestones=(2,))
    _interrupted_run(tmp_path, monkeypatch, cfg)
    rec_file = tmp_path / "res2net29_seed0.json"
    before = rec_file.read_bytes()
    assert read_record(rec_file)["epochs"]
    (tmp_path / "checkpoints" / "res2net29_seed0.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds 1 trained epoch\(s\) but their checkpoint .* is missing.*--force"):
        train(cfg, tmp_path, resume=True, progress=False)
    assert rec_file.read_bytes() == before
    assert files_under(tmp_path / "checkpoints") == []
    # --force is the way to start afresh
    assert train(cfg, tmp_path, force=True, progress=False)["status"] == "complete"


def test_a_run_stopped_before_its_first_checkpoint_starts_again_on_resume(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, milestones=(2,), checkpoint_every=5)  # the first checkpoint would be the last
    _interrupted_run(tmp_path, monkeypatch, cfg)
    rec = read_record(tmp_path / "res2net29_seed0.json")
    assert rec["epochs"] and rec["checkpoint"] is None and files_under(tmp_path / "checkpoints") == []
    assert train(cfg, tmp_path, resume=True, progress=False)["status"] == "complete"  # nothing lost: none saved


def test_a_checkpoint_older_than_the_record_is_refused_not_resumed_silently(tmp_path, monkeypatch):
    """A GPU block brought back a record of epoch 3 but not its checkpoint, and the epoch-1 checkpoint is still
    here: resuming from it would cut epochs 2-3 out of the record and train them again. Refused, nothing written;
    moving the record away is the explicit way to go back."""
    import shutil

    cfg = tiny_config(epochs=5, milestones=(2,))
    ckpt = tmp_path / "checkpoints" / "res2net29_seed0.pt"
    _interrupted_run(tmp_path, monkeypatch, cfg)  # stopped in epoch 2: the epoch-1 checkpoint
    shutil.copy2(ckpt, tmp_path / "epoch1.pt")
    # resumed from epoch 1, stopped in its third epoch (epoch 4): record and checkpoint at epoch 3
    _interrupted_run(tmp_path, monkeypatch, cfg, stop_at=3, resume=True)
    shutil.copy2(tmp_path / "epoch1.pt", ckpt)  # the newer checkpoint lost, the older one back
    rec_path = tmp_path / "res2net29_seed0.json"
    before = (rec_path.read_bytes(), ckpt.read_bytes())
    assert len(read_record(rec_path)["epochs"]) == 3
    with pytest.raises(FileNotFoundError, match=r"written at epoch 3, but .* is of epoch 1.*--force"):
        train(cfg, tmp_path, resume=True, progress=False)
    assert (rec_path.read_bytes(), ckpt.read_bytes()) == before
    rec_path.rename(tmp_path / "moved-away.json")  # the explicit way: epochs 2-3 are trained again
    assert [e["epoch"] for e in train(cfg, tmp_path, resume=True, progress=False)["epochs"]] == [1, 2, 3, 4, 5]


def test_a_checkpoint_behind_the_record_by_less_than_checkpoint_every_resumes(tmp_path, monkeypatch):
    """With a checkpoint every 2 epochs, a run stopped in epoch 4 has logged 3 epochs and saved epoch 2: the
    normal case, which resumes from epoch 2 (epoch 3 is trained again, to the same numbers on a CPU)."""
    cfg = tiny_config(epochs=4, milestones=(2,), checkpoint_every=2)
    _interrupted_run(tmp_path, monkeypatch, cfg, stop_at=4)
    rec = read_record(tmp_path / "res2net29_seed0.json")
    assert len(rec["epochs"]) == 3 and rec["checkpoint_epoch"] == 2
    done = train(cfg, tmp_path, resume=True, progress=False)
    assert [e["epoch"] for e in done["epochs"]] == [1, 2, 3, 4] and done["status"] == "complete"


# ----------------------------------------------------------------------------- divergence
def test_huge_lr_diverges_into_a_failed_record(tmp_path):
    with pytest.raises(RuntimeError, match=r"diverged.*lower --lr"):
        train(tiny_config(lr=1e6), tmp_path, progress=False)
    rec = read_record(record_path(tmp_path, "res2net29", 0))
    assert rec["status"] == "failed" and rec["final_test_error"] is None
    assert rec["failure"]["type"] == "NonFiniteLoss" and rec["failure"]["epoch"] >= 1
    assert "nan" in rec["failure"]["message"] or "inf" in rec["failure"]["message"]


def test_nan_loss_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import se_res2net.training.data as data_mod

    real = data_mod.augment
    calls = {"n": 0}
    steps_per_epoch = 2  # 60 images, batch 32

    def poisoned(x, g):
        calls["n"] += 1
        out = real(x, g)
        return out * float("nan") if calls["n"] > steps_per_epoch * 2 else out  # epoch 3 goes NaN

    monkeypatch.setattr(data_mod, "augment", poisoned)
    cfg = tiny_config(epochs=4, milestones=(2,), checkpoint_every=2)
    with pytest.raises(RuntimeError, match=r"epoch 3.*last good checkpoint"):
        train(cfg, tmp_path, progress=False)
    rec = read_record(record_path(tmp_path, "res2net29", 0))
    assert rec["status"] == "failed"
    assert rec["failure"] == {"type": "NonFiniteLoss", "message": rec["failure"]["message"], "epoch": 3}
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2]
    ck = load_checkpoint(tmp_path / rec["checkpoint"])
    assert ck["epoch"] == 2 and all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- CLI
def _cli(tmp_path, capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err.strip()
    return rc, err


def test_cli_unknown_model(tmp_path, capsys):
    rc, err = _cli(tmp_path, capsys, "train", "--model", "nope", "--data", "sample", "--out", str(tmp_path / "o"))
    assert rc == 2
    assert len(err.splitlines()) == 1 and "unknown model 'nope'" in err and "se_res2net29" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--epochs", "0"], "epochs must be"),
        (["--epochs", "3", "--schedule", "150", "225"], "lie outside epochs"),
        (["--device", "tpu"], "unknown device"),
        (["--data", "folder", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, match):
    out = tmp_path / "o"
    rc, err = _cli(tmp_path, capsys, "train", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--out", str(out),
                   "--no-progress", *args)
    assert rc == 2 and len(err.splitlines()) == 1 and match in err
    assert files_under(out) == []


def test_cli_divergence_exits_nonzero(tmp_path, capsys):
    rc, err = _cli(tmp_path, capsys, "train", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--subset", "60",
                   "--test-subset", "20", "--epochs", "2", "--batch-size", "32", "--lr", "1e6", "--device", "cpu",
                   "--out", str(tmp_path), "--no-progress")
    assert rc != 0 and "diverged" in err and len(err.splitlines()) == 1


def test_cli_test_with_a_bad_checkpoint(tmp_path, capsys):
    rc, err = _cli(tmp_path, capsys, "test", "--checkpoint", str(tmp_path / "missing.pt"), "--data", "sample")
    assert rc == 2 and "does not exist" in err and len(err.splitlines()) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    rc, err = _cli(tmp_path, capsys, "test", "--checkpoint", str(bad), "--data", "sample")
    assert rc == 2 and "cannot be read" in err and len(err.splitlines()) == 1


def test_a_resume_records_its_own_session_and_trains_with_its_own_sgd_implementation(tmp_path, monkeypatch):
    """A resume entry says of its session what the start's provenance says of the start's (commit, Python,
    threads, the fast-path switches), and the SGD implementation it records is the one that steps: loading the
    checkpoint's optimizer state must not bring back the earlier session's fused/foreach flags."""
    import se_res2net.training.trainer as trainer_mod

    _interrupted_run(tmp_path, monkeypatch, tiny_config(epochs=3, milestones=(2,), sgd_impl="forloop"))
    seen = []
    real = trainer_mod._run_epoch
    monkeypatch.setattr(trainer_mod, "_run_epoch",
                        lambda run: seen.append([g["foreach"] for g in run.optimizer.param_groups]) or real(run))
    rec = train(tiny_config(epochs=3, milestones=(2,), sgd_impl="foreach"), tmp_path, resume=True, progress=False)
    (entry,) = rec["resumes"]
    assert rec["provenance"]["sgd_impl"] == "forloop" and entry["sgd_impl"] == "foreach"
    assert seen and all(flags == [True] for flags in seen)
    for key in ("git_commit", "git_dirty", "python", "platform", "torch_threads", "bf16", "channels_last",
                "compile", "compile_mode"):
        assert key in entry, key
    assert entry["python"] == rec["provenance"]["python"] and entry["bf16"] is False


def test_a_first_checkpoint_that_fails_to_save_does_not_strand_the_run(tmp_path, monkeypatch):
    """A full disk (or Ctrl-C) during the first save: the failed record must not name a checkpoint that was never
    written, or every later resume would refuse it as stranded."""
    import se_res2net.training.checkpoint as ck_mod

    real = ck_mod.save_checkpoint

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck_mod, "save_checkpoint", full_disk)
    cfg = tiny_config(epochs=2, milestones=(1,))
    with pytest.raises(OSError, match="No space left"):
        train(cfg, tmp_path, progress=False)
    rec = read_record(tmp_path / "res2net29_seed0.json")
    assert rec["status"] == "failed" and rec["checkpoint"] is None and len(rec["epochs"]) == 1
    monkeypatch.setattr(ck_mod, "save_checkpoint", real)
    done = train(cfg, tmp_path, resume=True, progress=False)  # nothing to resume from: it starts again
    assert done["status"] == "complete" and done["checkpoint"] == "checkpoints/res2net29_seed0.pt"
    assert load_checkpoint(tmp_path / done["checkpoint"])["record"]["checkpoint"] == done["checkpoint"]


def test_resuming_a_checkpoint_the_changed_model_code_cannot_load_names_the_fix(tmp_path, monkeypatch):
    import se_res2net.training.checkpoint as ck_mod

    cfg = tiny_config(epochs=3, milestones=(2,))
    _interrupted_run(tmp_path, monkeypatch, cfg)
    ckpt = tmp_path / "checkpoints" / "res2net29_seed0.pt"
    real = ck_mod.load_checkpoint

    def other_code(*a, **k):  # as if a layer had been renamed since the checkpoint was written
        data = real(*a, **k)
        data["state_dict"] = {f"renamed.{k}": v for k, v in data["state_dict"].items()}
        return data

    monkeypatch.setattr(ck_mod, "load_checkpoint", other_code)
    before = (tmp_path / "res2net29_seed0.json").read_bytes(), ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"does not fit res2net29 as this code builds it.*--force"):
        train(cfg, tmp_path, resume=True, progress=False)
    assert ((tmp_path / "res2net29_seed0.json").read_bytes(), ckpt.read_bytes()) == before  # nothing written
