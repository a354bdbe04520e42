"""Integrators: the residual step written out by hand, rollouts, the GRU ablation, conv blocks."""

from __future__ import annotations

import torch

from varsep.model.dynamics import GRUDynamics, ResidualIntegrator


def test_residual_step_is_k_residual_blocks_in_sequence():
    torch.manual_seed(0)
    integ = ResidualIntegrator(dim=6, width=16, blocks=3, gain=0.71)
    t = torch.randn(4, 6)
    by_hand = t
    for block in integ.blocks:
        lin1, _, lin2, _, lin3 = block
        h = torch.relu(by_hand @ lin1.weight.T + lin1.bias)
        h = torch.relu(h @ lin2.weight.T + lin2.bias)
        by_hand = by_hand + h @ lin3.weight.T + lin3.bias
    torch.testing.assert_close(integ.step(t), by_hand)


def test_rollout_starts_at_t0_and_applies_one_step_per_frame():
    integ = ResidualIntegrator(dim=3, width=8, blocks=2, gain=1.0)
    t0 = torch.randn(2, 3)
    traj = integ.rollout(t0, 4)
    assert traj.shape == (2, 5, 3)
    torch.testing.assert_close(traj[:, 0], t0)
    torch.testing.assert_close(traj[:, 3], integ.step(integ.step(integ.step(t0))))


def test_orthogonal_initialisation_with_gain():
    integ = ResidualIntegrator(dim=8, width=8, blocks=1, gain=0.71)
    w = integ.blocks[0][2].weight  # square H×H layer
    torch.testing.assert_close(w @ w.T, 0.71**2 * torch.eye(8), atol=1e-5, rtol=0)
    assert all(m.bias.abs().max() == 0 for m in integ.modules() if isinstance(m, torch.nn.Linear))


def test_conv_integrator_keeps_spatial_codes():
    integ = ResidualIntegrator(dim=4, width=8, blocks=2, gain=0.71, conv=True)
    t0 = torch.randn(2, 4, 6, 6)
    assert integ.rollout(t0, 3).shape == (2, 4, 4, 6, 6)


def test_gru_dynamics_reads_codes_of_size_p():
    gru = GRUDynamics(dim=5, width=12)
    t0 = torch.randn(3, 5)
    traj = gru.rollout(t0, 2)
    assert traj.shape == (3, 3, 5)
    torch.testing.assert_close(traj[:, 0], t0)
    state = gru.init_state(t0)
    hidden = gru.cell(t0, state[:, 5:])
    torch.testing.assert_close(traj[:, 1], gru.out(hidden))
