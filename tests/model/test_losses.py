"""The loss terms, against values computed by hand or by an explicit, unbatched re-implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from varsep.config import LossConfig, ModelConfig
from varsep.model import Content, build_model
from varsep.model.losses import content_invariance, dynamic_regularizer, loss_terms
from varsep.spec import DataSpec, ae_choices

SPEC = DataSpec(frame_shape=(1, 8, 8), cond_frames=3, pred_frames=4)


def small_model(**over) -> torch.nn.Module:
    cfg = ModelConfig(encoder_hidden=[16], decoder_hidden=[16], s_dim=4, t_dim=4, blocks=2, width=8, **over)
    torch.manual_seed(0)
    return build_model(cfg, SPEC)


def test_dynamic_regularizer_definitions_by_hand():
    t0 = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 3.0]])  # squared norms 9 and 9
    assert dynamic_regularizer(t0, "half_sum").item() == pytest.approx(0.5 * (9 + 9) / 2)
    assert dynamic_regularizer(t0, "mean").item() == pytest.approx(18 / 6)
    assert dynamic_regularizer(t0, "half_mean").item() == pytest.approx(0.5 * 18 / 6)
    assert dynamic_regularizer(t0, "paper").item() == pytest.approx((9 / 3 + 9 / 3) / 2)
    with pytest.raises(ValueError):
        dynamic_regularizer(t0, "nope")


def test_content_invariance_by_hand_with_skips():
    a = Content(torch.tensor([[1.0, 2.0]]), (torch.ones(1, 1, 2, 2),))
    b = Content(torch.tensor([[0.0, 0.0]]), (torch.zeros(1, 1, 2, 2),))
    # per_tensor: mse of codes (1 + 4) / 2 = 2.5, plus mse of the skip map 1.
    assert content_invariance(a, b, "per_tensor").item() == pytest.approx(3.5)
    # concat (the default, the authors'): one mean over the 2 + 4 elements, (1 + 4 + 4·1) / 6.
    assert content_invariance(a, b).item() == pytest.approx(9 / 6)


def test_sst_loss_terms_by_hand():
    """2-D codes with skip maps of three sizes, as on SST (code, h3, h2, h1)."""
    code = torch.ones(1, 2, 2, 2)  # differs by 1 on its 8 elements
    h3, h2, h1 = torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 1, 4, 4), torch.full((1, 1, 8, 8), 0.5)
    first = Content(code, (h1, h2, h3))
    last = Content(torch.zeros_like(code), (torch.zeros_like(h1), h2, torch.zeros_like(h3)))
    # concat: (8·1 + 4·4 + 0 + 64·0.25) / (8 + 4 + 16 + 64) = 40 / 92; per_tensor: 1 + 0.25 + 0 + 4
    assert content_invariance(first, last).item() == pytest.approx(40 / 92)
    assert content_invariance(first, last, "per_tensor").item() == pytest.approx(5.25)
    with pytest.raises(ValueError, match="L_reg"):
        content_invariance(first, last, "sum")
    # L_reg^T on a 2-D code (B, C, h, w): the authors' ½·mean over every element, our earlier mean
    t0 = torch.arange(8.0).view(1, 2, 2, 2)  # squares sum to 140 over 8 elements
    assert dynamic_regularizer(t0, "half_mean").item() == pytest.approx(0.5 * 140 / 8)
    assert dynamic_regularizer(t0, "mean").item() == pytest.approx(140 / 8)


@pytest.mark.parametrize(("length", "cond", "first", "expected"), [(25, 5, 0, 21), (10, 4, 4, 6), (7, 3, 0, 5)])
def test_ae_choices(length, cond, first, expected):
    assert ae_choices(length, cond, first) == expected


@pytest.mark.parametrize("reconstruct_cond", [True, False])
@pytest.mark.parametrize("combine", ["concat", "mul"])
@pytest.mark.parametrize("anchor", ["none", "last_residual", "last_frame"])
def test_loss_terms_equal_an_explicit_computation(reconstruct_cond, combine, anchor):
    if anchor == "last_residual" and not reconstruct_cond:
        with pytest.raises(ValueError, match="needs the code of the last conditioning frame"):
            small_model(reconstruct_cond=False, anchor=anchor)
        return
    model = small_model(combine=combine, reconstruct_cond=reconstruct_cond, anchor=anchor, final_activation="none")
    weights = LossConfig(lambda_pred=45, lambda_ae=2, lambda_s=3, lambda_t=0.5, t_reg="half_sum")
    frames = torch.rand(2, SPEC.train_length, 1, 8, 8)
    cond, length = SPEC.cond_frames, SPEC.train_length
    first = 0 if reconstruct_cond else cond
    i = ae_choices(length, cond, first) - 1  # the last admissible offset
    terms = loss_terms(model, frames, i, weights)

    s = model.content_encoder(frames[:, :cond])
    s_last = model.content_encoder(frames[:, length - cond:])
    t = model.dynamic_encoder(frames[:, :cond])
    preds, codes = [], t
    for _ in range(first, length):  # one residual step (K blocks) per frame after the first
        z = s * codes if combine == "mul" else torch.cat([s, codes], 1)
        preds.append(model.decoder(z))
        for g in model.dynamics.blocks:
            codes = codes + g(codes)
    # last_frame: D renders departures from the last frame of the window the code was encoded from;
    # last_residual: D renders frames, and the forecast carries D's error on the last conditioning frame
    last, ae_last = (frames[:, cond - 1:cond], frames[:, i + cond - 1]) if anchor == "last_frame" else (0, 0)
    preds = torch.stack(preds, 1)
    if anchor == "last_residual":
        last = frames[:, cond - 1:cond] - preds[:, cond - 1:cond]
    pred = F.mse_loss(preds + last, frames[:, first:])
    t_ae = model.dynamic_encoder(frames[:, i:i + cond])
    z_ae = s * t_ae if combine == "mul" else torch.cat([s, t_ae], 1)
    ae = F.mse_loss(model.decoder(z_ae) + ae_last, frames[:, i + first])
    reg_s = ((s - s_last) ** 2).sum(1).mean() / s.shape[1]
    reg_t = 0.5 * (t**2).sum(1).mean()
    torch.testing.assert_close(terms["pred"], pred)
    torch.testing.assert_close(terms["ae"], ae)
    torch.testing.assert_close(terms["reg_s"], reg_s)
    torch.testing.assert_close(terms["reg_t"], reg_t)
    torch.testing.assert_close(terms["loss"], 45 * pred + 2 * ae + 3 * reg_s + 0.5 * reg_t)


def test_every_parameter_receives_a_gradient():
    for dynamics in ("residual", "gru"):
        model = small_model(dynamics=dynamics)
        loss = loss_terms(model, torch.rand(3, SPEC.train_length, 1, 8, 8), 1, LossConfig())["loss"]
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert missing == [], f"{dynamics}: no gradient for {missing}"


def test_zero_weights_drop_their_terms_and_the_work():
    model = small_model()
    frames = torch.rand(2, SPEC.train_length, 1, 8, 8)
    calls = {"enc_t": 0}
    model.dynamic_encoder.register_forward_hook(lambda *a: calls.__setitem__("enc_t", calls["enc_t"] + 1))
    terms = loss_terms(model, frames, 1, LossConfig(lambda_ae=0, lambda_s=0))
    assert terms["ae"].item() == 0 and terms["reg_s"].item() == 0
    assert calls["enc_t"] == 1  # E_T only sees the conditioning window when λ_AE = 0
    torch.testing.assert_close(terms["loss"], 45 * terms["pred"] + 1e-3 * terms["reg_t"])


def test_without_content_ablation():
    model = small_model(content=False)
    assert model.content_encoder is None
    frames = torch.rand(2, SPEC.train_length, 1, 8, 8)
    t0 = model.dynamic_encoder(frames[:, :SPEC.cond_frames])
    assert t0.shape == (2, 8)  # T takes the size d + p
    terms = loss_terms(model, frames, 0, LossConfig())
    assert terms["reg_s"].item() == 0 and terms["reg_t"].item() == 0
    assert model.forecast(frames[:, :3], 6).shape == (2, 6, 1, 8, 8)


def test_bad_ae_offset_is_refused():
    model = small_model()
    with pytest.raises(ValueError, match="does not fit"):
        loss_terms(model, torch.rand(1, SPEC.train_length, 1, 8, 8), 99, LossConfig())


def test_strided_observations_step_the_dynamics_once_per_frame():
    """Frames observed every 2nd frame: codes still advance one step per frame in between."""
    spec = DataSpec(frame_shape=(1, 8, 8), cond_frames=3, pred_frames=2, time_stride=2)
    assert (spec.train_length, spec.observed_length, spec.cond_span) == (9, 5, 5)
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder_hidden=[16], decoder_hidden=[16], s_dim=4, t_dim=4, width=8), spec)
    frames = torch.rand(2, 9, 1, 8, 8)
    weights = LossConfig(lambda_ae=0, lambda_s=0)
    terms = loss_terms(model, frames, 0, weights)
    observed = frames[:, ::2]
    s, t0 = model.encode(observed[:, :3])
    codes = model.rollout(t0, 8)[:, ::2]  # frames 0, 2, 4, 6, 8
    torch.testing.assert_close(terms["pred"], F.mse_loss(model.decode(s, codes), observed))


def test_kept_targets_are_the_only_supervised_frames():
    model = small_model()
    frames = torch.rand(2, SPEC.train_length, 1, 8, 8)
    keep = torch.tensor([[1, 4], [0, 6]])
    terms = loss_terms(model, frames, 0, LossConfig(lambda_ae=0, lambda_s=0), keep=keep)
    full = model.decode(*_content_and_codes(model, frames))
    expected = torch.stack([F.mse_loss(full[b, keep[b]], frames[b, keep[b]]) for b in range(2)]).mean()
    torch.testing.assert_close(terms["pred"], expected)
    # anchored on the last residual: D's error on the last conditioning frame, whether or not that frame is kept
    model = small_model(anchor="last_residual", final_activation="none")
    terms = loss_terms(model, frames, 0, LossConfig(lambda_ae=0, lambda_s=0), keep=keep)
    full = model.decode(*_content_and_codes(model, frames))
    full = full + (frames[:, SPEC.cond_frames - 1:SPEC.cond_frames] - full[:, SPEC.cond_frames - 1:SPEC.cond_frames])
    expected = torch.stack([F.mse_loss(full[b, keep[b]], frames[b, keep[b]]) for b in range(2)]).mean()
    torch.testing.assert_close(terms["pred"], expected)


def _content_and_codes(model, frames):
    s, t0 = model.encode(frames[:, :SPEC.cond_frames])
    return s, model.rollout(t0, SPEC.train_length - 1)
