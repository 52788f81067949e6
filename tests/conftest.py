import os
from pathlib import Path

import pytest

# Two cores on CI: one thread per test process keeps timings stable and avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


def pytest_runtest_setup(item):
    """`@pytest.mark.needs_shared(path, ...)`: skip when a path of ../shared (or $SE_RES2NET_DATA_DIR) is absent."""
    for mark in item.iter_markers("needs_shared"):
        missing = [str(p) for p in mark.args if not Path(p).exists()]
        if missing:
            pytest.skip(f"needs {', '.join(missing)}, which this machine lacks")


def pytest_terminal_summary(terminalreporter):
    """A clone without ../shared passes with tests left out: say which, in a section of its own."""
    missed = [r for r in terminalreporter.stats.get("skipped", []) if "needs_shared" in r.keywords]
    if missed:
        terminalreporter.section(f"NOT RUN: {len(missed)} test(s) need ../shared", sep="!", yellow=True, bold=True)
        for r in missed:
            terminalreporter.line(f"{r.nodeid}: {r.longrepr[2].removeprefix('Skipped: ')}")
        terminalreporter.line("tests/test_data.py checks the same data behaviour on the embedded sample. To run "
                              "these: put shared/ beside the checkout or set SE_RES2NET_DATA_DIR to the CIFAR-10 dir.")
