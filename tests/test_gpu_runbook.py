"""The GPU runbook, rehearsed end to end on CPU with the embedded sample standing in for CIFAR-10.

The same steps a GPU block runs, in the same order, each as its own command (as each device call is):
split the data into parts and carry them in separate "calls", stash, setup (join, checksum and fingerprint,
offline wheel install, versions), bench, start the sweep detached, watch its progress, stop it mid-run, pack
(the unfinished run's checkpoint comes back), start it again to the end, pack again within the limits of
8 archives x 16 MiB, and unpack on "this side" exactly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from se_res2net.training.checkpoint import is_compacted, load_checkpoint, same_payload
from se_res2net.training.records import read_record

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "scripts" / "gpu-runbook.sh"
SAMPLE = ROOT / "se_res2net" / "_sample" / "cifar10"


def _probe_wheel(dest: Path) -> Path:
    """A minimal pure-Python wheel (the stand-in for the wheels the GPU machine lacks)."""
    name, version = "runbook_probe", "0.1"
    files = {
        f"{name}/__init__.py": b"OK = 'installed offline by the runbook'\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for p, d in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    files[f"{name}-{version}.dist-info/RECORD"] = record.encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
    return wheel


class Runbook:
    def __init__(self, tmp: Path):
        self.home = tmp / "gpu_home"
        self.runs = tmp / "runs"
        self.site = tmp / "site"
        # a compile cache of its own: these tests cut compiles short, and a truncated artifact in the shared
        # cache would fail the next compile of any other test
        # SEED_RUNS: none (the real checkout's committed smoke runs would be skipped as complete); PRIOR_RESULTS:
        # none (a committed result of this very machine would be taken instead of measured)
        self.env = dict(os.environ, RUNBOOK_HOME=str(self.home), RUNS_ROOT=str(self.runs), PY=sys.executable,
                        SEED_RUNS=str(tmp / "no_seed"), PRIOR_RESULTS=str(tmp / "no_prior"),
                        PIP_TARGET=str(self.site), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT),
                        TORCHINDUCTOR_CACHE_DIR=str(tmp / "inductor"))
        self.env.pop("SE_RES2NET_DATA_DIR", None)

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(["bash", str(RUNBOOK), *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"runbook {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def _wait(predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _archives(out: Path):
    files = sorted(out.iterdir())
    assert 1 <= len(files) <= 8 and all(f.name.startswith("results-") for f in files)
    assert all(f.stat().st_size <= 16 * 1024 * 1024 for f in files)
    members = {}
    for f in files:
        with tarfile.open(f) as tar:
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    return members


# what `block` starts once it has decided, small enough for CPU: one tiny run, and a tiny parity check
TINY_SWEEP = ["--profile", "smoke", "--models", "res2net29", "--seeds", "0", "--threads", "1", "--device", "cpu",
              "--set", "epochs=1", "--set", "batch_size=16", "--set", "train_subset=32", "--set", "test_subset=16"]
CPU_PARITY = dict(PARITY_DEVICE="cpu", PARITY_VARIANTS="cuda_defaults", PARITY_EPOCHS="2", PARITY_SUBSET="64",
                  PARITY_TEST_SUBSET="32", PARITY_ARGS="--batch-size 16", PARITY_NOISE_SEEDS="2")


FAKE_MPS = r"""#!/usr/bin/env bash
# a stand-in for nvidia-cuda-mps-control: -d makes the control pipe; commands come on stdin
pipe=${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}; logs=${CUDA_MPS_LOG_DIRECTORY:-/var/log/nvidia-mps}
if [ "${1:-}" = -d ]; then
  [ -e "$pipe/control" ] && exit 1
  mkdir -p "$pipe" "$logs"; : > "$pipe/control"; echo "control daemon started" >> "$logs/control.log"; exit 0
fi
[ -e "$pipe/control" ] || { echo "Cannot find MPS control daemon process" >&2; exit 1; }
while read -r cmd; do
  case $cmd in
    quit) rm -f "$pipe/control" ;;
    get_server_list) cat "$pipe/servers" 2> /dev/null || true ;;
  esac
done
"""


def _fake_mps(rb: Runbook, tmp: Path) -> None:
    """Put the stand-in daemon first on the runbook's PATH."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-cuda-mps-control").write_text(FAKE_MPS)
    (bin_dir / "nvidia-cuda-mps-control").chmod(0o755)
    rb.env["PATH"] = f"{bin_dir}:{rb.env['PATH']}"


def _run_block(rb: Runbook, *sweep: str) -> str:
    """`block` (it returns at once: the work is detached) until it is done, then `stop` the sweep it started.
    Returns what this block wrote to its log (an earlier block's lines are in the same file)."""
    log = rb.home / "logs" / "block.log"
    start = log.stat().st_size if log.exists() else 0
    assert "block started" in rb("block", *sweep).stdout
    new = lambda: log.read_bytes()[start:].decode() if log.exists() else ""  # noqa: E731
    _wait(lambda: "block done" in new(), timeout=1200)  # above any BENCH_SECONDS set here
    rb("stop", check=False)
    return new()


def _measured_before(rb: Runbook, here: dict, conc_steps: int) -> Path:
    """What the rule needs, as a block on this machine left it in results/ (returned): every model's bench (eager
    fastest) with 0 warm-up + 1 timed step, and se_res2net29's concurrency (2 processes best) with ``conc_steps``."""
    results = rb.home / "results"
    results.mkdir(parents=True)
    for m in ["se_res2net29", "res2net29", "resnet56", "se_resnet110", "densenet_bc100"]:
        (results / f"bench-{m}.json").write_text(json.dumps({
            **here, "measured_at": "2026-12-01T10:01:00Z", "batch_size": 128, "warmup_steps": 0, "timed_steps": 1,
            "floor": None, "failed": [], "interrupted": None,
            "rows": [{"model": m, "variant": v, "images_per_s": x}
                     for v, x in (("plain", 9.0), ("eager", 10.0), ("compile", 5.0), ("cudagraphs", 5.0))]}))
    (results / "concurrency.json").write_text(json.dumps({
        "model": "se_res2net29", "variant": "eager", **here, "measured_at": "2026-12-01T10:04:00Z", "batch_size": 128,
        "warmup_steps_per_process": 0, "timed_steps": conc_steps, "failed": [], "interrupted": None,
        "rows": [{"processes": n, "aggregate_images_per_s": x} for n, x in ((1, 10.0), (2, 12.0))]}))
    return results


