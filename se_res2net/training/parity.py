"""Does the fast path train the same network as the eager fp32 loop? Loss curves side by side.

Each switch of the trainer's fast path (:class:`se_res2net.training.trainer.FastPath`: bf16 autocast, channels-last,
fused / foreach SGD, ``torch.compile`` modes) changes how the arithmetic is done, never what is computed, so
a run with it must follow the eager fp32 run of the same seed up to rounding. Rounding differences grow
during training (SGD at lr 0.1 is chaotic), so the comparison is on the per-epoch mean training loss with
a stated tolerance: :data:`FP32_TOL` for switches that keep fp32 arithmetic, :data:`BF16_TOL` for bf16
(8 mantissa bits instead of 24). A broken switch (no update, wrong layout, stale CUDA-graph outputs) moves
the curve by far more: the reference must also *learn* (its loss drops by at least :data:`MIN_DROP`),
or the comparison proves nothing and is refused.

``se-res2net parity`` runs it on any device; CI runs it on CPU (``tests/test_fast_path.py``), a GPU session
runs it on CUDA for the book.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

# Max |Δ mean train loss| per epoch against eager fp32 (nats), over the first few epochs of a small run.
FP32_TOL = 0.02
BF16_TOL = 0.04
MIN_DROP = 0.15  # the reference's first-to-last epoch loss drop must exceed this

# name -> TrainConfig overrides. "cuda_defaults" is what resolve_fast_path picks on CUDA, plus CUDA graphs.
VARIANTS: Dict[str, Dict[str, Any]] = {
    "eager_fp32": {"bf16": False, "channels_last": False, "sgd_impl": "forloop", "compile": False},
    "channels_last": {"bf16": False, "channels_last": True, "sgd_impl": "forloop", "compile": False},
    "sgd_fused": {"bf16": False, "channels_last": False, "sgd_impl": "fused", "compile": False},
    "sgd_foreach": {"bf16": False, "channels_last": False, "sgd_impl": "foreach", "compile": False},
    "bf16": {"bf16": True, "channels_last": False, "sgd_impl": "forloop", "compile": False},
    "compile": {"bf16": False, "channels_last": False, "sgd_impl": "forloop", "compile": True,
                "compile_mode": "default"},
    "compile_max_autotune_no_cudagraphs": {"bf16": False, "channels_last": False, "sgd_impl": "forloop",
                                           "compile": True, "compile_mode": "max-autotune-no-cudagraphs"},
    # what "auto" resolves to on CUDA, set explicitly so that it also runs on CPU
    "bf16_channels_last_fused": {"bf16": True, "channels_last": True, "sgd_impl": "fused", "compile": False},
    "cuda_defaults": {"bf16": None, "channels_last": None, "sgd_impl": "auto", "compile": False},
    "cuda_defaults_cudagraphs": {"bf16": True, "channels_last": True, "sgd_impl": "fused", "compile": True,
                                 "compile_mode": "reduce-overhead"},
}
REFERENCE = "eager_fp32"


def tolerance(fast_path: Mapping[str, Any]) -> float:
    """The stated tolerance for a run's resolved fast path (a :meth:`FastPath.to_dict`)."""
    return BF16_TOL if fast_path.get("bf16") else FP32_TOL


def compare(
    base: Any,
    variants: Sequence[str] = tuple(VARIANTS),
    out_dir: Optional[str] = None,
) -> Dict[str, Any]:
    """Train ``base`` (a :class:`~se_res2net.training.trainer.TrainConfig`) once per variant; return the curves and verdicts.

    ``cuda_defaults`` takes the device's defaults, so on CPU it equals ``eager_fp32`` and on CUDA it is
    bf16 + channels-last + fused SGD. Each run writes its record (and final checkpoint) under ``out_dir``
    (a temporary folder by default, removed afterwards).
    """
    from .trainer import resolve_device, resolve_fast_path, train

    names = [REFERENCE] + [v for v in variants if v != REFERENCE]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown parity variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if base.epochs < 2:
        raise ValueError("parity needs at least 2 epochs to compare curves; pass --epochs 2 or more")
    device = resolve_device(base.device)
    runs: Dict[str, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="se_res2net_parity_") as tmp:
        root = out_dir or tmp
        for name in names:
            config = base.replace(**VARIANTS[name])
            fast = resolve_fast_path(config, device.type)
            t0 = time.perf_counter()
            record = train(config, f"{root}/{name}", force=True, progress=False)
            runs[name] = {
                "fast_path": fast.to_dict(),
                "describe": fast.describe(),
                "train_loss": [e["train_loss"] for e in record["epochs"]],
                "test_loss": [e["test_loss"] for e in record["epochs"]],
                "test_error": [e["test_error"] for e in record["epochs"]],
                "final_test_error": record["final_test_error"],
                "wall_time_s": time.perf_counter() - t0,
                "checkpoint": f"{root}/{name}/{record['checkpoint']}" if out_dir else None,
            }
    import torch

    from .records import device_info, utc_now

    info = device_info(device)
    ref = runs[REFERENCE]["train_loss"]
    drop = ref[0] - ref[-1]
    for name, run in runs.items():
        diffs = [abs(a - b) for a, b in zip(run["train_loss"], ref)]
        run["max_abs_diff"] = max(diffs)
        run["tolerance"] = tolerance(run["fast_path"])
        run["within_tolerance"] = run["max_abs_diff"] <= run["tolerance"]
    return {
        "model": base.model,
        "model_kwargs": base.model_kwargs_dict,
        "seed": base.seed,
        "epochs": base.epochs,
        "device": str(device),
        "device_name": info["device_name"],
        "torch": torch.__version__,
        "cuda": info["cuda"],
        "torch_threads": torch.get_num_threads(),
        "measured_at": utc_now(),
        "config": base.to_dict(),
        "tolerances": {"fp32": FP32_TOL, "bf16": BF16_TOL, "min_drop": MIN_DROP},
        "reference": REFERENCE,
        "reference_drop": drop,
        "reference_learns": drop >= MIN_DROP,
        "runs": runs,
        "ok": drop >= MIN_DROP and all(r["within_tolerance"] for r in runs.values()),
    }


