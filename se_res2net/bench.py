"""Training throughput: this trainer's step against a plain PyTorch loop, images/s, side by side.

``trainer``
    What :func:`se_res2net.trainer.train` does per step: the data set lives on the device as ``uint8``,
    each batch is indexed from a precomputed permutation and augmented by :func:`se_res2net.data.augment`
    (batched pad-4 / crop / flip / normalise on the device); on CUDA bf16 autocast, channels-last and fused
    SGD; no host synchronisation inside the timed window.
``plain``
    The textbook loop: a ``Dataset`` of PIL images, ``transforms.RandomCrop(32, padding=4)``,
    ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` in a ``DataLoader``
    (``shuffle=True``, ``drop_last=True``, ``num_workers`` 4 on CUDA / 0 on CPU by default, ``pin_memory`` on
    CUDA), float32, eager, default memory format, ``loss.item()`` every step (the usual running loss).

Both train a fresh instance of the same architecture (same init seed), same batch size, SGD with the
report's hyper-parameters, on the same device, in one process: ``warmup`` steps first (not timed), then the
same number of timed ``steps``. ``speedup = trainer images/s / plain images/s``. Nothing here asserts a
speed; the numbers depend on the machine (see ``benchmarks/NOTES.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from typing import Any, Dict, Iterator, Optional

log = logging.getLogger(__name__)

DATA_CHOICES = ("sample", "auto", "folder", "torchvision")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimizer(model: Any, device: Any, fused: bool) -> Any:
    import torch

    kw: Dict[str, Any] = {"fused": True} if fused and device.type == "cuda" else {}
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, **kw)


def _time_trainer_path(
    model_name: str, data: Any, device: Any, batch_size: int, steps: int, warmup: int, seed: int, compile_: bool
) -> Dict[str, Any]:
    """The trainer's step (see :func:`se_res2net.trainer.train`, section 4) on device-resident uint8 data."""
    import torch

    from .registry import create_model
    from .trainer import _derive_seed, _numerics, train_step

    bf16 = channels_last = device.type == "cuda"
    torch.manual_seed(seed)
    model = create_model(model_name).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, device, fused=True)
    step_model = torch.compile(model) if compile_ else model
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
        loss, _ = train_step(step_model, optimizer, images[idx], labels[idx], aug_gen,
                             device=device, bf16=bf16, channels_last=channels_last)
        loss_sum.add_(loss.double())  # accumulated on the device, read once at the end

    with _numerics(device):
        for i in range(warmup):
            step(i)
        _sync(device)
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            step(i)
        _sync(device)
        elapsed = time.perf_counter() - t0
    mean_loss = loss_sum.item() / (warmup + steps)
    return {
        "images_per_s": steps * batch_size / elapsed,
        "step_ms": 1000.0 * elapsed / steps,
        "elapsed_s": elapsed,
        "mean_loss": mean_loss,
        "setup": f"uint8 on {device.type}, batched data.augment, "
        + ("bf16 autocast, channels_last, fused SGD" if device.type == "cuda" else "fp32, deterministic")
        + (", torch.compile" if compile_ else ""),
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
    from .registry import create_model

    if len(data.train) < batch_size:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(data.train)} training images; lower it")
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
        dataset,
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
    optimizer = _optimizer(model, device, fused=False)
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
    t0 = time.perf_counter()
    for _ in range(steps):
        running += step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    del it, loader  # stop the workers
    return {
        "images_per_s": steps * batch_size / elapsed,
        "step_ms": 1000.0 * elapsed / steps,
        "elapsed_s": elapsed,
        "mean_loss": running / (warmup + steps),
        "setup": f"DataLoader(PIL, RandomCrop+Flip+ToTensor+Normalize, workers={workers}), fp32, eager, loss.item()",
    }


def bench(
    model: str = "se_res2net29",
    device: str = "auto",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 3,
    data: str = "sample",
    data_dir: Optional[str] = None,
    workers: Optional[int] = None,
    seed: int = 0,
    compile: bool = False,
) -> Dict[str, Any]:
    """Measure both paths and return a JSON-ready dict with ``trainer`` / ``plain`` images/s and ``speedup``."""
    import torch

    from .data import load_cifar10
    from .records import device_info
    from .registry import get_factory
    from .trainer import resolve_device

    get_factory(model)
    for name, v, lo in (("steps", steps, 1), ("warmup", warmup, 0), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if data not in DATA_CHOICES:
        raise ValueError(f"data must be one of {', '.join(DATA_CHOICES)}, got {data!r}")
    dev = resolve_device(device)
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if dev.type == "cuda" else 0
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    cifar = load_cifar10(data, data_dir, progress=False)
    log.info("bench %s on %s: batch %d, %d warm-up + %d timed steps, %s data", model, dev, batch_size, warmup, steps,
             cifar.source)
    plain = _time_plain_path(model, cifar, dev, batch_size, steps, warmup, seed, workers)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    fast = _time_trainer_path(model, cifar, dev, batch_size, steps, warmup, seed, compile)
    info = device_info(dev)
    return {
        "model": model,
        "device": info["device"],
        "device_name": info["device_name"],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "data_source": cifar.source,
        "data_is_sample": bool(cifar.is_sample),
        "train_images": len(cifar.train),
        "trainer": fast,
        "plain": plain,
        "speedup": fast["images_per_s"] / plain["images_per_s"],
    }


def format_table(result: Dict[str, Any]) -> str:
    sample = " (embedded SAMPLE)" if result["data_is_sample"] else ""
    lines = [
        f"bench {result['model']} on {result['device']} ({result['device_name']}), torch {result['torch']}, "
        f"{result['torch_threads']} thread(s), batch {result['batch_size']}, {result['warmup_steps']} warm-up + "
        f"{result['timed_steps']} timed steps, data {result['data_source']}{sample}",
        f"{'path':<8} {'images/s':>10} {'ms/step':>9}  setup",
    ]
    for key in ("plain", "trainer"):
        r = result[key]
        lines.append(f"{key:<8} {r['images_per_s']:>10.1f} {r['step_ms']:>9.1f}  {r['setup']}")
    lines.append(f"speedup = trainer / plain = {result['speedup']:.2f}x")
    return "\n".join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="se_res2net29", help="registered model (default se_res2net29)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per path (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps per path (default 3)")
    p.add_argument("--data", choices=DATA_CHOICES, default="sample",
                   help="sample (embedded, default) or a CIFAR-10 source as in 'se-res2net train --data'")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (default: $SE_RES2NET_DATA_DIR)")
    p.add_argument("--workers", type=int, default=None, help="plain loop DataLoader workers (default 4 on CUDA, 0 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trainer path's model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_bench(args: argparse.Namespace) -> int:
    result = bench(
        model=args.model,
        device=args.device,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        data=args.data,
        data_dir=args.data_dir,
        workers=args.workers,
        compile=args.compile,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
