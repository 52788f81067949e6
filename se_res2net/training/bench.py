"""Training throughput, side by side in one run: a plain PyTorch loop against this trainer's step.

Variants (``VARIANTS``), each training a fresh instance of the same architecture (same init seed), same
batch size, SGD with the report's hyper-parameters, on the same device, in one process:

``plain``
    The textbook loop: a ``Dataset`` of PIL images, ``transforms.RandomCrop(32, padding=4)``,
    ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` in a ``DataLoader``
    (``shuffle=True``, ``drop_last=True``, ``num_workers`` 4 on CUDA / 0 on CPU by default, ``pin_memory`` on
    CUDA), float32, eager, default memory format, ``loss.item()`` every step (the usual running loss), cuDNN
    autotuning at torch's default (off): the trainer's variants turn it on, so on CUDA their ratio to ``plain``
    includes it (each row's ``setup`` says so).
``eager``
    :func:`se_res2net.training.trainer.train_step` as :func:`~se_res2net.training.trainer.train` runs it: the data set on the
    device as ``uint8``, batches indexed from a precomputed permutation and augmented on the device by
    :func:`se_res2net.training.data.augment`, the device's default fast path (:func:`~se_res2net.training.trainer.resolve_fast_path`:
    bf16 autocast, channels-last and fused SGD on CUDA; fp32 on CPU), no host synchronisation in the timed window.
``compile``
    ``eager`` with ``torch.compile(model)`` (mode ``default``).
``cudagraphs``
    ``eager`` with ``torch.compile(model, mode="reduce-overhead")``: CUDA graphs on CUDA (on CPU it compiles
    like ``default``).

Each variant runs ``warmup`` untimed steps (compilation happens there), then ``steps`` timed steps; then the
trainer's variants issue one more step three times from an idle queue (``host_ms``, the median: the host's
Python and launch cost alone, since CUDA runs kernels asynchronously) and once under ``torch.profiler``
(``launches``: the device events of the step on CUDA, the top-level ops on a CPU). A step whose ``host_ms`` is
close to its ``step_ms`` is bound by launches; a variant that launches fewer kernels at a higher ``host_ms``
pays more per launch (Inductor's Triton launches cost more host time than eager ATen ones:
pytorch/pytorch#93803).
``images/s = steps × batch / seconds``; ratios are against ``plain`` (and ``eager``) of the same model in the
same run. ``achieved TFLOP/s`` counts 3 × 2 × thop MACs per image (forward, and a backward of about twice
the forward). :func:`bench_concurrency` measures the aggregate images/s of N processes sharing the device,
either taking turns on it (``time-slicing``, CUDA's default) or through CUDA MPS (``mps``: the processes' kernels
run side by side; a control daemon must be running, see ``scripts/gpu-runbook.sh mps``). :func:`bench_stacked`
measures N models stacked into one vmapped step in one process (:mod:`se_res2net.training.stacked`), to set beside N
processes (:func:`stacked_vs_processes`).
Nothing here asserts a speed: the numbers depend on the machine (see ``benchmarks/NOTES.md``).

An interrupt (Ctrl-C, or ``timeout -s INT`` when a time budget runs out) keeps what was measured: the result
holds the rows finished before it and says where it stopped under ``interrupted`` (``"during <step>"``; ``None``
when the bench ran to the end), and ``se-res2net bench`` prints it and exits 130. A process that never sees
the interrupt (started with SIGINT ignored, as a non-interactive shell starts background jobs, or killed
outright by a budget's ``timeout -k``) gets no such chance: ``--out FILE`` keeps the result so far in FILE,
rewritten after every row (``"after <step>"``), for that case. A variant that raises (a compile that fails on
the machine, say) is listed under ``failed`` with its error, and the bench goes on: ``se-res2net bench`` then
exits 1 after printing everything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

log = logging.getLogger(__name__)

DATA_CHOICES = ("sample", "auto", "folder", "torchvision")
VARIANTS = ("plain", "eager", "compile", "cudagraphs")
# the shell's code for a command ended by SIGINT: a bench cut short prints what it measured, then exits with it
INTERRUPTED_EXIT = 130
# a variant that raised (listed under `failed`): the others were measured, the command still says it went wrong
FAILED_EXIT = 1
_COMPILE = {"eager": None, "compile": "default", "cudagraphs": "reduce-overhead"}
# How concurrent processes share one GPU: taking turns (CUDA's default: one context's kernels at a time) or
# through the CUDA Multi-Process Service, whose server runs the kernels of all its clients side by side.
SHARING = ("time-slicing", "mps")


def mps_pipe_directory() -> Path:
    """Where CUDA clients look for the MPS control daemon (``CUDA_MPS_PIPE_DIRECTORY``, default /tmp/nvidia-mps)."""
    return Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps")


def _check_sharing(sharing: str, device: str) -> None:
    if sharing not in SHARING:
        raise ValueError(f"sharing must be one of {', '.join(SHARING)}, got {sharing!r}")
    if sharing != "mps":
        return
    if device == "cpu":
        raise ValueError("--sharing mps shares a CUDA GPU; on --device cpu there is nothing to share: drop --sharing")
    control = mps_pipe_directory() / "control"
    if not control.exists():
        # without a daemon the processes would take turns as usual, and the result would be labelled wrongly
        raise ValueError(f"no CUDA MPS control daemon answers at {control}: start one first "
                         "(scripts/gpu-runbook.sh mps start, or nvidia-cuda-mps-control -d with the same "
                         "CUDA_MPS_PIPE_DIRECTORY)")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_variants(variants: Sequence[str]) -> List[str]:
    out = list(variants)
    bad = [v for v in out if v not in VARIANTS]
    if bad or not out:
        raise ValueError(f"unknown bench variant(s) {bad or '(none given)'}; choose from {', '.join(VARIANTS)}")
    return out


def _host_ms_per_step(step: Callable[[], None], device: Any, repeats: int = 3) -> float:
    """Milliseconds the host takes to issue one step from an idle device queue (the median of ``repeats``): on
    CUDA, kernels run asynchronously, so this is the Python and launch cost alone, and a step is bound by
    launches when it is close to the step's measured time; on CPU the step runs as it is issued (the two match)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        times.append(1000.0 * (time.perf_counter() - t0))
        _sync(device)
    return sorted(times)[len(times) // 2]


def _launches_per_step(step: Callable[[], None], device: Any) -> int:
    """What one step launches, counted by ``torch.profiler``: on CUDA, the events the device ran (kernels,
    memcpy and memset; of a CUDA-graph replay, the kernels CUPTI reports in it); on CPU, the top-level ops it
    dispatched."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = getattr(device, "type", str(device)) == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    if cuda:
        return sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA)
    return sum(1 for e in prof.events() if e.device_type == DeviceType.CPU and e.cpu_parent is None
               and e.name.startswith("aten::"))


def _time_trainer_path(
    model_name: str, data: Any, device: Any, batch_size: int, steps: int, warmup: int, seed: int, variant: str,
    barrier: Optional[Path] = None, bf16: Optional[bool] = None,
) -> Dict[str, Any]:
    """The trainer's step (:func:`se_res2net.training.trainer.train_step`) on device-resident uint8 data, in bf16
    autocast or not as ``bf16`` says (``None``: the device's default, as the trainer's)."""
    import torch

    from ..models.registry import create_model
    from .trainer import TrainConfig, _derive_seed, _numerics, make_optimizer, prepare_model, resolve_fast_path, train_step

    mode = _COMPILE[variant]
    config = TrainConfig(model_name, batch_size=batch_size, seed=seed, compile=mode is not None,
                         compile_mode=mode or "default", device=str(device), bf16=bf16)
    fast = resolve_fast_path(config, device.type)
    torch.manual_seed(seed)
    model, step_model = prepare_model(create_model(model_name), device, fast)
    optimizer = make_optimizer(model, config, fast)
    model.train()

    images = torch.from_numpy(data.train.images).to(device)
    labels = torch.from_numpy(data.train.labels).to(device)
    n = int(labels.shape[0])
    total = (warmup + steps) * batch_size
    order_gen = torch.Generator().manual_seed(_derive_seed(seed, "order"))
    order = torch.cat([torch.randperm(n, generator=order_gen) for _ in range(math.ceil(total / n))])[:total].to(device)
    aug_gen = torch.Generator(device=device).manual_seed(_derive_seed(seed, "augment"))
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def step(i: int) -> None:
        idx = order[i * batch_size : (i + 1) * batch_size]
        loss, _ = train_step(step_model, optimizer, images[idx], labels[idx], aug_gen, fast)
        loss_sum.add_(loss.double())  # accumulated on the device, read once at the end

    with _numerics(device):
        for i in range(warmup):
            step(i)
        _sync(device)
        if barrier is not None:
            _wait_at_barrier(barrier)
        t_start = time.time()
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            step(i)
        _sync(device)
        elapsed = time.perf_counter() - t0
        mean_loss = loss_sum.item() / (warmup + steps)
        # where the step's time goes (not in the timed window; concurrency workers skip it): the host's time to
        # issue one step from an idle queue, and the kernels it launches. A step whose host time is its whole time
        # is bound by launches; fewer kernels at a higher host time means each launch costs more
        host_ms = launches = None
        if barrier is None:
            host_ms = _host_ms_per_step(lambda: step(0), device)
            try:
                launches = _launches_per_step(lambda: step(0), device)
            except Exception as exc:  # noqa: BLE001 -- a profiler that fails here costs the count, not the row
                log.warning("could not count the launches of %s / %s: %s", model_name, variant, exc)
    return {
        "images_per_s": steps * batch_size / elapsed,
        "host_ms": host_ms,
        "launches": launches,
        "step_ms": 1000.0 * elapsed / steps,
        "elapsed_s": elapsed,
        "start_unix": t_start,
        "end_unix": t_start + elapsed,
        "mean_loss": mean_loss,
        "setup": f"uint8 on {device.type}, batched data.augment, {fast.describe()}"
                 + (", cuDNN autotuning on" if device.type == "cuda" else ""),
    }


class _PILDataset:
    """``torch.utils.data.Dataset`` of PIL images with a torchvision transform (the plain loop's input)."""

    def __init__(self, images_nchw: Any, labels: Any, transform: Any) -> None:
        from PIL import Image

        self.images = [Image.fromarray(img.transpose(1, 2, 0)) for img in images_nchw]
        self.labels = [int(v) for v in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        return self.transform(self.images[i]), self.labels[i]


def _time_plain_path(
    model_name: str, data: Any, device: Any, batch_size: int, steps: int, warmup: int, seed: int, workers: int
) -> Dict[str, Any]:
    """A standard torchvision ``DataLoader`` + fp32 eager training loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import transforms

    from .data import CIFAR10_MEAN, CIFAR10_STD
    from ..models.registry import create_model

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )
    dataset = _PILDataset(data.train.images, data.train.labels, transform)
    loader = DataLoader(
        cast(Any, dataset),  # a Dataset by its protocol; subclassing would import torch with this module
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )

    def batches() -> Iterator[Any]:
        while True:
            yield from loader

    torch.manual_seed(seed)
    model = create_model(model_name).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.train()
    it = batches()
    running = 0.0

    def step() -> float:
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        running += step()
    _sync(device)
    t_start = time.time()
    t0 = time.perf_counter()
    for _ in range(steps):
        running += step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    del it, loader  # stop the workers
    return {
        "images_per_s": steps * batch_size / elapsed,
        "host_ms": None,  # the plain loop reads its loss every step: the host waits for the device anyway
        "launches": None,
        "step_ms": 1000.0 * elapsed / steps,
        "elapsed_s": elapsed,
        "start_unix": t_start,
        "end_unix": t_start + elapsed,
        "mean_loss": running / (warmup + steps),
        "setup": f"DataLoader(PIL, RandomCrop+Flip+ToTensor+Normalize, workers={workers}), fp32, eager, loss.item()"
                 + (", cuDNN autotuning off (torch's default)" if device.type == "cuda" else ""),
    }


def _check_ints(**values: Any) -> None:
    lows = {"steps": 1, "warmup": 0, "batch_size": 1}
    for name, v in values.items():
        lo = lows[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _check_levels(what: str, variant: str, counts: Sequence[int], **ints: Any) -> None:
    """The arguments of a bench by levels (concurrency, stacking): a trainer variant, counts >= 1, positive ints."""
    _check_variants([variant])
    if variant == "plain":
        raise ValueError(f"{what} is measured for the trainer's variants (eager, compile, cudagraphs), not plain")
    _check_ints(**ints)
    if not counts or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts):
        raise ValueError(f"counts must be integers >= 1, got {list(counts)}")


def bench(
    models: Sequence[str] = ("se_res2net29",),
    variants: Sequence[str] = ("plain", "eager"),
    device: str = "auto",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 3,
    data: str = "sample",
    data_dir: Optional[str] = None,
    workers: Optional[int] = None,
    seed: int = 0,
    *,
    floor: bool = False,
    barrier: Optional[Path] = None,
    on_update: Optional[Callable[[Dict[str, Any]], None]] = None,
    bf16: Optional[bool] = None,
) -> Dict[str, Any]:
    """Time every (model, variant) in this process and return a JSON-ready dict.

    ``bf16``: the trainer's variants in bf16 autocast (``True``) or fp32 (``False``); ``None`` is the device's default
    (on for CUDA, off on a CPU), as in training. A run resumed on the other device type keeps its precision, so its
    pace there is the one to time (stop 46: GPU-started bf16 runs going on on a CPU). ``plain`` is always fp32.

    ``rows``: one dict per (model, variant) with ``images_per_s``, ``step_ms``, ``tflops`` (achieved),
    ``vs_plain`` and ``vs_eager`` (ratios within the same model, ``None`` when that variant was not run).
    ``failed``: the (model, variant) that raised (e.g. a compile that fails on this machine), with the error's
    first line; the bench goes on with the next, so one broken variant costs neither the others nor the floor.
    ``floor``: also count each model's step and measure the device's rates in this process
    (:func:`se_res2net.training.floor.floor`), under the key ``floor``.
    ``on_update``: called with the result so far after every row (``interrupted`` then names what is still
    to come), so that a process killed outright still leaves what it measured (``se-res2net bench --out``).
    """
    import torch

    from ..models.complexity import count_macs
    from .data import load_cifar10
    from .records import device_info, utc_now
    from ..models.registry import create_model, get_factory
    from .trainer import resolve_device

    if isinstance(models, str):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("give at least one model to bench")
    for m in models:
        get_factory(m)
    variants = _check_variants(variants)
    _check_ints(steps=steps, warmup=warmup, batch_size=batch_size)
    if data not in DATA_CHOICES:
        raise ValueError(f"data must be one of {', '.join(DATA_CHOICES)}, got {data!r}")
    dev = resolve_device(device)
    if floor and bf16 is not None and bool(bf16) != (dev.type == "cuda"):
        raise ValueError("the floor counts the step at the device's default precision; measure it without "
                         "--bf16/--no-bf16, and the other precision in a bench of its own")
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if dev.type == "cuda" else 0
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    cifar = load_cifar10(data, data_dir, progress=False)
    if "plain" in variants and len(cifar.train) < batch_size:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(cifar.train)} training images; lower it")
    info = device_info(dev)
    measured_at = utc_now()
    rows: List[Dict[str, Any]] = []
    failed: List[Dict[str, str]] = []
    interrupted: Optional[str] = None
    step = "counting MACs"
    floors = None

    def result(pending: Optional[str]) -> Dict[str, Any]:
        return {
            "device": info["device"],
            "device_name": info["device_name"],
            "cuda": info["cuda"],
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "measured_at": measured_at,
            "batch_size": batch_size,
            "warmup_steps": warmup,
            "timed_steps": steps,
            "data_source": cifar.source,
            "data_is_sample": bool(cifar.is_sample),
            "train_images": len(cifar.train),
            "rows": rows,
            "failed": failed,
            "floor": floors,
            "interrupted": pending,
        }

    try:
        for model in models:
            step = f"{model} (counting MACs)"
            with torch.random.fork_rng(devices=[]):
                macs = count_macs(create_model(model), input_size=32)
            by_variant: Dict[str, Dict[str, Any]] = {}
            for variant in variants:
                step = f"{model} / {variant}"
                log.info("bench %s / %s on %s: batch %d, %d warm-up + %d timed steps", model, variant, dev,
                         batch_size, warmup, steps)
                try:
                    if variant == "plain":
                        r = _time_plain_path(model, cifar, dev, batch_size, steps, warmup, seed, workers)
                    else:
                        r = _time_trainer_path(model, cifar, dev, batch_size, steps, warmup, seed, variant, barrier,
                                               bf16=bf16)
                except Exception as exc:  # noqa: BLE001 -- one variant failing (a compile, say) is a finding
                    if barrier is not None:  # a concurrency worker: its coordinator reports the failure
                        raise
                    message = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
                    log.error("bench %s / %s failed (%s); going on with the next", model, variant, message)
                    failed.append({"model": model, "variant": variant, "error": message})
                    if on_update is not None:
                        on_update(result(f"after {step}"))
                    continue
                finally:
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                r.update({"model": model, "variant": variant, "macs": macs,
                          "tflops": 6.0 * macs * r["images_per_s"] / 1e12, "vs_plain": None, "vs_eager": None})
                by_variant[variant] = r
                rows.append(r)
                # ratios as each row lands, so an interrupted run keeps them for the rows it finished
                for row in by_variant.values():
                    for ref in ("plain", "eager"):
                        base = by_variant.get(ref)
                        row[f"vs_{ref}"] = row["images_per_s"] / base["images_per_s"] if base else None
                if on_update is not None:
                    on_update(result(f"after {step}"))  # what a kill now would leave
    except KeyboardInterrupt:
        interrupted = f"during {step}"
        log.warning("bench interrupted during %s: keeping the %d row(s) measured before it", step, len(rows))
    if floor and interrupted is None:
        from .floor import floor as floor_analysis

        try:
            floors = floor_analysis(models, str(dev), batch_size)
        except KeyboardInterrupt:
            interrupted = "during the floor"
            log.warning("bench interrupted during the floor: keeping the %d row(s) without it", len(rows))
    final = result(interrupted)
    if on_update is not None:
        on_update(final)
    return final


# --------------------------------------------------------------------------------------------------
# Concurrency: N processes training at once on one device
# --------------------------------------------------------------------------------------------------


def _wait_at_barrier(barrier: Path, timeout_s: float = 1800.0) -> None:
    """Say 'ready' (a file per process), then wait until the coordinator creates ``barrier``."""
    barrier = Path(barrier)
    (barrier.parent / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout_s
    while not barrier.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench barrier {barrier} never opened")
        time.sleep(0.01)


def bench_concurrency(
    model: str = "se_res2net29",
    variant: str = "eager",
    counts: Sequence[int] = (1, 2, 4, 8),
    device: str = "auto",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 3,
    data: str = "sample",
    data_dir: Optional[str] = None,
    on_update: Optional[Callable[[Dict[str, Any]], None]] = None,
    sharing: str = "time-slicing",
) -> Dict[str, Any]:
    """Aggregate training images/s of ``n`` concurrent ``se-res2net bench`` processes, for each ``n``.

    The processes warm up (and compile) independently, then start their timed steps together (a file
    barrier); aggregate images/s = all timed images / (last end - first start). ``sharing`` (:data:`SHARING`)
    says how they share the GPU and goes into the result; ``mps`` needs a running MPS control daemon (checked
    here; its clients are the workers, which inherit ``CUDA_MPS_PIPE_DIRECTORY``) and a CUDA device.
    """
    _check_levels("concurrency", variant, counts, steps=steps, warmup=warmup, batch_size=batch_size)
    _check_sharing(sharing, device)
    from .records import utc_now

    rows: List[Dict[str, Any]] = []
    failed: List[Dict[str, Any]] = []
    interrupted: Optional[str] = None
    # which machine measured it, as its workers report it (this process never touches the device: no CUDA
    # context before they start); None until a level has been measured
    machine: Dict[str, Any] = {"device": device, "device_name": None, "cuda": None, "torch": None}
    measured_at = utc_now()

    def result(pending: Optional[str]) -> Dict[str, Any]:
        for r in rows:
            r["vs_first"] = r["aggregate_images_per_s"] / rows[0]["aggregate_images_per_s"]
        return {"model": model, "variant": variant, "sharing": sharing, **machine, "measured_at": measured_at,
                "batch_size": batch_size, "warmup_steps_per_process": warmup, "timed_steps": steps, "rows": rows,
                "failed": failed, "interrupted": pending}

    for i, n in enumerate(counts):
        try:
            row, worker = _concurrent_level(n, model, variant, device, batch_size, steps, warmup, data, data_dir)
            if sharing == "mps" and worker["device"] != "cuda":  # --device auto found no GPU
                raise ValueError(f"--sharing mps needs a CUDA device; the workers ran on {worker['device']}")
            rows.append(row)
            machine.update({k: worker[k] for k in machine})
        except KeyboardInterrupt:
            interrupted = f"during {n} process(es)"
            log.warning("concurrency bench interrupted at %d process(es): keeping the %d level(s) measured before it",
                        n, len(rows))
            break
        except (RuntimeError, TimeoutError) as exc:  # a worker failed (out of memory, say): more would fail too
            message = (str(exc).strip().splitlines() or [""])[0][:300]
            log.error("concurrency bench failed at %d process(es) (%s): keeping the levels measured before it",
                      n, message)
            failed.append({"processes": n, "error": f"{type(exc).__name__}: {message}"})
            break
        if on_update is not None and i + 1 < len(counts):
            on_update(result(f"before {counts[i + 1]} process(es)"))  # what a kill now would leave
    final = result(interrupted)
    if on_update is not None:
        on_update(final)
    return final


def _concurrent_level(n: int, model: str, variant: str, device: str, batch_size: int, steps: int, warmup: int,
                      data: str, data_dir: Optional[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """One row of :func:`bench_concurrency` (``n`` bench processes timed together) and one worker's report
    (its ``device``, ``device_name``, ``cuda``, ``torch``: the machine that measured the row)."""
    with tempfile.TemporaryDirectory(prefix="se_res2net_bench_") as tmp:
        barrier = Path(tmp) / "go"
        cmd = [sys.executable, "-m", "se_res2net", "bench", "--models", model, "--variants", variant,
               "--device", device, "--batch-size", str(batch_size), "--steps", str(steps), "--warmup", str(warmup),
               "--data", data, "--json", "--barrier", str(barrier)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        env = dict(os.environ)
        if env.get("OMP_NUM_THREADS") is None:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(n)]
        try:
            deadline = time.monotonic() + 1800.0
            while len(list(Path(tmp).glob("ready-*"))) < n:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"a bench process exited early: {dead[0].communicate()[1][-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("bench processes never became ready")
                time.sleep(0.05)
            barrier.touch()
            results = []
            for p in procs:
                out, err = p.communicate()
                if p.returncode == INTERRUPTED_EXIT:  # the interrupt reached a worker first
                    raise KeyboardInterrupt
                if p.returncode != 0:
                    raise RuntimeError(f"a bench process failed (exit {p.returncode}): {err[-2000:]}")
                report = json.loads(out)
                results.append(report["rows"][0])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    start = min(r["start_unix"] for r in results)
    end = max(r["end_unix"] for r in results)
    images = n * steps * batch_size
    return ({"processes": n, "aggregate_images_per_s": images / (end - start),
             "per_process_images_per_s": [r["images_per_s"] for r in results]}, report)


# --------------------------------------------------------------------------------------------------
# Stacking: N models in one process, one vmapped step (se_res2net.training.stacked)
# --------------------------------------------------------------------------------------------------


def bench_stacked(
    model: str = "se_res2net29",
    variant: str = "eager",
    counts: Sequence[int] = (1, 2, 4, 8),
    device: str = "auto",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 3,
    data: str = "sample",
    data_dir: Optional[str] = None,
    seed: int = 0,
    on_update: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Aggregate training images/s of ``n`` models of ``model`` stacked into one module and stepped together
    (:class:`~se_res2net.training.stacked.StackedModels`, :func:`~se_res2net.training.stacked.stacked_train_step`),
    for each ``n``, in this process: the numbers to set beside :func:`bench_concurrency`'s ``n`` processes.

    Each model gets its own ``batch_size`` images per step (``n · batch_size`` images a step in all), with the
    trainer's device-resident uint8 data, batched augmentation and the device's fast path, in ``variant``
    (``eager``, ``compile`` or ``cudagraphs``; the whole stacked step's forward is compiled). A level that
    raises (out of memory, a compile that fails) ends the bench there; the levels before it are kept.
    """
    import torch

    from .data import load_cifar10
    from .records import device_info, utc_now
    from ..models.registry import create_model, get_factory
    from .stacked import StackedModels, stacked_train_step
    from .trainer import TrainConfig, _derive_seed, _numerics, make_optimizer, resolve_device, resolve_fast_path

    _check_levels("stacking", variant, counts, steps=steps, warmup=warmup, batch_size=batch_size)
    get_factory(model)
    dev = resolve_device(device)
    cifar = load_cifar10(data, data_dir, progress=False)
    info = device_info(dev)
    mode = _COMPILE[variant]
    config = TrainConfig(model, batch_size=batch_size, seed=seed, compile=mode is not None,
                         compile_mode=mode or "default", device=str(dev))
    fast = resolve_fast_path(config, dev.type)
    rows: List[Dict[str, Any]] = []
    failed: List[Dict[str, Any]] = []
    interrupted: Optional[str] = None
    measured_at = utc_now()

    def result(pending: Optional[str]) -> Dict[str, Any]:
        for r in rows:
            r["vs_first"] = r["aggregate_images_per_s"] / rows[0]["aggregate_images_per_s"]
        return {"kind": "stacked", "model": model, "variant": variant, "device": info["device"],
                "device_name": info["device_name"], "cuda": info["cuda"], "torch": torch.__version__,
                "measured_at": measured_at, "batch_size_per_model": batch_size, "warmup_steps_per_level": warmup,
                "timed_steps": steps, "data_source": cifar.source, "data_is_sample": bool(cifar.is_sample),
                "setup": f"uint8 on {dev.type}, batched data.augment, {fast.describe()}", "rows": rows,
                "failed": failed, "interrupted": pending}

    images = torch.from_numpy(cifar.train.images).to(dev)
    labels = torch.from_numpy(cifar.train.labels).to(dev)
    n_images = int(labels.shape[0])
    for i, n in enumerate(counts):
        try:
            log.info("bench %s / %s, %d model(s) stacked on %s: batch %d each, %d warm-up + %d timed steps", model,
                     variant, n, dev, batch_size, warmup, steps)
            models = []
            for k in range(n):
                torch.manual_seed(seed + k)
                models.append(create_model(model))
            stack = StackedModels(models).to(dev).train()
            if fast.channels_last:
                stack.to_channels_last()
            step_model = torch.compile(stack, mode=fast.compile_mode, dynamic=False) if fast.compile_mode else stack
            optimizer = make_optimizer(stack, config, fast)
            per_step = n * batch_size
            total = (warmup + steps) * per_step
            order_gen = torch.Generator().manual_seed(_derive_seed(seed, "order"))
            order = torch.cat([torch.randperm(n_images, generator=order_gen)
                               for _ in range(math.ceil(total / n_images))])[:total].to(dev)
            aug_gen = torch.Generator(device=dev).manual_seed(_derive_seed(seed, "augment"))
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)

            def step(j: int) -> None:
                idx = order[j * per_step:(j + 1) * per_step]
                losses, _ = stacked_train_step(step_model, optimizer, images[idx].unflatten(0, (n, batch_size)),
                                               labels[idx].view(n, batch_size), aug_gen, fast)
                loss_sum.add_(losses.double().sum())

            with _numerics(dev):
                for j in range(warmup):
                    step(j)
                _sync(dev)
                t0 = time.perf_counter()
                for j in range(warmup, warmup + steps):
                    step(j)
                _sync(dev)
                elapsed = time.perf_counter() - t0
                mean_loss = loss_sum.item() / ((warmup + steps) * n)
                # what one step launches (outside the timed window): the same count for N models as for one is
                # what stacking is for
                try:
                    launches: Optional[int] = _launches_per_step(lambda: step(0), dev)
                except Exception as exc:  # noqa: BLE001 -- a profiler that fails here costs the count, not the row
                    log.warning("could not count the launches of %d stacked %s: %s", n, model, exc)
                    launches = None
            if not math.isfinite(mean_loss):
                raise RuntimeError(f"the stacked step's loss is not finite ({mean_loss})")
            rows.append({"models": n, "aggregate_images_per_s": steps * per_step / elapsed,
                         "step_ms": 1000.0 * elapsed / steps, "launches": launches, "mean_loss": mean_loss})
        except KeyboardInterrupt:
            interrupted = f"during {n} stacked model(s)"
            log.warning("stacked bench interrupted at %d model(s): keeping the %d level(s) measured before it", n,
                        len(rows))
            break
        except Exception as exc:  # noqa: BLE001 -- out of memory or a failed compile at n: more would fail too
            message = (str(exc).strip().splitlines() or [""])[0][:300]
            log.error("stacked bench failed at %d model(s) (%s): keeping the levels measured before it", n, message)
            failed.append({"models": n, "error": f"{type(exc).__name__}: {message}"})
            break
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if on_update is not None and i + 1 < len(counts):
            on_update(result(f"before {counts[i + 1]} stacked model(s)"))
    final = result(interrupted)
    if on_update is not None:
        on_update(final)
    return final


# --------------------------------------------------------------------------------------------------
# Output and CLI
# --------------------------------------------------------------------------------------------------


def format_table(result: Dict[str, Any]) -> str:
    sample = " (embedded SAMPLE)" if result["data_is_sample"] else ""
    lines = [
        f"bench on {result['device']} ({result['device_name']}), torch {result['torch']}, "
        f"{result['torch_threads']} thread(s), batch {result['batch_size']}, {result['warmup_steps']} warm-up + "
        f"{result['timed_steps']} timed steps, data {result['data_source']}{sample}",
        f"{'model':<16} {'variant':<10} {'images/s':>10} {'ms/step':>9} {'host ms':>8} {'launches':>8} "
        f"{'TFLOP/s':>8} {'vs plain':>9} {'vs eager':>9}  setup",
    ]
    ratio = lambda v: "—" if v is None else f"{v:.2f}x"  # noqa: E731
    for r in result["rows"]:
        host = "—" if r.get("host_ms") is None else f"{r['host_ms']:.1f}"
        launches = "—" if r.get("launches") is None else str(r["launches"])
        lines.append(f"{r['model']:<16} {r['variant']:<10} {r['images_per_s']:>10.1f} {r['step_ms']:>9.1f} "
                     f"{host:>8} {launches:>8} {r['tflops']:>8.3f} {ratio(r['vs_plain']):>9} "
                     f"{ratio(r['vs_eager']):>9}  {r['setup']}")
    for f in result.get("failed") or []:
        lines.append(f"FAILED {f['model']} / {f['variant']}: {f['error']}")
    if result.get("interrupted"):
        lines.append(f"interrupted {result['interrupted']}: the rows above are all that was measured")
    if result.get("floor"):
        from .floor import format_floor

        # the floor counts the eager op list, so it is compared with the eager variant's step
        eager = {r["model"]: r["step_ms"] for r in result["rows"] if r["variant"] == "eager"}
        lines += ["", format_floor(result["floor"], measured_ms=eager or None)]
    return "\n".join(lines)


def format_stacked(result: Dict[str, Any]) -> str:
    lines = [f"stacked: {result['model']} / {result['variant']} on {result['device']} ({result['device_name']}), "
             f"batch {result['batch_size_per_model']} per model, {result['timed_steps']} timed steps, {result['setup']}",
             f"{'models':>6} {'aggregate images/s':>19} {'vs 1st':>7} {'ms/step':>8} {'launches':>8}"]
    for r in result["rows"]:
        launches = "—" if r.get("launches") is None else str(r["launches"])
        lines.append(f"{r['models']:>6} {r['aggregate_images_per_s']:>19.1f} {r['vs_first']:>6.2f}x "
                     f"{r['step_ms']:>8.1f} {launches:>8}")
    for f in result.get("failed") or []:
        lines.append(f"FAILED at {f['models']} stacked model(s): {f['error']}")
    if result.get("interrupted"):
        lines.append(f"interrupted {result['interrupted']}: the levels above are all that was measured")
    return "\n".join(lines)


def stacked_vs_processes(stacked: Dict[str, Any], concurrency: Sequence[Dict[str, Any]]) -> List[str]:
    """One line per level of a stacked bench that a concurrency bench of the same model, variant, batch per run and
    machine measured with as many processes: the two aggregate images/s and their ratio (> 1: stacking wins)."""
    from .decision import MACHINE_FIELDS, sharing_of

    lines = []
    for conc in concurrency:
        if (conc.get("rejected") or any(conc.get(k) != stacked.get(k) for k in ("model", "variant", *MACHINE_FIELDS))
                or conc.get("batch_size") != stacked.get("batch_size_per_model")):
            continue
        by_n = {r["processes"]: r["aggregate_images_per_s"] for r in conc.get("rows") or []}
        for r in stacked.get("rows") or []:
            n = r["models"]
            if n in by_n:
                lines.append(f"{n} {stacked['model']} stacked in one step: {r['aggregate_images_per_s']:,.0f} images/s, "
                             f"{r['aggregate_images_per_s'] / by_n[n]:.2f}x {n} processes ({sharing_of(conc)}, "
                             f"{by_n[n]:,.0f} images/s; {stacked['variant']})")
    return lines


def format_result(result: Dict[str, Any]) -> str:
    """Any bench result as its table: a bench, a concurrency bench or a stacked bench, told by its own keys."""
    if result.get("kind") == "stacked":
        return format_stacked(result)
    if "warmup_steps" in result:
        return format_table(result)
    return format_concurrency(result)


def format_concurrency(result: Dict[str, Any]) -> str:
    lines = [f"concurrency: {result['model']} / {result['variant']} on {result['device']}, "
             f"{result.get('sharing') or 'time-slicing'}, batch {result['batch_size']}, {result['timed_steps']} timed "
             "steps per process",
             f"{'processes':>9} {'aggregate images/s':>19} {'vs 1st':>7}  per process"]
    for r in result["rows"]:
        per = ", ".join(f"{v:.0f}" for v in r["per_process_images_per_s"])
        lines.append(f"{r['processes']:>9} {r['aggregate_images_per_s']:>19.1f} {r['vs_first']:>6.2f}x  {per}")
    for f in result.get("failed") or []:
        lines.append(f"FAILED at {f['processes']} process(es): {f['error']}")
    if result.get("interrupted"):
        lines.append(f"interrupted {result['interrupted']}: the levels above are all that was measured")
    return "\n".join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", "--model", nargs="+", default=["se_res2net29"], metavar="MODEL",
                   help="registered models (default se_res2net29)")
    p.add_argument("--variants", nargs="+", default=["plain", "eager"], choices=VARIANTS, metavar="VARIANT",
                   help=f"what to time, side by side: {', '.join(VARIANTS)} (default: plain eager)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps per variant (default 3)")
    p.add_argument("--data", choices=DATA_CHOICES, default="sample",
                   help="sample (embedded, default) or a CIFAR-10 source as in 'se-res2net train --data'")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (default: $SE_RES2NET_DATA_DIR)")
    p.add_argument("--workers", type=int, default=None, help="plain loop DataLoader workers (default 4 on CUDA, 0 on CPU)")
    p.add_argument("--concurrency", type=int, nargs="+", default=None, metavar="N",
                   help="instead: aggregate images/s of N concurrent processes (first model, first trainer variant)")
    p.add_argument("--stacked", type=int, nargs="+", default=None, metavar="N",
                   help="instead: aggregate images/s of N models stacked into one vmapped step in this process "
                        "(first model, first trainer variant; se_res2net.training.stacked), to set beside --concurrency")
    p.add_argument("--sharing", choices=SHARING, default="time-slicing",
                   help="with --concurrency: how the processes share the GPU, as recorded with the result; mps "
                        "needs a running CUDA MPS control daemon (scripts/gpu-runbook.sh mps start)")
    p.add_argument("--floor", action="store_true",
                   help="also count FLOPs, bytes and launches per step and measure the device's rates (see 'floor')")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="the trainer's variants in bf16 autocast or fp32 (default: the device's, on for CUDA), as a "
                        "run resumed on the other device type keeps its own")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also keep the result as JSON in FILE, rewritten after every row: a bench killed outright "
                        "(a budget's `timeout -k`) still leaves what it measured there, `interrupted` naming what is missing")
    p.add_argument("--barrier", default=None, help=argparse.SUPPRESS)  # used by --concurrency


