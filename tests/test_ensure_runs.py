"""scripts/ensure-runs.sh (`make runs`, `make book`): what it runs, with a stand-in for `se-res2net` that logs
its calls and writes what a smoke sweep would leave (records and the seed-0 checkpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUB = """#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
if [ "$1" = sweep ]; then
  mkdir -p "$RUNS_ROOT/smoke/checkpoints"
  for m in res2net29 se_res2net29 se_resnet110; do
    echo '{}' > "$RUNS_ROOT/smoke/${m}_seed0.json"; : > "$RUNS_ROOT/smoke/checkpoints/${m}_seed0.pt"
  done
fi
"""


def _ensure_runs(tmp_path: Path, gradcam_present: bool):
    stub = tmp_path / "se-res2net"
    stub.write_text(STUB)
    stub.chmod(0o755)
    gradcam = tmp_path / "gradcam"
    if gradcam_present:
        gradcam.mkdir()
        (gradcam / "gradcam_metrics.json").write_text('{"models": {}}')
    env = dict(os.environ, SE_RES2NET_BIN=str(stub), PY=sys.executable, RUNS_ROOT=str(tmp_path / "runs"),
               GRADCAM_DIR=str(gradcam), STUB_LOG=str(tmp_path / "calls.log"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-runs.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    calls = (tmp_path / "calls.log").read_text().splitlines() if (tmp_path / "calls.log").exists() else []
    return proc, [c.split()[0] for c in calls]


def test_no_records_runs_the_smoke_sweep_then_grad_cam(tmp_path):
    proc, calls = _ensure_runs(tmp_path, gradcam_present=False)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["sweep", "grad-cam"]


def test_an_existing_grad_cam_result_is_kept_when_the_smoke_sweep_runs_again(tmp_path):
    """A Grad-CAM of trained checkpoints in book/gradcam/ is not replaced by the smoke one (records deleted, say)."""
    proc, calls = _ensure_runs(tmp_path, gradcam_present=True)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["sweep"]
    assert "already holds a Grad-CAM result; keeping it" in proc.stdout
    assert (tmp_path / "gradcam" / "gradcam_metrics.json").read_text() == '{"models": {}}'
