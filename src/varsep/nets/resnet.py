"""ResNet18-like encoder of DrNet (Denton & Birodkar 2017), used on 3D Warehouse Chairs (Appendix E.2).

Two variants; ``variant="authors"`` (family ``resnet18``, the default for Chairs) is the network of the
authors' code, which produced the paper's Chairs numbers. Layers for a 64×64 window of τ+1 RGB frames
stacked on channels ((τ+1)·3 = 15 input channels):

    stem     conv 5×5 stride 2 pad 3 → 64 ch, BN, ReLU                         64×64 → 33×33
             max-pool 3×3 stride 2 pad 1                                        17×17
    stage 1  2 BasicBlocks,  64 ch, stride 1                                     17×17
    stage 2  2 BasicBlocks, 128 ch, first block stride 2 (1×1 stride-2 shortcut)  9×9
    stage 3  2 BasicBlocks, 256 ch, first block stride 2                          5×5
    stage 4  2 BasicBlocks, 512 ch, first block stride 2                          3×3
    head     conv 3×3 (the size of the final map), no padding, 512 → d, bias      1×1 → code (B, d)

The head has no normalisation and no activation. The authors' network also creates a BatchNorm over the
code (``bn_out``) that its forward pass never applies; it is created here too, so that the parameter
count and the state-dict keys match, and frozen (``requires_grad = False``: it has no gradient, and
data-parallel training must not wait for one).

``variant="linear"`` (family ``resnet18_linear``) is an earlier reading of the text: stem padding 2, no
max-pool, so the four stages reach 4×4 on their own (64 → 32 → 32 → 16 → 8 → 4), and a linear head on the
whole 512×4×4 map.

A BasicBlock is conv 3×3 (stride s) → BN → ReLU → conv 3×3 → BN, plus the shortcut (identity, or a 1×1
conv with stride s and BN when the shape changes), then ReLU. Convolutions followed by BN carry no bias
(the authors' do; BN removes it again, so only the parameter count differs, by 4,800). Other frame sizes
work too: the head's kernel is the size of the final map.
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
    """Output size of a stride-2 layer padded to keep ``ceil(size / 2)`` (3×3 pad 1 conv or max-pool)."""
    return math.ceil(size / 2)


VARIANTS = ("authors", "linear")


class ResNet18Encoder(nn.Module):
    """Maps a window (B, τ+1, C, H, W), frames stacked on channels, to a code (B, code_dim)."""

    def __init__(self, in_channels: int, frame_size: tuple[int, int], code_dim: int, *,
                 variant: str = "authors") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        authors = variant == "authors"
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, WIDTHS[0], STEM_KERNEL, stride=STEM_STRIDE,
                      padding=STEM_KERNEL // 2 + 1 if authors else STEM_KERNEL // 2, bias=False),
            nn.BatchNorm2d(WIDTHS[0]),
            nn.ReLU(inplace=True),
        ]
        if authors:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages, channels = [], WIDTHS[0]
        for width, blocks, stride in zip(WIDTHS, BLOCKS, STRIDES, strict=True):
            first = BasicBlock(channels, width, stride)
            stages.append(nn.Sequential(first, *(BasicBlock(width, width) for _ in range(blocks - 1))))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.resolutions = self.feature_sizes(frame_size, variant)  # after the stem and after each stage
        h, w = self.resolutions[-1]
        if authors:
            self.head: nn.Module = nn.Conv2d(channels, code_dim, (h, w))
            self.bn_out = nn.BatchNorm2d(code_dim)  # created, never applied (see the module docstring)
            self.bn_out.requires_grad_(False)
        else:
            self.head = nn.Linear(channels * h * w, code_dim)

    @staticmethod
    def feature_sizes(frame_size: tuple[int, int], variant: str = "authors") -> list[tuple[int, int]]:
        """Spatial size after the stem (and its max-pool) and after each of the four stages."""
        if variant == "authors":  # 5×5 stride-2 conv padded by 3, then the 3×3 stride-2 max-pool
            h, w = (_halve((s + 6 - 5) // 2 + 1) for s in frame_size)
        else:
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
        return self.head(x).flatten(1) if self.variant == "authors" else self.head(x.flatten(1))
