"""Does the fast path train the same network as the eager fp32 loop? Loss curves side by side, against seed noise.

Each switch of the trainer's fast path (:class:`se_res2net.training.trainer.FastPath`: bf16 autocast, channels-last,
fused / foreach SGD, ``torch.compile`` modes) changes how the arithmetic is done, never what is computed, so
a run with it must follow the eager fp32 run of the same seed up to rounding. Rounding differences grow
during training (SGD at lr 0.1 is chaotic), so the comparison is on the per-epoch mean training loss.

The criterion: a switch passes when its largest per-epoch difference from the reference is within the stated
tolerance (:data:`FP32_TOL` for switches that keep fp32 arithmetic, :data:`BF16_TOL` for bf16: 8 mantissa
bits instead of 24) OR within the seed-to-seed difference of the reference measured in the same run
(``noise_seeds`` extra runs of the reference at seeds ``seed + 1 ...``; :func:`noise_scale`). The tolerances
are fixed numbers calibrated on a CPU with a tiny model; they do not measure how much a loss curve moves by
itself on the device, data and model at hand. Changing the seed is the noise that any training result
carries: a switch that moves the curve by less than a seed change cannot be told apart from noise, while a
broken switch (no update, wrong layout, stale CUDA-graph outputs) moves it by far more. So each run's
``limit`` is ``max(tolerance, noise)`` and its ``ok`` is ``max_abs_diff <= limit``; with ``noise_seeds=0``
the limit is the tolerance and the verdict is the fixed-tolerance one. The reference must also *learn* (its
loss drops by at least :data:`MIN_DROP`), or the comparison proves nothing and is refused.

Records written before the noise runs existed have no ``noise`` block and no per-run ``ok``: readers take
``within_tolerance`` for them (:func:`run_ok`).

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


def check_noise_seeds(n: Any) -> int:
    """``n`` as a count of extra reference seeds, or a ``ValueError`` that names the fix (a negative count has no
    meaning; 0 switches the noise runs off)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"noise_seeds must be an integer >= 0 (extra seeds of the reference; 0 = off, fixed "
                         f"tolerances only), got {n!r}; pass --noise-seeds 0, 1, 2, ...")
    return n


