"""Forecasts at any time: the learned dynamics of T as an ODE in continuous time.

The paper integrates dT/dt = f(T) with a residual network: one step of Δt = 1 applies K blocks,
T ← T + g_k(T), k = 1…K. We read that step as K explicit Euler sub-steps of length 1/K of the vector field

    f(t, T) = K · g_k(T)   for t in [n + (k−1)/K, n + k/K),  n = 0, 1, …

(for K = 1 it is the autonomous field g_1, and one step is Euler with Δt = 1). This field is "the learned
dynamics"; two families of solvers integrate it:

- ``"residual"`` — the paper's integrator: whole sub-steps are applied exactly as in training (so integer
  times give the paper's forecast bit for bit) and a fractional time ends with a partial Euler sub-step,
  i.e. a linear interpolation inside the last sub-step;
- any torchdiffeq method (``"euler"``, ``"rk4"``, ``"dopri5"``, …) on the same field. The field jumps at
  every sub-step boundary (when K > 1), so each sub-interval [j/K, (j+1)/K] is integrated on its own with
  its smooth field K·g_j; no solver stage ever straddles a jump. Fixed-step methods use ``step_size``
  (default 1/K: one step per sub-interval, so "euler" is the residual integrator up to rounding).

The GRU ablation is a recurrence, not an ODE: it only has integer times.
"""

from __future__ import annotations

import math

import torch
from torchdiffeq import odeint

from varsep.model.dynamics import Dynamics, ResidualIntegrator

EPS = 1e-6  # times closer than this to a sub-step boundary are taken as on it
ADAPTIVE = {"dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"}
FIXED = {"euler", "midpoint", "heun3", "rk4", "explicit_adams", "implicit_adams"}
METHODS = ("residual", *sorted(FIXED | ADAPTIVE))


class BlockField(torch.nn.Module):
    """The smooth field K·g_j(T) of one sub-interval [j/K, (j+1)/K)."""

    def __init__(self, block: torch.nn.Module, k: int) -> None:
        super().__init__()
        self.block = block
        self.k = k

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.k * self.block(state)


def check_times(times: torch.Tensor) -> torch.Tensor:
    times = torch.as_tensor(times, dtype=torch.float64).flatten()
    if times.numel() == 0:
        raise ValueError("times is empty")
    if not torch.isfinite(times).all() or (times < 0).any():
        raise ValueError(f"times must be finite and ≥ 0 (elapsed from T_t0), got {times.tolist()}")
    return times


def residual_solve(integrator: ResidualIntegrator, t0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Codes (B, n, …) at elapsed ``times`` (n,), any order: whole blocks exactly, then a partial sub-step."""
    times = check_times(times)
    k = len(integrator.blocks)
    order = torch.argsort(times)
    out: list[torch.Tensor | None] = [None] * len(times)
    state, done = t0, 0  # ``done`` sub-steps (blocks) applied so far
    for idx in order.tolist():
        target = float(times[idx]) * k
        whole = int(math.floor(target + EPS))
        while done < whole:
            state = state + integrator.blocks[done % k](state)
            done += 1
        fraction = target - whole
        out[idx] = state + fraction * integrator.blocks[whole % k](state) if fraction > EPS else state
    return torch.stack(out, dim=1)  # type: ignore[arg-type]


def solve(dynamics: Dynamics, t0: torch.Tensor, times: torch.Tensor, *, method: str = "residual",
          step_size: float | None = None, rtol: float = 1e-6, atol: float = 1e-7) -> torch.Tensor:
    """Codes (B, n, …) of the learned dynamics at elapsed ``times`` (n,) ≥ 0 from T_t0 = ``t0``."""
    times = check_times(times)
    if method not in METHODS:
        from varsep.registry import suggest

        raise ValueError(f"unknown solver {method!r}; valid: {', '.join(METHODS)}.{suggest(method, list(METHODS))}")
    if not isinstance(dynamics, ResidualIntegrator):
        whole = times.round()
        if (times - whole).abs().max() > EPS or method != "residual":
            raise ValueError(f"{type(dynamics).__name__} is a recurrence, not an ODE: only integer times with "
                             f"method 'residual' are available")
        traj = dynamics.rollout(t0, int(whole.max()))
        return traj[:, whole.long()]
    if method == "residual":
        return residual_solve(dynamics, t0, times)
    return piecewise_solve(dynamics, t0, times, method=method, step_size=step_size, rtol=rtol, atol=atol)


def piecewise_solve(integrator: ResidualIntegrator, t0: torch.Tensor, times: torch.Tensor, *, method: str,
                    step_size: float | None, rtol: float, atol: float) -> torch.Tensor:
    """Integrate sub-interval by sub-interval with torchdiffeq; codes (B, n, …) at ``times`` (n,)."""
    k = len(integrator.blocks)
    options = {"step_size": step_size if step_size is not None else 1.0 / k} if method in FIXED else None
    kwargs = {"rtol": rtol, "atol": atol} if method in ADAPTIVE else {}
    order = torch.argsort(times).tolist()
    out: list[torch.Tensor | None] = [None] * len(times)
    state, j = t0, 0  # ``state`` is the code at time j/K
    for idx in order:
        target = float(times[idx])
        while (j + 1) / k <= target + EPS:  # whole sub-intervals before the target
            state = _integrate(integrator, j, state, 1.0 / k, method, options, kwargs)
            j += 1
        rest = target - j / k
        out[idx] = _integrate(integrator, j, state, rest, method, options, kwargs) if rest > EPS else state
    return torch.stack(out, dim=1)  # type: ignore[arg-type]


def _integrate(integrator: ResidualIntegrator, j: int, state: torch.Tensor, length: float, method: str,
               options: dict | None, kwargs: dict) -> torch.Tensor:
    """The code after ``length`` (≤ 1/K) of sub-interval j, from ``state`` at its start."""
    k = len(integrator.blocks)
    field = BlockField(integrator.blocks[j % k], k)
    grid = torch.tensor([0.0, length], dtype=state.dtype)
    return odeint(field, state, grid, method=method, options=options, **kwargs)[-1]
