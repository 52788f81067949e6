"""The README's commands for running the table are real: each one parses with the CLI it documents."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from se_res2net.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands(section: str):
    text = README.read_text(encoding="utf-8")
    body = text.split(section, 1)[1]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", body.split("\n## ", 1)[0], flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("se-res2net "):
                cmds.append(shlex.split(line)[1:])
    return cmds


def test_the_table_commands_parse():
    cmds = _commands("## Running the table")
    assert len(cmds) >= 5
    parser = build_parser()
    for argv in cmds:
        args = parser.parse_args(argv)
        assert callable(args._run)
    submitit = [parser.parse_args(a) for a in cmds if "--executor" in a]
    assert {a.cluster for a in submitit} == {"slurm", "local"}
    assert any(a.partition == "gpu" and a.gpus_per_job == 1 and a.time == 1440 for a in submitit)


def test_a_wrong_flag_would_be_caught():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--profile", "full", "--gpus-per-node", "1"])
