"""The authors' SST networks (family ``sst``): layer lists, shapes, skip wiring, the integrator, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from varsep.config import LossConfig, ModelConfig, load_config
from varsep.errors import ConfigError
from varsep.model import build_model
from varsep.model.dynamics import ResidualIntegrator
from varsep.model.families import DECODERS, ENCODERS
from varsep.model.losses import loss_terms
from varsep.nets.sst import SSTDecoder, SSTEncoder
from varsep.spec import DataSpec

SPEC = DataSpec((1, 64, 64), 4, 6)


def cbl(cin: int, cout: int) -> int:
    """A 3×3 conv without bias, then BatchNorm (weight and bias)."""
    return 9 * cin * cout + 2 * cout


def chain(*widths: int) -> int:
    return sum(cbl(a, b) for a, b in zip(widths[:-1], widths[1:], strict=False))


def test_encoder_layer_list_and_count():
    d = 196
    enc = SSTEncoder(4, d, skips=True)
    expected = chain(4, 64, 64) + chain(64, 128, 128) + chain(128, 256, 256, 256) + chain(256, 512, d) \
        + (9 * d * d + d)  # the last conv: d → d, with bias, no norm
    assert sum(p.numel() for p in enc.parameters()) == expected
    head = enc.head
    assert [type(m) for m in head[-1:]] == [nn.Conv2d] and head[-1].bias is not None
    assert [m.out_channels for m in head.modules() if isinstance(m, nn.Conv2d)] == [512, d, d]


def test_decoder_layer_list_and_count():
    dec = SSTDecoder(260, 1, skip_channels=[64, 128, 256])
    expected = chain(260, 256, 256, 128) + chain(384, 128, 64, 64) + chain(192, 128, 64, 64) \
        + chain(128, 64, 64, 1)
    assert sum(p.numel() for p in dec.parameters()) == expected
    # the last layer is a conv with BatchNorm and LeakyReLU(0.2), like the others; no sigmoid
    last = list(dec.blocks[-1][-1])
    assert [type(m) for m in last] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU] and last[1].num_features == 1
    assert last[2].negative_slope == 0.2 and not dec.sigmoid
    plain = SSTDecoder(260, 1)  # the authors' skip-less variant
    assert sum(p.numel() for p in plain.parameters()) == chain(260, 256, 256, 128) + chain(128, 128, 128, 64) \
        + chain(64, 64, 1)


def test_shapes_and_skip_maps():
    torch.manual_seed(0)
    enc = SSTEncoder(4, 196, skips=True).eval()
    dec = SSTDecoder(196 + 64, 1, skip_channels=enc.skip_channels).eval()
    with torch.no_grad():
        code, maps = enc(torch.rand(2, 4, 1, 64, 64))
        assert code.shape == (2, 196, 16, 16)
        assert [tuple(m.shape) for m in maps] == [(2, 64, 64, 64), (2, 128, 32, 32), (2, 256, 16, 16)]
        seen = []
        hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[1:]))) for b in dec.blocks]
        out = dec(torch.cat([code, torch.randn(2, 64, 16, 16)], 1), maps)
        for h in hooks:
            h.remove()
    assert out.shape == (2, 1, 64, 64)
    # h3 joins after three convs at 16×16, h2 and h1 after each upsampling
    assert seen == [(260, 16, 16), (384, 16, 16), (192, 32, 32), (128, 64, 64)]
    assert enc.spatial_code and SSTEncoder(4, 64).skip_channels is None


def test_skip_maps_are_concatenated_before_the_features():
    """[skip, features]: zeroing the skip map's weights of the first conv of block 2 silences h3 only."""
    torch.manual_seed(0)
    dec = SSTDecoder(8, 1, skip_channels=[64, 128, 256]).eval()
    z = torch.randn(1, 8, 4, 4)
    maps = [torch.randn(1, 64, 16, 16), torch.randn(1, 128, 8, 8), torch.randn(1, 256, 4, 4)]
    with torch.no_grad():
        dec.blocks[1][0][0].weight[:, :256] = 0  # the first 256 input channels: h3's
        bumped = [maps[0], maps[1], maps[2] + 1]
        torch.testing.assert_close(dec(z, bumped), dec(z, maps))
        assert not torch.allclose(dec(z, [maps[0], maps[1] + 1, maps[2]]), dec(z, maps))
    with pytest.raises(ValueError, match="needs 3 skip maps"):
        dec(z, maps[:2])


