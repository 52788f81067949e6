"""The trainer on the embedded sample: records, determinism, evaluation, checkpoints, CLI.

Everything runs on CPU with a tiny Res2Net-29 (``TINY`` overrides, ~15 k parameters)
on a stratified subset of the sample, so each run takes a second or two.
"""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")

from se_res2net.training.checkpoint import load_checkpoint, load_model_from_checkpoint  # noqa: E402
from se_res2net.cli import main  # noqa: E402
from se_res2net.training.records import SCHEMA, EPOCH_KEYS, code_hash, read_record, record_path  # noqa: E402
from se_res2net.training.trainer import (  # noqa: E402
    TrainConfig,
    evaluate,
    evaluate_checkpoint,
    report_milestones,
    train,
)

TINY = {"layers": (1, 1, 1), "planes": (4, 8, 16), "stem_width": 8}
NUMBERS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_error")


def tiny_config(**kw):
    base = dict(
        model="res2net29",
        model_kwargs=TINY,
        epochs=2,
        milestones=(1,),
        batch_size=32,
        data_source="sample",
        train_subset=100,
        test_subset=40,
        device="cpu",
        checkpoint_every=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def numbers(record):
    return [{k: e[k] for k in NUMBERS} for e in record["epochs"]]


# ----------------------------------------------------------------------------- config
def test_config_defaults_are_the_report_protocol():
    c = TrainConfig("se_res2net29")
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (300, 128, 0.1, 0.9, 1e-4)
    assert c.milestones == (150, 225) and c.gamma == 0.1 and not c.nesterov
    assert c.profile == "custom" and c.device == "auto" and c.bf16 is None


def test_config_is_hashable_and_round_trips():
    c = tiny_config(model_kwargs={"planes": [4, 8, 16], "layers": [1, 1, 1], "stem_width": 8})
    assert c == tiny_config()  # lists and dict order are normalised
    assert hash(c) == hash(tiny_config())
    d = c.to_dict()
    assert d["model_kwargs"] == {"layers": [1, 1, 1], "planes": [4, 8, 16], "stem_width": 8}
    assert d["milestones"] == [1]
    json.dumps(d)
    assert TrainConfig.from_dict(d) == c
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**d, "bogus": 1})


def test_report_milestones_scale_the_report_schedule():
    assert report_milestones(300) == (150, 225)
    assert report_milestones(4) == (2, 3)
    assert report_milestones(2) == (1,)
    assert report_milestones(1) == ()


