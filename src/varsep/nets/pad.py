"""Frames of any size for networks built for one: pad the encoders' input, crop the decoder's output.

Convolutional families serve some frame sizes only (dcgan: 64×64; vgg: sides divisible by their pooling
factor). Rather than resizing a field — which changes the physics being forecast — :class:`PadFrames`
puts the frames in the middle of the size the network serves and :class:`CropFrames` cuts the decoded
frames back. The padding *replicates* the border cells: the field continues smoothly past its edge, so the
first convolutions see no artificial step (zeros would be a step of one standard deviation on
standardised data). Decoded padding cells are cut away before any loss or metric sees them, so they are
excluded from both by construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def centred_padding(size: tuple[int, int], padded: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) that put a frame of ``size`` (h, w) in the middle of ``padded``."""
    (h, w), (ph, pw) = size, padded
    if ph < h or pw < w:
        raise ValueError(f"cannot pad {h}×{w} frames to the smaller {ph}×{pw}")
    top, left = (ph - h) // 2, (pw - w) // 2
    return left, pw - w - left, top, ph - h - top


class PadFrames(nn.Module):
    """An encoder of ``padded`` frames taking windows (B, n, C, h, w) of frames of ``size``."""

    def __init__(self, net: nn.Module, size: tuple[int, int], padded: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.size, self.padded = tuple(size), tuple(padded)
        self.padding = centred_padding(self.size, self.padded)
        # What the model reads from an encoder (build_model, SeparableModel) passes through.
        self.spatial_code = bool(getattr(net, "spatial_code", False))
        self.skip_channels = getattr(net, "skip_channels", None)

    def forward(self, window: torch.Tensor):
        lead = window.shape[:-3]
        frames = window.reshape(-1, *window.shape[-3:])
        frames = F.pad(frames, self.padding, mode="replicate")
        return self.net(frames.reshape(*lead, *frames.shape[-3:]))


class CropFrames(nn.Module):
    """A decoder of ``padded`` frames whose output (N, C, H, W) is cut back to frames of ``size``."""

    def __init__(self, net: nn.Module, size: tuple[int, int], padded: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.size, self.padded = tuple(size), tuple(padded)
        left, _, top, _ = centred_padding(self.size, self.padded)
        self.top, self.left = top, left

    def forward(self, *inputs: torch.Tensor):
        out = self.net(*inputs)
        h, w = self.size
        return out[..., self.top:self.top + h, self.left:self.left + w]
