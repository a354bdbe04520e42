"""Network families by name (``model.encoder`` / ``model.decoder``): from a data spec and a model config to
the plain constructor arguments of varsep.nets.

An encoder builder takes ``(spec, code_dim, model_config, skips)`` and returns a module mapping a window
(B, τ+1, *frame) to a code (B, code_dim) — or to ``(code, skip_maps)`` when ``skips`` is true. A decoder
builder takes ``(spec, latent, model_config, skip_channels)`` and returns a module mapping a latent
(N, latent…) and optional skip maps to frames (N, *frame). Adding a family: write its networks in
varsep.nets, then register one builder of each kind here.

Frames of any size: a family may also register in ``FRAME_SIZES`` the frame size (H', W') it serves for
frames of h×w (the next size it is built for); :func:`varsep.model.build.build_model` then builds the
networks for (H', W') and pads their input / crops their output (varsep.nets.pad). A family without an
entry takes every size as it is (mlp, resnet18).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from varsep.config import ModelConfig
from varsep.errors import ConfigError
from varsep.nets import (
    VGG32,
    VGG64,
    VGG64_2D,
    DCGANDecoder,
    DCGANEncoder,
    MLPDecoder,
    MLPEncoder,
    ResNet18Encoder,
    VGGDecoder,
    VGGEncoder,
    VGGLayout,
)
from varsep.nets.dcgan import SIZE as DCGAN_SIZE
from varsep.nets.sst import FACTOR as SST_FACTOR
from varsep.nets.sst import SSTDecoder, SSTEncoder
from varsep.nets.sst import code_size as sst_code_size
from varsep.registry import Registry
from varsep.spec import DataSpec

SizeRule = Callable[[int, int], tuple[int, int]]
EncoderBuilder = Callable[..., nn.Module]
DecoderBuilder = Callable[..., nn.Module]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder family")
DECODERS: Registry[DecoderBuilder] = Registry("decoder family")
FRAME_SIZES: dict[str, SizeRule] = {}  # family → (h, w) ↦ the frame size its networks are built for


def served_size(family: str, height: int, width: int) -> tuple[int, int]:
    """The frame size the networks of ``family`` are built for when the frames are height × width."""
    rule = FRAME_SIZES.get(family)
    return (height, width) if rule is None else rule(height, width)


def round_up(multiple: int) -> SizeRule:
    """Sides rounded up to the next multiple of ``multiple`` (a network that pools by that factor)."""
    def rule(height: int, width: int) -> tuple[int, int]:
        return -(-height // multiple) * multiple, -(-width // multiple) * multiple
    return rule


def sigmoid_output(cfg: ModelConfig) -> bool:
    """Whether a decoder ends with a sigmoid: yes unless ``final_activation: none`` (``auto`` is settled from
    the data by varsep.train.runner.resolve_config; left unresolved it means data in [0, 1])."""
    return cfg.final_activation != "none"


# ------------------------------------------------------------------------------------------------- mlp
@ENCODERS.register("mlp")
def _mlp_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
    if skips:
        raise ConfigError("the mlp encoder has no skip connections")
    return MLPEncoder(spec.cond_frames * spec.frame_size, cfg.encoder_hidden, code_dim)


@DECODERS.register("mlp")
def _mlp_decoder(spec: DataSpec, latent_dim: int, cfg: ModelConfig, skip_channels: object = None) -> nn.Module:
    return MLPDecoder(latent_dim, cfg.decoder_hidden, spec.frame_shape, sigmoid_output(cfg))


# ----------------------------------------------------------------------------------------------- dcgan
def _check_dcgan(spec: DataSpec, role: str) -> None:
    shape = tuple(spec.frame_shape)
    if len(shape) != 3 or shape[1:] != (DCGAN_SIZE, DCGAN_SIZE):
        raise ConfigError(f"the dcgan {role} is built for frames of shape (C, {DCGAN_SIZE}, {DCGAN_SIZE}), got "
                          f"{shape}; choose another model.{role} family for this data")


def _dcgan_size(height: int, width: int) -> tuple[int, int]:
    if height > DCGAN_SIZE or width > DCGAN_SIZE:
        raise ConfigError(f"the dcgan networks take frames up to {DCGAN_SIZE}×{DCGAN_SIZE} (smaller ones are "
                          f"padded), got {height}×{width}; choose vgg64_skip (any size) or set data.resize")
    return DCGAN_SIZE, DCGAN_SIZE


FRAME_SIZES["dcgan"] = _dcgan_size


@ENCODERS.register("dcgan")
def _dcgan_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
    _check_dcgan(spec, "encoder")
    if skips:
        raise ConfigError("the dcgan encoder has no skip connections (set model.skips: false)")
    return DCGANEncoder(spec.cond_frames * spec.channels, code_dim)


@DECODERS.register("dcgan")
def _dcgan_decoder(spec: DataSpec, latent_dim: int, cfg: ModelConfig, skip_channels: object = None) -> nn.Module:
    _check_dcgan(spec, "decoder")
    if skip_channels:
        raise ConfigError("the dcgan decoder takes no skip connections (set model.skips: false)")
    return DCGANDecoder(latent_dim, spec.channels, sigmoid_output(cfg))


# -------------------------------------------------------------------------------------------- resnet18
def _register_resnet18(name: str, variant: str) -> None:
    def make_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
        if skips:
            raise ConfigError(f"the {name} encoder has no skip connections (set model.skips: false)")
        if len(spec.frame_shape) != 3:
            raise ConfigError(f"the {name} encoder needs frames (C, H, W), but this data set's observations "
                              f"have shape {spec.frame_shape}")
        channels, height, width = spec.frame_shape
        return ResNet18Encoder(spec.cond_frames * channels, (height, width), code_dim, variant=variant)

    ENCODERS.register(name)(make_encoder)


_register_resnet18("resnet18", "authors")  # the authors' network (Chairs)
_register_resnet18("resnet18_linear", "linear")  # stem padding 2, no max-pool, linear head


# ------------------------------------------------------------------------------------------------- sst
FRAME_SIZES["sst"] = round_up(SST_FACTOR)


@ENCODERS.register("sst")
def _sst_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
    sst_code_size(spec.frame_shape)
    return SSTEncoder(spec.cond_frames * spec.channels, code_dim, skips=skips)


@DECODERS.register("sst")
def _sst_decoder(spec: DataSpec, latent_dim: int, cfg: ModelConfig, skip_channels=None) -> nn.Module:
    sst_code_size(spec.frame_shape)
    return SSTDecoder(latent_dim, spec.channels, skip_channels=skip_channels, sigmoid=sigmoid_output(cfg))


# ------------------------------------------------------------------------------------------------- vgg
def _register_vgg(layout: VGGLayout) -> None:
    def make_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
        size = layout.code_size(spec.frame_shape)
        return VGGEncoder(layout, spec.cond_frames * spec.channels, code_dim, size, skips=skips)

    def make_decoder(spec: DataSpec, latent_dim: int, cfg: ModelConfig, skip_channels=None) -> nn.Module:
        size = layout.code_size(spec.frame_shape)
        return VGGDecoder(layout, latent_dim, spec.channels, size, skip_channels=skip_channels,
                          sigmoid=sigmoid_output(cfg))

    ENCODERS.register(layout.name)(make_encoder)
    DECODERS.register(layout.name)(make_decoder)
    FRAME_SIZES[layout.name] = round_up(layout.factor)


for _layout in (VGG32, VGG64, VGG64_2D):
    _register_vgg(_layout)