def run_bench(args: argparse.Namespace) -> int:
    on_update = None
    if args.out:
        from .atomic import atomic_write_json, ensure_writable_dir

        ensure_writable_dir(Path(args.out).resolve().parent)
        on_update = lambda result: atomic_write_json(args.out, result)  # noqa: E731
    if args.sharing != "time-slicing" and not args.concurrency:
        raise ValueError(f"--sharing {args.sharing} describes concurrent processes: give --concurrency N ... too")
    if args.stacked and args.concurrency:
        raise ValueError("--stacked and --concurrency are two benches: give one of them")
    if args.bf16 is not None and (args.stacked or args.concurrency):
        raise ValueError("--bf16/--no-bf16 sets the precision of the side-by-side bench only; drop it, or drop "
                         "--stacked/--concurrency (they time the device's default precision)")
    if args.stacked:
        variant = next((v for v in args.variants if v != "plain"), "eager")
        result = bench_stacked(
            model=args.models[0], variant=variant, counts=args.stacked, device=args.device,
            batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, data=args.data, data_dir=args.data_dir,
            on_update=on_update,
        )
        print(json.dumps(result, indent=2) if args.json else format_stacked(result), flush=True)
        if result["interrupted"]:
            return INTERRUPTED_EXIT
        return FAILED_EXIT if result["failed"] else 0
    if args.concurrency:
        variant = next((v for v in args.variants if v != "plain"), "eager")
        result = bench_concurrency(
            model=args.models[0], variant=variant, counts=args.concurrency, device=args.device,
            batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, data=args.data, data_dir=args.data_dir,
            on_update=on_update, sharing=args.sharing,
        )
        # flushed now: after an interrupt, compile workers can hold up the exit until a `timeout -k` kills it
        print(json.dumps(result, indent=2) if args.json else format_concurrency(result), flush=True)
        if result["interrupted"]:
            return INTERRUPTED_EXIT
        return FAILED_EXIT if result["failed"] else 0
    result = bench(
        models=args.models,
        variants=args.variants,
        device=args.device,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        data=args.data,
        data_dir=args.data_dir,
        workers=args.workers,
        floor=args.floor,
        barrier=Path(args.barrier) if args.barrier else None,
        on_update=on_update,
        bf16=args.bf16,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result), flush=True)
    if result["interrupted"]:
        return INTERRUPTED_EXIT
    return FAILED_EXIT if result["failed"] else 0