def format_report(result: Dict[str, Any]) -> str:
    lines = [
        f"parity: {result['model']} seed {result['seed']}, {result['epochs']} epochs on {result['device']}; "
        f"reference {result['reference']} loss drop {result['reference_drop']:.3f} (needs >= {MIN_DROP})",
        f"{'variant':<36} {'max |Δ train loss|':>18} {'tol':>6}  {'ok':<3} {'final err %':>11}  setup",
    ]
    for name, r in result["runs"].items():
        lines.append(f"{name:<36} {r['max_abs_diff']:>18.4f} {r['tolerance']:>6.2f}  "
                     f"{'yes' if r['within_tolerance'] else 'NO':<3} {r['final_test_error']:>11.2f}  {r['describe']}")
    # A failure says which of its two causes it is: a reference that did not learn makes every comparison moot
    # (more epochs or images fix it), a variant outside its tolerance is the finding itself.
    outside = [name for name, r in result["runs"].items() if not r["within_tolerance"]]
    if result["ok"]:
        lines.append("all within tolerance")
    if not result["reference_learns"]:
        lines.append(f"PARITY FAILED: the reference did not learn (loss drop {result['reference_drop']:.3f} < "
                     f"{MIN_DROP}); compare over more --epochs or a larger --subset")
    if outside:
        lines.append(f"PARITY FAILED: outside tolerance: {', '.join(outside)}")
    return "\n".join(lines)


def add_parity_arguments(p: argparse.ArgumentParser) -> None:
    from .trainer import _parse_model_arg

    p.add_argument("--model", default="se_res2net29", help="registered model (default se_res2net29)")
    p.add_argument("--model-arg", action="append", type=_parse_model_arg, default=[], metavar="KEY=VALUE",
                   help="override of the model factory (JSON value), repeatable, e.g. --model-arg layers=[1,1,1]")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"fast-path variants to compare with {REFERENCE} (default: all): {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (default 5)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1, constant)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="auto", help="CIFAR-10 source (auto, folder, torchvision, sample)")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (default: $SE_RES2NET_DATA_DIR)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="train on N images (default: all). Training only: testing uses the whole test split "
                        "unless you add --test-subset M")
    p.add_argument("--test-subset", type=int, default=None, metavar="M",
                   help="test on M images (default: the whole test split)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--out", default=None, help="keep each run's record and checkpoint under OUT/<variant>/")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the result as JSON to PATH")


def run_parity(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_json
    from .trainer import TrainConfig

    base = TrainConfig(model=args.model, model_kwargs=dict(args.model_arg), epochs=args.epochs, milestones=(), lr=args.lr, batch_size=args.batch_size,
                       seed=args.seed, data_source=args.data, data_dir=args.data_dir, train_subset=args.subset,
                       test_subset=args.test_subset, device=args.device, profile="parity")
    result = compare(base, args.variants, out_dir=args.out)
    if args.json:
        atomic_write_json(args.json, result)
    print(format_report(result))
    return 0 if result["ok"] else 1


def curves_frame(result: Mapping[str, Any]) -> Any:
    """Long-form ``pandas.DataFrame`` (variant, epoch, train_loss, test_loss, test_error) for plots."""
    import pandas as pd

    rows: List[Dict[str, Any]] = []
    for name, r in result["runs"].items():
        for i, (tl, vl, ve) in enumerate(zip(r["train_loss"], r["test_loss"], r["test_error"]), start=1):
            rows.append({"variant": name, "epoch": i, "train_loss": tl, "test_loss": vl, "test_error": ve})
    return pd.DataFrame(rows)