def noise_seeds_arg(text: str) -> int:
    """argparse ``type`` of ``--noise-seeds``: the same check as :func:`compare`'s, as an argparse error."""
    try:
        return check_noise_seeds(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seeds: pass 0 (off: fixed tolerances only) or more") from exc


def max_abs_diff(curve: Sequence[float], reference: Sequence[float]) -> float:
    """The largest per-epoch |curve - reference| (nats), over the epochs both have."""
    return max(abs(a - b) for a, b in zip(curve, reference))


def noise_scale(reference: Sequence[float], seed_curves: Mapping[Any, Sequence[float]]) -> Optional[float]:
    """The seed-to-seed difference of the reference: the max over the other seeds' curves and epochs of
    |loss(seed k) - loss(reference seed)|; ``None`` when no other seed was run (nothing measured)."""
    if not seed_curves:
        return None
    return max(max_abs_diff(curve, reference) for curve in seed_curves.values())


def verdicts(runs: Mapping[str, Mapping[str, Any]], reference: Sequence[float],
             noise: Optional[float]) -> Dict[str, Dict[str, Any]]:
    """Each run's verdict against the ``reference`` curve (train loss per epoch) and the measured ``noise``.

    ``runs`` maps a variant to at least its ``train_loss`` and resolved ``fast_path``. Returns, per variant,
    ``max_abs_diff``, ``tolerance`` and ``within_tolerance`` (the fixed-tolerance verdict, kept as it was for old
    readers), ``limit`` = max(tolerance, noise) (the tolerance when ``noise`` is ``None``), ``within_noise``
    (``None`` when no noise was measured) and ``ok`` = ``max_abs_diff <= limit``: a switch passes when it is
    within its tolerance or moves the curve by no more than a change of seed does.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for name, run in runs.items():
        diff = max_abs_diff(run["train_loss"], reference)
        tol = tolerance(run["fast_path"])
        limit = tol if noise is None else max(tol, noise)
        out[name] = {
            "max_abs_diff": diff,
            "tolerance": tol,
            "within_tolerance": diff <= tol,
            "limit": limit,
            "within_noise": None if noise is None else diff <= noise,
            "ok": diff <= limit,
        }
    return out


def run_ok(run: Mapping[str, Any]) -> bool:
    """A run's verdict: its ``ok`` (tolerance or noise), or ``within_tolerance`` in a record older than the noise."""
    return bool(run["ok"]) if "ok" in run else bool(run["within_tolerance"])


def run_limit(run: Mapping[str, Any]) -> float:
    """A run's limit: ``limit`` (max of tolerance and noise), or its tolerance in a record older than the noise."""
    return float(run.get("limit", run["tolerance"]))


def record_noise(result: Mapping[str, Any]) -> Optional[float]:
    """The seed-to-seed noise a result measured (nats), ``None`` when it measured none or predates noise runs."""
    return (result.get("noise") or {}).get("max_abs_diff")


def noise_seed_list(result: Mapping[str, Any]) -> List[int]:
    """The extra reference seeds a result ran for its noise ([] when none, or in a record older than noise)."""
    return [int(s) for s in (result.get("noise") or {}).get("seeds") or []]


def compare(
    base: Any,
    variants: Sequence[str] = tuple(VARIANTS),
    out_dir: Optional[str] = None,
    noise_seeds: int = 1,
) -> Dict[str, Any]:
    """Train ``base`` (a :class:`~se_res2net.training.trainer.TrainConfig`) once per variant; return the curves and verdicts.

    ``cuda_defaults`` takes the device's defaults, so on CPU it equals ``eager_fp32`` and on CUDA it is
    bf16 + channels-last + fused SGD. Then the reference is trained again at seeds ``base.seed + 1`` ...
    ``base.seed + noise_seeds`` (0: none) to measure, in the same run on the same device and data, how far a
    change of seed alone moves its curve (``result["noise"]``); each variant passes within its tolerance or
    within that noise (:func:`verdicts`). Each run writes its record (and final checkpoint) under ``out_dir``
    (a temporary folder by default, removed afterwards); the noise runs under ``<reference>_seed<N>``.
    """
    from .trainer import resolve_device, resolve_fast_path, train

    check_noise_seeds(noise_seeds)
    names = [REFERENCE] + [v for v in variants if v != REFERENCE]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown parity variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if base.epochs < 2:
        raise ValueError("parity needs at least 2 epochs to compare curves; pass --epochs 2 or more")
    device = resolve_device(base.device)
    runs: Dict[str, Dict[str, Any]] = {}
    seeds = [base.seed + k for k in range(1, noise_seeds + 1)]
    seed_curves: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="se_res2net_parity_") as tmp:
        root = out_dir or tmp
        for name in names:
            config = base.replace(**VARIANTS[name])
            fast = resolve_fast_path(config, device.type)
            t0 = time.perf_counter()
            record = train(config, f"{root}/{name}", force=True, progress=False)
            if name == REFERENCE:  # the data the runs trained on, as resolved ("auto" is a request, not a source)
                prov = record.get("provenance") or {}
                data = {k: prov.get(k) for k in ("data_source", "data_is_sample", "data_fingerprint",
                                                 "train_size", "test_size")}
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
        # the noise: the reference configuration itself, at other seeds (init, data order, augmentation)
        for seed in seeds:
            record = train(base.replace(**VARIANTS[REFERENCE], seed=seed), f"{root}/{REFERENCE}_seed{seed}",
                           force=True, progress=False)
            seed_curves[str(seed)] = [e["train_loss"] for e in record["epochs"]]
    import torch

    from .records import device_info, utc_now

    info = device_info(device)
    ref = runs[REFERENCE]["train_loss"]
    drop = ref[0] - ref[-1]
    noise = noise_scale(ref, seed_curves)
    for name, verdict in verdicts(runs, ref, noise).items():
        runs[name].update(verdict)
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
        "data": data,
        "tolerances": {"fp32": FP32_TOL, "bf16": BF16_TOL, "min_drop": MIN_DROP},
        "reference": REFERENCE,
        "reference_drop": drop,
        "reference_learns": drop >= MIN_DROP,
        "runs": runs,
        "noise": {"seeds": seeds, "train_loss": seed_curves, "max_abs_diff": noise},
        "ok": drop >= MIN_DROP and all(r["ok"] for r in runs.values()),
    }


