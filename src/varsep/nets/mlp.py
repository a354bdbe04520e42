"""Multilayer perceptrons: the WaveEq / WaveEq-100 encoders and decoders (Appendix E.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], *, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``sizes[0] → … → sizes[-1]`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flattens a window (B, τ+1, *frame) into one vector and maps it to a code (B, code_dim)."""

    def __init__(self, in_features: int, hidden: Sequence[int], code_dim: int) -> None:
        super().__init__()
        self.net = mlp([in_features, *hidden, code_dim])

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.net(window.flatten(1))


class MLPDecoder(nn.Module):
    """Maps latent vectors (N, latent_dim) to observations (N, *frame_shape), optionally through a sigmoid."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], frame_shape: Sequence[int], sigmoid: bool) -> None:
        super().__init__()
        self.frame_shape = tuple(frame_shape)
        out = 1
        for s in self.frame_shape:
            out *= s
        self.net = mlp([latent_dim, *hidden, out])
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor, skips: object = None) -> torch.Tensor:
        x = self.net(z)
        if self.sigmoid:
            x = torch.sigmoid(x)
        return x.view(-1, *self.frame_shape)