# ----------------------------------------------------------------------------- training
def test_train_writes_a_valid_record_and_checkpoint(tmp_path):
    rec = train(tiny_config(), tmp_path, progress=False)
    path = record_path(tmp_path, "res2net29", 0)
    assert path.is_file()
    on_disk = read_record(path)
    assert on_disk == rec
    assert rec["schema"] == SCHEMA and rec["status"] == "complete" and rec["failure"] is None
    assert rec["model"] == "res2net29" and rec["seed"] == 0 and rec["profile"] == "custom"
    assert rec["model_kwargs"] == {"layers": [1, 1, 1], "planes": [4, 8, 16], "stem_width": 8}
    assert rec["config"]["milestones"] == [1]
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2]
    for e in rec["epochs"]:
        assert set(EPOCH_KEYS) <= set(e)
        assert 0 <= e["train_acc"] <= 100 and 0 <= e["test_error"] <= 100
        # 40 test images: the error is a multiple of 2.5 %
        assert (e["test_error"] / 2.5) == pytest.approx(round(e["test_error"] / 2.5))
    assert rec["epochs"][0]["lr"] == pytest.approx(0.1) and rec["epochs"][1]["lr"] == pytest.approx(0.01)
    assert rec["final_test_error"] == rec["epochs"][-1]["test_error"]
    from se_res2net.models.complexity import count_macs
    from se_res2net.models.registry import create_model

    assert rec["params"] == 15463 and rec["macs"] == count_macs(create_model("res2net29", **TINY))
    prov = rec["provenance"]
    for key in ("package_version", "git_commit", "python", "torch", "cuda", "device", "device_name", "data_source",
                "data_fingerprint", "data_is_sample", "train_size", "test_size", "start_time", "end_time", "wall_time_s"):
        assert key in prov
    assert prov["device"] == "cpu" and prov["data_source"] == "sample" and prov["data_is_sample"] is True
    assert (prov["train_size"], prov["test_size"]) == (100, 40)
    assert prov["start_time"].endswith("Z") and prov["wall_time_s"] > 0
    assert rec["code"] == code_hash()
    # the final checkpoint: relative path in the record, model + full training state inside
    assert rec["checkpoint"] == "checkpoints/res2net29_seed0.pt"
    ck = load_checkpoint(tmp_path / rec["checkpoint"])
    assert ck["epoch"] == 2 and ck["model"] == "res2net29"
    assert {"optimizer", "scheduler", "rng", "record", "config"} <= set(ck)
    assert set(ck["rng"]) == {"torch", "cuda", "order", "augment", "augment_device"}
    assert ck["rng"]["augment_device"] == "cpu"
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_same_seed_gives_bit_identical_epochs_and_another_seed_differs(tmp_path):
    a = train(tiny_config(), tmp_path / "a", progress=False)
    b = train(tiny_config(), tmp_path / "b", progress=False)
    assert numbers(a) == numbers(b)  # exact float equality
    sa = load_checkpoint(tmp_path / "a" / a["checkpoint"])["state_dict"]
    sb = load_checkpoint(tmp_path / "b" / b["checkpoint"])["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train(tiny_config(seed=1), tmp_path / "a", progress=False)
    assert numbers(c) != numbers(a)
    assert (tmp_path / "a" / "res2net29_seed1.json").is_file()


@pytest.mark.parametrize("compacted", [False, True], ids=["plain", "compacted"])
def test_resume_after_a_crash_is_bit_identical(tmp_path, monkeypatch, compacted):
    """In-process variant of the SIGKILL test: evaluation blows up in epoch 3, resume finishes the run; also from
    the checkpoint compacted (as `finalize` and the GPU runbook do to fit one in git) in between."""
    full = train(tiny_config(epochs=4, milestones=(2,)), tmp_path / "full", progress=False)

    import se_res2net.training.trainer as trainer_mod

    real_evaluate = trainer_mod.evaluate
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_evaluate(*args, **kw)

    monkeypatch.setattr(trainer_mod, "evaluate", flaky)
    cfg = tiny_config(epochs=4, milestones=(2,), checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    cut = read_record(record_path(tmp_path / "cut", "res2net29", 0))
    assert cut["status"] == "failed" and cut["failure"]["type"] == "KeyboardInterrupt" and cut["failure"]["epoch"] == 3
    assert load_checkpoint(tmp_path / "cut" / cut["checkpoint"])["epoch"] == 2
    monkeypatch.setattr(trainer_mod, "evaluate", real_evaluate)
    if compacted:
        from se_res2net.training.checkpoint import compact_checkpoint, is_compacted

        before, after = compact_checkpoint(tmp_path / "cut" / cut["checkpoint"])
        assert after < before and is_compacted(tmp_path / "cut" / cut["checkpoint"])

    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "cut", progress=False)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["status"] == "complete" and resumed["failure"] is None
    assert numbers(resumed) == numbers(full)
    assert resumed["final_test_error"] == full["final_test_error"]
    assert [r["epoch"] for r in resumed["resumes"]] == [2]
    # each resume names what trained on from it, as the record's provenance names what started the run
    (resume,) = resumed["resumes"]
    assert {k: resume[k] for k in ("device_name", "torch", "cuda")} == {
        k: resumed["provenance"][k] for k in ("device_name", "torch", "cuda")}


def _cut_after_epoch_1(tmp_path, monkeypatch, out):
    """A 3-epoch run stopped in epoch 2's evaluation: its checkpoint holds epoch 1."""
    import se_res2net.training.trainer as trainer_mod

    real_evaluate, calls = trainer_mod.evaluate, {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_evaluate(*args, **kw)

    cfg = tiny_config(epochs=3, milestones=(2,))
    monkeypatch.setattr(trainer_mod, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, progress=False)
    monkeypatch.setattr(trainer_mod, "evaluate", real_evaluate)
    return cfg, out / "checkpoints" / "res2net29_seed0.pt"


@pytest.mark.parametrize("marked", [True, False], ids=["augment_device", "older-checkpoint"])
def test_a_checkpoint_written_on_cuda_resumes_on_a_cpu_with_a_recorded_fresh_augmentation_stream(
        tmp_path, monkeypatch, marked):
    """A CUDA augmentation generator's state (Philox seed + offset, 16 bytes) cannot set a CPU generator (Mersenne
    Twister, 5,056 bytes): stop 46's CPU sweep of six GPU-started runs failed on it. Such a resume goes on with a
    fresh stream seeded from (seed, epoch, device type), says so in its resume entry, and is itself repeatable;
    the data order and the model's state continue. Here a CPU checkpoint is dressed as a CUDA one: its augmentation
    state replaced by a 16-byte one, marked by its ``augment_device`` or, in checkpoints from before that key, by
    the record's provenance."""
    full = train(tiny_config(epochs=3, milestones=(2,)), tmp_path / "full", progress=False)
    cfg, ck_path = _cut_after_epoch_1(tmp_path, monkeypatch, tmp_path / "cut")
    ck = load_checkpoint(ck_path)
    assert ck["epoch"] == 1
    ck["rng"]["augment"] = torch.zeros(16, dtype=torch.uint8)  # what torch.cuda's generator get_state() returns
    if marked:
        ck["rng"]["augment_device"] = "cuda"
    else:
        del ck["rng"]["augment_device"]
        ck["record"]["provenance"]["device"] = "cuda"
    torch.save(ck, ck_path)
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(tmp_path / "cut", copy)

    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["status"] == "complete"
    (entry,) = resumed["resumes"]
    rng = entry["augment_rng"]
    assert rng["restored"] is False and rng["checkpoint_device"] == "cuda" and rng["device"] == "cpu"
    assert isinstance(rng["seed"], int)
    assert numbers(resumed)[0] == numbers(full)[0]  # the epoch before the resume is the checkpoint's
    # other crops and flips from epoch 2 on: the training loss differs from the uninterrupted run's
    assert [e["train_loss"] for e in resumed["epochs"][1:]] != [e["train_loss"] for e in full["epochs"][1:]]
    again = train(cfg, copy, resume=True, progress=False)  # the same resume gives the same numbers
    assert numbers(again) == numbers(resumed)
    assert again["resumes"][0]["augment_rng"] == rng


def test_a_resume_on_the_same_device_type_restores_the_augmentation_stream(tmp_path, monkeypatch):
    cfg, _ = _cut_after_epoch_1(tmp_path, monkeypatch, tmp_path / "cut")
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["resumes"][0]["augment_rng"] == {"restored": True, "device": "cpu"}
    assert numbers(resumed) == numbers(train(tiny_config(epochs=3, milestones=(2,)), tmp_path / "full",
                                             progress=False))


def test_resume_from_the_final_checkpoint_only_writes_the_record(tmp_path):
    cfg = tiny_config()
    rec = train(cfg, tmp_path, progress=False)
    path = record_path(tmp_path, "res2net29", 0)
    path.unlink()  # killed between the final checkpoint and the final record
    again = train(cfg, tmp_path, resume=True, progress=False)
    assert again["status"] == "complete" and numbers(again) == numbers(rec)
    assert read_record(path)["status"] == "complete"


def test_record_name_and_complete_record_is_returned(tmp_path, caplog):
    cfg = tiny_config(epochs=1, milestones=())
    rec = train(cfg, tmp_path, progress=False, record_name="tiny_run")
    assert (tmp_path / "tiny_run.json").is_file() and rec["checkpoint"] == "checkpoints/tiny_run.pt"
    before = (tmp_path / "tiny_run.json").read_bytes()
    with caplog.at_level("INFO", logger="se_res2net.training.trainer"):
        again = train(cfg, tmp_path, progress=False, record_name="tiny_run")
    assert again == rec and (tmp_path / "tiny_run.json").read_bytes() == before
    assert "skipping" in caplog.text


# ----------------------------------------------------------------------------- evaluate / checkpoints
def test_evaluate_restores_mode_and_matches_a_manual_loop():
    from se_res2net import create_model
    from se_res2net.training.data import load_cifar10, normalize

    data = load_cifar10("sample", progress=False).subset(test=30)
    torch.manual_seed(0)
    model = create_model("res2net29", **TINY)
    model.train()
    loss, err = evaluate(model, data.test.images, data.test.labels, "cpu", batch_size=7)
    assert model.training
    model.eval()
    with torch.no_grad():
        out = model(normalize(torch.from_numpy(data.test.images)))
    y = torch.from_numpy(data.test.labels)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert err == pytest.approx(100.0 * (out.argmax(1) != y).sum().item() / 30)


def test_checkpoint_reloads_to_the_recorded_test_error(tmp_path):
    rec = train(tiny_config(), tmp_path, progress=False)
    model, ck = load_model_from_checkpoint(tmp_path / rec["checkpoint"])
    assert not model.training and ck["model_kwargs"] == TINY
    result = evaluate_checkpoint(tmp_path / rec["checkpoint"], "sample", test_subset=40, device="cpu")
    assert result["test_error"] == rec["final_test_error"]
    assert result["test_loss"] == pytest.approx(rec["epochs"][-1]["test_loss"], rel=1e-6)
    assert result["data_is_sample"] is True and result["test_size"] == 40
    # the checkpoint's own record holds what training measured at this epoch, and where: compared here
    assert result["reproduces_record"] is True and result["record"]["test_error"] == rec["final_test_error"]
    assert result["record"]["evaluated_on"] == rec["provenance"]["device_name"]
    assert result["evaluated_on"]["device_name"] == rec["provenance"]["device_name"]
    assert len(result["checkpoint_sha256"]) == 64
    other = evaluate_checkpoint(tmp_path / rec["checkpoint"], "sample", test_subset=30, device="cpu")
    assert other["reproduces_record"] is None  # not the images the record was measured on: no verdict


def test_se_res2net_test_says_when_a_checkpoint_does_not_reproduce_its_record(tmp_path, capsys):
    import torch

    rec = train(tiny_config(epochs=1, milestones=()), tmp_path, progress=False)
    ck = torch.load(tmp_path / rec["checkpoint"], weights_only=False)
    assert main(["test", str(tmp_path / rec["checkpoint"]), "--device", "cpu"]) == 0
    assert "reproduces the record's test error at epoch 1" in capsys.readouterr().out
    ck["record"]["epochs"][-1]["test_error"] += 2.5  # a record that does not belong to these weights
    doctored = tmp_path / "doctored.pt"
    torch.save(ck, doctored)
    assert main(["test", str(doctored), "--device", "cpu"]) == 0
    assert "DOES NOT reproduce the record's test error" in capsys.readouterr().out


def test_the_device_of_an_epoch_is_the_one_that_trained_it_across_resumes():
    from se_res2net.training.trainer import epoch_device

    record = {"provenance": {"device_name": "AMD EPYC"},
              "resumes": [{"epoch": 7, "device_name": "NVIDIA H200"}, {"epoch": 19, "device_name": "NVIDIA H100"}]}
    assert [epoch_device(record, e) for e in (1, 7, 8, 19, 20, 30)] == [
        "AMD EPYC", "AMD EPYC", "NVIDIA H200", "NVIDIA H200", "NVIDIA H100", "NVIDIA H100"]


# ----------------------------------------------------------------------------- CLI
TINY_ARGS = ["--model-arg", "layers=[1,1,1]", "--model-arg", "planes=[4,8,16]", "--model-arg", "stem_width=8"]


def test_cli_train_then_test(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["train", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--subset", "100", "--test-subset", "40",
            "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--out", str(out), "--no-progress",
            "--checkpoint-every", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "res2net29_seed0: test error" in printed and "SAMPLE" in printed
    rec = read_record(out / "res2net29_seed0.json")
    assert rec["config"]["milestones"] == [1]  # default: the report's schedule scaled to 2 epochs
    assert rec["config"]["weight_decay"] == 1e-4 and rec["config"]["lr"] == 0.1
    assert rec["config"]["model_kwargs"] == {"layers": [1, 1, 1], "planes": [4, 8, 16], "stem_width": 8}
    # a second call skips
    assert main(argv) == 0
    assert capsys.readouterr().out == printed
    # test command
    assert main(["test", "--checkpoint", str(out / rec["checkpoint"]), "--data", "sample", "--test-subset", "40",
                 "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_error"] == rec["final_test_error"]


def test_cli_schedule_flag(tmp_path):
    from se_res2net.cli import build_parser
    from se_res2net.training.trainer import config_from_args

    p = build_parser()
    args = p.parse_args(["train", "--model", "se_res2net29", "--epochs", "300", "--batch-size", "128", "--lr", "0.1",
                         "--schedule", "150", "225", "--wd", "1e-4", "--seed", "0"])
    c = config_from_args(args)
    assert c == TrainConfig("se_res2net29", data_source="auto")
    assert config_from_args(p.parse_args(["train", "--model", "res2net29", "--epochs", "3", "--schedule"])).milestones == ()
    assert os.fspath(args.out) == "runs/custom"


def test_augmentation_is_a_recorded_setting_that_changes_training(tmp_path):
    """augment="none" trains on the un-augmented images (other numbers), and the record says so: a run
    without the report's augmentation can never pass for one of its profiles (se_res2net.audit.conformance)."""
    from se_res2net.audit.conformance import deviations

    with_aug = train(tiny_config(epochs=1, milestones=()), tmp_path / "a", progress=False)
    without = train(tiny_config(epochs=1, milestones=(), augment="none"), tmp_path / "b", progress=False)
    assert with_aug["config"]["augment"] == "crop4-flip" and without["config"]["augment"] == "none"
    assert numbers(with_aug)[0]["train_loss"] != numbers(without)[0]["train_loss"]
    assert any("augmentation 'none'" in d for d in deviations(without, "smoke"))
    with pytest.raises(ValueError, match="augment must be one of"):
        tiny_config(augment="mixup")