@pytest.mark.slow
def test_gpu_runbook_rehearsed_on_cpu(tmp_path):
    rb = Runbook(tmp_path)
    carry = tmp_path / "carry"

    # --- here: split the data (small parts, so there are several) and prepare a wheel
    rb("split", str(SAMPLE), str(carry / "data"), "150K")
    parts = sorted((carry / "data").glob("part-*"))
    assert len(parts) >= 2 and (carry / "data" / "SHA256SUMS").exists()
    _probe_wheel(carry / "wheels")
    (carry / "wheels" / "requirements.txt").write_text("runbook_probe\n")  # as `wheels` writes it

    # --- on the GPU machine: one call per carried folder, then setup
    missing = rb("setup", check=False)  # nothing stashed: no data, no wheels, still a clear run
    assert "no data stashed" in missing.stdout
    for part in parts[:-1]:  # the data arrives part by part
        one = tmp_path / "call" / "data"
        one.mkdir(parents=True, exist_ok=True)
        for f in one.iterdir():
            f.unlink()
        for f in (part, carry / "data" / "SHA256SUMS"):
            (one / f.name).write_bytes(f.read_bytes())
        rb("stash", str(one))
    early = rb("setup", check=False)  # the last part has not arrived
    assert early.returncode == 2 and "not stashed yet" in early.stderr and parts[-1].name in early.stderr
    (tmp_path / "last" / "data").mkdir(parents=True)
    (tmp_path / "last" / "data" / parts[-1].name).write_bytes(parts[-1].read_bytes())
    rb("stash", str(tmp_path / "last" / "data"))
    rb("stash", str(carry / "wheels"))
    setup = rb("setup")
    out = setup.stdout
    assert "joined" in out and "EMBEDDED SAMPLE" in out and "fingerprint" in out
    assert "installed offline from 1 stashed wheel(s)" in out and (rb.site / "runbook_probe" / "__init__.py").exists()
    assert "torch:" in out and "papermill:" in out
    data_dir = rb.home / "data" / "cifar10"
    assert (rb.home / "env.sh").read_text().strip() == f"export SE_RES2NET_DATA_DIR='{data_dir}'"

    # a corrupt part is caught by its checksum, before anything is unpacked
    corrupt = tmp_path / "corrupt_home"
    bad = Runbook(tmp_path)
    bad.home = corrupt
    bad.env["RUNBOOK_HOME"] = str(corrupt)
    (corrupt / "stage" / "data").mkdir(parents=True)
    for f in (carry / "data").iterdir():
        data = bytearray(f.read_bytes())
        if f.name == parts[0].name:
            data[100] ^= 0xFF
        (corrupt / "stage" / "data" / f.name).write_bytes(bytes(data))
    res = bad("setup", check=False)
    assert res.returncode != 0 and "corrupt" in res.stderr and not (corrupt / "data").exists()

    # --- benchmark
    rb("bench", "--models", "res2net29", "--variants", "plain", "eager", "--device", "cpu", "--batch-size", "16",
       "--steps", "1", "--warmup", "0", "--data", "auto", "--floor")
    (bench_file,) = (rb.home / "results").glob("bench-*.json")
    bench = json.loads(bench_file.read_text())
    assert {r["variant"] for r in bench["rows"]} == {"plain", "eager"}
    # the floor, counted and measured in the same run, is in the JSON and in the printed table
    assert [r["model"] for r in bench["floor"]["rows"]] == ["res2net29"]
    (table,) = (rb.home / "results").glob("bench-*.txt")
    assert "eager ÷ floor" in table.read_text()

    # --- the sweep, detached; stop it mid-run, pack; start again, finish, pack
    sweep = ["--profile", "smoke", "--models", "res2net29", "resnet56", "--seeds", "0", "--jobs", "2",
             "--threads", "1", "--device", "cpu", "--set", "epochs=4", "--set", "checkpoint_every=1",
             "--set", "batch_size=32", "--set", "train_subset=128", "--set", "test_subset=50"]
    rb("start", *sweep)
    again = rb("start", *sweep, check=False)
    assert again.returncode == 2 and "running already" in again.stderr
    smoke = rb.runs / "smoke"
    _wait(lambda: any((smoke / "checkpoints").glob("*.pt")))
    progress = rb("progress").stdout
    assert "sweep running" in progress and "ETA of the sweep" in progress
    rb("stop")
    unfinished = [p.stem for p in (smoke / "checkpoints").glob("*.pt")
                  if read_record(smoke / f"{p.stem}.json")["status"] != "complete"]
    assert unfinished, "the sweep finished before it could be stopped"
    assert "incomplete" in rb("progress").stdout

    first = tmp_path / "out1"
    rb("pack", str(first))
    members = _archives(first)
    assert any(f"smoke/checkpoints/{unfinished[0]}.pt" in m for m in members)  # it can resume elsewhere
    assert any(m.endswith("versions.txt") for m in members) and any("sweep.log" in m for m in members)

    # --- here: unpack. With COMMIT_LIMIT=1 every unfinished checkpoint counts as too big for git: it goes to
    # .xfer/resume, and the next block (a fresh machine whose checkout has none) gets it as a carried file
    dest = tmp_path / "checkout"
    prefix = "book/runs"  # where the checkout keeps runs, whatever the runs root on the machine
    rb.env.update(UNPACK_DEST=str(dest), COMMIT_LIMIT="1")
    said = rb("unpack", str(first)).stdout
    carried = dest / ".xfer" / "resume" / "smoke" / "checkpoints"
    assert sorted(p.stem for p in carried.glob("*.pt")) == sorted(unfinished) and "too big for git" in said
    # the block's results and logs are filed where the next block looks for what it need not measure again
    (block_dir,) = (dest / "benchmarks" / "gpu").glob("block-*")
    assert f"of the block's results and logs in {block_dir}" in said and not (dest / "extra").exists()
    assert (block_dir / "results" / "versions.txt").exists() and (block_dir / "logs" / "sweep.log").exists()
    assert [p.name for p in (block_dir / "results").glob("bench-*.json")] == [bench_file.name]
    assert not list((dest / prefix / "smoke" / "checkpoints").glob("*.pt"))
    for name in unfinished:
        device_copy = smoke / "checkpoints" / f"{name}.pt"
        # it travelled compacted: the same tensors, bit for bit, in a smaller file
        assert is_compacted(carried / f"{name}.pt") and not is_compacted(device_copy)
        assert same_payload(load_checkpoint(carried / f"{name}.pt"), load_checkpoint(device_copy))
        device_copy.unlink()
    rb("stash", str(dest / ".xfer" / "resume"))

    # --- the next block, on a fresh machine: an empty runs root, seeded from the checkout (the records unpacked
    # and committed here) and the carried checkpoints; a file the machine has already is never replaced
    rb.runs = tmp_path / "runs_next_block"
    rb.env.update(RUNS_ROOT=str(rb.runs), SEED_RUNS=str(dest / prefix))
    smoke = rb.runs / "smoke"
    smoke.mkdir(parents=True)
    (smoke / "mine.txt").write_text("written on this machine")
    (dest / prefix / "smoke" / "mine.txt").write_text("an older copy")
    in_checkout = [f for f in (dest / prefix / "smoke").rglob("*") if f.is_file()]
    assert any(f.name == f"{unfinished[0]}.json" for f in in_checkout)
    started = rb("start", *sweep).stdout
    assert started.count("(carried)") == len(unfinished)
    assert f"seeded {smoke} with {len(in_checkout) - 1} file(s)" in started  # all but the one it had
    assert (smoke / "mine.txt").read_text() == "written on this machine"
    rb("wait", "600", timeout=700)
    final = rb("progress").stdout
    assert "2 complete" in final
    for m in ("res2net29", "resnet56"):
        rec = read_record(smoke / f"{m}_seed0.json")
        assert rec["status"] == "complete" and len(rec["epochs"]) == 4
        assert rec["provenance"]["data_source"] == "folder" and rec["provenance"]["data_is_sample"] is True
    resumed = [r for m in ("res2net29", "resnet56") for r in read_record(smoke / f"{m}_seed0.json").get("resumes", [])]
    assert resumed and all(r["sharing"] == {"jobs_per_device": 2, "cuda_mps": False} for r in resumed)

    second = tmp_path / "out2"
    rb("pack", str(second), "--weights", "res2net29_seed0")
    members = _archives(second)
    names = set(members)
    assert not any("/checkpoints/" in m for m in names)  # complete runs: their checkpoints stay behind
    for m in ("res2net29", "resnet56"):
        assert any(n.endswith(f"smoke/{m}_seed0.json") for n in names)
        assert any(n.endswith(f"smoke/{m}_seed0.ipynb") for n in names)
        assert any(n.endswith(f"smoke/logs/{m}_seed0.log") for n in names)
    assert any(n.endswith("smoke/weights/res2net29_seed0.pt") for n in names)
    refused = rb("pack", str(second), check=False)  # never over earlier results
    assert refused.returncode == 2 and "already holds" in refused.stderr

    # --- here: unpack the finished runs and find the same bytes; their carried checkpoints are no longer needed
    said = rb("unpack", str(second)).stdout
    assert not list(carried.glob("*.pt")) and said.count("removed the checkpoint of a complete run") == len(unfinished)
    # the same block packed again: its results are filed once, its log grew and is extended
    assert f"already filed, byte for byte, as {block_dir / 'results' / bench_file.name}" in said
    assert (block_dir / "logs" / "sweep.log").read_bytes() == (rb.home / "logs" / "sweep.log").read_bytes()
    assert [p.name for p in (dest / "benchmarks" / "gpu").iterdir()] == [block_dir.name]
    got = dest / prefix / "smoke" / "res2net29_seed0.json"
    assert got.read_bytes() == (smoke / "res2net29_seed0.json").read_bytes()
    from se_res2net.training.trainer import evaluate_checkpoint

    weights = dest / prefix / "smoke" / "weights" / "res2net29_seed0.pt"
    assert weights.stat().st_size < (smoke / "checkpoints" / "res2net29_seed0.pt").stat().st_size
    ev = evaluate_checkpoint(weights, data_source="folder", data_dir=str(data_dir), device="cpu")
    assert ev["test_error"] == read_record(got)["final_test_error"]  # the model-only weights reproduce the run


