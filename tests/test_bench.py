"""bench: the plain loop and the trainer train on the same images; a ratio comes with its inputs (no timings)."""

import contextlib
import json
import math

import pytest

from se_res2net.training.bench import bench, bench_concurrency, format_concurrency, format_table


@pytest.fixture
def probe(monkeypatch):
    """Every model bench builds is a tiny probe that keeps the batches it trains on; each loss keeps its targets;
    the data is a 32-image stratified subset of the sample (one epoch of 2 batches of 16)."""
    import torch
    import torch.nn.functional as F

    from se_res2net.models import registry
    from se_res2net.training import data

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.seen = torch.nn.Conv2d(3, 10, 3), []
            made.append(self)

        def forward(self, x):
            if self.training:
                self.seen.append(x.detach().clone())
            return self.conv(x).mean((2, 3))

    made, targets, ce, load = [], [], F.cross_entropy, data.load_cifar10
    monkeypatch.setattr(registry, "create_model", lambda name, **kw: Probe())
    monkeypatch.setattr(F, "cross_entropy", lambda out, y, **kw: (targets.append(y.clone()), ce(out, y, **kw))[1])
    monkeypatch.setattr(data, "load_cifar10", lambda *a, **kw: load("sample").subset(train=32))
    return made, targets


def test_bench_plain_and_trainer_train_on_the_same_images(probe):
    import torch

    from se_res2net.training.data import CIFAR10_MEAN, CIFAR10_STD, load_cifar10

    r = bench(models=["res2net29"], variants=["plain", "eager"], device="cpu", batch_size=16, steps=1, warmup=1)
    made, targets = probe
    fed = [m.seen[:2] for m in made if m.seen]  # the probes that trained: plain's, then eager's (timed steps)
    # after its timed steps the trainer's variant issues batch 0 again, 3 times for the host time and once under
    # the profiler; they are not timed and change no ratio
    assert len(fed) == 2 and len(targets) == 4 + 4
    assert all(torch.equal(y, targets[2]) for y in targets[4:])
    targets = targets[:4]
    want = torch.bincount(torch.from_numpy(load_cifar10("sample").subset(train=32).train.labels), minlength=10)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    for batches, ys in zip(fed, (targets[:2], targets[2:])):
        assert [(b.shape, b.dtype) for b in batches] == [((16, 3, 32, 32), torch.float32)] * 2
        # one epoch: every image of the data set once (its label counts), as normalised uint8 pixels
        assert torch.equal(torch.bincount(torch.cat(ys), minlength=10), want)
        pixels = (torch.cat(batches) * std + mean) * 255
        assert torch.allclose(pixels, pixels.round(), atol=1e-3) and pixels.min() >= -1e-3 and pixels.max() <= 255.001
    rows = {row["variant"]: row for row in r["rows"]}
    for row in rows.values():
        assert math.isfinite(row["mean_loss"]) and row["images_per_s"] * row["elapsed_s"] == pytest.approx(16)
    # the ratio comes with its inputs, in the dict and in the table
    ips = rows["plain"]["images_per_s"], rows["eager"]["images_per_s"]
    assert rows["eager"]["vs_plain"] == pytest.approx(ips[1] / ips[0])
    table = format_table(r)
    assert all(f"{v:.1f}" in table for v in ips) and f"{ips[1] / ips[0]:.2f}x" in table
    # where the trainer's step goes: its host time and what it launches (top-level ops on a CPU); none for plain
    assert rows["plain"]["host_ms"] is None and rows["plain"]["launches"] is None
    assert rows["eager"]["host_ms"] > 0 and rows["eager"]["launches"] > 10
    assert f"{rows['eager']['host_ms']:.1f}" in table and str(rows["eager"]["launches"]) in table


def test_launches_are_counted_by_the_profiler_on_the_steps_device():
    """On a CPU the count is the step's top-level aten ops: nested ops (a matmul inside a linear) count once."""
    import torch

    from se_res2net.training.bench import _launches_per_step

    x, lin = torch.randn(4, 8), torch.nn.Linear(8, 8)

    def step():
        for _ in range(3):
            torch.add(x, x)
        lin(x)  # one top-level aten::linear, with addmm etc. inside it
        torch.relu(x).sum()

    assert _launches_per_step(step, torch.device("cpu")) == 3 + 1 + 2


