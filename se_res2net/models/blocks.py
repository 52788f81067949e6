"""Building blocks: Squeeze-and-Excitation gates and the Res2Net bottleneck.

Sources
-------
- Res2Net bottleneck: Gao, Cheng, Zhao, Zhang, Yang, Torr, "Res2Net: A New
  Multi-scale Backbone Architecture", TPAMI 2021 (arXiv:1904.01169), Fig. 2 and
  Eq. (1); the official implementation (``Res2Net/Res2Net-PretrainedModels``,
  ``Bottle2neck``) for the first, downsampling block of a stage.
- Squeeze-and-Excitation: Hu, Shen, Sun, "Squeeze-and-Excitation Networks",
  CVPR 2018 (arXiv:1709.01507), Fig. 3 (SE-ResNet module).
- The SE-Res2Net report (``shared/seeds/000``): SE gating on the concatenated
  multi-scale output Z and a slightly different recursion (see ``recursion``).

Two recursions over the subsets x_1..x_s of the 1×1-reduced input
(``K_i`` = 3×3 conv → BN → ReLU):

``"paper"`` (Gao et al., Eq. 1; the default)::

    y_1 = x_1,  y_2 = K_2(x_2),  y_i = K_i(x_i + y_{i-1})  for 2 < i ≤ s

``"report"`` (the report's block equations)::

    y_1 = x_1,  y_i = K_i(x_i + y_{i-1})  for 2 ≤ i ≤ s   (so y_2 = K_2(x_2 + x_1))

The paper numbers the pass-through subset first; the official code passes the
*last* subset through. The two are the same network up to a permutation of
channels, so we follow the paper's equation literally.

First block of a stage (``stage_block=True``, stride 2 and/or a change of
width): ``y_{i-1}`` would not have the resolution of ``x_i`` after a strided
K_{i-1}, so — as the official code does — the additions are dropped
(``y_i = K_i(x_i)`` for i ≥ 2) and the pass-through subset is average-pooled
(3×3, given stride, padding 1 — also at stride 1, as in the official code)
instead of copied. This holds for both recursions.
"""

from __future__ import annotations

from typing import Callable, List, Literal, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from torch import Tensor

Recursion = Literal["paper", "report"]
SEPlacement = Literal["fused", "output"]
RECURSIONS: Tuple[str, ...] = ("paper", "report")
SE_PLACEMENTS: Tuple[str, ...] = ("fused", "output")


def _se_hidden(channels: int, ratio: int) -> int:
    if ratio < 1:
        raise ValueError(f"SE ratio r={ratio} must be ≥ 1; use r=16 (Hu et al.) or another positive integer")
    if ratio > channels:
        raise ValueError(
            f"SE ratio r={ratio} is larger than the {channels} channels it gates "
            f"(C/r would be 0); use r ≤ {channels}"
        )
    return channels // ratio


class SqueezeExcite(nn.Module):
    """SE gate (Hu et al. 2018): GAP → W1 (C→C/r) → ReLU → W2 (C/r→C) → sigmoid → x·g.

    W1, W2 are 1×1 convolutions with bias, i.e. fully connected layers on the
    pooled vector, as in the reference SENet code.
    """

    def __init__(self, channels: int, ratio: int = 16, hidden: Optional[int] = None) -> None:
        super().__init__()
        if hidden is None:
            hidden = _se_hidden(channels, ratio)
        elif hidden < 1:
            raise ValueError(f"SE hidden size {hidden} must be ≥ 1")
        self.channels = channels
        self.ratio = ratio
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def gate_values(self, x: Tensor) -> Tensor:
        """The per-channel gate g ∈ (0, 1), shape (N, C, 1, 1)."""
        z = x.mean(dim=(2, 3), keepdim=True)
        return self.gate(self.fc2(self.relu(self.fc1(z))))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate_values(x)


