"""DCGAN encoder/decoder: shapes, layer layout, gradients, and the Moving MNIST model's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from varsep.config import ModelConfig, load_config
from varsep.errors import ConfigError
from varsep.model.build import build_model, count_parameters
from varsep.model.families import DECODERS, ENCODERS
from varsep.nets.dcgan import DCGANDecoder, DCGANEncoder
from varsep.spec import DataSpec


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_grey_and_colour_frames(channels: int) -> None:
    spec = DataSpec((channels, 64, 64), cond_frames=5, pred_frames=10)
    cfg = ModelConfig()
    enc = ENCODERS.get("dcgan")(spec, 16, cfg)
    dec = DECODERS.get("dcgan")(spec, 24, cfg)
    window = torch.rand(3, 5, channels, 64, 64)
    assert enc(window).shape == (3, 16)
    assert enc.features[0].in_channels == 5 * channels  # frames stacked on the channel axis
    frames = dec(torch.randn(7, 24))
    assert frames.shape == (7, channels, 64, 64)
    assert frames.min() >= 0 and frames.max() <= 1


def test_encoder_layout_halves_the_frame_four_times() -> None:
    enc = DCGANEncoder(5, 8)
    sizes, channels, norms = [], [], []
    x = torch.rand(2, 5, 64, 64)
    for layer in enc.features:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            sizes.append(x.shape[-1])
            channels.append(x.shape[1])
            assert layer.kernel_size == (4, 4) and layer.stride == (2, 2)
        if isinstance(layer, nn.LeakyReLU):
            assert layer.negative_slope == 0.2
    norms = [type(m).__name__ for m in enc.features if not isinstance(m, nn.LeakyReLU)]
    assert sizes == [32, 16, 8, 4] and channels == [64, 128, 256, 512]
    # the first convolution has no BatchNorm, the three others do
    assert norms == ["Conv2d", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d"]
    assert enc.code.kernel_size == (4, 4) and enc.code.padding == (0, 0)


def test_decoder_mirrors_the_encoder() -> None:
    dec = DCGANDecoder(10, 1, sigmoid=False)
    x = torch.randn(2, 10, 1, 1)
    sizes = []
    for layer in dec.net:
        x = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            sizes.append((x.shape[1], x.shape[-1]))
    assert sizes == [(512, 4), (256, 8), (128, 16), (64, 32), (1, 64)]


def test_sigmoid_only_when_configured() -> None:
    spec = DataSpec((1, 64, 64), 5, 10)
    torch.manual_seed(0)
    plain = DECODERS.get("dcgan")(spec, 12, ModelConfig(final_activation="none"))
    squashed = DECODERS.get("dcgan")(spec, 12, ModelConfig(final_activation="sigmoid"))
    squashed.load_state_dict(plain.state_dict())
    z = torch.randn(4, 12) * 10
    plain.eval()
    squashed.eval()
    torch.testing.assert_close(squashed(z), torch.sigmoid(plain(z)))


def _mmnist_model():
    config = load_config("mmnist")
    spec = DataSpec((1, 64, 64), config.data.cond_frames, config.data.pred_frames)
    return config, build_model(config.model, spec, default_encoder="dcgan", default_decoder="dcgan")


def test_moving_mnist_model_has_about_11_million_parameters() -> None:
    _, model = _mmnist_model()
    n = count_parameters(model)
    assert n == 10_983_081  # E_S 3,808,192 + E_T 2,923,348 + D 3,967,873 + dynamics 283,668
    assert abs(n - 11.0e6) / 11.0e6 < 0.01
    assert count_parameters(model.dynamics) == (20 * 512 + 512) + (512 * 512 + 512) + (512 * 20 + 20)


@pytest.mark.parametrize("channels", [1, 3])
def test_gradients_reach_every_parameter(channels: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(s_dim=8, t_dim=4, blocks=1, width=16)
    model = build_model(cfg, DataSpec((channels, 64, 64), 5, 2), default_encoder="dcgan",
                        default_decoder="dcgan")
    cond = torch.rand(3, 5, channels, 64, 64)
    model.forecast(cond, 2, include_cond=True).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 64, 48), (100,)])
def test_other_frame_sizes_are_refused(shape: tuple[int, ...]) -> None:
    spec = DataSpec(shape, 5, 10)
    with pytest.raises(ConfigError, match="64, 64"):
        ENCODERS.get("dcgan")(spec, 8, ModelConfig())
    with pytest.raises(ConfigError, match="64, 64"):
        DECODERS.get("dcgan")(spec, 8, ModelConfig())


def test_skip_connections_are_refused() -> None:
    spec = DataSpec((1, 64, 64), 5, 10)
    with pytest.raises(ConfigError, match="skip"):
        ENCODERS.get("dcgan")(spec, 8, ModelConfig(), skips=True)
    with pytest.raises(ConfigError, match="skip"):
        DECODERS.get("dcgan")(spec, 8, ModelConfig(), skip_channels=[64])
