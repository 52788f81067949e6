"""The GitHub workflows lint clean, and the Pages workflow builds and deploys the book.

Two linters, both wheels from the dev extras (``make setup`` installs them): ``check-jsonschema`` validates
each workflow against GitHub's workflow schema (keys, types, permission levels), and ``zizmor`` audits what
the schema cannot see (credentials left in the checkout, permissions, unpinned actions, injection), with
the policy in ``.github/zizmor.yml``. Any finding fails. A missing linter fails too, naming the install
command: a lint that silently skips is a lint that never runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
PAGES = ROOT / ".github" / "workflows" / "deploy-book.yml"
INSTALL = f"{sys.executable} -m pip install -e '.[dev]'  (or: make setup)"


def _tool(name: str) -> str:
    """The linter's executable: beside this interpreter (the venv's bin/, not on PATH unless activated),
    else on PATH; else fail with the command that installs it."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"the workflow linter {name!r} is not installed: run {INSTALL}")
    return found


def _lint(argv: List[str]) -> None:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} found problems:\n{proc.stdout}\n{proc.stderr}"


def test_there_are_workflows_to_lint():
    assert PAGES in WORKFLOWS


def test_workflows_match_githubs_schema():
    _lint([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)])


def test_workflows_pass_zizmor():
    _lint([_tool("zizmor"), "--offline", "--no-progress", "--config", str(ROOT / ".github" / "zizmor.yml"),
           *map(str, WORKFLOWS)])


def test_pages_workflow_builds_the_book_and_deploys_it():
    """The steps of Jupyter Book 1.x's GitHub Pages recipe, in order, on the committed records only."""
    wf = yaml.safe_load(PAGES.read_text(encoding="utf-8"))
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert wf["concurrency"]["group"] == "pages"
    (job,) = wf["jobs"].values()
    assert job["permissions"]["pages"] == "write" and job["permissions"]["id-token"] == "write"
    assert job["environment"]["name"] == "github-pages"
    steps = job["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    runs = "\n".join(s.get("run", "") for s in steps)
    order = ["actions/checkout", "actions/setup-python", "actions/upload-pages-artifact", "actions/deploy-pages"]
    assert [u for u in uses if u in order] == order
    assert "jupyter-book build book" in runs
    assert "se-res2net sweep" not in runs and "ensure-runs" not in runs  # built from the committed records
    upload = steps[uses.index("actions/upload-pages-artifact")]
    assert upload["with"]["path"] == "book/_build/html"
    build_at = next(i for i, s in enumerate(steps) if "jupyter-book build book" in s.get("run", ""))
    assert build_at < uses.index("actions/upload-pages-artifact")