@pytest.mark.slow
def test_block_decides_by_its_rule_then_starts_the_sweep_and_parity(tmp_path):
    """`block` with its bench budget spent (BENCH_SECONDS=0) decides from the measurements already in results/:
    the fastest trainer variant of se_res2net29 (plain never counts) and the process count of most aggregate
    images/s; then it starts the sweep with them, detached, and runs the parity check beside it."""
    rb = Runbook(tmp_path)
    rb.env.update(BENCH_SECONDS="0", SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY)
    results = rb.home / "results"
    results.mkdir(parents=True)
    rows = [("plain", 900.0), ("eager", 100.0), ("compile", 300.0), ("cudagraphs", 200.0)]
    (results / "bench-se_res2net29.json").write_text(
        json.dumps({"rows": [{"model": "se_res2net29", "variant": v, "images_per_s": s} for v, s in rows]}))
    (results / "concurrency.json").write_text(json.dumps({"rows": [
        {"processes": n, "aggregate_images_per_s": s} for n, s in ((1, 300.0), (2, 520.0), (4, 480.0), (8, 90.0))]}))
    text = _run_block(rb, *TINY_SWEEP)
    assert "bench budget spent: se_res2net29 not measured" in text
    assert "decided: --jobs 2 --compile default (fastest variant: compile)" in text
    assert (results / "decision.txt").read_text().count("--jobs 2 --compile default") == 1
    assert (rb.home / "sweep.args").read_text().split("\n")[-5:-1] == ["--jobs", "2", "--compile", "default"]
    parity = json.loads((results / "parity-cuda.json").read_text())
    # its verdict is the check's own business (two epochs on 64 images learn too little to pass it)
    assert set(parity["runs"]) == {"eager_fp32", "cuda_defaults"} and parity["device"] == "cpu"
    assert parity["noise"]["seeds"] == [1, 2]  # PARITY_NOISE_SEEDS reached the check (its CLI's default is 1)