def test_bench_cli_json(probe, capsys):
    from se_res2net.cli import main

    rc = main(["bench", "--models", "res2net29", "--variants", "eager", "--device", "cpu", "--batch-size", "8",
               "--steps", "2", "--warmup", "1", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    (row,) = r["rows"]
    assert (row["variant"], row["vs_plain"], r["timed_steps"], r["batch_size"]) == ("eager", None, 2, 8)
    # 1 warm-up + 2 timed steps, then 3 + 1 untimed ones for the host time and the launch count
    assert [len(m.seen) for m in probe[0] if m.seen] == [3 + 4] and math.isfinite(row["mean_loss"])


def test_bench_floor_counts_the_same_models_step_and_divides_the_eager_time_by_it(probe, capsys):
    """--floor counts each benched model's step in the same run, and the table shows eager ms ÷ floor ms."""
    from se_res2net.cli import main

    rc = main(["bench", "--models", "res2net29", "--variants", "eager", "--device", "cpu", "--batch-size", "16",
               "--steps", "1", "--warmup", "1", "--floor", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    (step,), (row,) = r["rows"], r["floor"]["rows"]
    assert (row["model"], row["batch_size"], row["device"]) == ("res2net29", 16, "cpu")
    # the probe's one 3→10 conv, 3×3 on 32×32 (30×30 out), weight gradient only (its input needs none)
    assert row["flops"] == 16 * 2 * 2 * (10 * 30 * 30 * 3 * 3 * 3)
    assert f"{step['step_ms'] / row['floor_ms']:.2f}x" in format_table(r)
    assert "floor" not in format_table({**r, "floor": None})


@pytest.mark.slow
def test_concurrency_runs_processes_together():
    r = bench_concurrency(model="res2net29", variant="eager", counts=[1, 2], device="cpu", batch_size=8, steps=2,
                          warmup=1)
    assert [row["processes"] for row in r["rows"]] == [1, 2]
    assert len(r["rows"][1]["per_process_images_per_s"]) == 2
    # one process: the aggregate is its own images/s; two: at most the sum of theirs (one shared time span)
    assert r["rows"][0]["aggregate_images_per_s"] == pytest.approx(r["rows"][0]["per_process_images_per_s"][0])
    assert r["rows"][1]["aggregate_images_per_s"] <= sum(r["rows"][1]["per_process_images_per_s"]) * (1 + 1e-9)
    assert "aggregate" in format_concurrency(r)
    # named by the machine its workers measured on (this CPU), not by the parent process
    import torch

    from se_res2net.training.records import device_info

    assert {k: r[k] for k in ("device", "device_name", "cuda")} == device_info("cpu")
    assert r["torch"] == torch.__version__ and r["measured_at"].endswith("Z")


def test_bench_times_the_trainer_at_the_precision_asked(probe, capsys):
    """A GPU-started bf16 run resumed on a CPU keeps bf16 (stop 46): the bench times that step on a CPU with --bf16,
    fp32 with --no-bf16 or by default; the plain loop stays fp32. Each row's setup says which."""
    from se_res2net.cli import main

    def setups(*flags):
        assert main(["bench", "--models", "res2net29", "--variants", "plain", "eager", "--device", "cpu",
                     "--batch-size", "8", "--steps", "1", "--warmup", "1", "--json", *flags]) == 0
        return {row["variant"]: row["setup"] for row in json.loads(capsys.readouterr().out)["rows"]}

    on = setups("--bf16")
    assert "bf16 autocast" in on["eager"] and "fp32" in on["plain"]
    assert "fp32" in setups("--no-bf16")["eager"] and "fp32" in setups()["eager"]
    assert main(["bench", "--device", "cpu", "--concurrency", "1", "--bf16"]) == 2
    assert "side-by-side bench only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="default precision"):
        bench(models=["res2net29"], variants=["eager"], device="cpu", floor=True, bf16=True)


def test_bench_bad_input():
    with pytest.raises(ValueError, match="steps"):
        bench(steps=0, device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        bench(models=["nope"], device="cpu")
    with pytest.raises(ValueError, match="variant"):
        bench(variants=["turbo"], device="cpu")
    with pytest.raises(ValueError, match="not plain"):
        bench_concurrency(variant="plain", device="cpu")


# ----------------------------------------------------------------------------- cut short: keep what was measured
@contextlib.contextmanager
def _interrupt_must_not_escape():
    """An escaping KeyboardInterrupt would end the whole pytest session; here it is this test's failure."""
    try:
        yield
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped instead of ending the bench with what it measured")


def test_an_interrupted_bench_prints_the_rows_it_measured_and_exits_130(probe, monkeypatch, capsys, tmp_path):
    """A budget that runs out mid-bench (SIGINT) costs the step it hit, not the rows before it; and a kill with no
    interrupt at all (`timeout -k`) still finds those rows in --out, rewritten after each."""
    from se_res2net.cli import main
    from se_res2net.training import bench as bench_mod

    timed, out, seen_before = bench_mod._time_trainer_path, tmp_path / "bench.json", []

    def interrupted_at_compile(model, cifar, dev, batch_size, steps, warmup, seed, variant, barrier, **kw):
        if variant == "compile":
            seen_before.append(json.loads(out.read_text()))  # what a SIGKILL here would leave
            raise KeyboardInterrupt
        return timed(model, cifar, dev, batch_size, steps, warmup, seed, variant, barrier, **kw)

    monkeypatch.setattr(bench_mod, "_time_trainer_path", interrupted_at_compile)
    with _interrupt_must_not_escape():
        rc = main(["bench", "--models", "res2net29", "--variants", "plain", "eager", "compile", "cudagraphs", "--floor",
                   "--device", "cpu", "--batch-size", "16", "--steps", "1", "--warmup", "1", "--json", "--out", str(out)])
    r = json.loads(capsys.readouterr().out)
    assert rc == bench_mod.INTERRUPTED_EXIT == 130
    assert [row["variant"] for row in r["rows"]] == ["plain", "eager"] and r["interrupted"] == "during res2net29 / compile"
    assert json.loads(out.read_text()) == r
    (killed,) = seen_before
    assert killed["rows"] == r["rows"] and killed["interrupted"] == "after res2net29 / eager"
    eager = r["rows"][1]
    assert eager["vs_plain"] == pytest.approx(eager["images_per_s"] / r["rows"][0]["images_per_s"])
    assert r["floor"] is None  # not started after an interrupt
    assert "interrupted during res2net29 / compile: the rows above are all that was measured" in format_table(r)
    assert "interrupted" not in format_table({**r, "interrupted": None})


def test_a_variant_that_raises_is_listed_and_the_others_and_the_floor_are_still_measured(probe, monkeypatch, capsys,
                                                                                         tmp_path):
    """A compile that fails on the GPU machine (a missing header, a CUDA-graph error) is a finding: it is listed with
    its error, the next variants and the floor are measured anyway, and the command exits 1 after printing all."""
    from se_res2net.cli import main
    from se_res2net.training import bench as bench_mod

    timed, out = bench_mod._time_trainer_path, tmp_path / "bench.json"

    def compile_fails(model, cifar, dev, batch_size, steps, warmup, seed, variant, barrier, **kw):
        if variant == "compile":
            raise RuntimeError("InductorError: fatal error: Python.h: No such file or directory\nmore lines")
        return timed(model, cifar, dev, batch_size, steps, warmup, seed, variant, barrier, **kw)

    monkeypatch.setattr(bench_mod, "_time_trainer_path", compile_fails)
    rc = main(["bench", "--models", "res2net29", "--variants", "plain", "eager", "compile", "cudagraphs", "--floor",
               "--device", "cpu", "--batch-size", "16", "--steps", "1", "--warmup", "0", "--json", "--out", str(out)])
    r = json.loads(capsys.readouterr().out)
    assert rc == bench_mod.FAILED_EXIT == 1 and r["interrupted"] is None
    assert [row["variant"] for row in r["rows"]] == ["plain", "eager", "cudagraphs"]
    assert r["failed"] == [{"model": "res2net29", "variant": "compile",
                            "error": "RuntimeError: InductorError: fatal error: Python.h: No such file or directory"}]
    assert [f["model"] for f in r["floor"]["rows"]] == ["res2net29"]  # the floor still ran
    assert json.loads(out.read_text()) == r
    assert "FAILED res2net29 / compile: RuntimeError: InductorError" in format_table(r)


# what one bench worker reports of the machine it ran on (the part a concurrency result keeps)
WORKER = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "cuda": "13.0", "torch": "2.11.0+cu130",
          "rows": []}


def test_an_interrupted_concurrency_bench_keeps_the_levels_it_measured(monkeypatch):
    from se_res2net.training import bench as bench_mod

    def level(n, *args):
        if n == 4:
            raise KeyboardInterrupt
        return ({"processes": n, "aggregate_images_per_s": 100.0 * n ** 0.5, "per_process_images_per_s": [1.0] * n},
                WORKER)

    monkeypatch.setattr(bench_mod, "_concurrent_level", level)
    with _interrupt_must_not_escape():
        r = bench_concurrency(model="res2net29", variant="eager", counts=[1, 2, 4, 8], device="cpu")
    assert [row["processes"] for row in r["rows"]] == [1, 2] and r["interrupted"] == "during 4 process(es)"
    # the machine named is the one the workers measured on, as they report it
    assert (r["device_name"], r["torch"], r["cuda"]) == ("NVIDIA H100 80GB HBM3", "2.11.0+cu130", "13.0")
    assert r["rows"][1]["vs_first"] == pytest.approx(2 ** 0.5)
    assert "interrupted during 4 process(es): the levels above" in format_concurrency(r)
    done = bench_concurrency(model="res2net29", variant="eager", counts=[1, 2], device="cpu")
    assert done["interrupted"] is None and "interrupted" not in format_concurrency(done)


@pytest.mark.slow
def test_a_compile_that_really_fails_is_listed_and_the_bench_goes_on(tmp_path):
    """No stand-in: inductor with no working C++ compiler (CXX pointing nowhere) fails as a machine without one
    would; the real bench process lists it and still measures the variants after it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "se_res2net", "bench", "--models", "res2net29", "--variants", "compile", "eager",
         "--device", "cpu", "--batch-size", "8", "--steps", "1", "--warmup", "0", "--data", "sample", "--json"],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "CXX": str(tmp_path / "no-such-g++"),
             "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert proc.returncode == 1, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert [row["variant"] for row in r["rows"]] == ["eager"]
    (failed,) = r["failed"]
    assert failed["variant"] == "compile" and "InvalidCxxCompiler" in failed["error"], failed


def test_a_concurrency_level_that_fails_keeps_the_levels_before_it_and_exits_1(monkeypatch, capsys):
    from se_res2net.cli import main
    from se_res2net.training import bench as bench_mod

    def level(n, *args):
        if n == 4:
            raise RuntimeError("a bench process failed (exit 1): CUDA out of memory\ntraceback")
        return ({"processes": n, "aggregate_images_per_s": 100.0 * n, "per_process_images_per_s": [100.0] * n},
                WORKER)

    monkeypatch.setattr(bench_mod, "_concurrent_level", level)
    rc = main(["bench", "--models", "res2net29", "--variants", "eager", "--concurrency", "1", "2", "4", "8",
               "--device", "cpu", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 1 and [row["processes"] for row in r["rows"]] == [1, 2] and r["interrupted"] is None
    assert r["failed"] == [{"processes": 4, "error": "RuntimeError: a bench process failed (exit 1): CUDA out of memory"}]
    assert "FAILED at 4 process(es): RuntimeError" in format_concurrency(r)


def _bench_until_compile_begins(tmp_path, *extra):
    """A real ``se-res2net bench`` process of eager then compile, returned once eager is done and compile began."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "se_res2net", "bench", "--models", "res2net29", "--variants", "eager", "compile",
           "--device", "cpu", "--batch-size", "8", "--steps", "1", "--warmup", "1", "--data", "sample", "--json", *extra]
    # SIGINT back to its default in the child, as `timeout` does for its command: a suite started in the background
    # by a non-interactive shell (CI, `nohup ... &`) runs with SIGINT ignored, and a child would inherit that
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=restore,
                            env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1",
                                 "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})  # cut: keep it private
    seen, deadline = "", time.monotonic() + 300
    while "res2net29 / compile" not in seen:
        line = proc.stderr.readline()
        assert line and time.monotonic() < deadline, f"bench ended before compile: {seen}"
        seen += line
    time.sleep(1.0)
    return proc


@pytest.mark.slow
def test_sigint_mid_bench_gives_json_of_the_finished_variants(tmp_path):
    """The real signal, as `timeout -s INT` sends it, while the second variant compiles."""
    import signal

    proc = _bench_until_compile_begins(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-2000:]
    r = json.loads(out)
    assert [row["variant"] for row in r["rows"]] == ["eager"] and r["interrupted"] == "during res2net29 / compile"


@pytest.mark.slow
def test_sigkill_mid_bench_leaves_the_finished_variants_in_out(tmp_path):
    """No interrupt at all: SIGKILL (what `timeout -k` sends) while compile works. --out holds eager's row."""
    import signal

    out = tmp_path / "bench.json"
    proc = _bench_until_compile_begins(tmp_path, "--out", str(out))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    r = json.loads(out.read_text())
    assert [row["variant"] for row in r["rows"]] == ["eager"] and r["interrupted"] == "after res2net29 / eager"
    assert "interrupted after res2net29 / eager: the rows above are all that was measured" in format_table(r)


def test_mps_is_recorded_only_where_a_daemon_answers_and_the_workers_ran_on_a_gpu(monkeypatch, tmp_path, capsys):
    """--sharing mps labels the result; it needs the control daemon's pipe (without one the processes would take
    turns as usual, and the label would be wrong) and a CUDA device (checked again from what the workers report)."""
    from se_res2net.cli import main
    from se_res2net.training import bench as bench_mod

    level = lambda n, *args: ({"processes": n, "aggregate_images_per_s": 100.0 * n,  # noqa: E731
                               "per_process_images_per_s": [100.0] * n}, WORKER)
    monkeypatch.setattr(bench_mod, "_concurrent_level", level)
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "pipe"))
    with pytest.raises(ValueError, match=r"no CUDA MPS control daemon answers at .*pipe/control: start one"):
        bench_concurrency(model="res2net29", variant="eager", counts=[1], device="cuda", sharing="mps")
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "control").touch()
    r = bench_concurrency(model="res2net29", variant="eager", counts=[1, 2], device="cuda", sharing="mps")
    assert r["sharing"] == "mps" and [row["processes"] for row in r["rows"]] == [1, 2]
    assert "on cuda, mps, batch 128" in format_concurrency(r)
    assert bench_concurrency(model="res2net29", variant="eager", counts=[1], device="cuda")["sharing"] == "time-slicing"
    with pytest.raises(ValueError, match="on --device cpu there is nothing to share"):
        bench_concurrency(model="res2net29", variant="eager", counts=[1], device="cpu", sharing="mps")
    cpu_worker = lambda n, *args: (level(n)[0], {**WORKER, "device": "cpu"})  # noqa: E731
    monkeypatch.setattr(bench_mod, "_concurrent_level", cpu_worker)
    with pytest.raises(ValueError, match="needs a CUDA device; the workers ran on cpu"):
        bench_concurrency(model="res2net29", variant="eager", counts=[1], device="auto", sharing="mps")
    with pytest.raises(ValueError, match="sharing must be one of"):
        bench_concurrency(model="res2net29", variant="eager", counts=[1], device="cuda", sharing="mig")
    assert main(["bench", "--variants", "eager", "--sharing", "mps", "--device", "cuda"]) == 2
    assert "give --concurrency N ... too" in capsys.readouterr().err