class StreamSqueezeExcite(nn.Module):
    """SE on selected streams of a concatenation of ``scale`` streams of ``width`` channels.

    The gate is computed from, and applied to, only the chosen streams (1-based
    indices, as in the report's ablation: ``(s,)`` = largest stream, ``(1, 2)``);
    the other channels pass through untouched. ``streams=None`` gates all.

    The excitation MLP keeps the hidden size of the full SE on Z,
    ``(width·s) // r``: the ablation changes *which* channels are gated, not the
    capacity of the gate. (A per-stream ``width // r`` would be 0 for the 12-channel
    streams of our Res2Net-29 at r=16.) ``se_layer`` must accept ``hidden=``.
    """

    channel_index: Tensor  # a buffer: the chosen streams' channels

    def __init__(
        self,
        width: int,
        scale: int,
        ratio: int = 16,
        streams: Optional[Sequence[int]] = None,
        se_layer: Type[nn.Module] = SqueezeExcite,
    ) -> None:
        super().__init__()
        chosen = tuple(range(1, scale + 1)) if streams is None else tuple(sorted(set(int(i) for i in streams)))
        bad = [i for i in chosen if not 1 <= i <= scale]
        if bad or not chosen:
            raise ValueError(
                f"SE streams {tuple(streams or ())} are not within 1..s={scale}; pick stream indices between 1 and {scale}"
            )
        self.width = width
        self.scale = scale
        self.streams = chosen
        self.all_streams = len(chosen) == scale
        index = torch.cat([torch.arange((i - 1) * width, i * width) for i in chosen])
        self.register_buffer("channel_index", index, persistent=False)
        hidden = _se_hidden(width * scale, ratio)
        self.se = se_layer(width * len(chosen), ratio, hidden=hidden)

    def forward(self, x: Tensor) -> Tensor:
        if self.all_streams:
            return self.se(x)
        selected = x.index_select(1, self.channel_index)
        out = x.clone()
        out[:, self.channel_index] = self.se(selected)
        return out


def _resolve_streams(streams: Union[str, Sequence[int], None], scale: int) -> Optional[Tuple[int, ...]]:
    """``"all"``/None → all streams; ``"last"`` → (s,); a sequence of 1-based indices otherwise."""
    if streams is None or streams == "all":
        return None
    if streams == "last":
        return (scale,)
    if isinstance(streams, str):
        raise ValueError(f"se_streams={streams!r} is not understood; use 'all', 'last' or a tuple of 1-based indices")
    return tuple(int(i) for i in streams)