@pytest.mark.slow
def test_a_later_block_takes_what_an_earlier_one_measured_on_this_machine_and_nothing_else(tmp_path):
    """A block finds complete results of this machine (GPU name, torch, CUDA, read from each result) filed by an
    earlier block: it measures none of them again, decides from them, and skips the parity check, so the sweep
    gets the GPU at once. A faster result of another GPU is never taken. REBENCH=1 takes nothing."""
    from se_res2net.training.decision import machine

    here = machine("cpu")
    rb = Runbook(tmp_path)
    prior = tmp_path / "benchmarks" / "gpu" / "block-20261201T100000Z" / "results"
    prior.mkdir(parents=True)
    rb.env.update(BENCH_SECONDS="0", CONC_STEPS="50", SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY,
                  PRIOR_RESULTS=f"{tmp_path / 'benchmarks' / 'gpu'}:{tmp_path / 'book' / 'parity'}")

    def bench(model, speeds, at=here, measured_at="2026-12-01T10:01:00Z"):
        return {**at, "measured_at": measured_at, "batch_size": 128, "warmup_steps": 10, "timed_steps": 50,
                "floor": None, "failed": [], "interrupted": None,
                "rows": [{"model": model, "variant": v, "images_per_s": x}
                         for v, x in zip(["plain", "eager", "compile", "cudagraphs"], speeds)]}

    models = ["se_res2net29", "res2net29", "resnet56", "se_resnet110", "densenet_bc100"]
    for m in models:
        (prior / f"bench-{m}.json").write_text(json.dumps(bench(m, (900.0, 1000.0, 2000.0, 3000.0))))
    (prior / "concurrency.json").write_text(json.dumps({
        "model": "se_res2net29", "variant": "cudagraphs", **here, "measured_at": "2026-12-01T10:04:00Z",
        "batch_size": 128, "warmup_steps_per_process": 10, "timed_steps": 50, "failed": [], "interrupted": None,
        "rows": [{"processes": n, "aggregate_images_per_s": x} for n, x in ((1, 3000.0), (2, 5000.0), (4, 5600.0))]}))
    # under MPS: taken too (it is another measurement than taking turns), and slower here: the rule keeps turns
    (prior / "concurrency-mps.json").write_text(json.dumps({
        "model": "se_res2net29", "variant": "cudagraphs", "sharing": "mps", **here, "measured_at": "2026-12-01T10:05:00Z",
        "batch_size": 128, "warmup_steps_per_process": 10, "timed_steps": 50, "failed": [], "interrupted": None,
        "rows": [{"processes": n, "aggregate_images_per_s": x} for n, x in ((1, 2900.0), (2, 4000.0), (4, 5500.0))]}))
    (prior / "stacked.json").write_text(json.dumps({
        "kind": "stacked", "model": "se_res2net29", "variant": "cudagraphs", **here,
        "measured_at": "2026-12-01T10:06:00Z", "batch_size_per_model": 128, "warmup_steps_per_level": 10,
        "timed_steps": 50, "failed": [], "interrupted": None,
        "rows": [{"models": 4, "aggregate_images_per_s": 11200.0}]}))
    # measured later and faster, but on another GPU: never taken
    other = {**here, "device": "cuda", "device_name": "NVIDIA H200", "cuda": "13.0"}
    (prior / "bench-se_res2net29-h200.json").write_text(json.dumps(
        bench("se_res2net29", (1.0, 1.0, 99999.0, 1.0), at=other, measured_at="2026-12-09T00:00:00Z")))
    parity_dir = tmp_path / "book" / "parity"
    parity_dir.mkdir(parents=True)
    parity_prior = {"model": "se_res2net29", **here, "epochs": 2, "measured_at": "2026-12-01T10:09:00Z",
                    "reference": "eager_fp32", "runs": {"eager_fp32": {}, "cuda_defaults": {}}, "ok": True,
                    "noise": {"seeds": [1, 2], "train_loss": {"1": [2.0, 1.9], "2": [2.0, 1.8]},
                              "max_abs_diff": 0.1}}
    (parity_dir / "parity-cpu-block-20261201T100000Z.json").write_text(json.dumps(parity_prior))
    # measured later, but judged by fixed tolerances only (no noise seeds): not the check PARITY_NOISE_SEEDS asks
    (parity_dir / "parity-cpu-block-20261202T100000Z.json").write_text(json.dumps(
        {k: v for k, v in parity_prior.items() if k != "noise"} | {"measured_at": "2026-12-02T10:09:00Z"}))
    text = _run_block(rb, *TINY_SWEEP)
    results = rb.home / "results"
    for m in models:
        assert re.search(rf"bench of {m}: measured before on this machine \(.*\), 2026-12-01T10:01:00Z: "
                         rf"{re.escape(str(prior / f'bench-{m}.json'))}", text), text
        assert (results / f"bench-{m}.json").read_bytes() == (prior / f"bench-{m}.json").read_bytes()
    assert "concurrency of se_res2net29: measured before on this machine" in text
    assert "concurrency under CUDA MPS of se_res2net29: measured before on this machine" in text
    assert (results / "concurrency-mps.json").read_bytes() == (prior / "concurrency-mps.json").read_bytes()
    assert "stacked of se_res2net29: measured before on this machine" in text
    assert "4 se_res2net29 stacked in one step: 11,200 images/s, 2.00x 4 processes (time-slicing" in text
    assert "not measured" not in text and "at most" not in text  # nothing was benched
    assert "decided: --jobs 4 --compile reduce-overhead (fastest variant: cudagraphs)" in text
    assert (rb.home / "sweep.args").read_text().split("\n")[-5:-1] == ["--jobs", "4", "--compile", "reduce-overhead"]
    decision = json.loads((results / "decision.json").read_text())
    assert decision["machine"] == here and decision["from"]["bench"]["measured_at"] == "2026-12-01T10:01:00Z"
    assert decision["sharing"] == "time-slicing" and decision["from"]["concurrency (mps)"]["measured_at"].startswith("2026")
    assert "parity of se_res2net29: measured before on this machine" in text and "not run again" in text
    assert "2026-12-01T10:09:00Z: " + str(parity_dir / "parity-cpu-block-20261201T100000Z.json") in text
    assert (rb.home / "parity.exit").read_text().strip() == "0" and not (results / "parity-cuda.json").exists()

    # REBENCH=1: nothing taken (with a budget of 0 s, nothing measured either), the parity check runs
    for f in results.glob("*.json"):
        f.unlink()
    rb.env.update(REBENCH="1")
    text = _run_block(rb, *TINY_SWEEP)
    assert "measured before" not in text and "bench budget spent: se_res2net29 not measured" in text
    assert "decided: --jobs 1 (eager) (fastest variant: eager)" in text
    assert json.loads((results / "parity-cuda.json").read_text())["device"] == "cpu"


@pytest.mark.slow
def test_block_keeps_what_a_bench_cut_by_its_budget_measured_and_decides_from_it(tmp_path):
    """A budget that runs out inside the bench of se_res2net29 (compiling takes longer than it) keeps the variants
    measured before the cut, prints them, and the rule decides from them: nothing measured is thrown away."""
    rb = Runbook(tmp_path)
    rb.env.update(BENCH_SECONDS="40", BENCH_STEPS="1", BENCH_WARMUP="0", SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY)
    text = _run_block(rb, *TINY_SWEEP)
    kept = json.loads((rb.home / "results" / "bench-se_res2net29.json").read_text())
    measured = [r["variant"] for r in kept["rows"]]
    assert measured == ["plain", "eager", "compile", "cudagraphs"][:len(measured)] and measured, text
    # "during" the next variant when the interrupt landed; "after" the last measured when the kill had to come
    assert kept["interrupted"] in (f"during se_res2net29 / {['plain', 'eager', 'compile', 'cudagraphs'][len(measured)]}",
                                   f"after se_res2net29 / {measured[-1]}")
    # 124: it ended on the interrupt; 137: it printed them, then compile workers held its exit past `timeout -k`
    assert re.search(r"bench of se_res2net29 cut short \(exit (124|137)\): kept the rows it measured", text)
    assert f"interrupted {kept['interrupted']}: the rows above" in text  # printed, as a finished bench's rows
    trainer = [r for r in kept["rows"] if r["variant"] != "plain"]
    fastest = max(trainer, key=lambda r: r["images_per_s"])["variant"] if trainer else "eager"
    assert f"(fastest variant: {fastest})" in text
    assert not list((rb.home / "results").glob("*.partial"))
    assert not (rb.home / "inductor-bench").exists()  # a cut compile's cache is gone before the sweep compiles


