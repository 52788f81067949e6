"""The README's commands are real: the table's commands parse with the CLI they document, and the
papermill command runs, as written, from the repository root of a fresh clone after ``make setup``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from se_res2net.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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
        assert args._run.__name__ == f"run_{COMMANDS[argv[0]][1]}", argv  # dispatched to its own command
    submitit = [parser.parse_args(a) for a in cmds if "--executor" in a]
    assert {a.cluster for a in submitit} == {"slurm", "local"}
    assert any(a.partition == "gpu" and a.gpus_per_job == 1 and a.time == 1440 for a in submitit)


def test_a_wrong_flag_would_be_caught():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--profile", "full", "--gpus-per-node", "1"])


# --------------------------------------------------------------------------------------------------
# "Papermill per seed": the README's block, run as a new user would paste it
# --------------------------------------------------------------------------------------------------

PAPERMILL_OUT = "book/runs/budget"  # the output folder the README's command writes to
TINY = " -p data_source sample -p epochs 1"  # the README's own "try it on the sample" suffix


def _bash_block(section: str) -> str:
    """The first fenced ```bash block under ``section`` (a README heading)."""
    body = README.read_text(encoding="utf-8").split(section, 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    assert blocks, f"README: no bash block under {section!r}"
    return blocks[0]


def _shell_without_venv() -> dict:
    """The environment of a fresh shell: no activated venv (neither VIRTUAL_ENV nor its bin/ on PATH) and
    no dataset configured, so the command must name its tools itself and the run uses the embedded sample."""
    venv_bins = {str(Path(sys.executable).parent), str(ROOT / ".venv" / "bin"),
                 str(Path(sys.executable).resolve().parent)}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SE_RES2NET_DATA_DIR")}
    env["PATH"] = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                                  if d and d not in venv_bins and not d.startswith(str(ROOT / ".venv")))
    return env


@pytest.mark.slow
def test_the_papermill_command_runs_as_written(tmp_path: Path):
    block = _bash_block("### Papermill per seed")
    assert PAPERMILL_OUT in block, f"README's papermill block no longer writes to {PAPERMILL_OUT}; update this test"
    if ".venv/bin/" in block and not (ROOT / ".venv" / "bin").is_dir():
        pytest.fail("the README's papermill command runs the tools of `make setup`'s .venv: run `make setup` first")
    # The same lines, pointed at a folder that does not exist yet (as book/runs/budget in a fresh clone),
    # with the tiny budget the README documents appended to the papermill line.
    out = tmp_path / PAPERMILL_OUT
    lines = block.replace("\\\n", " ").replace(PAPERMILL_OUT, str(out)).splitlines()
    runs = [i for i, line in enumerate(lines) if re.match(r"\s*\S*papermill\s", line)]
    assert len(runs) == 1, f"expected one papermill line in the README block, got {len(runs)}"
    lines[runs[0]] = lines[runs[0]].split(" #", 1)[0] + TINY
    script = "\n".join(lines)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=_shell_without_venv(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"README papermill block failed ({proc.returncode}):\n{script}\n{proc.stderr[-3000:]}"

    notebook = out / "se_res2net29_seed1.ipynb"
    assert notebook.is_file()
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    executed = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert executed and all(c.get("execution_count") for c in executed), "the notebook was not executed to the end"
    record = json.loads((out / "se_res2net29_seed1.json").read_text(encoding="utf-8"))
    assert record["status"] == "complete"
    assert (record["model"], record["seed"], record["profile"]) == ("se_res2net29", 1, "budget")
    assert len(record["epochs"]) == 1 and record["provenance"]["data_is_sample"] is True


# --------------------------------------------------------------------------------------------------
# Links: nothing outside the repository
# --------------------------------------------------------------------------------------------------


def test_readme_links_stay_inside_the_repository():
    """A clone has no sibling folders: the README cites the audited report as an unpublished technical
    report (quoted in the book), and every relative link it has resolves to a file of this repository."""
    text = README.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/seeds" not in text and "shared/data" not in text
    assert '"SE-Res2Net: Lightweight Multi-Scale CNN with Channel-Wise Excitation"' in " ".join(text.split())
    assert "unpublished technical report" in text
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README links to {target}, not a file of the repo"


def test_sample_readme_names_each_commands_flag():
    sample = (ROOT / "se_res2net" / "_sample" / "README.txt").read_text(encoding="utf-8")
    assert "se-res2net data --source sample" in sample
    assert "take  --data sample" in sample


def test_the_command_line_section_names_every_command():
    """Each sub-command the CLI registers is shown in the README's command list (a new one is not hidden)."""
    section = README.read_text(encoding="utf-8").split("## Command line", 1)[1].split("\n## ", 1)[0]
    missing = [c for c in COMMANDS if not re.search(rf"se-res2net {re.escape(c)}\b", section)]
    assert not missing, f"README's 'Command line' section does not show: {missing}"
