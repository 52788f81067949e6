"""What a new user sees of the CLI: `--subset` says it is training only and points to `--test-subset`, in the
help, in the README's train example and in the log of a run that uses it."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from se_res2net.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
TINY_ARGS = ["--model-arg", "layers=[1,1,1]", "--model-arg", "planes=[4,8,16]", "--model-arg", "stem_width=8"]


def _help(command: str, option: str) -> str:
    """The help of ``option`` as ``se-res2net COMMAND --help`` shows it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    action = sub._option_string_actions[option]
    assert action.help, f"{command} {option} has no help"
    return action.help


@pytest.mark.parametrize("command", ["train", "parity"])
def test_subset_help_says_training_only_and_points_to_test_subset(command):
    subset = _help(command, "--subset")
    assert "Training only" in subset and "--test-subset M" in subset
    assert "test on M images" in _help(command, "--test-subset")


def test_readme_train_example_mentions_test_subset():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Command line\n+```bash\n(.*?)```", text, flags=re.S).group(1)
    train = block[block.index("se-res2net train "):block.index("se-res2net test ")]
    assert "--subset N" in train and "--test-subset M" in train


def _train(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "runs"
    assert main(["train", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--epochs", "1",
                 "--batch-size", "10", "--device", "cpu", "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "res2net29_seed0.json").read_text(encoding="utf-8"))


def test_subset_alone_trains_on_n_and_tests_on_the_whole_split_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="se_res2net.training.trainer"):
        record = _train(tmp_path, "--subset", "20")
    prov = record["provenance"]
    assert prov["train_size"] == 20 and prov["test_size"] == 100  # the sample's whole test split
    assert "add --test-subset M to test on M images" in caplog.text


def test_test_subset_limits_testing_and_needs_no_hint(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="se_res2net.training.trainer"):
        record = _train(tmp_path, "--subset", "20", "--test-subset", "10")
    prov = record["provenance"]
    assert prov["train_size"] == 20 and prov["test_size"] == 10
    assert "--test-subset M" not in caplog.text


def test_parity_with_one_epoch_is_one_clear_error_that_names_the_fix_and_writes_nothing(tmp_path, capsys):
    """A curve needs two points: ``parity --epochs 1`` stops before training, says which ``--epochs`` works, and
    leaves neither the ``--json`` report nor an ``--out`` folder behind."""
    report, out = tmp_path / "parity.json", tmp_path / "runs"
    code = main(["parity", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--epochs", "1", "--device", "cpu",
                 "--json", str(report), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("se-res2net parity: error:") and "pass --epochs 2 or more" in err[0]
    assert not report.exists() and not out.exists()


def test_parity_noise_seeds_is_in_the_help_and_a_negative_count_names_the_fix(capsys):
    """``--noise-seeds N`` (default 1; 0 = fixed tolerances only) shows in ``se-res2net parity --help``; a negative
    N stops before anything trains, with the values that work."""
    text = _help("parity", "--noise-seeds")
    assert "default 1" in text and "0 = off" in text
    assert build_parser().parse_args(["parity"]).noise_seeds == 1
    with pytest.raises(SystemExit) as stop:
        main(["parity", "--model", "res2net29", *TINY_ARGS, "--data", "sample", "--noise-seeds", "-1"])
    assert stop.value.code == 2
    assert "--noise-seeds: '-1' is not a number of seeds: pass 0 (off: fixed tolerances only) or more" in \
        capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`se-res2net progress | head -1`: once the reader closes the pipe, the command stops with a Unix tool's
    SIGPIPE status and no traceback."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the command's first write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "se_res2net", "progress", "--profile", "smoke", "--out-root",
                               str(tmp_path)], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


@pytest.mark.parametrize("command, extra", [("sweep", ["--profile", "smoke"]), ("progress", []), ("pack", ["out"]),
                                            ("finalize", [])])
def test_every_command_that_reads_the_runs_root_takes_both_spellings(command, extra):
    """`sweep`/`progress` called it --out-root and `pack`/`finalize` --runs-root: a user who learnt one spelling
    got "unrecognized arguments" from the others. Each takes both, for the same setting."""
    parser = build_parser()
    a = parser.parse_args([command, *extra, "--runs-root", "/x/runs"])
    b = parser.parse_args([command, *extra, "--out-root", "/x/runs"])
    assert vars(a) == vars(b)
    assert "/x/runs" in vars(a).values()
