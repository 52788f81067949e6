"""floor: a training step's FLOPs, bytes and launches are counted exactly, and turned into times correctly."""

import json
import math

import pytest

from se_res2net.cli import main
from se_res2net.training import floor as fl


def _count(fn):
    import torch  # noqa: F401  (the mode needs torch loaded)

    mode = fl._counting_mode()
    with mode:
        fn()
    return mode


def test_step_flops_are_the_forward_three_times_less_the_stems_input_gradient():
    """Forward, then backward: a gradient for each conv/linear input and weight (2× forward), except the stem's
    input, which needs no gradient. FlopCounterMode sees the whole step the trainer runs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from se_res2net.models.complexity import count_flops_torch
    from se_res2net.models.registry import create_model

    batch = 2
    count = fl.count_step("se_res2net29", batch, "cpu", "cpu")
    model = create_model("se_res2net29")
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    stem_flops = FlopCounterMode(display=False)
    with torch.no_grad(), stem_flops:
        stem(torch.zeros(1, 3, 32, 32))
    assert count.flops == batch * (3 * count_flops_torch(model) - stem_flops.get_total_flops())
    assert count.model == "se_res2net29" and count.batch_size == batch and count.device == "cpu"
    assert count.switches == "fp32, NCHW, forloop SGD, eager"
    # the for-loop SGD launches a handful of element-wise ops per parameter tensor: they top the list
    assert set(count.top_ops) >= {"add_", "mul_", "convolution", "convolution_backward"}


def test_cuda_switches_count_the_same_arithmetic_with_other_ops():
    cpu, cuda = (fl.count_step("res2net29", 2, "cpu", s) for s in ("cpu", "cuda"))
    assert cuda.switches == "bf16 autocast, channels_last, fused SGD, eager"
    assert cuda.flops == cpu.flops  # precision does not change the arithmetic
    # one fused SGD op instead of several per parameter tensor; autocast adds casts of the weights
    assert cuda.ops < cpu.ops and "_to_copy" in cuda.top_ops and "_to_copy" not in cpu.top_ops
    with pytest.raises(ValueError, match="switches must be one of device, cuda, cpu, got 'tpu'"):
        fl.count_step("res2net29", 2, "cpu", "tpu")


def test_bytes_and_ops_of_known_ops():
    import torch

    a, b, c = torch.randn(100), torch.randn(100), torch.empty(100)
    n = 400  # bytes of one of them
    mode = _count(lambda: a.add_(b))
    assert (mode.ops, mode.bytes) == (1, 3 * n)  # read a, read b, write a
    mode = _count(lambda: torch.add(a, b, out=c))
    assert (mode.ops, mode.bytes) == (1, 3 * n)  # an out= tensor is written, not read
    mode = _count(lambda: torch.mm(a.view(10, 10), b.view(10, 10)))
    assert (mode.ops, mode.bytes, dict(mode.names)) == (1, 3 * n, {"mm": 1})  # the views launch nothing
    mode = _count(lambda: (torch.empty(5), a.detach(), a.view(10, 10).t()))
    assert (mode.ops, mode.bytes) == (0, 0)

    p = torch.nn.Parameter(torch.randn(1000))
    p.grad = torch.randn(1000)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
    opt.step()  # creates the momentum buffer
    mode = _count(opt.step)
    # one op; reads params, grads, momenta; writes what its schema declares mutable: params, grads, momenta
    assert (mode.ops, mode.bytes, dict(mode.names)) == (1, 6 * 4000, {"_fused_sgd_": 1})


def _peaks(**kw):
    base = dict(device="cuda", device_name="GPU", dtype="bfloat16", flops_per_s=1e15, bytes_per_s=2e12,
                seconds_per_op=5e-6)
    return fl.DevicePeaks(**{**base, **kw})


def _step(**kw):
    base = dict(model="m", batch_size=100, device="cuda", switches="s", flops=1e12, bytes=4e9, ops=500, top_ops={})
    return fl.StepCount(**{**base, **kw})


def test_floor_is_the_largest_time_and_names_its_bound():
    r = fl.floor_of(_step(), _peaks())
    # 1e12 FLOP at 1e15 FLOP/s = 1 ms; 4e9 B at 2e12 B/s = 2 ms; 500 ops × 5 µs = 2.5 ms
    assert (r["arithmetic_ms"], r["memory_ms"], r["launches_ms"]) == pytest.approx((1.0, 2.0, 2.5))
    assert r["bound"] == "launches" and r["floor_ms"] == pytest.approx(2.5)
    assert r["ceiling_images_per_s"] == pytest.approx(100 / 2.5e-3)
    assert fl.floor_of(_step(ops=100), _peaks())["bound"] == "memory"
    assert fl.floor_of(_step(ops=100, bytes=1e9), _peaks())["bound"] == "arithmetic"


def test_best_rate_divides_the_amount_by_the_best_time_per_call(monkeypatch):
    """A fake clock: calls that cost 10 ms give amount / 10 ms whatever the calibration chose; when the first
    (calibration) round is slow, the later rounds' best time counts, not the first."""
    clock = {"t": 0.0, "calls": 0}
    monkeypatch.setattr(fl.time, "perf_counter", lambda: clock["t"])

    def run(slow_calls):
        def call():
            clock["calls"] += 1
            clock["t"] += 1.0 if clock["calls"] <= slow_calls else 0.01
        return call

    assert fl._best_rate(run(0), 3.0, lambda: None, min_s=0.1) == pytest.approx(300.0)
    clock["calls"] = 0
    # warm-up and the one-call calibration round are slow (1 s >= min_s: no doubling), the next rounds fast
    assert fl._best_rate(run(2), 3.0, lambda: None, min_s=0.1) == pytest.approx(300.0)


def test_floor_cli_json_and_table(capsys):
    assert main(["floor", "--device", "cpu", "--models", "res2net29", "--batch-size", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    p = r["peaks"]
    assert p["dtype"] == "float32" and p["device"] == "cpu"
    assert all(math.isfinite(p[k]) and p[k] > 0 for k in ("flops_per_s", "bytes_per_s", "seconds_per_op"))
    (row,) = r["rows"]
    assert row["model"] == "res2net29" and row["bound"] in fl.BOUNDS
    assert row["floor_ms"] == max(row["arithmetic_ms"], row["memory_ms"], row["launches_ms"])
    table = fl.format_floor(r, measured_ms={"res2net29": 3 * row["floor_ms"]})
    assert "eager ÷ floor" in table and " 3.00x" in table and row["bound"] in table


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--models", "resnet_nope"], "resnet_nope"),
])
def test_floor_bad_input_is_one_line(argv, message, capsys):
    assert main(["floor", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("se-res2net floor: error:") and message in err and len(err.strip().splitlines()) == 1
