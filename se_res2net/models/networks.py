"""Res2Net and SE-Res2Net networks from one configuration (CIFAR and ImageNet layouts).

One builder (:class:`Res2Net`) over a frozen :class:`Res2NetConfig`; every
variant below is a one-line registered factory. The config covers the options
of seed 004's general implementation: input size, classes, depth, scale s,
cardinality c, SE ratio r, stem and classifier.

The report does not give the widths of its Res2Net-29. The CIFAR defaults
below are the result of the search in :func:`se_res2net.models.complexity.search_res2net29`
(candidates → params, MACs; the book shows the table): the configuration whose
parameters and thop MACs land closest to the report's 0.63 M / ≈100 M.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple, Type, Union, cast

import torch
import torch.nn as nn
from torch import Tensor

from .blocks import RECURSIONS, SE_PLACEMENTS, Res2NetBottleneck, SqueezeExcite
from .registry import register_model

# Depth → blocks per stage for the ImageNet layout (He et al. 2016, Table 1).
IMAGENET_LAYERS: Dict[int, Tuple[int, ...]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@dataclass(frozen=True)
class Res2NetConfig:
    """Everything that defines a Res2Net / SE-Res2Net network.

    ``planes`` are the bottleneck planes per stage (each stage outputs
    ``4 × planes`` channels); the subset width is ``floor(planes·base_width/64)·c``
    (Gao et al.). ``attn_layer`` is an SE class (``None`` = plain Res2Net).
    """

    num_classes: int = 10
    input_size: int = 32
    stem: Literal["cifar", "imagenet"] = "cifar"
    stem_width: int = 32
    layers: Tuple[int, ...] = (3, 3, 3)
    planes: Tuple[int, ...] = (16, 32, 64)
    base_width: int = 26
    scale: int = 4
    cardinality: int = 1
    recursion: str = "paper"
    attn_layer: Optional[Type[nn.Module]] = None
    se_ratio: int = 16
    se_placement: str = "fused"
    se_streams: Union[str, Tuple[int, ...]] = "all"
    drop_rate: float = 0.0

    @property
    def depth(self) -> int:
        """Weighted layers: stem conv + 3 per bottleneck + classifier."""
        return 3 * sum(self.layers) + 2

    @property
    def strides(self) -> Tuple[int, ...]:
        return (1,) + (2,) * (len(self.layers) - 1)

    def validate(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes={self.num_classes} must be ≥ 1")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem={self.stem!r} is unknown; use 'cifar' (3×3 conv) or 'imagenet' (7×7 conv + max-pool)")
        if len(self.layers) != len(self.planes) or not self.layers:
            raise ValueError(f"layers {self.layers} and planes {self.planes} must be non-empty and of the same length")
        if any(n < 1 for n in self.layers) or any(p < 1 for p in self.planes):
            raise ValueError(f"every stage needs ≥ 1 block and ≥ 1 plane; got layers={self.layers}, planes={self.planes}")
        if self.stem_width < 1:
            raise ValueError(f"stem_width={self.stem_width} must be ≥ 1")
        if self.recursion not in RECURSIONS:
            raise ValueError(f"recursion={self.recursion!r} is unknown; use one of {RECURSIONS}")
        if self.se_placement not in SE_PLACEMENTS:
            raise ValueError(f"se_placement={self.se_placement!r} is unknown; use one of {SE_PLACEMENTS}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate={self.drop_rate} must be in [0, 1)")
        # The feature map must survive the stem and the strided stages.
        reduction = (4 if self.stem == "imagenet" else 1) * 2 ** (len(self.layers) - 1)
        if self.input_size < reduction:
            raise ValueError(
                f"input_size={self.input_size} is smaller than the network's total stride {reduction}; "
                f"use input_size ≥ {reduction} (32 for CIFAR, 224 for ImageNet)"
            )

    def replace(self, **overrides: Any) -> "Res2NetConfig":
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown configuration option(s) {unknown}; valid options: {sorted(fields)}")
        if "se_streams" in overrides and isinstance(overrides["se_streams"], list):
            overrides["se_streams"] = tuple(overrides["se_streams"])
        for key in ("layers", "planes"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_depth(cls, depth: int, stem: str = "cifar", **kwargs: Any) -> "Res2NetConfig":
        """Seed 004's ``depth`` option: CIFAR depth = 9n + 2 (n blocks per stage), ImageNet 50/101/152."""
        base = cls(stem=stem)  # type: ignore[arg-type]
        if stem == "imagenet":
            if depth not in IMAGENET_LAYERS:
                raise ValueError(f"ImageNet depth {depth} is not one of {sorted(IMAGENET_LAYERS)}")
            base = IMAGENET_BASE.replace(layers=IMAGENET_LAYERS[depth])
        else:
            if depth < 11 or (depth - 2) % 9:
                raise ValueError(f"CIFAR depth {depth} is not 9n + 2 (29, 38, 47, …); pick such a depth")
            n = (depth - 2) // 9
            base = CIFAR_BASE.replace(layers=(n, n, n))
        return base.replace(**kwargs)


