"""The dynamics of the code T: the paper's residual integrator of dT/dt = f(T), and a GRU ablation.

Every dynamics module maps an initial code T_t0 (B, p) or (B, C, h, w) to the trajectory
(B, steps+1, …) of codes at t0, t0+Δt, …, t0+steps·Δt with Δt = 1 (:meth:`rollout`).
"""

from __future__ import annotations

import torch
from torch import nn

from varsep.nets.init import init_orthogonal
from varsep.nets.mlp import mlp
from varsep.registry import Registry

DYNAMICS: Registry[type[nn.Module]] = Registry("dynamics")


class Dynamics(nn.Module):
    """Base class: a one-step map T_t → T_{t+1} and the rollout built from it."""

    def step(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, t0: torch.Tensor) -> torch.Tensor:
        """The recurrent state carried between steps (the code itself for an ODE)."""
        return t0

    def read(self, state: torch.Tensor) -> torch.Tensor:
        """The code T held by a recurrent state."""
        return state

    def rollout(self, t0: torch.Tensor, steps: int) -> torch.Tensor:
        """Codes (B, steps+1, …) at t0 … t0+steps, the first being ``t0`` itself."""
        codes = [t0]
        state = self.init_state(t0)
        for _ in range(steps):
            state = self.step(state)
            codes.append(self.read(state))
        return torch.stack(codes, dim=1)


def _conv_block(channels: int, width: int, *, out_norm: bool) -> nn.Sequential:
    """g_k of the 2-D integrator (SST): 3×3 convs with BatchNorm and LeakyReLU(0.2) between them and, with
    ``out_norm`` (the authors' ConvResBlock), a BatchNorm after the last conv too."""
    layers: list[nn.Module] = [
        nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
        nn.Conv2d(width, channels, 3, padding=1),
    ]
    if out_norm:
        layers.append(nn.BatchNorm2d(channels))
    return nn.Sequential(*layers)


@DYNAMICS.register("residual")
class ResidualIntegrator(Dynamics):
    """One step Δt = 1 of dT/dt = f(T): K residual blocks in sequence, T ← T + g_k(T) (docs/model.md).

    Each g_k is an MLP p → H → H → p with ReLU (or, with ``conv=True``, the 2-D convolutional block of
    SST), orthogonally initialised with ``gain``, biases 0. ``conv_variant`` (2-D blocks only):
    ``"authors"`` — a BatchNorm after the block's last conv too, and BatchNorm weights drawn N(1, gain)
    as the authors' initialisation does (it reuses the integrator's gain); ``"plain"`` — no BatchNorm
    after the last conv, BatchNorm weights 1. With K = 1 this is an explicit Euler step of f = g_1.
    """

    def __init__(self, dim: int, width: int, blocks: int, gain: float, *, conv: bool = False,
                 conv_variant: str = "authors") -> None:
        super().__init__()
        if conv_variant not in ("authors", "plain"):
            raise ValueError(f"conv_variant must be 'authors' or 'plain', got {conv_variant!r}")
        authors = conv_variant == "authors"
        make = (lambda: _conv_block(dim, width, out_norm=authors)) if conv else \
            (lambda: mlp([dim, width, width, dim]))
        self.blocks = nn.ModuleList(make() for _ in range(blocks))
        init_orthogonal(self, gain, norm_std=gain if conv and authors else None)

    def step(self, state: torch.Tensor) -> torch.Tensor:
        for g in self.blocks:
            state = state + g(state)
        return state


@DYNAMICS.register("gru")
class GRUDynamics(Dynamics):
    """Ablation (Table 4, "GRU"): a GRU recurrence instead of an ODE integrator.

    The paper only says "a standard GRU RNN"; our choice, documented in docs/model.md: a GRU cell of width
    H whose input is the current code T_t, with hidden state h_0 = tanh(W_in T_t0) and T_{t+1} = W_out h_{t+1}.
    Codes keep the size p, so decoder and losses are unchanged.
    """

    def __init__(self, dim: int, width: int, blocks: int = 1, gain: float = 1.0, *, conv: bool = False,
                 conv_variant: str = "authors") -> None:
        super().__init__()
        if conv:
            raise ValueError("the GRU ablation works on vector codes only")
        self.dim = dim
        self.inp = nn.Linear(dim, width)
        self.cell = nn.GRUCell(dim, width)
        self.out = nn.Linear(width, dim)

    def init_state(self, t0: torch.Tensor) -> torch.Tensor:
        return torch.cat([t0, torch.tanh(self.inp(t0))], dim=1)

    def step(self, state: torch.Tensor) -> torch.Tensor:
        code, hidden = state[:, :self.dim], state[:, self.dim:]
        hidden = self.cell(code, hidden)
        return torch.cat([self.out(hidden), hidden], dim=1)

    def read(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, :self.dim]
