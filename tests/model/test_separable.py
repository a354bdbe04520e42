"""The separable forecaster: forecast timing, decoding, content swap, build from configs."""

from __future__ import annotations

import pytest
import torch

from varsep.config import ModelConfig
from varsep.model import build_model, count_parameters
from varsep.spec import DataSpec

SPEC = DataSpec(frame_shape=(1, 8, 8), cond_frames=3, pred_frames=4)


def model(**over):
    torch.manual_seed(0)
    cfg = ModelConfig(encoder_hidden=[16], decoder_hidden=[16], s_dim=4, t_dim=4, blocks=1, width=8, **over)
    return build_model(cfg, SPEC)


@pytest.mark.parametrize("reconstruct_cond", [True, False])
def test_forecast_frames_follow_the_conditioning_window(reconstruct_cond):
    m = model(reconstruct_cond=reconstruct_cond)
    cond = torch.rand(2, 3, 1, 8, 8)
    out = m.forecast(cond, 5)
    assert out.shape == (2, 5, 1, 8, 8)
    s, t0 = m.encode(cond)
    # The k-th forecast frame (t0+τ+k) is decoded from τ+k steps (or k−1 steps without reconstruction).
    steps = 3 - 1 + 2 if reconstruct_cond else 2 - 1
    t = t0
    for _ in range(steps):
        t = m.dynamics.step(t)
    torch.testing.assert_close(out[:, 1], m.decode_frame(s, t))
    if reconstruct_cond:
        full = m.forecast(cond, 5, include_cond=True)
        assert full.shape == (2, 8, 1, 8, 8)
        torch.testing.assert_close(full[:, 3:], out)


def test_content_swap_uses_the_given_content():
    m = model()
    a, b = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    s_b, _ = m.encode(b)
    swapped = m.forecast(a, 4, content=s_b)
    own = m.forecast(a, 4)
    assert not torch.allclose(swapped, own)
    s_a, t_a = m.encode(a)
    codes = m.rollout(t_a, 2 + 4)[:, 3:]
    torch.testing.assert_close(swapped, m.decode(s_b, codes))


def test_sigmoid_output_range_and_mul_combination_check():
    m = model()
    out = m.forecast(torch.randn(2, 3, 1, 8, 8) * 10, 3)
    assert out.min() >= 0 and out.max() <= 1
    from varsep.errors import ConfigError

    with pytest.raises(ConfigError, match="s_dim"):
        ModelConfig(combine="mul", s_dim=3, t_dim=4).validate()


def test_wrong_window_length_is_explained():
    m = model()
    with pytest.raises(ValueError, match=r"expected conditioning windows \(B, 3"):
        m.forecast(torch.rand(2, 4, 1, 8, 8), 2)


def test_paper_waveeq_model_size():
    from varsep.config import load_config

    cfg = load_config("waveeq")
    m = build_model(cfg.model, DataSpec((1, 64, 64), 5, 20))
    assert abs(count_parameters(m) - 60.8e6) / 60.8e6 < 0.01


@pytest.mark.parametrize("anchor", ["last_residual", "last_frame"])
def test_an_anchored_forecast_starts_from_the_last_frame(anchor):
    # last_frame: v̂_t = v_last + D(S, T_t); last_residual: v̂_t = D(S, T_t) + v_last − D(S, T_last). With D's last
    # layer zeroed both are persistence, on every horizon, at fractional times and in the conditioning
    # reconstructions too, masked cells staying 0.
    m = model(anchor=anchor, final_activation="none")
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[0, :2, :3] = False
    m.set_mask(valid)
    cond = torch.rand(2, 3, 1, 8, 8)
    plain = build_model(ModelConfig(encoder_hidden=[16], decoder_hidden=[16], s_dim=4, t_dim=4, blocks=1,
                                    width=8, final_activation="none"), SPEC)
    plain.set_mask(valid)
    plain.load_state_dict(m.state_dict())
    anchor_frame = m.mask_frames(cond[:, -1:])
    if anchor == "last_residual":  # minus D's own rendering of the last conditioning frame
        anchor_frame = anchor_frame - plain.forecast(cond, 1, include_cond=True)[:, 2:3]
    torch.testing.assert_close(m.forecast(cond, 4), plain.forecast(cond, 4) + anchor_frame)
    torch.testing.assert_close(m.anchor_frame(cond), anchor_frame)
    with torch.no_grad():
        last = [p for p in m.decoder.modules() if isinstance(p, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.zero_()
    persistence = cond[:, -1:].masked_fill(~valid, 0).expand(2, 4, 1, 8, 8)
    torch.testing.assert_close(m.forecast(cond, 4), persistence)
    torch.testing.assert_close(m.forecast(cond, times=torch.tensor([0.5, 2.5])), persistence[:, :2])
    torch.testing.assert_close(m.forecast(cond, 4, include_cond=True)[:, :3], persistence[:, :3])
    with pytest.raises(ValueError, match="content swap is not defined"):
        m.forecast_with_swap(cond, cond.flip(0), 4)
    with pytest.raises(ValueError, match="anchor must be one of"):
        model(anchor="first_frame")
