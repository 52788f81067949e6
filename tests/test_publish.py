"""`make publish` pushes the built site to the gh-pages branch (ghp-import), building it first when absent.

Run for real in a scratch repository whose `origin` is a bare repository on disk: this checkout's Makefile,
ghp-import from the dev extras, a stand-in site (building the real book takes minutes; `make book` has its
own tests) and `make setup` already done (its marker newer than pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A checkout with `origin`, a finished `make setup` whose .venv has this environment's ghp-import."""
    ghp = Path(sys.executable).parent / "ghp-import"
    if not ghp.is_file():
        pytest.fail(f"ghp-import is not installed: run {sys.executable} -m pip install -e '.[dev]' (or make setup)")
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    _git("add", "Makefile", "pyproject.toml", cwd=work)
    _git("commit", "-q", "-m", "init", cwd=work)
    _git("remote", "add", "origin", str(origin), cwd=work)
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "ghp-import").symlink_to(ghp)
    (work / ".venv" / ".installed").touch()
    os.utime(work / "pyproject.toml", (1_000_000_000, 1_000_000_000))  # setup is up to date
    return work


def _env() -> dict:
    ident = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return {**os.environ, **ident}


def _make(clone: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=clone, env=_env(),
                          capture_output=True, text=True, timeout=300)


def test_publish_pushes_the_built_site_to_gh_pages(clone: Path):
    site = clone / "book" / "_build" / "html"
    (site / "_static").mkdir(parents=True)
    (site / "index.html").write_text("<h1>the audit</h1>\n")
    (site / "_static" / "book.css").write_text("body {}\n")
    proc = _make(clone, "publish")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "jupyter-book" not in proc.stdout  # a site was there: no rebuild
    origin = clone.parent / "origin.git"
    files = _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=origin).split()
    assert sorted(files) == [".nojekyll", "_static/book.css", "index.html"]  # -n: .nojekyll, so _static/ is served
    assert _git("show", "gh-pages:index.html", cwd=origin) == "<h1>the audit</h1>\n"
    assert _git("branch", "--list", "main", cwd=origin) == ""  # only gh-pages was pushed


def test_publish_builds_the_book_first_when_there_is_no_site(clone: Path):
    # -n: print the commands; the recursive `$(MAKE) book` still runs (with -n), so its recipe shows too
    proc = _make(clone, "-n", "publish")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "jupyter-book build book" in out and "ghp-import -n -p -f book/_build/html" in out
    assert out.index("jupyter-book build book") < out.index("ghp-import")