# The Res2Net-29 widths chosen by the search (see module docstring): stem 16, planes 16/32/64,
# base width 48 → subsets of 12/24/48 channels; 0.651 M params and 106.3 M thop MACs
# (report: 0.63 M, 100 M). tests/test_complexity.py checks that this is still the search's best.
CIFAR_BASE = Res2NetConfig(stem_width=16, planes=(16, 32, 64), base_width=48, scale=4)
# Gao et al.'s ImageNet Res2Net-50-26w-4s.
IMAGENET_BASE = Res2NetConfig(
    num_classes=1000,
    input_size=224,
    stem="imagenet",
    stem_width=64,
    layers=(3, 4, 6, 3),
    planes=(64, 128, 256, 512),
    base_width=26,
    scale=4,
)


class Res2Net(nn.Module):
    """Stem → stages of Res2Net bottlenecks (+SE) → global average pool → flatten → FC."""

    def __init__(self, config: Res2NetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        if config.stem == "imagenet":
            self.conv1 = nn.Conv2d(3, config.stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, config.stem_width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(config.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = config.stem_width
        self.stages = nn.ModuleList(
            self._make_layer(planes, blocks, stride)
            for planes, blocks, stride in zip(config.planes, config.layers, config.strides)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.drop_rate) if config.drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(self.inplanes, config.num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        cfg = self.config
        out = planes * Res2NetBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            # Projection shortcut (1×1 conv + BN) as in the official res2net50_26w_4s.
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        block_kwargs: Dict[str, Any] = dict(
            base_width=cfg.base_width,
            scale=cfg.scale,
            cardinality=cfg.cardinality,
            recursion=cfg.recursion,
            attn_layer=cfg.attn_layer,
            se_ratio=cfg.se_ratio,
            se_placement=cfg.se_placement,
            se_streams=cfg.se_streams,
        )
        layers = [Res2NetBottleneck(self.inplanes, planes, stride, downsample, stage_block=True, **block_kwargs)]
        self.inplanes = out
        layers += [Res2NetBottleneck(out, planes, **block_kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # He et al. 2015 ("Delving deep into rectifiers"): fan-out normal init for convs followed by
        # ReLU; BN starts as the identity. The same scheme as torchvision's ResNet and the Res2Net code.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def cam_target_layer(self) -> nn.Module:
        """Grad-CAM target: the last block of the last stage."""
        return cast(nn.Sequential, self.stages[-1])[-1]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.fc(self.dropout(x))


def build_res2net(base: Res2NetConfig, **overrides: Any) -> Res2Net:
    """The one builder behind every factory: ``base`` with ``overrides`` applied."""
    return Res2Net(base.replace(**overrides))


# --- CIFAR-10: the report's networks and its ablation -------------------------------------------

@register_model("cifar")
def res2net29(**kw: Any) -> Res2Net:
    """Res2Net-29 (s=4), the report's baseline."""
    return build_res2net(CIFAR_BASE, **kw)


@register_model("cifar")
def se_res2net29(**kw: Any) -> Res2Net:
    """SE-Res2Net-29: SE (r=16) on the concatenated multi-scale output Z, before the 1×1 fuse."""
    return build_res2net(CIFAR_BASE, **{"attn_layer": SqueezeExcite, **kw})


@register_model("cifar")
def se_res2net29_last_stream(**kw: Any) -> Res2Net:
    """Ablation: SE on the largest-receptive-field stream i=s only."""
    return build_res2net(CIFAR_BASE, **{"attn_layer": SqueezeExcite, "se_streams": "last", **kw})


@register_model("cifar")
def se_res2net29_streams12(**kw: Any) -> Res2Net:
    """Ablation: SE on streams i=1, 2 only."""
    return build_res2net(CIFAR_BASE, **{"attn_layer": SqueezeExcite, "se_streams": (1, 2), **kw})


@register_model("cifar")
def se_res2net29_output(**kw: Any) -> Res2Net:
    """Extra variant (not in the report): SENet's placement, after the 1×1 fuse + BN, before the add."""
    return build_res2net(CIFAR_BASE, **{"attn_layer": SqueezeExcite, "se_placement": "output", **kw})


@register_model("cifar")
def res2net29_report(**kw: Any) -> Res2Net:
    """Res2Net-29 with the report's recursion (y_2 = K_2(x_2 + x_1))."""
    return build_res2net(CIFAR_BASE, **{"recursion": "report", **kw})


@register_model("cifar")
def se_res2net29_report(**kw: Any) -> Res2Net:
    """SE-Res2Net-29 with the report's recursion."""
    return build_res2net(CIFAR_BASE, **{"attn_layer": SqueezeExcite, "recursion": "report", **kw})


# --- ImageNet layout (Gao et al.) ---------------------------------------------------------------

@register_model("imagenet")
def res2net50_26w_4s(**kw: Any) -> Res2Net:
    """Res2Net-50-26w-4s (Gao et al.: 25.70 M parameters)."""
    return build_res2net(IMAGENET_BASE, **kw)


@register_model("imagenet")
def se_res2net50_26w_4s(**kw: Any) -> Res2Net:
    """Res2Net-50-26w-4s with SE (r=16) on Z in every bottleneck."""
    return build_res2net(IMAGENET_BASE, **{"attn_layer": SqueezeExcite, **kw})
