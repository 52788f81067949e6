"""The package ships ``py.typed``, which tells every user's type checker to trust its annotations: they must hold.

mypy checks ``se_res2net`` with the configuration in ``pyproject.toml`` ([tool.mypy]): third-party packages are
checked against what they declare, not followed into.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_package_type_checks():
    from mypy import api

    out, err, rc = api.run(["--config-file", str(ROOT / "pyproject.toml"), str(ROOT / "se_res2net")])
    assert rc == 0, f"mypy found type errors in se_res2net:\n{out}{err}"
