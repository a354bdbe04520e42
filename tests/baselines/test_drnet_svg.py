"""Tests of the DrNet and SVG-LP baselines (small frames except the parameter counts, built on the meta device)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from varsep.baselines.base import count_parameters
from varsep.baselines.drnet import DrNet
from varsep.baselines.svg import SVGLP, gaussian_kl

pytestmark = pytest.mark.usefixtures("one_thread")


FRAME = (1, 16, 16)
TC, TH = 3, 2


def _drnet(stage: str = "autoencoder", **kw) -> DrNet:
    torch.manual_seed(0)
    return DrNet(kw.pop("frame_shape", FRAME), TC, TH, stage=stage, **kw)


def _svg(**kw) -> SVGLP:
    torch.manual_seed(0)
    return SVGLP(kw.pop("frame_shape", FRAME), TC, TH, **kw)


def _clip(b: int = 4, frame=FRAME, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, TC, *frame, generator=g), torch.rand(b, TH, *frame, generator=g)


def _grads(module: nn.Module) -> dict[str, bool]:
    """name → whether the parameter received a finite, non-zero gradient."""
    return {n: p.grad is not None and bool(torch.isfinite(p.grad).all()) and bool(p.grad.abs().sum() > 0)
            for n, p in module.named_parameters()}


# ------------------------------------------------------------------------------------ parameter counts
# Computed in /work/notes/issue18_baselines_spec.md §10/§11 by instantiating the official drnet-py / svg classes.
@pytest.mark.parametrize("frame_shape, content_model, pose_model, parts, total", [
    # Moving MNIST as drnet-py renders it (channels=3), drnet-py defaults: the reference configuration
    ((3, 64, 64), "dcgan_unet", "dcgan", (3_807_424, 2_840_414, 6_644_547, 12_301, 1_090_826), 14_395_512),
    ((1, 64, 64), "dcgan_unet", "dcgan", (3_805_376, 2_838_366, 6_640_449, 12_301, 1_090_826), 14_387_318),
    ((3, 64, 64), "dcgan", "dcgan", (3_807_424, 2_840_414, 3_888_963, 12_301, 1_090_826), 11_639_928),
    ((1, 128, 128), "dcgan_unet", "dcgan", (8_001_216, 7_034_206, 15_030_593, 12_301, 1_090_826), 31_169_142),
    ((1, 128, 128), "vgg_unet", "resnet", (15_770_944, 44_835_486, 21_345_217, 12_301, 1_090_826), 83_054_774),
    ((1, 64, 64), "vgg_unet", "resnet", (8_688_448, 11_219_614, 11_903_425, 12_301, 1_090_826), 32_914_614),
])
def test_drnet_parameter_counts(frame_shape, content_model, pose_model, parts, total):
    with torch.device("meta"):
        m = DrNet(frame_shape, 10, 10, content_model=content_model, pose_model=pose_model)
    got = tuple(count_parameters(x) for x in (m.content_encoder, m.pose_encoder, m.decoder, m.discriminator,
                                              m.pose_lstm))
    assert got == parts
    assert count_parameters(m) == total


@pytest.mark.parametrize("frame_shape, model, z_dim, parts, total", [
    # SM-MNIST, the svg README command (dcgan, g 128, z 10, rnn 256, 2/1/1 layers): the reference configuration
    ((1, 64, 64), "dcgan", 10, (3_805_376, 6_558_529, 1_121_152, 564_500, 564_500), 12_614_057),
    ((1, 64, 64), "vgg", 24, (8_688_448, 11_821_505, 1_124_736, 571_696, 571_696), 22_778_081),  # KTH 64
    ((3, 64, 64), "vgg", 64, (8_689_600, 11_822_659, 1_134_976, 592_256, 592_256), 22_831_747),  # BAIR
    ((1, 128, 128), "vgg", 24, (15_770_944, 21_263_297, 1_124_736, 571_696, 571_696), 39_302_369),
])
def test_svg_parameter_counts(frame_shape, model, z_dim, parts, total):
    with torch.device("meta"):
        m = SVGLP(frame_shape, 5, 10, model=model, z_dim=z_dim)
    got = tuple(count_parameters(x) for x in (m.encoder, m.decoder, m.frame_predictor, m.posterior, m.prior))
    assert got == parts
    assert count_parameters(m) == total


# ---------------------------------------------------------------------------------------------- DrNet
@pytest.mark.parametrize("content_model, pose_model", [("dcgan_unet", "dcgan"), ("dcgan", "dcgan"),
                                                       ("vgg_unet", "resnet")])
def test_drnet_shapes_and_long_rollout(content_model, pose_model):
    m = _drnet(content_model=content_model, pose_model=pose_model)
    cond, target = _clip()
    terms = m.training_terms(cond, target, step=0)
    assert {"loss", "mse", "rec", "sim", "adv"} <= set(terms)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    m.eval()
    with torch.no_grad():
        out = m.forecast(cond, 3 * TH + 1)  # longer than the training horizon
        assert out.shape == (4, 3 * TH + 1, *FRAME)
        assert ((out >= 0) & (out <= 1)).all()
        assert m.encode_content(cond).shape == (4, 128)
        assert m.swap_forecast(cond, cond.flip(0), 5).shape == (4, 5, *FRAME)
    with pytest.raises(ValueError):
        m.forecast(cond[:, :2], 2)


@pytest.mark.parametrize("stage, trained", [
    ("autoencoder", {"content_encoder", "pose_encoder", "decoder"}),
    ("lstm", {"pose_lstm"}),
    ("joint", {"content_encoder", "pose_encoder", "decoder", "pose_lstm"}),
])
def test_drnet_gradients_per_stage(stage, trained):
    m = _drnet(stage)
    m.train()
    cond, target = _clip()
    m.training_terms(cond, target, step=0)["loss"].backward()
    for name in ("content_encoder", "pose_encoder", "decoder", "pose_lstm", "discriminator"):
        module = getattr(m, name)
        if name in trained:
            missing = [n for n, ok in _grads(module).items() if not ok]
            assert not missing, f"{stage}: no gradient for {name}.{missing}"
            assert all(p.requires_grad for p in module.parameters())
        else:  # frozen in this stage, or trained elsewhere (the discriminator)
            assert all(p.grad is None for p in module.parameters()), f"{stage}: gradient leaked into {name}"


def test_drnet_lstm_stage_freezes_and_keeps_eval_mode():
    m = _drnet("lstm")
    m.train()
    assert not m.content_encoder.training and not m.pose_encoder.training and not m.decoder.training
    assert m.pose_lstm.training
    assert not any(p.requires_grad for p in m.content_encoder.parameters())
    assert m.adversary_parameters() == []
    with pytest.raises(NotImplementedError):
        m.adversary_terms(*_clip(), step=0)
    m.set_stage("autoencoder")
    assert m.content_encoder.training and all(p.requires_grad for p in m.decoder.parameters())
    assert not any(p.requires_grad for p in m.pose_lstm.parameters())
    with pytest.raises(ValueError):
        m.set_stage("both")


def test_drnet_discriminator_terms():
    m = _drnet()
    cond, target = _clip(b=5)
    params = m.adversary_parameters()
    assert len(params) == len(list(m.discriminator.parameters())) and params
    terms = m.adversary_terms(cond, target, step=0)
    terms["loss"].backward()
    assert all(_grads(m.discriminator).values())
    for name in ("content_encoder", "pose_encoder", "decoder", "pose_lstm"):
        assert all(p.grad is None for p in getattr(m, name).parameters())
    # a discriminator that outputs logit 0 everywhere: BCE = log 2 for both players; accuracy = the label-0 share
    last = m.discriminator.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    adv = m.adversary_terms(cond, target, step=0)
    assert adv["bce"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert adv["accuracy"].item() == pytest.approx(3 / 5)  # 2 shuffled pairs (label 1), 3 same-clip pairs
    main = m.training_terms(cond, target, step=0)
    assert main["adv"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert main["loss"].item() == pytest.approx((main["rec"] + main["sim"] + 1e-4 * main["adv"]).item(), rel=1e-6)


def test_drnet_discriminator_labels_and_shuffle():
    m = _drnet()
    cond, target = _clip(b=6)
    torch.manual_seed(3)
    terms = m.adversary_terms(cond, target, step=0)
    torch.manual_seed(3)
    perm = torch.randperm(3)
    with torch.no_grad():
        pa, pb = m._pose(cond[:, 0]), m._pose(cond[:, 1])  # "first" frame sampling: frames 0 and 1
    pb = torch.cat([pb[:3][perm], pb[3:]])
    logits = m.discriminator(pa, pb)
    expected = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 1, 1, 0, 0, 0]))
    assert terms["bce"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_drnet_forecast_deterministic():
    m = _drnet("joint").eval()
    cond, _ = _clip()
    with torch.no_grad():
        torch.manual_seed(0)
        a = m.forecast(cond, 4)
        torch.manual_seed(1)
        b = m.forecast(cond, 4)
    assert torch.equal(a, b)
    assert torch.equal(m.forecast_samples(cond, 4, 3), a.unsqueeze(0))  # the base class default


def test_drnet_random_frame_sampling_reproducible():
    m = _drnet(frame_sampling="random")
    cond, target = _clip()
    torch.manual_seed(5)
    a = m.training_terms(cond, target, step=0)["loss"]
    torch.manual_seed(5)
    m2 = _drnet(frame_sampling="random")
    torch.manual_seed(5)
    b = m2.training_terms(cond, target, step=0)["loss"]
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), rel=1e-6)


class _ContentStub(nn.Module):
    """Content vector = the frame's mean intensity in every component; no skip maps."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None].expand(-1, self.dim), []


