"""Continuous-time forecasts: exact on integer times, solvers agree, fractional times interpolate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from varsep.config import ModelConfig
from varsep.model import build_model
from varsep.model.continuous import residual_solve, solve
from varsep.model.dynamics import ResidualIntegrator
from varsep.spec import DataSpec

SPEC = DataSpec(frame_shape=(1, 8, 8), cond_frames=3, pred_frames=4)


def model(**over):
    torch.manual_seed(0)
    cfg = ModelConfig(encoder_hidden=[16], decoder_hidden=[16], s_dim=4, t_dim=4, width=8, **over)
    return build_model(cfg, SPEC).eval()


@pytest.mark.parametrize("blocks", [1, 3])
@pytest.mark.parametrize("reconstruct_cond", [True, False])
def test_integer_times_equal_the_papers_forecast_exactly(blocks, reconstruct_cond):
    m = model(blocks=blocks, reconstruct_cond=reconstruct_cond)
    cond = torch.rand(2, 3, 1, 8, 8)
    regular = m.forecast(cond, 6)
    at_times = m.forecast(cond, times=torch.arange(1, 7))
    assert torch.equal(regular, at_times)
    shuffled = m.forecast(cond, times=torch.tensor([4.0, 1.0, 6.0]))
    assert torch.equal(shuffled, regular[:, [3, 0, 5]])


def test_fractional_time_is_a_partial_euler_substep():
    torch.manual_seed(1)
    integ = ResidualIntegrator(dim=3, width=8, blocks=3, gain=1.0)
    t0 = torch.randn(2, 3)
    g = integ.blocks
    after_one = t0 + g[0](t0)  # time 1/3
    expected = after_one + 0.5 * g[1](after_one)  # time 1/3 + 0.5 · 1/3
    torch.testing.assert_close(residual_solve(integ, t0, torch.tensor([0.5]))[:, 0], expected)


@pytest.mark.parametrize("blocks", [1, 2])
def test_adaptive_solver_agrees_with_a_fine_fixed_step_solve(blocks):
    torch.manual_seed(2)
    integ = ResidualIntegrator(dim=4, width=16, blocks=blocks, gain=0.3).double()
    t0 = torch.randn(3, 4, dtype=torch.float64)
    times = torch.tensor([0.3, 1.0, 1.7, 2.5])
    adaptive = solve(integ, t0, times, method="dopri5", rtol=1e-9, atol=1e-11)
    fine = solve(integ, t0, times, method="rk4", step_size=1 / (blocks * 200))
    torch.testing.assert_close(adaptive, fine, rtol=1e-6, atol=1e-8)
    # Euler with the sub-step size is the residual integrator (up to rounding: (1/K)·(K·g) vs g).
    euler = solve(integ, t0, torch.tensor([1.0, 2.0]), method="euler")
    torch.testing.assert_close(euler, residual_solve(integ, t0, torch.tensor([1.0, 2.0])), rtol=1e-12, atol=1e-12)


def test_gru_and_bad_inputs_are_refused_clearly():
    m = model(dynamics="gru")
    cond = torch.rand(1, 3, 1, 8, 8)
    assert torch.equal(m.forecast(cond, times=torch.tensor([2.0])), m.forecast(cond, 2)[:, 1:])
    with pytest.raises(ValueError, match="recurrence, not an ODE"):
        m.forecast(cond, times=torch.tensor([1.5]))
    m = model()
    with pytest.raises(ValueError, match="unknown solver 'rk5'.*Did you mean 'rk4'"):
        m.forecast(cond, times=torch.tensor([1.0]), method="rk5")
    with pytest.raises(ValueError, match="≥ 0"):
        solve(m.dynamics, torch.zeros(1, 4), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="either horizon"):
        m.forecast(cond)


def test_time_stride_counts_time_in_frames():
    m = model()
    m.spec = replace(m.spec, time_stride=2)  # conditioning frames observed at 0, 2, 4; T_t0 stands for frame 0
    cond = torch.rand(1, 3, 1, 8, 8)
    s, t0 = m.encode(cond)
    five_steps = m.rollout(t0, 5)[:, 5]  # frame 5 = 1 frame after the last conditioning frame (4)
    torch.testing.assert_close(m.forecast(cond, 1)[:, 0], m.decode_frame(s, five_steps))