# ----------------------------------------------------------------------------- stacked: N models in one step
def test_stacked_bench_steps_n_models_together_and_the_rule_never_reads_it(capsys):
    """``--stacked 1 2``: a row per level, each model of a level trained on its own batch (n x batch images a
    step). Its result is of its own kind, which the GPU block's rule never decides from."""
    from se_res2net.cli import main
    from se_res2net.training import bench as B
    from se_res2net.training.decision import kind_of

    rc = main(["bench", "--stacked", "1", "2", "--models", "res2net29", "--variants", "eager", "--device", "cpu",
               "--batch-size", "4", "--steps", "2", "--warmup", "1", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["kind"] == "stacked" and kind_of(r) == "stacked"
    assert [row["models"] for row in r["rows"]] == [1, 2] and r["rows"][0]["vs_first"] == 1.0
    # one model stacked trains as the trainer's own step does: same init, batches, draws and loss
    alone = B.bench(models=["res2net29"], variants=["eager"], device="cpu", batch_size=4, steps=2, warmup=1)
    assert r["rows"][0]["mean_loss"] == pytest.approx(alone["rows"][0]["mean_loss"], rel=1e-3)
    for row in r["rows"]:
        assert math.isfinite(row["mean_loss"])
        assert row["aggregate_images_per_s"] == pytest.approx(2 * row["models"] * 4 / (row["step_ms"] / 1000 * 2))
    one, two = (row["launches"] for row in r["rows"])  # two models launch what one does: what stacking is for
    assert one > 100 and two < 1.2 * one
    text = B.format_result(r)
    assert text.startswith("stacked: res2net29 / eager on cpu") and "\n     2 " in text


def test_stacked_bench_bad_input_and_a_failing_level(monkeypatch, capsys):
    from se_res2net.cli import main
    from se_res2net.training import bench as B
    from se_res2net.training import stacked

    with pytest.raises(ValueError, match="counts"):
        B.bench_stacked(counts=[0], device="cpu")
    with pytest.raises(ValueError, match="not plain"):
        B.bench_stacked(variant="plain", device="cpu")
    assert main(["bench", "--stacked", "2", "--concurrency", "2", "--device", "cpu"]) == 2

    real = stacked.StackedModels

    def out_of_memory_at_two(models):
        if len(models) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(models)

    monkeypatch.setattr(stacked, "StackedModels", out_of_memory_at_two)
    rc = main(["bench", "--stacked", "1", "2", "4", "--models", "res2net29", "--device", "cpu", "--batch-size", "4",
               "--steps", "1", "--warmup", "1"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAILED at 2 stacked model(s): RuntimeError: CUDA out of memory (simulated)" in out
    assert "\n     1 " in out and "\n     4 " not in out  # the level before is kept, none after


def test_stacked_levels_are_set_beside_as_many_processes_of_the_same_model_variant_batch_and_machine():
    from se_res2net.training.bench import stacked_vs_processes

    machine = {"device": "cuda", "device_name": "GPU A", "torch": "2.11", "cuda": "13.0"}
    stacked = {"kind": "stacked", "model": "se_res2net29", "variant": "cudagraphs", "batch_size_per_model": 128,
               **machine, "rows": [{"models": 4, "aggregate_images_per_s": 50_000.0},
                                   {"models": 3, "aggregate_images_per_s": 40_000.0}]}
    conc = {"model": "se_res2net29", "variant": "cudagraphs", "batch_size": 128, **machine,
            "rows": [{"processes": n, "aggregate_images_per_s": 20_000.0} for n in (1, 2, 4, 8)]}
    assert stacked_vs_processes(stacked, [conc]) == [
        "4 se_res2net29 stacked in one step: 50,000 images/s, 2.50x 4 processes (time-slicing, 20,000 images/s; "
        "cudagraphs)"]
    mps = dict(conc, sharing="mps", rows=[{"processes": 4, "aggregate_images_per_s": 40_000.0}])
    assert stacked_vs_processes(stacked, [conc, mps])[1].endswith("1.25x 4 processes (mps, 40,000 images/s; cudagraphs)")
    for other in (dict(conc, variant="eager"), dict(conc, batch_size=64), dict(conc, device_name="GPU B"),
                  dict(mps, rejected="no process reached the MPS daemon")):
        assert stacked_vs_processes(stacked, [other]) == []


def test_stacked_bench_runs_the_cuda_fast_path(monkeypatch):
    """On a GPU the fast path is bf16 autocast, channels-last and fused SGD; the stacked bench takes it (here on a
    CPU, where every CUDA switch also runs): a level that could not lay out the stacked weights would fail."""
    from se_res2net.training import trainer
    from se_res2net.training.bench import bench_stacked

    cuda_like = trainer.FastPath(bf16=True, channels_last=True, sgd_impl="fused", compile_mode=None)
    monkeypatch.setattr(trainer, "resolve_fast_path", lambda config, device_type: cuda_like)
    r = bench_stacked(model="res2net29", counts=[2], device="cpu", batch_size=4, steps=1, warmup=1)
    assert r["failed"] == [] and [row["models"] for row in r["rows"]] == [2], r["failed"]
    assert "bf16 autocast, channels_last, fused SGD" in r["setup"]