def test_integrator_of_the_authors_and_the_plain_one():
    torch.manual_seed(0)
    authors = ResidualIntegrator(64, 512, 2, 0.71, conv=True)
    assert sum(p.numel() for p in authors.parameters()) == 5_904_768  # the authors' count, biases included
    block = authors.blocks[0]
    assert type(block[-1]) is nn.BatchNorm2d and block[-1].num_features == 64  # BN after the last conv
    weights = torch.cat([m.weight for m in authors.modules() if isinstance(m, nn.BatchNorm2d)])
    assert weights.numel() == 2 * (512 + 512 + 64)
    assert abs(weights.mean().item() - 1) < 0.05 and abs(weights.std().item() - 0.71) < 0.05  # N(1, gain)
    plain = ResidualIntegrator(64, 128, 2, 0.71, conv=True, conv_variant="plain")
    assert type(plain.blocks[0][-1]) is nn.Conv2d
    assert all((m.weight == 1).all() for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match="conv_variant"):
        ResidualIntegrator(4, 8, 1, 0.71, conv=True, conv_variant="nope")


def test_the_sst_preset_builds_the_authors_model():
    config = load_config("sst")
    model = build_model(config.model, SPEC)
    assert type(model.content_encoder) is SSTEncoder and type(model.decoder) is SSTDecoder
    assert model.dynamics.blocks[0][0].out_channels == 512
    model.eval()
    with torch.no_grad():
        content, t0 = model.encode(torch.rand(2, 4, 1, 64, 64))
        assert t0.shape == (2, 64, 16, 16) and len(content.skips) == 3
        out = model.forecast(torch.rand(2, 4, 1, 64, 64), 2)
    assert out.shape == (2, 2, 1, 64, 64) and torch.isfinite(out).all()


def test_gradients_reach_every_parameter_and_without_s():
    """8×8 frames (codes at 2×2) keep this fast; the fully convolutional networks take any side ÷ 4."""
    spec = DataSpec((1, 8, 8), 2, 2)
    cfg = ModelConfig(encoder="sst", decoder="sst", s_dim=6, t_dim=4, skips=True, blocks=1, width=8,
                      reconstruct_cond=False, final_activation="none")
    torch.manual_seed(0)
    model = build_model(cfg, spec)
    loss_terms(model, torch.rand(3, spec.train_length, 1, 8, 8), 1, LossConfig())["loss"].backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    alone = build_model(ModelConfig(**{**cfg.__dict__, "content": False, "skips": False}), spec)
    assert alone.content_encoder is None and alone.decoder.skip_channels is None
    with torch.no_grad():
        assert alone.eval().forecast(torch.rand(2, 2, 1, 8, 8), 2).shape == (2, 2, 1, 8, 8)


def test_frames_that_do_not_divide_are_refused():
    with pytest.raises(ConfigError, match="divisible by 4, got 30×32"):
        ENCODERS.get("sst")(DataSpec((1, 30, 32), 2, 2), 8, ModelConfig())
    with pytest.raises(ConfigError, match="use the mlp family"):
        DECODERS.get("sst")(DataSpec((100,), 2, 2), 8, ModelConfig())
    with pytest.raises(ConfigError, match="takes 3 skip maps"):
        SSTDecoder(8, 1, skip_channels=[64, 128, 256, 512])
