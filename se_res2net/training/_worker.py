"""A sweep worker process: ``python -m se_res2net.training._worker RUN.pkl OUTCOME.json``.

Runs :func:`se_res2net.training.sweep.run_one` for the pickled run and writes its outcome as JSON. It asks the kernel
to kill it when the sweep that started it dies (``PR_SET_PDEATHSIG``; Linux), so no worker outlives a killed
sweep and goes on executing a run that the restarted sweep executes too.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pickle
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover (not Linux): the kernel's own parent poller remains
        return
    parent = os.environ.get("SE_RES2NET_PARENT_PID")
    if parent and os.getppid() != int(parent):  # the sweep died before prctl took effect
        os._exit(1)


def main(argv: list) -> int:
    _die_with_parent()
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    from se_res2net.training.atomic import atomic_write_text
    from se_res2net.training.sweep import run_one

    spec = pickle.loads(spec_path.read_bytes())
    outcome = run_one(spec["run"], force=spec["force"])
    atomic_write_text(result_path, json.dumps(outcome.to_dict()))
    print(f"{outcome.name}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
