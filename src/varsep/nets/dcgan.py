"""DCGAN encoder and decoder for 64×64 frames (Radford et al., 2016; paper Appendix E.2, docs/model.md).

Encoder (family ``dcgan``): the τ+1 frames of a window are stacked on the channel axis, (τ+1)·C channels,
then four 4×4 stride-2 convolutions 64 → 32 → 16 → 8 → 4 pixels with 64, 128, 256, 512 channels — the
first without BatchNorm, the others with BatchNorm — each followed by LeakyReLU(0.2); a 4×4 convolution
without padding (a linear map of the 512·4·4 features) gives the code (B, code_dim).

Decoder (family ``dcgan``): the mirror image with transposed convolutions: latent → 512×4×4 (4×4 kernel,
no padding), then 256×8×8, 128×16×16, 64×32×32 (4×4 stride 2, each with BatchNorm + LeakyReLU(0.2)), and a
last 4×4 stride-2 transposed convolution to C×64×64, followed by a sigmoid iff
``model.final_activation == "sigmoid"``. It serves any channel count C (1 for Moving MNIST, 3 for Chairs).

Choices where the text is silent, and why:
- LeakyReLU(0.2) in the decoder too (not DCGAN's ReLU): the official implementation does so.
- Convolutions followed by BatchNorm have no bias (BatchNorm's shift makes it redundant); the code layer
  and the last decoder layer have biases.
- No BatchNorm on the code itself: a linear map to the code, as in the official code.
- Skip connections are not offered: no experiment of the paper uses them with DCGAN networks.
Initialisation is applied by :func:`varsep.model.build.build_model`, not here; which data shapes the family
serves is checked where the family is chosen (varsep.model.families).
"""

from __future__ import annotations

import torch
from torch import nn

SIZE = 64  # frame height and width the networks are built for
WIDTH = 64  # channels of the first encoder layer (doubled at each layer: 64, 128, 256, 512)
SLOPE = 0.2  # LeakyReLU negative slope


def _down(cin: int, cout: int, *, norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)
    return [conv, nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE)] if norm else [conv, nn.LeakyReLU(SLOPE)]


def _up(cin: int, cout: int, *, stride: int, padding: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 4, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE)]


class DCGANEncoder(nn.Module):
    """A window (B, τ+1, C, 64, 64) → a code (B, code_dim)."""

    def __init__(self, in_channels: int, code_dim: int, width: int = WIDTH) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_down(in_channels, w, norm=False),  # 32×32
            *_down(w, 2 * w, norm=True),  # 16×16
            *_down(2 * w, 4 * w, norm=True),  # 8×8
            *_down(4 * w, 8 * w, norm=True),  # 4×4
        )
        self.code = nn.Conv2d(8 * w, code_dim, 4)  # 4×4 → 1×1: a linear map of the 512·4·4 features
        self.in_channels = in_channels

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        x = window.flatten(1, 2)  # frames on the channel axis: (B, (τ+1)·C, H, W)
        return self.code(self.features(x)).flatten(1)


class DCGANDecoder(nn.Module):
    """Latent vectors (N, latent_dim) → frames (N, C, 64, 64), optionally through a sigmoid."""

    def __init__(self, latent_dim: int, out_channels: int, sigmoid: bool, width: int = WIDTH) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_up(latent_dim, 8 * w, stride=1, padding=0),  # 1×1 → 4×4
            *_up(8 * w, 4 * w, stride=2, padding=1),  # 8×8
            *_up(4 * w, 2 * w, stride=2, padding=1),  # 16×16
            *_up(2 * w, w, stride=2, padding=1),  # 32×32
            nn.ConvTranspose2d(w, out_channels, 4, stride=2, padding=1),  # 64×64
        )
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor, skips: object = None) -> torch.Tensor:
        x = self.net(z.view(*z.shape[:2], 1, 1))
        return torch.sigmoid(x) if self.sigmoid else x
