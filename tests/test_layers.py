"""The package's three layers point one way: models <- training <- audit (CONTRIBUTING.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "se_res2net"
RANK = {"models": 0, "training": 1, "audit": 2}


def layer_imports(path: Path) -> set[str]:
    """The layers a module imports from (relative or absolute, at any depth of the file)."""
    layer = path.parent.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and path.parent != PKG:
                found.add(layer)
            elif node.level >= 2 or (node.level == 1 and path.parent == PKG):
                head = (node.module or "").split(".")[0]
                names = [head] if head else [a.name for a in node.names]
                found.update(n for n in names if n in RANK)
            elif node.module and node.module.startswith("se_res2net."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("se_res2net."))
    return {f for f in found if f in RANK}


MODULES = sorted(p for layer in RANK for p in (PKG / layer).glob("*.py"))


def test_every_module_sits_in_a_layer():
    flat = sorted(p.name for p in PKG.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "_version.py", "cli.py"], flat
    assert len(MODULES) > 20


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_imports_from_a_layer_above_its_own(path):
    above = {dep for dep in layer_imports(path) if RANK[dep] > RANK[path.parent.name]}
    assert not above, f"{path.relative_to(PKG.parent)} imports from {sorted(above)}, a layer above its own"


def test_the_check_sees_relative_and_absolute_imports(tmp_path):
    fake = tmp_path / "se_res2net" / "models" / "m.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..audit import claims\n    import se_res2net.training.data\n")
    global PKG
    saved, PKG = PKG, tmp_path / "se_res2net"
    try:
        assert layer_imports(fake) == {"audit", "training"}
    finally:
        PKG = saved
