"""BatchNorm in training mode: decoder calls of several frames each with per-frame statistics (all frames in
one call, or groups of GROUPED_ROWS rows) equal the authors' scheme of one decoder call per frame — the
auto-encoded frame first, then forecast frames 0 … n−1 — in outputs, loss terms, gradients and every running
statistic (``model.batch_stats: per_frame``, the default); in evaluation mode, calls of GROUPED_ROWS rows
with running statistics equal it too."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from varsep.config import LossConfig, ModelConfig
from varsep.model import build_model, separable
from varsep.model.losses import loss_terms
from varsep.nets.norm import FrameBatchNorm2d
from varsep.spec import DataSpec

DEFAULT_ROWS = separable.GROUPED_ROWS  # rows of one decoder call (the tests patch it smaller)
SPEC = DataSpec(frame_shape=(1, 8, 8), cond_frames=4, pred_frames=3)  # the SST networks, on 8×8 frames
CFG = dict(encoder="sst", decoder="sst", s_dim=6, t_dim=4, skips=True, blocks=2, width=8,
           final_activation="none", reconstruct_cond=False)


def build(**over):
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**CFG, **over}), SPEC).double().train()


def norms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def assert_same_statistics(ours: nn.Module, ref: nn.Module) -> None:
    pairs = list(zip(norms(ours), norms(ref), strict=True))
    assert pairs
    for a, b in pairs:
        torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-12, atol=1e-15)
        assert a.num_batches_tracked.item() == b.num_batches_tracked.item()


def per_frame_decode(model, content, codes: torch.Tensor) -> torch.Tensor:
    """The authors' decoding: one decoder call per frame, in order."""
    frames = []
    for k in range(codes.shape[1]):
        z = torch.cat([content.code, codes[:, k]], dim=1)
        frames.append(model.decoder(z, content.skips))
    return torch.stack(frames, dim=1)


def test_the_decoder_batchnorm_is_per_frame_by_default_and_pooled_on_request():
    assert all(type(m) is FrameBatchNorm2d for m in norms(build().decoder))
    assert all(type(m) is nn.BatchNorm2d for m in norms(build(batch_stats="pooled").decoder))
    assert all(type(m) is nn.BatchNorm2d for m in norms(build().content_encoder))  # encoders: one call each


@pytest.mark.parametrize("rows", [DEFAULT_ROWS, 3, 6, 7])  # 5 frames of 3 sequences: 1, 1, 2, 2 a call
def test_decoding_in_frame_groups_equals_one_call_per_frame(monkeypatch, rows):
    monkeypatch.setattr(separable, "GROUPED_ROWS", rows)
    model = build()
    ref = copy.deepcopy(model)
    cond = torch.rand(3, 4, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        content = model.encode_content(cond)
        codes = torch.randn(3, 5, 4, 2, 2, dtype=torch.float64)
    out = model.decode(content, codes)
    expected = per_frame_decode(ref, content, codes)
    torch.testing.assert_close(out, expected)
    assert_same_statistics(model.decoder, ref.decoder)
    assert norms(model.decoder)[0].num_batches_tracked.item() == 5  # one update per frame
    pooled = build(batch_stats="pooled")
    pooled_out = pooled.decode(content, codes)
    assert (pooled_out - expected).abs().max() > 1e-3  # pooled statistics are not the per-frame ones
    assert norms(pooled.decoder)[0].num_batches_tracked.item() == 1  # one call, whatever GROUPED_ROWS


def test_a_training_step_equals_the_authors_per_frame_scheme():
    """loss_terms against an explicit step in the authors' call order: E_S(first), E_S(last), E_T(AE window),
    E_T(conditioning window), D(AE frame), then D(frame k) for k = 0 … n−1 with the integrator in between."""
    weights = LossConfig(lambda_pred=45, lambda_ae=1, lambda_s=100, lambda_t=5e-6, t_reg="half_mean")
    model = build()
    ref = copy.deepcopy(model)
    frames = torch.rand(3, SPEC.train_length, 1, 8, 8, dtype=torch.float64)
    i, cond = 1, SPEC.cond_frames
    terms = loss_terms(model, frames, i, weights)

    s_old = ref.encode_content(frames[:, :cond])
    s_new = ref.encode_content(frames[:, -cond:])
    t_ae = ref.dynamic_encoder(frames[:, i:i + cond])
    ae = F.mse_loss(per_frame_decode(ref, s_old, t_ae.unsqueeze(1))[:, 0], frames[:, i + cond])
    t = t0 = ref.dynamic_encoder(frames[:, :cond])
    codes = [t]
    for _ in range(SPEC.pred_frames - 1):
        t = ref.dynamics.step(t)
        codes.append(t)
    pred = F.mse_loss(per_frame_decode(ref, s_old, torch.stack(codes, 1)), frames[:, cond:])
    flat = [torch.cat([x.flatten() for x in s.tensors()]) for s in (s_old, s_new)]
    reg_s = (flat[0] - flat[1]).pow(2).mean()
    reg_t = 0.5 * t0.pow(2).mean()
    loss = 45 * pred + ae + 100 * reg_s + 5e-6 * reg_t
    for key, value in (("pred", pred), ("ae", ae), ("reg_s", reg_s), ("reg_t", reg_t), ("loss", loss)):
        torch.testing.assert_close(terms[key].double(), value, rtol=1e-6, atol=1e-12)  # terms are float32
    terms["loss"].backward()
    loss.backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6 * q.grad.abs().max().item() + 1e-12,
                                   msg=name)
    for net in ("content_encoder", "dynamic_encoder", "dynamics", "decoder"):
        assert_same_statistics(getattr(model, net), getattr(ref, net))
    assert norms(model.decoder)[0].num_batches_tracked.item() == 1 + SPEC.pred_frames
    assert norms(model.dynamic_encoder)[0].num_batches_tracked.item() == 2


@pytest.mark.parametrize("rows", [DEFAULT_ROWS, 2, 5])  # 3 frames of 2 sequences: 1 call, 3, 2
@pytest.mark.parametrize("batch_stats", ["per_frame", "pooled"])
def test_evaluation_mode_decodes_with_running_statistics_in_calls_of_grouped_rows(monkeypatch, rows,
                                                                                  batch_stats):
    monkeypatch.setattr(separable, "GROUPED_ROWS", rows)
    model = build(batch_stats=batch_stats)
    loss_terms(model, torch.rand(3, SPEC.train_length, 1, 8, 8, dtype=torch.float64), 0, LossConfig())
    model.eval()
    ref = copy.deepcopy(model)
    cond = torch.rand(2, 4, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        content = model.encode_content(cond)
        codes = torch.randn(2, 3, 4, 2, 2, dtype=torch.float64)
        calls = []
        model.decoder.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
        torch.testing.assert_close(model.decode(content, codes), per_frame_decode(ref, content, codes))
    assert calls == {DEFAULT_ROWS: [6], 2: [2, 2, 2], 5: [4, 2]}[rows]
