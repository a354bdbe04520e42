"""ResNet18-like encoder of DrNet (Denton & Birodkar 2017), used on 3D Warehouse Chairs (Appendix E.2).

Layers for a 64×64 window of τ+1 RGB frames stacked on channels ((τ+1)·3 = 15 input channels):

    stem     conv 5×5 stride 2 pad 2 → 64 ch, BN, ReLU                         64×64 → 32×32
    stage 1  2 BasicBlocks,  64 ch, stride 1                                     32×32
    stage 2  2 BasicBlocks, 128 ch, first block stride 2 (1×1 stride-2 shortcut)  16×16
    stage 3  2 BasicBlocks, 256 ch, first block stride 2                          8×8
    stage 4  2 BasicBlocks, 512 ch, first block stride 2                          4×4
    head     flatten 512×4×4 → linear → code (B, code_dim)

A BasicBlock is conv 3×3 (stride s) → BN → ReLU → conv 3×3 → BN, plus the shortcut (identity, or a 1×1
conv with stride s and BN when the shape changes), then ReLU. Convolutions followed by BN carry no bias.

Why these strides: the stem halves the resolution as in DrNet; there is no max-pool, so the four stages
reach 4×4 on their own (one halving at each of stages 2–4), which matches the 4×4 maps that the DCGAN
decoder of this data set starts from and keeps every feature map an exact power of two. The authors'
code instead pads the stem by 3 and adds a 3×3 max-pool (64 → 33 → 17 → 17 → 9 → 5 → 3) and ends with
a 3×3 convolution; the head here is the equivalent linear map of the whole final feature map. Other
frame sizes work too: each halving rounds up, and the head sizes itself from the final map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

WIDTHS = (64, 128, 256, 512)
BLOCKS = (2, 2, 2, 2)
STRIDES = (1, 2, 2, 2)
STEM_KERNEL, STEM_STRIDE = 5, 2


class BasicBlock(nn.Module):
    """Two 3×3 conv + BN layers with a residual shortcut (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _halve(size: int) -> int:
    """Output size of a stride-2 convolution padded to keep ``ceil(size / 2)``."""
    return math.ceil(size / 2)


class ResNet18Encoder(nn.Module):
    """Maps a window (B, τ+1, C, H, W), frames stacked on channels, to a code (B, code_dim)."""

    def __init__(self, in_channels: int, frame_size: tuple[int, int], code_dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, WIDTHS[0], STEM_KERNEL, stride=STEM_STRIDE, padding=STEM_KERNEL // 2,
                      bias=False),
            nn.BatchNorm2d(WIDTHS[0]),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], WIDTHS[0]
        for width, blocks, stride in zip(WIDTHS, BLOCKS, STRIDES, strict=True):
            first = BasicBlock(channels, width, stride)
            stages.append(nn.Sequential(first, *(BasicBlock(width, width) for _ in range(blocks - 1))))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.resolutions = self.feature_sizes(frame_size)  # after the stem and after each stage
        h, w = self.resolutions[-1]
        self.head = nn.Linear(channels * h * w, code_dim)

    @staticmethod
    def feature_sizes(frame_size: tuple[int, int]) -> list[tuple[int, int]]:
        """Spatial size after the stem and after each of the four stages."""
        h, w = _halve(frame_size[0]), _halve(frame_size[1])
        sizes = [(h, w)]
        for stride in STRIDES:
            if stride == 2:
                h, w = _halve(h), _halve(w)
            sizes.append((h, w))
        return sizes

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        x = window.flatten(1, 2)  # (B, (τ+1)·C, H, W)
        x = self.stages(self.stem(x))
        return self.head(x.flatten(1))