class _PoseStub(nn.Module):
    """Pose = the first ``dim`` pixels of the frame's top row."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x[:, 0, 0, : self.dim]


class _LSTMStub(nn.Module):
    """Next pose = previous pose + the content's first component (input is [pose, content])."""

    def __init__(self, pose_dim: int) -> None:
        super().__init__()
        self.p = pose_dim

    def initial_state(self, ref):
        return []

    def forward(self, x, state):
        return x[:, : self.p] + x[:, self.p : self.p + 1], state


class _DecoderStub(nn.Module):
    """Frame = content's first component everywhere, plus the pose written into the top row."""

    def __init__(self, content_dim: int, pose_dim: int) -> None:
        super().__init__()
        self.c, self.p = content_dim, pose_dim

    def forward(self, code, maps):
        frame = code[:, :1, None, None].expand(-1, *FRAME).clone()
        frame[:, 0, 0, : self.p] += code[:, self.c :]
        return frame


def test_drnet_swap_uses_content_of_second_and_pose_of_first():
    content_dim, pose_dim, horizon = 3, 4, 5
    m = _drnet(content_dim=content_dim, pose_dim=pose_dim)
    m.content_encoder = _ContentStub(content_dim)
    m.pose_encoder = _PoseStub(pose_dim)
    m.pose_lstm = _LSTMStub(pose_dim)
    m.decoder = _DecoderStub(content_dim, pose_dim)
    a, _ = _clip(seed=2)
    b, _ = _clip(seed=3)
    out = m.swap_forecast(a, b, horizon)
    content_a = a[:, -1].mean(dim=(1, 2, 3))  # drives a's pose trajectory through the LSTM
    content_b = b[:, -1].mean(dim=(1, 2, 3))  # what the frames are decoded with
    pose_a = a[:, -1, 0, 0, :pose_dim]
    for k in range(1, horizon + 1):
        pose = pose_a + k * content_a[:, None]
        expected = content_b[:, None, None, None].expand(-1, *FRAME).clone()
        expected[:, 0, 0, :pose_dim] += pose
        torch.testing.assert_close(out[:, k - 1], expected)
    torch.testing.assert_close(m.swap_forecast(a, a, horizon), m.forecast(a, horizon))


