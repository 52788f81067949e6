"""Complexity: parameters, thop MACs, FLOPs, and the Res2Net-29 width search.

Conventions (the report mixes them up, so we are explicit):

- *Params*: the sum of ``numel()`` over ``model.parameters()``.
- *MACs*: what ``thop.profile`` returns (multiply-accumulates of convs and
  linear layers, plus thop's counts for BN and pooling), on one image of
  1×3×32×32 (CIFAR) or 1×3×224×224 (ImageNet). The report's "FLOPs (via thop)"
  are in fact these MACs.
- *FLOPs* = 2 × MACs, shown beside.
- Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs of
  convolutions and matrix products only (no BN, no pooling, no element-wise
  ops); thop sees only ``nn.Module`` leaves, so it misses functional ops such
  as the SE multiply ``x * g`` and the residual add. Differences above 5% are
  flagged with that reason.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

CROSS_CHECK_TOLERANCE = 0.05  # relative difference between 2×thop MACs and FlopCounter FLOPs


def count_params(model: Any) -> int:
    """Sum of parameter numels (trainable or not)."""
    return int(sum(p.numel() for p in model.parameters()))


def _dummy(input_size: int):
    import torch

    return torch.zeros(1, 3, input_size, input_size)


def count_macs(model: Any, input_size: int = 32) -> int:
    """thop MACs for one ``3×input_size×input_size`` image (the model is not modified)."""
    import torch
    from thop import profile

    probe = copy.deepcopy(model).eval()  # thop registers buffers/hooks: keep the caller's model clean
    with torch.no_grad():
        macs, _ = profile(probe, inputs=(_dummy(input_size),), verbose=False)
    return int(macs)


def count_flops_torch(model: Any, input_size: int = 32) -> int:
    """FLOPs of convolutions and matmuls by ``torch.utils.flop_counter.FlopCounterMode`` (forward, one image)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        probe(_dummy(input_size))
    return int(counter.get_total_flops())


