"""VGG16-style encoders and mirrored decoders (paper Appendix E.2, F.2, F.3; docs/model.md).

Three families share one layout: four stages of 3×3 convolutions with the widths of VGG16, each conv
followed by BatchNorm and LeakyReLU(0.2) ("conv" below), 2×2 max-pooling between stages, and a head that
turns the deepest feature map into the code. The decoder mirrors the encoder with nearest-neighbour
upsampling; with skip connections (U-Net style, Ronneberger et al. 2015) the output of encoder stage k is
concatenated on channels to the input of the decoder stage working at the same resolution.

Encoder, input: the τ+1 frames of a window stacked on channels, (B, (τ+1)·C, H, W).

==========  ==============================  ==============================  ==============================
stage       vgg32 (TaxiBJ, 32×32)           vgg64_skip (KTH, 64×64)         vgg64_skip2d (SST, 64×64)
==========  ==============================  ==============================  ==============================
1           conv (τ+1)C→64, conv 64→64      same, at 64×64                  same, at 64×64
            at 32×32
2           pool, conv 64→128, 128→128      pool, same                      pool, same
3           pool, conv 128→256, 256→256,    pool, same                      pool, same (at 16×16)
            256→256
4           pool, conv 256→512, 512→512,    pool, same (at 8×8)             no pool, same (at 16×16)
            512→512 (at 4×4)
head        4×4 conv 512→d, BatchNorm       pool to 4×4, 4×4 conv 512→d,    3×3 conv 512→d (no norm,
            → code (B, d)                   BatchNorm → code (B, d)         no activation) → (B, d, 16, 16)
==========  ==============================  ==============================  ==============================

- vgg32 is the paper's "VGG16 without skip connections, adapted to 32×32 by removing the shallowest
  upsampling and downsampling operations" (E.2): the 64×64 network without its first pooling, so three
  poolings take 32 to 4 and the 4×4 head conv makes the vector code.
- vgg64_skip is the 64×64 VGG of SVG (Denton & Fergus 2018), also the official code's ``vgg``: four
  poolings 64→4, then the 4×4 head conv.
- vgg64_skip2d removes the two deepest poolings (F.3), so the code stays a 16×16 map; the 4×4 valid head
  conv becomes a 3×3 "same" conv (the official SST code ends its encoder the same way, with no norm), and
  the module sets ``spatial_code = True`` so the model picks the convolutional integrator.

Decoder, input: the combined latent z, (N, latent) or (N, latent, h, w) for 2-D codes.

- head: vector codes — 4×4 transposed conv latent→512 from 1×1 to 4×4, BatchNorm, LeakyReLU, then (vgg64)
  an upsampling to 8×8; 2-D codes — conv latent→512 at 16×16.
- stages, deepest first, each the mirror of encoder stage k with widths (w_k, …): [concat skip k], then
  (depth−1) convs to w_k and one conv to w_{k−1}, then an upsampling ×2 wherever the encoder pooled before
  stage k. For stage 1 the last conv is a plain 3×3 conv 64→C (with bias, no norm) giving the frame:
  stage 4: conv 512(+512)→512, 512→512, 512→256 · stage 3: 256(+256)→256, 256→256, 256→128 ·
  stage 2: 128(+128)→128, 128→64 · stage 1: 64(+64)→64, 3×3 conv 64→C; then a sigmoid iff
  ``model.final_activation: sigmoid`` (KTH; none for TaxiBJ and SST, whose values are not in [0, 1]).
- vgg64_skip2d's decoder: head conv latent→512, stage 4: 512(+512)→512, 512→512, 512→256 (no upsampling:
  the encoder did not pool there), stage 3: 256(+256)→256, 256→256, 256→128, up to 32, and so on.

Choices where the sources are silent or differ, following the official code: the vector heads end with
BatchNorm (no activation; SVG adds a tanh); convolutions followed by BatchNorm have no bias (it would be
redundant). Skip maps are the outputs of the four encoder stages, listed shallow to deep (``skip_channels``
= [64, 128, 256, 512]); with 2-D codes they include the 512-channel map at the code's resolution. The
families work on any frame size divisible by their total pooling factor (8 for vgg32, 16 for vgg64_skip,
4 for vgg64_skip2d); the vector head's kernel is the size of the deepest map (4×4 on the nominal frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from varsep.errors import ConfigError

LEAK = 0.2
VGG_WIDTHS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512))


@dataclass(frozen=True)
class VGGLayout:
    """Where a VGG family pools and what its head makes (a vector or a feature map)."""

    name: str
    pools: tuple[bool, ...]  # 2×2 max-pooling before each stage
    head_pool: bool  # 2×2 max-pooling before the head
    spatial: bool  # True: the code is a feature map (3×3 head conv); False: a vector (valid conv)
    widths: tuple[tuple[int, ...], ...] = VGG_WIDTHS

    @property
    def factor(self) -> int:
        """Total downsampling from the frame to the deepest feature map."""
        return 2 ** (sum(self.pools) + self.head_pool)

    def code_size(self, frame_shape: Sequence[int]) -> tuple[int, int]:
        """(h, w) of the deepest map for frames (C, H, W); a ConfigError if the frame does not divide."""
        if len(frame_shape) != 3:
            raise ConfigError(f"the {self.name} networks take frames (C, H, W), not observations of shape "
                              f"{tuple(frame_shape)}; use the mlp family for vectors")
        _, height, width = frame_shape
        if height % self.factor or width % self.factor:
            raise ConfigError(f"the {self.name} networks need frame sides divisible by {self.factor}, got "
                              f"{height}×{width}")
        return height // self.factor, width // self.factor


VGG32 = VGGLayout("vgg32", pools=(False, True, True, True), head_pool=False, spatial=False)
VGG64 = VGGLayout("vgg64_skip", pools=(False, True, True, True), head_pool=True, spatial=False)
VGG64_2D = VGGLayout("vgg64_skip2d", pools=(False, True, True, False), head_pool=False, spatial=True)


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """3×3 'same' conv (no bias: BatchNorm follows), BatchNorm, LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(LEAK, inplace=True))


