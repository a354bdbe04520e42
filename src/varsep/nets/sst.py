"""The authors' SST networks (family ``sst``): a VGG-like encoder keeping a 2-D code, and a narrow decoder.

These are the networks of the authors' SST run (docs/model.md, "Where we depart"), which produced the
paper's SST numbers; the VGG reading of the paper's text stays available as ``vgg64_skip2d``
(varsep.nets.vgg). "conv" below is a 3×3 'same' convolution, BatchNorm, LeakyReLU(0.2) (conv_bn).

Encoder, input: the τ+1 frames of a window stacked on channels, (B, (τ+1)·C, H, W), H and W divisible by 4.

=========  =================================================  ==========  ==========
stage      layers                                             output      skip map
=========  =================================================  ==========  ==========
1          conv (τ+1)C→64, conv 64→64                          64 @ H       h1
2          max-pool 2, conv 64→128, conv 128→128               128 @ H/2    h2
3          max-pool 2, conv 128→256, 256→256, 256→256          256 @ H/4    h3
head       conv 256→512, conv 512→d, plain 3×3 conv d→d        d @ H/4      (the code)
=========  =================================================  ==========  ==========

The code S (or T) is the d-channel map at H/4 (196 or 64 channels at 16×16 on SST); nothing is
flattened. With ``skips`` the encoder also returns (h1, h2, h3), listed shallow to deep; there is no skip
map at the code's own 512-channel stage.

Decoder, input: S and T concatenated on channels (S first), (N, d+p, H/4, W/4), and the skip maps of E_S.
Each skip map is concatenated *before* the decoder's features ([skip, features]) after the decoder block
working at the skip map's resolution:

=========  ==================================================================  ==========
block      layers                                                              output
=========  ==================================================================  ==========
1          conv (d+p)→256, conv 256→256, conv 256→128                          128 @ H/4
2          [h3, ·] (256+128), conv →128, conv 128→64, conv 64→64, upsample ×2  64 @ H/2
3          [h2, ·] (128+64), conv →128, conv 128→64, conv 64→64, upsample ×2   64 @ H
4          [h1, ·] (64+64), conv →64, conv 64→64, conv 64→C                    C @ H
=========  ==================================================================  ==========

The last layer is a conv with BatchNorm and LeakyReLU like the others (the authors' frames pass through a
leaky ReLU), followed by a sigmoid only iff ``sigmoid`` (not for SST). Without skips the decoder is the
authors' skip-less variant: conv (d+p)→256, 256→256, 256→128, upsample | conv 128→128, 128→128,
128→64, upsample | conv 64→64, conv 64→C.

Convolutions followed by BatchNorm have no bias (the authors keep PyTorch's default bias there; BatchNorm
subtracts it again, so only the parameter count differs). ``spatial_code = True`` makes the model pick the
convolutional integrator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from varsep.errors import ConfigError
from varsep.nets.vgg import conv_bn

FACTOR = 4  # the code's resolution is the frame's divided by this
SKIP_CHANNELS = (64, 128, 256)  # h1, h2, h3 (shallow to deep)


def code_size(frame_shape: Sequence[int]) -> tuple[int, int]:
    """(h, w) of the code for frames (C, H, W); a ConfigError when the frame does not fit."""
    if len(frame_shape) != 3:
        raise ConfigError(f"the sst networks take frames (C, H, W), not observations of shape "
                          f"{tuple(frame_shape)}; use the mlp family for vectors")
    _, height, width = frame_shape
    if height % FACTOR or width % FACTOR:
        raise ConfigError(f"the sst networks need frame sides divisible by {FACTOR}, got {height}×{width}")
    return height // FACTOR, width // FACTOR


def _chain(widths: Sequence[int]) -> list[nn.Module]:
    return [conv_bn(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]


class SSTEncoder(nn.Module):
    """A window (B, τ+1, C, H, W) → a code (B, d, H/4, W/4), and (h1, h2, h3) if ``skips``."""

    spatial_code = True

    def __init__(self, in_channels: int, code_dim: int, *, skips: bool = False) -> None:
        super().__init__()
        self.with_skips = skips
        self.skip_channels = list(SKIP_CHANNELS) if skips else None
        self.stages = nn.ModuleList([
            nn.Sequential(*_chain([in_channels, 64, 64])),
            nn.Sequential(nn.MaxPool2d(2), *_chain([64, 128, 128])),
            nn.Sequential(nn.MaxPool2d(2), *_chain([128, 256, 256, 256])),
        ])
        self.head = nn.Sequential(*_chain([256, 512, code_dim]), nn.Conv2d(code_dim, code_dim, 3, padding=1))

    def forward(self, window: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if window.dim() != 5:
            raise ValueError(f"expected windows (B, τ+1, C, H, W), got shape {tuple(window.shape)}")
        h = window.flatten(1, 2)
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        code = self.head(h)
        return (code, maps) if self.with_skips else code


class SSTDecoder(nn.Module):
    """(S ⊕ T) (N, latent, H/4, W/4) and E_S's skip maps (h1, h2, h3) → frames (N, C, H, W)."""

    def __init__(self, latent_dim: int, out_channels: int, *, skip_channels: Sequence[int] | None = None,
                 sigmoid: bool = False) -> None:
        super().__init__()
        if skip_channels is not None and len(skip_channels) != len(SKIP_CHANNELS):
            raise ConfigError(f"the sst decoder takes {len(SKIP_CHANNELS)} skip maps, the encoder gives "
                              f"{len(skip_channels)}")
        self.skip_channels = list(skip_channels) if skip_channels is not None else None
        self.sigmoid = sigmoid
        up = nn.Upsample(scale_factor=2, mode="nearest")
        if self.skip_channels is None:
            self.blocks = nn.ModuleList([
                nn.Sequential(*_chain([latent_dim, 256, 256, 128]), up),
                nn.Sequential(*_chain([128, 128, 128, 64]), nn.Upsample(scale_factor=2, mode="nearest")),
                nn.Sequential(*_chain([64, 64, out_channels])),
            ])
        else:
            c1, c2, c3 = self.skip_channels
            self.blocks = nn.ModuleList([
                nn.Sequential(*_chain([latent_dim, 256, 256, 128])),
                nn.Sequential(*_chain([c3 + 128, 128, 64, 64]), up),
                nn.Sequential(*_chain([c2 + 64, 128, 64, 64]), nn.Upsample(scale_factor=2, mode="nearest")),
                nn.Sequential(*_chain([c1 + 64, 64, 64, out_channels])),
            ])

    def forward(self, z: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        h = self.blocks[0](z)
        if self.skip_channels is not None:
            if len(skips) != len(self.skip_channels):
                raise ValueError(f"this decoder needs {len(self.skip_channels)} skip maps, got {len(skips)}")
            for block, skip in zip(self.blocks[1:], reversed(skips), strict=True):  # h3, h2, h1
                h = block(torch.cat([skip, h], dim=1))
        else:
            for block in self.blocks[1:]:
                h = block(h)
        return torch.sigmoid(h) if self.sigmoid else h
