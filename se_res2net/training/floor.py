"""The floor of one training step: the least time its arithmetic, its memory traffic and its launches can take.

A batch-128 step of a CIFAR network is small. Which of three limits sets its speed decides what helps
(fusion, CUDA graphs, several runs per GPU), so each is counted on the step the trainer really runs
(:func:`se_res2net.training.trainer.train_step`: augmentation, forward, loss, backward, SGD update):

``flops``
    floating-point operations of the convolutions and matmuls, forward and backward, counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` (element-wise ops are left out: they cost memory, not
    arithmetic).
``bytes``
    bytes every ATen op reads and writes (its tensor inputs, outputs and the arguments its schema declares
    mutated), as eager PyTorch runs it: each op is a kernel that goes through memory. ``torch.compile``
    fuses element-wise chains and moves less; this is the unfused traffic, and it assumes nothing stays in
    cache (an H100's 50 MB L2 can hold a whole batch-128 activation), so its time is an estimate of the
    memory limit, not a strict lower bound.
``ops``
    ATen ops that launch work (views, allocations and profiler markers are not counted): about the number
    of kernels eager PyTorch launches per step (a cuDNN backward convolution is one op but two kernels).

Each is turned into time with the device's rates *measured in the same process* (:func:`measure_peaks`):
a large matmul in the training precision (FLOP/s), a large device-to-device copy (bytes/s), and a loop of
tiny in-place adds (seconds per op: dispatch + launch, with no autograd or autocast work, so a floor).
The step's floor is the largest of the three times, and that one names what bounds it; measured ÷ floor
says how far a variant is from it. The counts are
exact for the op list they see; the op list is the device's own (cuDNN and CPU kernels differ, autocast
casts differ), so count on the device the floor is for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

log = logging.getLogger(__name__)

SWITCHES = ("device", "cuda", "cpu")
BOUNDS = ("arithmetic", "memory", "launches")
# ops that only make metadata or reserve memory (no kernel runs), and profiler markers
_NOT_KERNELS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "lift_fresh", "alias",
    "_unsafe_view", "set_", "resize_", "_record_function_enter_new", "_record_function_exit",
})


@dataclasses.dataclass(frozen=True)
class StepCount:
    """What one training step of ``model`` at ``batch_size`` does, counted on ``device``."""

    model: str
    batch_size: int
    device: str
    switches: str  # the fast path counted, e.g. "bf16 autocast, channels_last, fused SGD, eager"
    flops: float  # conv + matmul FLOPs, forward and backward
    bytes: float  # bytes read + written by every op (unfused)
    ops: int  # ops that launch work (≈ eager kernels)
    top_ops: Dict[str, int]  # the most frequent ops, for the reader


@dataclasses.dataclass(frozen=True)
class DevicePeaks:
    """Rates of ``device`` measured in this process (achievable, not datasheet)."""

    device: str
    device_name: str
    dtype: str  # the matmul's dtype: the training precision
    flops_per_s: float  # n×n matmul: 2n³ / seconds
    bytes_per_s: float  # copy of a large buffer: read + write bytes / seconds
    seconds_per_op: float  # one tiny in-place add, dispatched and launched


def _bytes(t: Any) -> int:
    return t.numel() * t.element_size()


def _counting_mode() -> Any:
    """A ``TorchDispatchMode`` that counts ops and the bytes they touch (built on demand: torch is heavy)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    def tensors(tree: Any) -> List[Any]:
        return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]

    class _Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0
            self.bytes = 0
            self.names: Counter = Counter()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func.overloadpacket.__name__
            if func.is_view or name in _NOT_KERNELS:
                return out
            outs = tensors(out)
            returned = {id(t) for t in outs}
            moved = sum(_bytes(t) for t in outs)  # written
            schema = func._schema.arguments
            by_name = {a.name: a for a in schema}
            for schema_arg, value in [*zip(schema, args), *((by_name.get(k), v) for k, v in kwargs.items())]:
                ts = tensors(value)
                if schema_arg is None or not schema_arg.is_out:  # an out= tensor is written, not read
                    moved += sum(_bytes(t) for t in ts)
                # mutated arguments that are not returned (e.g. the fused SGD's params and momenta) are written too
                if schema_arg is not None and schema_arg.alias_info is not None and schema_arg.alias_info.is_write:
                    moved += sum(_bytes(t) for t in ts if id(t) not in returned)
            self.ops += 1
            self.bytes += moved
            self.names[name] += 1
            return out

    return _Count()