class VGGEncoder(nn.Module):
    """A window (B, τ+1, C, H, W) → a code (B, d) or (B, d, h, w), and the stage outputs if ``skips``."""

    def __init__(self, layout: VGGLayout, in_channels: int, code_dim: int, code_size: tuple[int, int],
                 *, skips: bool = False) -> None:
        super().__init__()
        self.layout = layout
        self.spatial_code = layout.spatial
        self.with_skips = skips
        self.skip_channels = [w[-1] for w in layout.widths] if skips else None
        stages, cin = [], in_channels
        for pool, widths in zip(layout.pools, layout.widths, strict=True):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
            for w in widths:
                layers.append(conv_bn(cin, w))
                cin = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        if layout.spatial:
            self.head = nn.Conv2d(cin, code_dim, 3, padding=1)
        else:
            head: list[nn.Module] = [nn.MaxPool2d(2)] if layout.head_pool else []
            head += [nn.Conv2d(cin, code_dim, code_size, bias=False), nn.BatchNorm2d(code_dim)]
            self.head = nn.Sequential(*head)

    def forward(self, window: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if window.dim() != 5:
            raise ValueError(f"expected windows (B, τ+1, C, H, W), got shape {tuple(window.shape)}")
        h = window.flatten(1, 2)
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        code = self.head(h)
        if not self.spatial_code:
            code = code.flatten(1)
        return (code, maps) if self.with_skips else code


class VGGDecoder(nn.Module):
    """The mirror of :class:`VGGEncoder`: a latent (and the encoder's stage outputs) → frames (N, C, H, W)."""

    def __init__(self, layout: VGGLayout, latent_dim: int, out_channels: int, code_size: tuple[int, int],
                 *, skip_channels: Sequence[int] | None = None, sigmoid: bool = False) -> None:
        super().__init__()
        n = len(layout.widths)
        if skip_channels is not None and len(skip_channels) != n:
            raise ConfigError(f"the {layout.name} decoder takes {n} skip maps, the encoder gives "
                              f"{len(skip_channels)}")
        self.skip_channels = list(skip_channels) if skip_channels is not None else None
        self.spatial = layout.spatial
        self.sigmoid = sigmoid
        top = layout.widths[-1][-1]
        if layout.spatial:
            self.head = conv_bn(latent_dim, top)
        else:
            head: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, top, code_size, bias=False),
                                     nn.BatchNorm2d(top), nn.LeakyReLU(LEAK, inplace=True)]
            if layout.head_pool:
                head.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.head = nn.Sequential(*head)
        stages, cin = [], top
        for k in reversed(range(n)):  # deepest stage first
            widths = layout.widths[k]
            cin += self.skip_channels[k] if self.skip_channels else 0
            layers: list[nn.Module] = []
            for _ in widths[:-1]:
                layers.append(conv_bn(cin, widths[-1]))
                cin = widths[-1]
            if k > 0:
                layers.append(conv_bn(cin, layout.widths[k - 1][-1]))
                cin = layout.widths[k - 1][-1]
            else:
                layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
            if layout.pools[k]:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    def forward(self, z: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        if not self.spatial:
            z = z[:, :, None, None]
        h = self.head(z)
        if self.skip_channels is not None and len(skips) != len(self.skip_channels):
            raise ValueError(f"this decoder needs {len(self.skip_channels)} skip maps, got {len(skips)}")
        for i, stage in enumerate(self.stages):
            if self.skip_channels is not None:
                h = torch.cat([h, skips[len(self.stages) - 1 - i]], dim=1)
            h = stage(h)
        return torch.sigmoid(h) if self.sigmoid else h
