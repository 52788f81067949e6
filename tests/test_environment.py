"""environment.yml says it holds "the same dependencies as pyproject.toml": the same packages, each with the same
version bounds, so that a conda user gets what a pip user gets."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda's name → the package index's


def _pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out = {}
    for text in reqs:
        r = Requirement(text)
        if r.name != project["name"]:  # "se-res2net[book]": the dev extra pulls in the book extra
            out[r.name.lower()] = str(r.specifier)
    return out


def _environment_requirements():
    deps = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))["dependencies"]
    listed = []
    for d in deps:
        listed += d["pip"] if isinstance(d, dict) else [d]
    out = {}
    for text in listed:
        if text in ("pip", "-e .") or text.startswith("python"):
            continue
        r = Requirement(text.split("#")[0].strip())
        out[CONDA_NAMES.get(r.name.lower(), r.name.lower())] = str(r.specifier)
    return out


def test_environment_yml_lists_what_pyproject_requires_with_the_same_bounds():
    want, have = _pyproject_requirements(), _environment_requirements()
    assert sorted(set(want) - set(have)) == [], "in pyproject.toml, missing from environment.yml"
    assert sorted(set(have) - set(want)) == [], "in environment.yml, not in pyproject.toml"
    differ = {name: (want[name], have[name]) for name in want if want[name] != have[name]}
    assert differ == {}, "version bounds differ (pyproject.toml, environment.yml)"