def _verdict_text(run: Mapping[str, Any]) -> str:
    """How a run passed or failed: within its fixed tolerance, only within the seed noise, or outside both."""
    if run["within_tolerance"]:
        return "yes (tolerance)"
    if run_ok(run):
        return "yes (noise)"
    return "NO"


def format_report(result: Mapping[str, Any]) -> str:
    """The result for a reader: the noise measured, per variant its max |Δ|, tolerance, limit and verdict, then
    the overall verdict. Reads records without noise (older ones, or ``--noise-seeds 0``) as fixed-tolerance."""
    noise, seeds = record_noise(result), noise_seed_list(result)
    if noise is None:
        noise_line = ("noise: not measured (--noise-seeds 0, or a record older than the noise runs): "
                      "fixed tolerances only")
    else:
        noise_line = (f"noise: {result['reference']} at seed(s) {', '.join(map(str, seeds))} against seed "
                      f"{result['seed']}: max |Δ train loss| between seeds {noise:.4f} (a variant's limit is the "
                      f"larger of its tolerance and this)")
    lines = [
        f"parity: {result['model']} seed {result['seed']}, {result['epochs']} epochs on {result['device']}; "
        f"reference {result['reference']} loss drop {result['reference_drop']:.3f} (needs >= {MIN_DROP})",
        noise_line,
        f"{'variant':<36} {'max |Δ train loss|':>18} {'tol':>6} {'limit':>7}  {'ok':<15} {'final err %':>11}  setup",
    ]
    for name, r in result["runs"].items():
        lines.append(f"{name:<36} {r['max_abs_diff']:>18.4f} {r['tolerance']:>6.2f} {run_limit(r):>7.4f}  "
                     f"{_verdict_text(r):<15} {r['final_test_error']:>11.2f}  {r['describe']}")
    # A failure says which of its two causes it is: a reference that did not learn makes every comparison moot
    # (more epochs or images fix it), a variant outside its limit is the finding itself.
    outside = [name for name, r in result["runs"].items() if not run_ok(r)]
    bound = "tolerance" if noise is None else "tolerance and seed noise"
    if result["ok"]:
        lines.append("all within tolerance" if noise is None else "all within tolerance or seed noise")
    if not result["reference_learns"]:
        lines.append(f"PARITY FAILED: the reference did not learn (loss drop {result['reference_drop']:.3f} < "
                     f"{MIN_DROP}); compare over more --epochs or a larger --subset")
    if outside:
        lines.append(f"PARITY FAILED: outside {bound}: {', '.join(outside)}")
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
    p.add_argument("--noise-seeds", type=noise_seeds_arg, default=1, metavar="N",
                   help=f"train {REFERENCE} again at seeds SEED+1..SEED+N and take the largest difference between "
                        "seeds as the noise: a variant passes within its tolerance or within that noise "
                        "(default 1; 0 = off: fixed tolerances only)")
    p.add_argument("--out", default=None, help="keep each run's record and checkpoint under OUT/<variant>/ "
                                                  f"(the noise runs under OUT/{REFERENCE}_seed<N>/)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the result as JSON to PATH")


def run_parity(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_json
    from .trainer import TrainConfig

    base = TrainConfig(model=args.model, model_kwargs=dict(args.model_arg), epochs=args.epochs, milestones=(), lr=args.lr, batch_size=args.batch_size,
                       seed=args.seed, data_source=args.data, data_dir=args.data_dir, train_subset=args.subset,
                       test_subset=args.test_subset, device=args.device, profile="parity")
    result = compare(base, args.variants, out_dir=args.out, noise_seeds=args.noise_seeds)
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