@pytest.mark.slow
def test_poll_starts_again_a_sweep_ended_from_outside_but_not_one_stopped_or_finished(tmp_path):
    """Where the machine ends every process of a call (commands run as an ordinary user), the sweep dies between
    calls: `poll` starts it again from its checkpoints. A sweep ended by `stop`, or by itself, stays ended."""
    import signal

    rb = Runbook(tmp_path)
    rb.env.update(SE_RES2NET_DATA_DIR=str(SAMPLE))
    sweep = ["--profile", "smoke", "--models", "res2net29", "--seeds", "0", "--threads", "1", "--device", "cpu",
             "--set", "epochs=3", "--set", "checkpoint_every=1", "--set", "batch_size=32", "--set", "train_subset=128",
             "--set", "test_subset=50"]
    rb("start", *sweep)
    smoke = rb.runs / "smoke"
    _wait(lambda: any((smoke / "checkpoints").glob("*.pt")))
    first = int((rb.home / "sweep.pid").read_text())
    os.killpg(first, signal.SIGKILL)  # what the end of a call does to an ordinary user's processes
    _wait(lambda: subprocess.run(["kill", "-0", str(first)], capture_output=True).returncode != 0, timeout=30)
    cut_compile = rb.home / "inductor-sweep" / "cut-short.so"  # what a kill mid-compile can leave
    cut_compile.parent.mkdir(parents=True, exist_ok=True)
    cut_compile.write_bytes(b"\x7fELF")

    said = rb("poll").stdout
    assert "ended from outside" in said and "sweep started" in said and "sweep running" in said
    second = int((rb.home / "sweep.pid").read_text())
    assert second != first and not cut_compile.exists()
    rb("stop")
    said = rb("poll").stdout
    assert "ended from outside" not in said and int((rb.home / "sweep.pid").read_text()) == second

    rb("start", *sweep)
    said = rb("poll", "600", timeout=700).stdout  # waits for the end
    assert "the sweep has ended" in said
    assert read_record(smoke / "res2net29_seed0.json")["status"] == "complete"
    assert (rb.home / "sweep.exit").read_text().strip() == "0"
    assert "ended from outside" not in rb("poll").stdout  # it finished by itself: nothing to start again