def test_drnet_swap_property_real_networks():
    m = _drnet("joint").eval()
    a, _ = _clip(seed=2)
    b, _ = _clip(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(m.swap_forecast(a, a, 3), m.forecast(a, 3))
        s = m.swap_forecast(a, b, 3)
        b_early = b.clone()
        b_early[:, :-1] = torch.rand_like(b_early[:, :-1])  # content comes from b's last frame only
        torch.testing.assert_close(m.swap_forecast(a, b_early, 3), s)
        assert not torch.allclose(s, m.forecast(a, 3))
        torch.testing.assert_close(m.encode_content(b), m.encode_content(b_early))


# ------------------------------------------------------------------------------------------------ SVG
@pytest.mark.parametrize("model, last_frame_skip", [("dcgan", False), ("vgg", False), ("dcgan", True)])
def test_svg_shapes_and_long_rollout(model, last_frame_skip):
    m = _svg(model=model, last_frame_skip=last_frame_skip)
    cond, target = _clip()
    terms = m.training_terms(cond, target, step=0)
    assert set(terms) == {"loss", "mse", "rec", "kl"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    assert terms["loss"].item() == pytest.approx((terms["rec"] + 1e-4 * terms["kl"]).item(), rel=1e-6)
    m.eval()
    with torch.no_grad():
        out = m.forecast(cond, 3 * TH + 1)
        samples = m.forecast_samples(cond, 3 * TH + 1, 3)
    assert out.shape == (4, 3 * TH + 1, *FRAME)
    assert samples.shape == (3, 4, 3 * TH + 1, *FRAME)
    assert ((out >= 0) & (out <= 1)).all()


def test_svg_gradients_reach_every_parameter():
    m = _svg()
    cond, target = _clip()
    m.training_terms(cond, target, step=0)["loss"].backward()
    missing = [n for n, ok in _grads(m).items() if not ok]
    assert not missing


def test_svg_forecast_deterministic():
    m = _svg()
    cond, _ = _clip()
    with torch.no_grad():
        for mode in (True, False):
            m.train(mode)
            torch.manual_seed(0)
            a = m.forecast(cond, 4)
            torch.manual_seed(1)
            b = m.forecast(cond, 4)
            assert torch.equal(a, b)


def test_svg_samples_vary_and_are_reproducible():
    m = _svg().eval()
    cond, _ = _clip()
    with torch.no_grad():
        torch.manual_seed(7)
        a = m.forecast_samples(cond, 3, 4)
        torch.manual_seed(7)
        b = m.forecast_samples(cond, 3, 4)
        torch.manual_seed(8)
        c = m.forecast_samples(cond, 3, 4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a[0] - a[1]).abs().max() > 0  # samples differ from each other


def test_svg_samples_collapse_to_forecast_without_variance():
    """With log σ² → −∞ in the prior and the posterior, every sample is the mean forecast."""
    m = _svg().eval()
    for net in (m.prior, m.posterior):
        with torch.no_grad():
            net.logvar.weight.zero_()
            net.logvar.bias.fill_(-80.0)
    cond, _ = _clip()
    with torch.no_grad():
        samples = m.forecast_samples(cond, 3, 2)
        mean = m.forecast(cond, 3)
    torch.testing.assert_close(samples, mean.expand(2, *mean.shape), atol=1e-5, rtol=0)


def test_svg_gaussian_kl():
    mu = torch.zeros(4, 10)
    assert gaussian_kl(mu, mu, mu, mu).item() == pytest.approx(0.0, abs=1e-7)
    # KL(N(1, 1) ‖ N(0, 1)) = 1/2 per dimension; summed over 10 dimensions, averaged over the batch
    assert gaussian_kl(mu + 1, mu, mu, mu).item() == pytest.approx(5.0)
    # KL(N(0, 1) ‖ N(0, e²)) = 1 + 1/(2e²) − 1/2 per dimension
    expected = 10 * (1 + 1 / (2 * math.e**2) - 0.5)
    assert gaussian_kl(mu, mu, mu, mu + 2).item() == pytest.approx(expected, rel=1e-6)


def test_svg_training_mse_is_the_target_frames():
    """``mse`` averages the teacher-forced predictions of the target frames; ``rec`` sums all T−1 frames."""
    m = _svg()
    cond, target = _clip()
    torch.manual_seed(0)
    a = m.training_terms(cond, target, step=0)
    torch.manual_seed(0)
    b = m.training_terms(cond, (target + 0.3).clamp(0, 1), step=0)
    # the conditioning frames' share of "rec" (frames 1 … Tc−1) does not depend on the target (causal model)
    cond_a, cond_b = a["rec"] - TH * a["mse"], b["rec"] - TH * b["mse"]
    assert cond_a.item() > 0
    assert cond_a.item() == pytest.approx(cond_b.item(), rel=1e-4)
    assert abs(a["mse"].item() - b["mse"].item()) > 1e-3