class Res2NetBottleneck(nn.Module):
    """Res2Net bottleneck (Gao et al. 2019), optionally with SE.

    1×1 reduce (→ ``width·scale``) → split into ``scale`` subsets of ``width``
    → hierarchical 3×3 convs K_i (grouped by ``cardinality``) with BN+ReLU →
    concatenate (Z) → [SE on Z if ``se_placement="fused"``] → 1×1 fuse → BN →
    [SE if ``"output"``] → + shortcut → ReLU.

    ``attn_layer`` is an SE *class* (timm style), ``None`` for plain Res2Net.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        *,
        base_width: int = 26,
        scale: int = 4,
        cardinality: int = 1,
        stage_block: bool = False,
        recursion: Recursion = "paper",
        attn_layer: Optional[Type[nn.Module]] = None,
        se_ratio: int = 16,
        se_placement: SEPlacement = "fused",
        se_streams: Union[str, Sequence[int], None] = "all",
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale s={scale} must be ≥ 1 (s=1 is a plain bottleneck); use s=4 as in the report")
        if cardinality < 1:
            raise ValueError(f"cardinality c={cardinality} must be ≥ 1")
        if base_width < 1:
            raise ValueError(f"base_width={base_width} must be ≥ 1")
        if recursion not in RECURSIONS:
            raise ValueError(f"recursion={recursion!r} is unknown; use one of {RECURSIONS}")
        if se_placement not in SE_PLACEMENTS:
            raise ValueError(f"se_placement={se_placement!r} is unknown; use one of {SE_PLACEMENTS}")
        # Gao et al.: width per subset = floor(planes · base_width / 64) · c.
        width = (planes * base_width) // 64 * cardinality
        if width < cardinality or width % cardinality:
            raise ValueError(
                f"subset width {width} (planes={planes}, base_width={base_width}, c={cardinality}) is not a positive "
                f"multiple of cardinality c={cardinality}; increase base_width or planes, or lower c"
            )
        self.width = width
        self.scale = scale
        self.stage_block = stage_block
        self.recursion = recursion
        outplanes = planes * self.expansion

        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = norm_layer(width * scale)
        n_convs = max(1, scale - 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False) for _ in range(n_convs)
        )
        self.bns = nn.ModuleList(norm_layer(width) for _ in range(n_convs))
        # The pass-through subset of a stage block is average-pooled (3×3, padding 1) to the new
        # resolution. Like the official code we pool even at stride 1 (the first stage), where it
        # acts as a parameter-free 3×3 blur.
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1) if (stage_block and scale > 1) else None
        self.conv3 = nn.Conv2d(width * scale, outplanes, kernel_size=1, bias=False)
        self.bn3 = norm_layer(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

        self.se_placement = se_placement
        self.se: Optional[nn.Module] = None
        if attn_layer is not None:
            if se_placement == "fused":
                streams = _resolve_streams(se_streams, scale)
                if streams is None:
                    self.se = attn_layer(width * scale, se_ratio)
                else:
                    self.se = StreamSqueezeExcite(width, scale, se_ratio, streams, se_layer=attn_layer)
            else:
                if _resolve_streams(se_streams, scale) is not None:
                    raise ValueError("se_streams applies to se_placement='fused' only; use se_streams='all' with 'output'")
                self.se = attn_layer(outplanes, se_ratio)

    def hierarchy(self, subsets: List[Tensor]) -> List[Tensor]:
        """Apply the multi-scale recursion to the subsets x_1..x_s; returns y_1..y_s."""
        if self.scale == 1:
            return [self.relu(self.bns[0](self.convs[0](subsets[0])))]
        x1 = subsets[0]
        ys: List[Tensor] = [self.pool(x1) if self.pool is not None else x1]
        prev: Optional[Tensor] = None
        for i in range(1, self.scale):  # 0-based i ↔ subset i+1
            xi = subsets[i]
            if not self.stage_block:
                if prev is not None:
                    xi = xi + prev
                elif self.recursion == "report":
                    xi = xi + x1  # y_2 = K_2(x_2 + y_1), y_1 = x_1
            y = self.relu(self.bns[i - 1](self.convs[i - 1](xi)))
            ys.append(y)
            prev = y
        return ys

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        z = torch.cat(self.hierarchy(list(torch.split(out, self.width, dim=1))), dim=1)
        if self.se is not None and self.se_placement == "fused":
            z = self.se(z)
        out = self.bn3(self.conv3(z))
        if self.se is not None and self.se_placement == "output":
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a shortcut (He et al. 2016); the CIFAR ResNet block.

    ``shortcut="A"``: parameter-free identity with stride-2 subsampling and zero
    padding of the new channels (He et al. 2016, §4.2, option A — the one used
    for ResNet-20…110 on CIFAR-10). ``"B"``: 1×1 conv + BN projection.
    ``attn_layer`` adds SE before the residual add (SE-ResNet, Hu et al.).
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: Literal["A", "B"] = "A",
        attn_layer: Optional[Type[nn.Module]] = None,
        se_ratio: int = 16,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut={shortcut!r} is unknown; use 'A' (He et al. CIFAR) or 'B' (projection)")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = attn_layer(planes, se_ratio) if attn_layer is not None else None
        self.shortcut_type = shortcut
        self.stride = stride
        self.pad_channels = planes - inplanes
        self.downsample: Optional[nn.Module] = None
        if shortcut == "B" and (stride != 1 or inplanes != planes):
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), norm_layer(planes)
            )

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride != 1 or self.pad_channels:
            x = x[:, :, :: self.stride, :: self.stride]
            if self.pad_channels:
                half = self.pad_channels // 2
                x = nn.functional.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + self._shortcut(x))
