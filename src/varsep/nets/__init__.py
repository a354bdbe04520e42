"""Encoder and decoder networks, by family name (``model.encoder`` / ``model.decoder`` in configs).

An encoder builder takes ``(spec, code_dim, model_config, skips)`` and returns a module mapping a window
(B, τ+1, *frame) to a code (B, code_dim) — or to ``(code, skip_maps)`` when ``skips`` is true. A decoder
builder takes ``(spec, latent, model_config, skip_channels)`` and returns a module mapping a latent
(N, latent…) and optional skip maps to frames (N, *frame).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from varsep.config import ModelConfig
from varsep.data.base import DataSpec
from varsep.errors import ConfigError
from varsep.nets.mlp import MLPDecoder, MLPEncoder
from varsep.registry import Registry

EncoderBuilder = Callable[..., nn.Module]
DecoderBuilder = Callable[..., nn.Module]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder family")
DECODERS: Registry[DecoderBuilder] = Registry("decoder family")


def sigmoid_output(cfg: ModelConfig) -> bool:
    """Whether a decoder ends with a sigmoid: yes unless ``final_activation: none`` (``auto`` is settled from
    the data by varsep.run.resolve_config; left unresolved it means data in [0, 1])."""
    return cfg.final_activation != "none"


@ENCODERS.register("mlp")
def _mlp_encoder(spec: DataSpec, code_dim: int, cfg: ModelConfig, skips: bool = False) -> nn.Module:
    if skips:
        raise ConfigError("the mlp encoder has no skip connections")
    return MLPEncoder(spec.cond_frames * spec.frame_size, cfg.encoder_hidden, code_dim)


@DECODERS.register("mlp")
def _mlp_decoder(spec: DataSpec, latent_dim: int, cfg: ModelConfig, skip_channels: object = None) -> nn.Module:
    return MLPDecoder(latent_dim, cfg.decoder_hidden, spec.frame_shape, sigmoid_output(cfg))


# Network families register themselves with @ENCODERS.register / @DECODERS.register where they are defined.
NET_MODULES = ("dcgan", "resnet", "vgg")
for _module in NET_MODULES:
    importlib.import_module(f"varsep.nets.{_module}")

__all__ = ["DECODERS", "ENCODERS"]