def _elementwise_mapping() -> Dict[Any, Any]:
    """FlopCounterMode formulas for the ops it leaves at zero: one FLOP per output element for pointwise
    ops (ReLU, add, the SE gate's multiply and sigmoid), two for inference batch norm (scale and shift),
    and one per *input* element for the means and pools that reduce a map (the SE squeeze, global pooling).

    A sigmoid costs more than one FLOP in hardware; one per element is the usual counting convention
    (as for ReLU), stated here so the SE path's count can be read with it in mind.
    """
    import torch

    aten = torch.ops.aten

    def prod(shape: Any) -> int:
        return int(math.prod(shape)) if shape else 1

    def per_out(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return prod(out_shape)

    def per_in(x_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return prod(x_shape)

    def batch_norm(x_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * prod(x_shape)

    mapping: Dict[Any, Any] = {op: per_out for op in (aten.relu, aten.relu_, aten.add, aten.add_, aten.mul, aten.mul_,
                                                        aten.sigmoid, aten.sigmoid_)}
    mapping.update({op: per_in for op in (aten.mean, aten.avg_pool2d, aten._adaptive_avg_pool2d, aten.max_pool2d)})
    mapping.update({op: batch_norm for op in (aten._native_batch_norm_legit_no_training, aten.native_batch_norm)})
    return mapping


def count_flops_all(model: Any, input_size: int = 32) -> Tuple[int, Dict[str, int]]:
    """FLOPs of every op (FlopCounterMode with :func:`_elementwise_mapping`), and the part spent inside
    SE gates (squeeze mean, excitation 1×1 convs, ReLU, sigmoid, gate multiply), forward, one image.

    thop counts the SE's two 1×1 convs but not its mean or its multiply (they are not modules), and
    plain FlopCounterMode counts only convs and matmuls; this count is the one the SE-overhead claim is
    judged on. Returns ``(total, {"se": flops in SE modules, "conv_mm": flops of the ops FlopCounterMode
    counts by itself})``: the last equals :func:`count_flops_torch`, from the same pass.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    from .blocks import SqueezeExcite, StreamSqueezeExcite

    probe = copy.deepcopy(model).eval()
    counter = FlopCounterMode(display=False, custom_mapping=_elementwise_mapping())
    with torch.no_grad(), counter:
        probe(_dummy(input_size))
    per_module = counter.get_flop_counts()
    se_names = [n for n, m in probe.named_modules() if isinstance(m, (SqueezeExcite, StreamSqueezeExcite))]
    # outermost SE modules only (a StreamSqueezeExcite holds an SE): FlopCounterMode already sums children
    top = [n for n in se_names if not any(n != o and n.startswith(o + ".") for o in se_names)]
    root = type(probe).__name__  # FlopCounterMode names modules "<root class>.<path>"
    se = sum(int(sum(per_module.get(f"{root}.{n}", {}).values())) for n in top)
    conv_mm = sum(int(v) for op, v in per_module.get("Global", {}).items() if op in flop_registry)
    return int(counter.get_total_flops()), {"se": se, "conv_mm": conv_mm}


@dataclass(frozen=True)
class Complexity:
    name: str
    input_size: int
    params: int
    macs: int
    flops_torch: int
    flops_all: int = 0  # every op (count_flops_all)
    flops_se: int = 0  # of which inside SE gates

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def cross_check_diff(self) -> float:
        """Relative difference of FlopCounter's FLOPs to 2×thop MACs."""
        return (self.flops_torch - self.flops) / self.flops if self.flops else math.nan

    @property
    def note(self) -> str:
        d = self.cross_check_diff
        if abs(d) <= CROSS_CHECK_TOLERANCE:
            return ""
        # thop also counts BN/pooling; FlopCounter only conv/matmul; neither the SE multiply or adds.
        return f"FlopCounter {d:+.1%}: BN/pool ops counted by thop only"

    def as_row(self) -> Dict[str, Any]:
        return {
            "model": self.name,
            "input": f"{self.input_size}x{self.input_size}",
            "params": self.params,
            "params_M": self.params / 1e6,
            "macs": self.macs,
            "macs_M": self.macs / 1e6,
            "flops_M": self.flops / 1e6,
            "flops_torch_M": self.flops_torch / 1e6,
            "cross_check_diff": self.cross_check_diff,
            "flops_all_M": self.flops_all / 1e6,
            "flops_se_M": self.flops_se / 1e6,
            "note": self.note,
        }


def measure(model: Any, name: str, input_size: int) -> Complexity:
    total, parts = count_flops_all(model, input_size)
    return Complexity(name, input_size, count_params(model), count_macs(model, input_size), parts["conv_mm"], total,
                      parts["se"])


def model_complexity(name: str, **overrides: Any) -> Complexity:
    """Complexity of a registered model at its family's input size."""
    from .registry import create_model, input_size

    return measure(create_model(name, **overrides), name, input_size(name))


def complexity_table(names: Optional[Iterable[str]] = None, progress: bool = False) -> List[Dict[str, Any]]:
    """One row per registered model (or the given names)."""
    from tqdm import tqdm  # plain tqdm: tqdm.auto warns in notebooks without ipywidgets

    from .registry import list_models

    names = list(names) if names is not None else list_models()
    return [model_complexity(n).as_row() for n in tqdm(names, desc="complexity", disable=not progress)]


# --- the report's per-block table ---------------------------------------------------------------

def block_table(channels: int = 64, scale: int = 4, se_ratio: int = 16, resolution: int = 32) -> List[Dict[str, Any]]:
    """Params and MACs of one block of each kind at ``channels`` in/out, on a ``resolution²`` map.

    The report's table ("C=64, s=4, r=16") gives no resolution; we state ours.
    Res2Net blocks are bottlenecks with C in/out and subsets of width C/s (the
    report: "split into s subsets of width w=C/s"), i.e. planes=C/4,
    base_width=64·s/... chosen so that width·s = C.
    """
    import torch.nn as nn

    from .blocks import BasicBlock, Res2NetBottleneck, SqueezeExcite

    planes = channels // Res2NetBottleneck.expansion
    if planes * Res2NetBottleneck.expansion != channels or channels % scale:
        raise ValueError(f"channels={channels} must be divisible by 4 and by s={scale}")
    width = channels // scale
    base_width = width * 64 // planes  # so that floor(planes·base_width/64) = width
    blocks: Dict[str, nn.Module] = {
        "ResNet (2 conv)": BasicBlock(channels, channels),
        f"SE-ResNet (r={se_ratio})": BasicBlock(channels, channels, attn_layer=SqueezeExcite, se_ratio=se_ratio),
        f"Res2Net (s={scale})": Res2NetBottleneck(channels, planes, base_width=base_width, scale=scale),
        "SE-Res2Net": Res2NetBottleneck(
            channels, planes, base_width=base_width, scale=scale, attn_layer=SqueezeExcite, se_ratio=se_ratio
        ),
    }
    rows = []
    for name, block in blocks.items():
        c = _measure_block(block, channels, resolution)
        rows.append({"block": name, "channels": channels, "resolution": f"{resolution}x{resolution}", **c})
    return rows


def _measure_block(block: Any, channels: int, resolution: int) -> Dict[str, Any]:
    import torch
    from thop import profile
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, channels, resolution, resolution)
    probe = copy.deepcopy(block).eval()
    with torch.no_grad():
        macs, _ = profile(probe, inputs=(x,), verbose=False)
        counter = FlopCounterMode(display=False)
        with counter:
            copy.deepcopy(block).eval()(x)
    params = count_params(block)
    return {
        "params": params,
        "params_M": params / 1e6,
        "macs_M": macs / 1e6,
        "flops_M": 2 * macs / 1e6,
        "flops_torch_M": counter.get_total_flops() / 1e6,
    }


# --- the Res2Net-29 width search ----------------------------------------------------------------

@dataclass(frozen=True)
class SearchTarget:
    """What the report states for its CIFAR Res2Net-29 / SE-Res2Net-29 (shared/seeds/000, Results table)."""

    params: float = 0.63e6
    macs: float = 100e6
    se_params: float = 0.65e6
    se_macs: float = 102e6


SEARCH_SPACE: Dict[str, Sequence[Any]] = {
    "stem_width": (16, 32),
    "planes": ((16, 32, 64), (24, 48, 96), (32, 64, 128)),
    "base_width": (14, 20, 26, 32, 40, 44, 48, 52, 56, 64),
    "scale": (4,),
}


def search_res2net29(
    target: SearchTarget = SearchTarget(),
    space: Optional[Dict[str, Sequence[Any]]] = None,
    progress: bool = False,
) -> List[Dict[str, Any]]:
    """Grid search of CIFAR Res2Net-29 widths; rows sorted by distance to the report's numbers.

    Distance = mean over (Res2Net params, Res2Net MACs, SE-Res2Net params, SE-Res2Net MACs)
    of |log(measured / reported)|, so a factor of 2 off in either direction costs the same.
    """
    from tqdm import tqdm  # plain tqdm: tqdm.auto warns in notebooks without ipywidgets

    from .blocks import SqueezeExcite
    from .networks import CIFAR_BASE, Res2Net

    space = space or SEARCH_SPACE
    keys = list(space)
    rows = []
    combos = list(itertools.product(*(space[k] for k in keys)))
    for values in tqdm(combos, desc="Res2Net-29 search", disable=not progress):
        overrides = dict(zip(keys, values))
        try:
            plain = Res2Net(CIFAR_BASE.replace(**overrides))
            se = Res2Net(CIFAR_BASE.replace(attn_layer=SqueezeExcite, **overrides))
        except ValueError as exc:  # an impossible combination is a row that says why
            log.debug("skipping %s: %s", overrides, exc)
            continue
        p, m = count_params(plain), count_macs(plain)
        sp, sm = count_params(se), count_macs(se)
        dist = sum(
            abs(math.log(a / b))
            for a, b in ((p, target.params), (m, target.macs), (sp, target.se_params), (sm, target.se_macs))
        ) / 4
        rows.append(
            {
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()},
                "subset_widths": [stage[0].width for stage in plain.stages],  # type: ignore[index]
                "params_M": p / 1e6,
                "macs_M": m / 1e6,
                "se_params_M": sp / 1e6,
                "se_macs_M": sm / 1e6,
                "se_param_overhead_pct": 100 * (sp - p) / p,
                "distance": dist,
            }
        )
    rows.sort(key=lambda r: r["distance"])
    return rows


# --- CLI ----------------------------------------------------------------------------------------

def add_complexity_arguments(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: all registered)")
    parser.add_argument("--blocks", action="store_true", help="also print the report's per-block table (C=64, s=4, r=16)")
    parser.add_argument("--search", action="store_true", help="print the Res2Net-29 width search instead")


def _format(rows: List[Dict[str, Any]], columns: Sequence[str], floats: str = "{:.3f}") -> str:
    # not DataFrame.to_string: it right-aligns the first (name) column and draws no rule under the header
    cells = [[floats.format(r[c]) if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def run_complexity(args: Any) -> int:
    if args.search:
        rows = search_res2net29(progress=True)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(_format(rows, ["stem_width", "planes", "base_width", "scale", "subset_widths", "params_M", "macs_M", "se_params_M", "se_macs_M", "distance"]))
        return 0
    rows = complexity_table(args.models)
    out: Dict[str, Any] = {"models": rows}
    if args.blocks:
        out["blocks"] = block_table()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("MACs by thop on one 1x3x32x32 image (224x224 for ImageNet models); FLOPs = 2 x MACs.")
    print(_format(rows, ["model", "input", "params_M", "macs_M", "flops_M", "flops_torch_M", "note"]))
    if args.blocks:
        print("\nPer-block complexity (C=64, s=4, r=16) at a 32x32 feature map:")
        print(_format(out["blocks"], ["block", "params", "macs_M", "flops_M", "flops_torch_M"]))
    return 0