def test_poll_runs_again_a_parity_check_ended_from_outside_and_only_that(tmp_path):
    """The block decided and started parity, then the call's end ended it: `poll` runs it again, detached; once it
    has run to its end (pass or fail: parity.exit), `poll` leaves it."""
    rb = Runbook(tmp_path)
    rb.env.update(SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY)
    (rb.home / "results").mkdir(parents=True)
    (rb.home / "results" / "decision.txt").write_text("decided: --jobs 1 (eager) (fastest variant: eager)\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    for name in ("block", "parity"):  # both ended, parity before its end
        (rb.home / f"{name}.pid").write_text(f"{gone.pid}\n")
    said = rb("poll").stdout
    assert "parity check was ended from outside: starting it again" in said
    _wait(lambda: (rb.home / "parity.exit").exists(), timeout=300)
    rerun = (rb.home / "parity.pid").read_text().strip()
    assert rerun != str(gone.pid)
    _wait(lambda: subprocess.run(["kill", "-0", rerun], capture_output=True).returncode != 0, timeout=30)
    result = json.loads((rb.home / "results" / "parity-cuda.json").read_text())
    assert set(result["runs"]) == {"eager_fp32", "cuda_defaults"}
    assert "parity check" not in rb("poll").stdout


def test_prepare_makes_everything_the_calls_carry_and_refuses_an_uncommitted_checkout(tmp_path):
    """`prepare` (here, before the first device minute): data parts sized for the tree at hand, wheels kept when
    there, the manifest, then the plan of calls; and nothing at all from a checkout with uncommitted changes."""
    rb = Runbook(tmp_path)
    xfer = tmp_path / "xfer"
    probe = _probe_wheel(xfer / "wheels")
    (xfer / "wheels" / "requirements.txt").write_text("runbook_probe\n")  # as `wheels` writes it: kept, not fetched
    (xfer / "data").mkdir()
    (xfer / "data" / "part-07").write_bytes(b"a stale part of an earlier split")

    # an index that differs from HEAD is an uncommitted change: refused before anything is written or removed
    rb.env["GIT_INDEX_FILE"] = str(tmp_path / "empty-index")
    refused = rb("prepare", str(SAMPLE), str(xfer), check=False)
    assert refused.returncode == 2 and "commit them first" in refused.stderr
    assert sorted(p.name for p in (xfer / "data").iterdir()) == ["part-07"] and not (xfer / "meta").exists()
    del rb.env["GIT_INDEX_FILE"]

    rb.env["PREPARE_DIRTY_OK"] = "1"  # the checkout under test may be a developer's, with changes
    rb.env["LIFT"] = "0"  # never `git rm` the real checkout's checkpoints (lifting: the test below, in a copy)
    out = rb("prepare", str(SAMPLE), str(xfer)).stdout
    assert "kept 1 in" in out and probe.read_bytes() == (xfer / "wheels" / probe.name).read_bytes()
    parts = sorted((xfer / "data").glob("part-*"))
    assert [p.name for p in parts] == ["part-00"]  # the 1.7 MB sample fits one part; the stale one is gone
    assert re.search(r"split .* into 1 part\(s\) of \d+ MiB in .*: \d carrying call\(s\)", out)
    assert "call 1 (" in out and "run: scripts/gpu-runbook.sh stash" in out  # the plan, from `calls`
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=xfer / "data", check=True)
    manifest = json.loads((xfer / "meta" / "manifest.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert manifest["commit"] == head
    # the parts join into the data folder, file for file (what `setup` does on the device)
    joined = tmp_path / "joined"
    joined.mkdir()
    cat = subprocess.run(["bash", "-c", f"cat {xfer}/data/part-* | gzip -dc | tar -C {joined} -xf -"], check=True)
    assert cat.returncode == 0
    want = {p.relative_to(SAMPLE): p.read_bytes() for p in SAMPLE.rglob("*") if p.is_file()}
    got = {p.relative_to(joined / SAMPLE.name): p.read_bytes() for p in (joined / SAMPLE.name).rglob("*") if p.is_file()}
    assert got == want and len(want) > 100


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _checkout_with_checkpoints(tmp: Path, runs: dict) -> Path:
    """A git checkout of its own holding this runbook and package, and committed budget runs: ``runs`` maps a run
    name to its checkpoint's bytes (each run's record is an unfinished one, as the first GPU block left them)."""
    repo = tmp / "checkout"
    shutil.copytree(ROOT / "se_res2net", repo / "se_res2net", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "scripts").mkdir()
    shutil.copy2(RUNBOOK, repo / "scripts" / "gpu-runbook.sh")
    shutil.copy2(ROOT / ".gitignore", repo / ".gitignore")
    budget = repo / "book" / "runs" / "budget"
    (budget / "checkpoints").mkdir(parents=True)
    record = json.loads((ROOT / "book" / "runs" / "budget" / "res2net29_seed1.json").read_text())
    assert record["status"] != "complete"
    for name, data in runs.items():
        (budget / f"{name}.json").write_text(json.dumps(dict(record, name=name)))
        (budget / "checkpoints" / f"{name}.pt").write_bytes(data)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "runs")
    return repo


def test_prepare_lifts_the_committed_checkpoints_out_of_the_tree_and_unpack_puts_back_what_is_not_newer(tmp_path):
    """Every call sends the working tree, and the committed checkpoints of unfinished runs were most of it: they
    went with each of the 10 calls the second block needed. `prepare` takes them out of the tree (a staged `git rm`)
    into .xfer/lifted/resume, which travels once; `unpack` puts each back unless something newer stands for it:
    a checkpoint that came back, a complete run, or a copy too big for git waiting in .xfer/resume."""
    from se_res2net.training.transfer import working_tree_bytes

    rng = __import__("random").Random(0)
    blob = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731
    old = {"newer": blob(60_000), "done": blob(50_000), "stays": blob(40_000), "big": blob(30_000)}
    repo = _checkout_with_checkpoints(tmp_path, old)
    ckpts = repo / "book" / "runs" / "budget" / "checkpoints"
    tree_before = working_tree_bytes(repo)
    rb = Runbook(tmp_path)
    rb.env.update(PYTHONPATH=str(repo))
    run = lambda *a, check=True: subprocess.run(  # noqa: E731
        ["bash", str(repo / "scripts" / "gpu-runbook.sh"), *a], cwd=repo, env=rb.env, capture_output=True,
        text=True, check=False, timeout=300)
    xfer = repo / ".xfer"
    _probe_wheel(xfer / "wheels")
    (xfer / "wheels" / "requirements.txt").write_text("runbook_probe\n")

    for attempt in range(2):  # a second `prepare` (its block never came back) first puts back what the first lifted
        out = run("prepare", str(SAMPLE))
        assert out.returncode == 0, out.stderr
        assert "lifted 4 committed checkpoint(s)" in out.stdout
        status = sorted(_git(repo, "status", "--porcelain").splitlines())
        assert status == sorted(f"D  book/runs/budget/checkpoints/{n}.pt" for n in old)
        assert not list(ckpts.glob("*.pt"))
        lifted = xfer / "lifted" / "resume" / "budget" / "checkpoints"
        assert {p.stem: p.read_bytes() for p in lifted.glob("*.pt")} == old
        assert working_tree_bytes(repo) == tree_before - sum(map(len, old.values()))
        # the plan carries each once, and the device's `stash` takes their folder like .xfer/resume
        for name in old:
            assert f".xfer/lifted/resume/budget/checkpoints/{name}.pt" in out.stdout
        assert re.search(r"run: scripts/gpu-runbook.sh stash .*\.xfer/lifted/resume", out.stdout)

    # on the device: stashed as resume/, where `start` resumes from (test_gpu_runbook_rehearsed_on_cpu)
    assert run("stash", str(xfer / "lifted" / "resume")).returncode == 0
    assert {p.name for p in (rb.home / "stage" / "resume" / "budget" / "checkpoints").iterdir()} == {
        f"{n}.pt" for n in old}

    # what the block brings back: "newer" trained on, "done" completed, "big" came back too big for git, and
    # nothing of "stays" (its run never got the GPU)
    device = tmp_path / "device_runs" / "budget"
    (device / "checkpoints").mkdir(parents=True)
    record = json.loads((repo / "book" / "runs" / "budget" / "newer.json").read_text())
    (device / "newer.json").write_text(json.dumps(dict(record, name="newer")))
    (device / "checkpoints" / "newer.pt").write_bytes(b"trained on" + old["newer"])
    (device / "done.json").write_text(json.dumps(dict(record, name="done", status="complete", final_test_error=9.5)))
    (device / "big.json").write_text(json.dumps(dict(record, name="big")))
    (device / "checkpoints" / "big.pt").write_bytes(blob(300_000))
    packed = subprocess.run([sys.executable, "-m", "se_res2net", "pack", str(tmp_path / "out"), "--runs-root",
                             str(device.parent), "--prefix", "book/runs"], env=rb.env, capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr
    rb.env["COMMIT_LIMIT"] = "200000"
    out = run("unpack", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert not (xfer / "lifted").exists()
    status = dict((line[3:], line[:2]) for line in _git(repo, "status", "--porcelain").splitlines())
    assert status == {"book/runs/budget/checkpoints/newer.pt": " M", "book/runs/budget/done.json": " M",
                      "book/runs/budget/checkpoints/done.pt": " D", "book/runs/budget/checkpoints/big.pt": " D"}
    assert (ckpts / "newer.pt").read_bytes() == b"trained on" + old["newer"]
    assert (ckpts / "stays.pt").read_bytes() == old["stays"]  # as committed: nothing lost
    assert (xfer / "resume" / "budget" / "checkpoints" / "big.pt").stat().st_size == 300_000
    assert "put back as committed: book/runs/budget/checkpoints/stays.pt" in out.stdout
    assert "kept the newer checkpoint that came back (commit it): book/runs/budget/checkpoints/newer.pt" in out.stdout

    # a block that brought nothing back: `restore` gives back the commit exactly
    _git(repo, "checkout", "-q", "HEAD", "--", ".")
    shutil.rmtree(xfer / "resume")
    assert run("prepare", str(SAMPLE)).returncode == 0 and _git(repo, "status", "--porcelain")
    out = run("restore")
    assert out.returncode == 0 and out.stdout.count("put back as committed") == 4
    assert _git(repo, "status", "--porcelain") == "" and not (xfer / "lifted").exists()
    assert {p.stem: p.read_bytes() for p in ckpts.glob("*.pt")} == old

    # a broken set of archives (one cut in half on its way) extracts nothing, and unpack fails, but only after it
    # has put back what `prepare` lifted: the checkout is as committed
    assert run("prepare", str(SAMPLE)).returncode == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    for arch in (tmp_path / "out").glob("results-*.tar.gz"):
        (broken / arch.name).write_bytes(arch.read_bytes()[: arch.stat().st_size // 2])
    out = run("unpack", str(broken))
    assert out.returncode != 0 and "cannot be read" in out.stderr and "back in place" in out.stderr
    assert _git(repo, "status", "--porcelain") == "" and not (xfer / "lifted").exists()
    assert {p.stem: p.read_bytes() for p in ckpts.glob("*.pt")} == old


def test_a_commit_made_while_lifted_loses_no_checkpoint(tmp_path):
    """Between `prepare` and `unpack` the deletions are staged, so a plain `git commit` records them. `restore`
    puts the files back from the lifted copies (not from HEAD, which no longer has them) and says to add them."""
    from se_res2net.training.transfer import lift_checkpoints, restore_lifted

    repo = _checkout_with_checkpoints(tmp_path, {"a": b"committed a", "b": b"committed b"})
    lift_checkpoints(repo)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "notes, by mistake with the rest")
    done = restore_lifted(repo)
    ckpts = repo / "book" / "runs" / "budget" / "checkpoints"
    assert sorted(done["untracked"]) == sorted(done["restored"]) == [
        "book/runs/budget/checkpoints/a.pt", "book/runs/budget/checkpoints/b.pt"]
    assert (ckpts / "a.pt").read_bytes() == b"committed a" and (ckpts / "b.pt").read_bytes() == b"committed b"
    _git(repo, "add", "book/runs")
    assert _git(repo, "diff", "--cached", "--name-only", "HEAD~1").strip() == ""  # as it was before the mistake


def test_lifting_refuses_a_checkpoint_that_differs_from_its_commit_and_removes_nothing(tmp_path):
    from se_res2net.training.transfer import lift_checkpoints

    repo = _checkout_with_checkpoints(tmp_path, {"a": b"committed", "b": b"committed too"})
    (repo / "book" / "runs" / "budget" / "checkpoints" / "b.pt").write_bytes(b"trained on, not committed")
    with pytest.raises(RuntimeError, match="differs from what is committed"):
        lift_checkpoints(repo)
    assert _git(repo, "status", "--porcelain") == " M book/runs/budget/checkpoints/b.pt\n"
    assert not (repo / ".xfer" / "lifted").exists()


def test_mps_step_starts_a_daemon_of_its_own_that_later_steps_use_and_stops_it(tmp_path):
    """`mps start` runs the control daemon in the runbook's own folders and writes mps.env, which every later
    step sources (its CUDA processes are the daemon's clients); `status --clients` tells whether one connected;
    `stop` ends it and removes mps.env first. A machine without MPS gets one clear error."""
    rb = Runbook(tmp_path)
    rb.env["PATH"] = "/usr/bin:/bin"  # no nvidia-cuda-mps-control here
    said = rb("mps", "start", check=False)
    assert said.returncode == 2 and "no nvidia-cuda-mps-control on this machine (PATH, /usr/local/nvidia/bin" in said.stderr
    assert not (rb.home / "mps.env").exists()
    _fake_mps(rb, tmp_path)
    assert rb("mps", "status", check=False).returncode == 1
    assert "MPS control daemon started" in rb("mps", "start").stdout
    pipe = rb.home / "mps" / "pipe"
    assert (pipe / "control").exists()
    env = (rb.home / "mps.env").read_text()
    assert f"CUDA_MPS_PIPE_DIRECTORY={pipe}" in env and "CUDA_MPS_LOG_DIRECTORY=" in env
    assert "already running" in rb("mps", "start").stdout  # a second start is no second daemon
    # a later step runs with the daemon's pipe folder in its environment, and says the sweep is its client
    rb.env.update(SE_RES2NET_DATA_DIR=str(SAMPLE))
    started = rb("start", *TINY_SWEEP).stdout
    assert f"under CUDA MPS ({pipe})" in started
    rb("wait", "300")
    # no client has connected (nothing here runs CUDA): --clients says so; a logged client or a server counts
    status = rb("mps", "status", "--clients", check=False)
    assert status.returncode == 3 and "client connections logged: 0" in status.stdout
    with open(rb.home / "mps" / "log" / "control.log", "a") as f:
        f.write("[2026-12-04 10:00:00.000 Control  4242] NEW CLIENT 4343 from user 0: Server is not ready\n")
    assert "client connections logged: 1" in rb("mps", "status", "--clients").stdout
    (pipe / "servers").write_text("4444\n")
    assert "server(s): 4444" in rb("mps", "status").stdout
    assert "MPS control daemon stopped" in rb("mps", "stop").stdout
    assert not (pipe / "control").exists() and not (rb.home / "mps.env").exists()
    assert "under CUDA MPS" not in rb("start", *TINY_SWEEP).stdout
    rb("wait", "300")
    assert "no MPS control daemon running" in rb("mps", "stop").stdout


@pytest.mark.slow
def test_block_runs_the_sweep_under_mps_when_the_rule_takes_it(tmp_path):
    """Concurrency under MPS beats taking turns by more than the slack: the block starts the daemon and then the
    sweep, as its client, and says so in its decision."""
    rb = Runbook(tmp_path)
    _fake_mps(rb, tmp_path)
    rb.env.update(BENCH_SECONDS="0", SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY)
    results = rb.home / "results"
    results.mkdir(parents=True)
    (results / "bench-se_res2net29.json").write_text(json.dumps({"rows": [
        {"model": "se_res2net29", "variant": v, "images_per_s": x} for v, x in (("eager", 100.0), ("cudagraphs", 400.0))]}))

    def conc(levels, **extra):
        return json.dumps({"rows": [{"processes": n, "aggregate_images_per_s": x} for n, x in levels], **extra})

    (results / "concurrency.json").write_text(conc(((1, 300.0), (2, 400.0), (4, 400.0))))
    (results / "concurrency-mps.json").write_text(conc(((1, 290.0), (2, 500.0), (4, 700.0)), sharing="mps"))
    text = _run_block(rb, *TINY_SWEEP)
    assert "bench budget spent: concurrency under CUDA MPS not measured" in text
    assert "decided: --jobs 4 --compile reduce-overhead (fastest variant: cudagraphs, under CUDA MPS)" in text
    assert "MPS control daemon started" in text
    assert f"under CUDA MPS ({rb.home / 'mps' / 'pipe'})" in text  # the sweep is its client
    assert json.loads((results / "decision.json").read_text())["sharing"] == "mps"
    rb("mps", "stop")


@pytest.mark.slow
def test_block_measures_concurrency_under_mps_and_drops_what_did_not_run_under_it(tmp_path):
    """Everything else measured before: the block starts the daemon, runs the concurrency bench under it and stops
    it, whatever the bench did. Here (a CPU) the bench refuses to label CPU processes as MPS clients: nothing is
    kept and the rule decides from turns alone. results/mps.txt keeps what happened, for the notes."""
    from se_res2net.training.decision import machine

    here = machine("cpu")
    rb = Runbook(tmp_path)
    _fake_mps(rb, tmp_path)
    # a cap that only a stuck bench reaches: this test wants the bench to finish, on a loaded machine too (the cut
    # is the subject of test_block_keeps_what_a_bench_cut_by_its_budget_measured_and_decides_from_it)
    rb.env.update(BENCH_SECONDS="900", BENCH_STEPS="1", BENCH_WARMUP="0", CONC_STEPS="2", SE_RES2NET_DATA_DIR=str(SAMPLE),
                  STACKED_LEVELS="", **CPU_PARITY)
    results = _measured_before(rb, here, conc_steps=2)
    text = _run_block(rb, *TINY_SWEEP)
    assert "concurrency of se_res2net29: measured before on this machine" in text
    assert "concurrency of se_res2net29 eager under CUDA MPS (at most" in text
    assert "concurrency bench under MPS measured nothing (exit 2)" in text  # workers on a CPU: refused
    assert "MPS control daemon stopped" in text and not (rb.home / "mps" / "pipe" / "control").exists()
    assert not (results / "concurrency-mps.json").exists()
    assert "decided: --jobs 2 (eager) (fastest variant: eager)" in text
    assert "under CUDA MPS" not in text.split("decided:")[1]
    assert "MPS control daemon started" in (results / "mps.txt").read_text()

    # A bench that does write a result under the MPS label (a stand-in for the GPU's, via PY) is kept only when a
    # client reached the daemon: a server listed or a client logged; else it is no result under MPS.
    wrapper = tmp_path / "bin" / "py-mps"
    wrapper.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m se_res2net bench" ] && [[ " $* " == *" --sharing mps "* ]]; then
  out=$(printf '%s\\n' "$@" | grep -A1 -x -- --out | tail -n 1)
  printf '%s\\n' "$@" > "$out.args"
  [ -n "${{LOG_A_CLIENT:-}}" ] && echo "NEW CLIENT 77 from user 0" >> "$CUDA_MPS_LOG_DIRECTORY/control.log"
  printf '%s' '{json.dumps({"model": "se_res2net29", "variant": "eager", "sharing": "mps", **here,
                             "measured_at": "2026-12-04T10:00:00Z", "batch_size": 128, "warmup_steps_per_process": 0,
                             "timed_steps": 2, "failed": [], "interrupted": None,
                             "rows": [{"processes": 4, "aggregate_images_per_s": 40.0}]})}' > "$out"
  exit 0
fi
exec {sys.executable} "$@"
""")
    wrapper.chmod(0o755)
    rb.env["PY"] = str(wrapper)
    text = _run_block(rb, *TINY_SWEEP)
    assert "no process reached the MPS daemon: that result is not one under MPS" in text
    args = (results / "concurrency-mps.json.partial.args").read_text().split("\n")
    steps = [args[i + 1] for i, a in enumerate(args) if a == "--steps"]
    assert steps[-1] == "2" and args[args.index("--concurrency") + 1:][:4] == ["1", "2", "4", "8"]  # CONC_STEPS wins
    rejected = json.loads((results / "concurrency-mps-rejected.json").read_text())
    assert rejected["rejected"] == "no process reached the MPS daemon" and not (results / "concurrency-mps.json").exists()
    assert "decided: --jobs 2 (eager) (fastest variant: eager)" in text
    rb.env["LOG_A_CLIENT"] = "1"
    text = _run_block(rb, *TINY_SWEEP)
    assert json.loads((results / "concurrency-mps.json").read_text())["sharing"] == "mps"
    assert "decided: --jobs 4 (eager) (fastest variant: eager, under CUDA MPS)" in text
    rb("mps", "stop")


@pytest.mark.slow
def test_block_measures_se_res2net29_stacked_once_and_decides_without_it(tmp_path):
    """Everything the rule needs measured before: the block stacks STACKED_LEVELS models of se_res2net29 into one
    step in the rule's variant, keeps and prints the result, sets each level beside as many processes, decides
    exactly as without it, and a second block on this machine takes it instead of measuring it again."""
    from se_res2net.training.decision import machine

    here = machine("cpu")
    rb = Runbook(tmp_path)
    # a cap that only a stuck bench reaches: at 120 s, CI beside a training run cut the stacked bench at 2 models
    rb.env.update(BENCH_SECONDS="900", BENCH_STEPS="1", BENCH_WARMUP="0", CONC_STEPS="1", MPS="0", STACKED_LEVELS="1 2",
                  SE_RES2NET_DATA_DIR=str(SAMPLE), **CPU_PARITY)
    results = _measured_before(rb, here, conc_steps=1)
    text = _run_block(rb, *TINY_SWEEP)
    assert "stacked se_res2net29 eager, 1 2 model(s) in one step (at most" in text, text
    stacked = json.loads((results / "stacked.json").read_text())
    assert stacked["kind"] == "stacked" and stacked["variant"] == "eager" and stacked["interrupted"] is None
    assert [r["models"] for r in stacked["rows"]] == [1, 2] and stacked["batch_size_per_model"] == 128
    assert "stacked: se_res2net29 / eager on cpu" in text  # printed as it was kept
    # each level beside as many processes of the concurrency bench, in the log and in results/stacked.txt
    assert re.search(r"2 se_res2net29 stacked in one step: [\d,]+ images/s, [\d.]+x 2 processes \(time-slicing, 12 "
                     r"images/s; eager\)", (results / "stacked.txt").read_text())
    assert "1 se_res2net29 stacked in one step" in text
    assert "decided: --jobs 2 (eager) (fastest variant: eager)" in text
    assert "stacked" not in (results / "decision.json").read_text()
    text = _run_block(rb, *TINY_SWEEP)  # the block's own result stands for the measurement: not measured again
    assert "stacked of se_res2net29: measured before on this machine" in text and "model(s) in one step" not in text
    assert "2 se_res2net29 stacked in one step" in text and "decided: --jobs 2 (eager)" in text


@pytest.mark.slow
def test_the_sweeps_compile_cache_comes_back_and_the_next_block_compiles_from_it(tmp_path):
    """A compiled run's first epoch generates its kernels; `pack` brings the sweep's compile cache back, `unpack`
    puts it in .xfer/compile-cache/, and on the next machine (here: a fresh runbook home and runs root) `start`
    seeds the sweep's cache from the stashed copy: the same run compiles from it, every graph a cache hit."""
    from se_res2net.training.transfer import COMPILE_CACHE_MEMBER

    sweep = [*TINY_SWEEP, "--compile", "default"]
    first = Runbook(tmp_path / "one")
    first.env.update(SE_RES2NET_DATA_DIR=str(SAMPLE))
    assert "seeded with" not in first("start", *sweep).stdout  # nothing carried
    first("wait", "900", timeout=1000)
    log = (first.runs / "smoke" / "res2net29_seed0.ipynb").read_text()  # the trainer logs into the run's notebook
    misses = re.search(r"first epoch with torch.compile\(default\) took [\d.]+ s; compile cache: FX graph 0 hit\(s\) / "
                       r"(\d+) miss\(es\), AOTAutograd 0 hit\(s\) / (\d+) miss\(es\)", log)
    assert misses and int(misses[1]) > 0, log[-3000:]
    out = tmp_path / "out"
    first("pack", str(out))
    assert COMPILE_CACHE_MEMBER in _archives(out)
    checkout = tmp_path / "checkout"
    first.env["UNPACK_DEST"] = str(checkout)
    first("unpack", str(out))
    carried = checkout / COMPILE_CACHE_MEMBER
    assert carried.is_file()

    second = Runbook(tmp_path / "two")
    second.env.update(SE_RES2NET_DATA_DIR=str(SAMPLE))
    second("stash", str(carried.parent))
    said = second("start", *sweep).stdout
    assert re.search(r"compile cache .*inductor-sweep seeded with \d+ file\(s\) compiled on this machine before", said)
    second("wait", "900", timeout=1000)
    log = (second.runs / "smoke" / "res2net29_seed0.ipynb").read_text()
    assert f"FX graph {misses[1]} hit(s) / 0 miss(es), AOTAutograd {misses[2]} hit(s) / 0 miss(es)" in log, log[-3000:]
