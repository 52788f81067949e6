"""With no CIFAR-10 configured, every command fails with one line that names fixes spelled for *that* command.

``se-res2net data`` picks its source with ``--source``; ``train``, ``test``, ``sweep``, ``grad-cam``, ``bench`` and
``parity`` with ``--data``. Only some commands can download. The Python API and the run notebook have their own
spellings. Each test runs the real command with no source present, reads the fix from the error, applies it,
and checks that the fixed command gets past the data step.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import List

import pytest

import se_res2net.training.data as d
from se_res2net.cli import DATA_FLAGS, build_parser, main

TINY_ARGS = ["--model-arg", "layers=[1,1,1]", "--model-arg", "planes=[4,8,16]", "--model-arg", "stem_width=8"]


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """A machine with no CIFAR-10: no SE_RES2NET_DATA_DIR, no torchvision copy."""
    monkeypatch.delenv(d.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(d, "DEFAULT_TORCHVISION_ROOT", tmp_path / "no_torchvision")
    return tmp_path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A tiny checkpoint (trained on the sample, but recorded as data source auto so `test` looks for CIFAR-10)."""
    out = tmp_path / "ck"
    assert main(["train", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--subset", "20", "--test-subset",
                 "10", "--epochs", "1", "--batch-size", "10", "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    return out / "checkpoints" / "res2net29_seed0.pt"


def _error(capsys, argv: List[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2, f"{argv} should fail with exit code 2"
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"not one line: {err!r}"
    return err


def _sample_fix(err: str) -> List[str]:
    """The flag the error tells the user to add for the embedded sample, e.g. ['--data', 'sample']."""
    m = re.search(r"\(3\) pass (.+?) for a smoke run", err)
    assert m, f"no sample fix in {err!r}"
    return shlex.split(m.group(1))


def _argv(command: str, tmp: Path, checkpoint: Path | None = None) -> List[str]:
    return {
        "data": ["data", "--no-cache", "--no-progress"],
        "train": ["train", "--model", "res2net29", *TINY_ARGS, "--subset", "20", "--test-subset", "10", "--epochs", "1",
                  "--batch-size", "10", "--device", "cpu", "--out", str(tmp / "train"), "--no-progress"],
        "test": ["test", str(checkpoint), "--data", "auto", "--device", "cpu"],
        "sweep": ["sweep", "--profile", "budget", "--models", "res2net29", "--seeds", "0", "--out-root",
                  str(tmp / "sweep"), "--no-progress"],
        "parity": ["parity", "--model", "res2net29", *TINY_ARGS, "--variants", "bf16", "--epochs", "3", "--batch-size",
                   "10", "--subset", "20", "--test-subset", "10", "--device", "cpu"],
        "bench": ["bench", "--models", "res2net29", "--data", "auto", "--variants", "eager", "--steps", "1",
                  "--warmup", "0", "--batch-size", "8", "--device", "cpu"],
        "grad-cam": ["grad-cam", "--checkpoint", str(checkpoint), "--out-dir", str(tmp / "cam"), "--device", "cpu"],
    }[command]


@pytest.mark.parametrize("command", ["data", "train", "test", "sweep", "parity", "bench", "grad-cam"])
def test_the_error_names_the_fix_of_the_command_run(command, no_data, capsys, request):
    ck = request.getfixturevalue("checkpoint") if command in ("test", "grad-cam") else None
    err = _error(capsys, _argv(command, no_data, ck))
    assert err.startswith(f"se-res2net {command}: error: no CIFAR-10 source found")
    data_dir, download, sample = DATA_FLAGS[command]
    assert f"pass {sample} for a smoke run" in err
    wrong = "--data sample" if command == "data" else "--source sample"
    assert wrong not in err, f"{command} names another command's flag: {err}"
    assert f"pass {data_dir} or set SE_RES2NET_DATA_DIR=DIR" in err
    if download:
        assert f"pass {download} to fetch it" in err
    else:  # a command with no download switch: the data command fetches it once, then auto finds it
        assert "--download to fetch" not in err and "se-res2net data --source torchvision --download" in err
    assert "data_dir=" not in err and 'source="sample"' not in err  # no Python spelling on the command line


@pytest.mark.parametrize("command", ["data", "train"])
def test_the_named_sample_fix_works(command, no_data, capsys):
    argv = _argv(command, no_data)
    fix = _sample_fix(_error(capsys, argv))
    assert main(argv + fix) == 0


@pytest.mark.slow
def test_the_named_sample_fix_works_for_a_sweep(no_data, capsys):
    argv = _argv("sweep", no_data) + ["--set", "epochs=1", "--set", "train_subset=20", "--set", "test_subset=10"]
    fix = _sample_fix(_error(capsys, argv))
    assert fix == ["--data", "sample"]
    assert main(argv + fix) == 0
    assert (no_data / "sweep" / "budget" / "res2net29_seed0.json").is_file()


def test_sweep_data_and_set_data_source_must_agree(no_data, capsys):
    argv = _argv("sweep", no_data) + ["--data", "sample", "--set", "data_source=folder"]
    err = _error(capsys, argv)
    assert "--data sample and --set data_source=folder disagree" in err


def test_train_config_names_the_notebook_parameters(no_data):
    """TrainConfig fields are the run notebook's papermill parameters: `-p data_source sample` works there."""
    from se_res2net.training.trainer import TrainConfig, train

    with pytest.raises(d.NoDataSourceError) as exc:
        train(TrainConfig(model="res2net29", epochs=1, milestones=(), device="cpu"), no_data / "runs", progress=False)
    msg = str(exc.value)
    assert 'data_source="sample"' in msg and "data_dir=DIR" in msg
    assert "se-res2net data --source torchvision --download" in msg  # the notebook has no download parameter
    assert not (no_data / "runs" / "res2net29_seed0.json").exists()


def test_every_data_command_has_its_spelling_and_the_flags_exist():
    """DATA_FLAGS covers every command that reads CIFAR-10 (those with --data-dir), and each flag it names
    is an option of that command whose choices accept the value (so a renamed flag breaks this test)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    readers = {name for name, p in subparsers.items() if "--data-dir" in p._option_string_actions}
    assert readers == set(DATA_FLAGS)
    for name, flags in DATA_FLAGS.items():
        options = subparsers[name]._option_string_actions
        for flag in filter(None, flags):
            opt, *value = flag.split()
            assert opt in options, f"{name}: {opt} is not an option"
            choices = options[opt].choices
            if value and value[0] != "DIR" and choices is not None:
                assert value[0] in choices, f"{name}: {flag} is not accepted"
