"""The report's baselines, as the literature defines them.

- ``resnet56``: He, Zhang, Ren, Sun, "Deep Residual Learning for Image
  Recognition", CVPR 2016, §4.2: 6n+2 layers, n=9, widths 16/32/64, basic
  blocks, shortcut **option A** (identity + zero-padding; 0.85 M parameters).
- ``se_resnet110``: Hu et al., SENet, CVPR 2018: an SE module (r=16) on the
  residual branch of every basic block of the CIFAR ResNet-110 (n=18, option A).
- ``densenet_bc100``: Huang, Liu, van der Maaten, Weinberger, "Densely
  Connected Convolutional Networks", CVPR 2017: DenseNet-BC, L=100, k=12,
  bottleneck 4k, compression θ=0.5 (0.8 M parameters in their Table 2).
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Type, cast

import torch
import torch.nn as nn
from torch import Tensor

from .blocks import BasicBlock, SqueezeExcite
from .registry import register_model


def _init_weights(module: nn.Module) -> None:
    # He et al. 2015 init for convs followed by ReLU; BN as identity; FC bias zero (torchvision's scheme).
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class CifarResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, §4.2): 3×3 conv 16 → 3 stages of n basic blocks (16, 32, 64) → GAP → FC."""

    def __init__(
        self,
        depth: int = 56,
        num_classes: int = 10,
        *,
        shortcut: Literal["A", "B"] = "A",
        attn_layer: Optional[Type[nn.Module]] = None,
        se_ratio: int = 16,
        widths: tuple = (16, 32, 64),
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth {depth} is not 6n + 2 (20, 32, 44, 56, 110, …)")
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be ≥ 1")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = widths[0]
        block_kwargs = dict(shortcut=shortcut, attn_layer=attn_layer, se_ratio=se_ratio)
        self.stages = nn.ModuleList(
            self._make_layer(w, n, stride, block_kwargs) for w, stride in zip(widths, (1, 2, 2))
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def _make_layer(self, planes: int, blocks: int, stride: int, block_kwargs: dict) -> nn.Sequential:
        layers: List[nn.Module] = [BasicBlock(self.inplanes, planes, stride, **block_kwargs)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, 1, **block_kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def cam_target_layer(self) -> nn.Module:
        return cast(nn.Sequential, self.stages[-1])[-1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class _DenseLayer(nn.Module):
    """BN-ReLU-1×1 conv (4k) - BN-ReLU-3×3 conv (k); its output is concatenated to its input."""

    def __init__(self, in_channels: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class _Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNetBC(nn.Module):
    """CIFAR DenseNet-BC (Huang et al. 2017): 3 dense blocks of (L-4)/6 bottleneck layers."""

    def __init__(self, depth: int = 100, growth: int = 12, compression: float = 0.5, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"DenseNet-BC depth {depth} is not 6n + 4 (40, 100, 190, …)")
        if not 0 < compression <= 1:
            raise ValueError(f"compression θ={compression} must be in (0, 1]")
        n = (depth - 4) // 6
        channels = 2 * growth
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        blocks: List[nn.Module] = []
        for i in range(3):
            layers = []
            for _ in range(n):
                layers.append(_DenseLayer(channels, growth))
                channels += growth
            blocks.append(nn.Sequential(*layers))
            if i < 2:
                out = int(channels * compression)
                blocks.append(_Transition(channels, out))
                channels = out
        self.features = nn.Sequential(*blocks)
        self.bn_final = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self)

    def cam_target_layer(self) -> nn.Module:
        """The last dense block (its output is the concatenation of every feature of the stage)."""
        return self.features[-1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn_final(self.features(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("cifar")
def resnet56(**kw: Any) -> CifarResNet:
    """ResNet-56, option A shortcuts (He et al. 2016)."""
    return CifarResNet(**{"depth": 56, **kw})


@register_model("cifar")
def se_resnet110(**kw: Any) -> CifarResNet:
    """SE-ResNet-110: ResNet-110 (option A) with SE, r=16, in every basic block (Hu et al. 2018)."""
    return CifarResNet(**{"depth": 110, "attn_layer": SqueezeExcite, **kw})


@register_model("cifar")
def densenet_bc100(**kw: Any) -> DenseNetBC:
    """DenseNet-BC-100, k=12 (Huang et al. 2017)."""
    return DenseNetBC(**{"depth": 100, "growth": 12, **kw})