def _fast_path(model_name: str, switches: str, device_type: str) -> Any:
    """The trainer's default switches for ``model_name`` on ``device_type``, or on the device ``switches`` names."""
    from .trainer import TrainConfig, resolve_fast_path

    if switches not in SWITCHES:
        raise ValueError(f"switches must be one of {', '.join(SWITCHES)}, got {switches!r}")
    target = device_type if switches == "device" else switches
    return resolve_fast_path(TrainConfig(model_name), target)


def count_step(model_name: str, batch_size: int = 128, device: str = "cpu", switches: str = "device",
               seed: int = 0) -> StepCount:
    """Count one eager training step (the second: the first creates the momentum buffers).

    ``switches``: whose default fast path to count — the ``device``'s own, or ``"cuda"`` / ``"cpu"``'s on
    any device (so CUDA's bf16 + channels-last + fused SGD step can be counted on a CPU).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.registry import create_model, get_factory
    from .trainer import TrainConfig, make_optimizer, prepare_model, resolve_device, train_step

    get_factory(model_name)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    dev = resolve_device(device)
    fast = _fast_path(model_name, switches, dev.type)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model, step_model = prepare_model(create_model(model_name), dev, fast)
        optimizer = make_optimizer(model, TrainConfig(model_name), fast)
        model.train()
        images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=dev)
        labels = torch.randint(0, 10, (batch_size,), device=dev)
        gen = torch.Generator(device=dev).manual_seed(seed)
        train_step(step_model, optimizer, images, labels, gen, fast)
        counter, flops = _counting_mode(), FlopCounterMode(display=False)
        with flops, counter:
            train_step(step_model, optimizer, images, labels, gen, fast)
    return StepCount(model=model_name, batch_size=batch_size, device=str(dev), switches=fast.describe(),
                     flops=float(flops.get_total_flops()), bytes=float(counter.bytes), ops=int(counter.ops),
                     top_ops=dict(counter.names.most_common(8)))


def _best_rate(run: Any, amount: float, sync: Any, min_s: float, rounds: int = 3) -> float:
    """``amount`` per call of ``run`` divided by its best per-call time over ``rounds`` rounds of >= ``min_s``."""
    run()
    sync()
    reps = 1
    while True:  # calibrate: enough calls for one round to last min_s
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_s:
            break
        reps = max(reps * 2, int(reps * min_s / max(dt, 1e-9)) + 1)
    best = dt / reps
    for _ in range(rounds - 1):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        sync()
        best = min(best, (time.perf_counter() - t0) / reps)
    return amount / best


def measure_peaks(device: str = "cpu", bf16: Optional[bool] = None, *, min_s: float = 0.2) -> DevicePeaks:
    """Matmul FLOP/s, copy bytes/s and seconds per tiny op on ``device``, timed now.

    ``bf16``: the matmul's precision (default: the device's training default, bf16 on CUDA). Sizes are large
    enough to saturate the device (8192² matmul and 1 GiB copy on CUDA; 1024² and 64 MiB on a CPU).
    """
    import torch

    from .records import device_info
    from .trainer import resolve_device

    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    if bf16 is None:
        bf16 = on_cuda
    dtype = torch.bfloat16 if bf16 else torch.float32

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize(dev)

    n = 8192 if on_cuda else 1024
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    flops_per_s = _best_rate(lambda: torch.mm(a, b), 2.0 * n ** 3, sync, min_s)
    del a, b
    src = torch.empty((1 << 30 if on_cuda else 1 << 26) // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    bytes_per_s = _best_rate(lambda: dst.copy_(src), 2.0 * _bytes(src), sync, min_s)
    del src, dst
    tiny = torch.zeros(1, device=dev)
    seconds_per_op = 1.0 / _best_rate(lambda: tiny.add_(1.0), 1.0, sync, min_s)
    info = device_info(dev)
    return DevicePeaks(device=str(dev), device_name=info["device_name"], dtype=str(dtype).replace("torch.", ""),
                       flops_per_s=flops_per_s, bytes_per_s=bytes_per_s, seconds_per_op=seconds_per_op)


def floor_of(count: StepCount, peaks: DevicePeaks) -> Dict[str, Any]:
    """The three times (ms) of ``count`` at ``peaks``' rates, the floor (their maximum) and what bounds it."""
    times = {
        "arithmetic": 1e3 * count.flops / peaks.flops_per_s,
        "memory": 1e3 * count.bytes / peaks.bytes_per_s,
        "launches": 1e3 * count.ops * peaks.seconds_per_op,
    }
    bound = max(BOUNDS, key=lambda k: times[k])
    floor_ms = times[bound]
    return {
        **dataclasses.asdict(count),
        "arithmetic_ms": times["arithmetic"],
        "memory_ms": times["memory"],
        "launches_ms": times["launches"],
        "floor_ms": floor_ms,
        "bound": bound,
        "ceiling_images_per_s": 1e3 * count.batch_size / floor_ms,
    }


def floor(models: Sequence[str] = ("se_res2net29",), device: str = "auto", batch_size: int = 128,
          switches: str = "device") -> Dict[str, Any]:
    """Count each model's step and measure the device's rates in this process; a JSON-ready dict."""
    import torch

    from .trainer import resolve_device

    if isinstance(models, str):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("give at least one model")
    dev = resolve_device(device)
    counts = []
    for m in models:
        log.info("floor: counting one %s step (batch %d) on %s", m, batch_size, dev)
        counts.append(count_step(m, batch_size, str(dev), switches))
    fast = _fast_path(models[0], switches, dev.type)
    log.info("floor: measuring %s matmul, copy and per-op rates on %s", "bf16" if fast.bf16 else "fp32", dev)
    peaks = measure_peaks(str(dev), bf16=fast.bf16)
    return {"torch": torch.__version__, "peaks": dataclasses.asdict(peaks),
            "rows": [floor_of(c, peaks) for c in counts]}


def format_floor(result: Dict[str, Any], measured_ms: Optional[Dict[str, float]] = None) -> str:
    """The floor table; ``measured_ms`` (model → measured eager ms/step) adds an eager ÷ floor column."""
    p = result["peaks"]
    lines = [
        f"floor on {p['device']} ({p['device_name']}), torch {result['torch']}: measured {p['dtype']} matmul "
        f"{p['flops_per_s'] / 1e12:.3g} TFLOP/s, copy {p['bytes_per_s'] / 1e9:.3g} GB/s, "
        f"{p['seconds_per_op'] * 1e6:.3g} µs per op",
        f"{'model':<24} {'GFLOP':>7} {'GB':>7} {'ops':>5} {'arith ms':>9} {'mem ms':>8} {'launch ms':>9} "
        f"{'floor ms':>9} {'bound':<10} {'≤ images/s':>10}" + (f" {'eager ÷ floor':>14}" if measured_ms else ""),
    ]
    for r in result["rows"]:
        line = (f"{r['model']:<24} {r['flops'] / 1e9:>7.1f} {r['bytes'] / 1e9:>7.2f} {r['ops']:>5} "
                f"{r['arithmetic_ms']:>9.3f} {r['memory_ms']:>8.3f} {r['launches_ms']:>9.3f} {r['floor_ms']:>9.3f} "
                f"{r['bound']:<10} {r['ceiling_images_per_s']:>10.0f}")
        if measured_ms:
            m = measured_ms.get(r["model"])
            line += f" {m / r['floor_ms']:>13.2f}x" if m else f" {'—':>14}"
        lines.append(line)
    lines.append(f"batch {result['rows'][0]['batch_size']}, counted on {result['rows'][0]['device']} with "
                 f"{result['rows'][0]['switches']}; floor = the largest of the three times")
    return "\n".join(lines)


def add_floor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", "--model", nargs="+", default=["se_res2net29"], metavar="MODEL",
                   help="registered models (default se_res2net29)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    p.add_argument("--switches", choices=SWITCHES, default="device",
                   help="whose default fast path to count: the device's own (default), or cuda's / cpu's anywhere")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_floor(args: argparse.Namespace) -> int:
    result = floor(models=args.models, device=args.device, batch_size=args.batch_size, switches=args.switches)
    print(json.dumps(result, indent=2) if args.json else format_floor(result))
    return 0
