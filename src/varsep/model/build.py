"""Build a :class:`SeparableModel` from a model config and the data set's spec.

Shapes come from the data (observation shape, τ+1), never from the config, so no number is typed twice.
Frames of a size a convolutional family is not built for are padded to the next size it serves and its
output cropped back (varsep.nets.pad; model.families.FRAME_SIZES says which size).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from varsep.config import ModelConfig
from varsep.errors import ConfigError
from varsep.model.dynamics import DYNAMICS
from varsep.model.families import DECODERS, ENCODERS, served_size
from varsep.model.separable import SeparableModel
from varsep.nets.init import init_encoder_decoder
from varsep.nets.norm import per_frame_norm
from varsep.nets.pad import CropFrames, PadFrames
from varsep.spec import DataSpec


def code_sizes(cfg: ModelConfig) -> tuple[int | None, int]:
    """(d, p): the sizes of S and T. Without S, T takes the size d+p (Appendix E.2)."""
    if cfg.content:
        return cfg.s_dim, cfg.t_dim
    return None, cfg.s_dim + cfg.t_dim


def build_model(cfg: ModelConfig, spec: DataSpec, *, default_encoder: str = "mlp",
                default_decoder: str = "mlp") -> SeparableModel:
    """The separable model of ``cfg`` for the data of ``spec`` — or, with ``cfg.kind`` a baseline's name, that
    baseline (varsep.baselines), which offers the same forecasting interface."""
    if cfg.kind != "separable":
        from varsep.baselines import build_baseline

        return build_baseline(cfg.kind, spec, cfg.baseline)  # type: ignore[return-value]
    encoder_family = cfg.encoder or default_encoder
    decoder_family = cfg.decoder or default_decoder
    s_dim, t_dim = code_sizes(cfg)
    if cfg.skips and not cfg.content:
        raise ConfigError("model.skips needs the content encoder (model.content: true)")
    base_encoder, base_decoder = ENCODERS.get(encoder_family), DECODERS.get(decoder_family)
    enc_spec, enc_size = _served(spec, encoder_family)
    dec_spec, dec_size = _served(spec, decoder_family)

    def make_encoder(code_dim: int, skips: bool) -> nn.Module:
        net = base_encoder(enc_spec, code_dim, cfg, skips=skips)
        return net if enc_size is None else PadFrames(net, tuple(spec.frame_shape[1:]), enc_size)

    content_encoder = make_encoder(s_dim, cfg.skips) if s_dim is not None else None
    dynamic_encoder = make_encoder(t_dim, False)
    latent = t_dim if s_dim is None or cfg.combine == "mul" else s_dim + t_dim  # D's input size
    skip_channels = getattr(content_encoder, "skip_channels", None) if cfg.skips else None
    if skip_channels and enc_size != dec_size:
        raise ConfigError(f"skip connections need the encoder and decoder built for one frame size; "
                          f"{encoder_family} and {decoder_family} serve different sizes for these frames")
    decoder = base_decoder(dec_spec, latent, cfg, skip_channels=skip_channels)
    if dec_size is not None:
        decoder = CropFrames(decoder, tuple(spec.frame_shape[1:]), dec_size)
    spatial = bool(getattr(dynamic_encoder, "spatial_code", False))
    dynamics = DYNAMICS.get(cfg.dynamics)(t_dim, cfg.width, cfg.blocks, cfg.gain, conv=spatial,
                                          conv_variant=cfg.conv_integrator)
    for net in (content_encoder, dynamic_encoder, decoder):
        if net is not None:
            init_encoder_decoder(net)
    if cfg.batch_stats == "per_frame":
        per_frame_norm(decoder)  # the decoder's BatchNorm: per-frame statistics in training (nets/norm.py)
    model = SeparableModel(
        content_encoder=content_encoder, dynamic_encoder=dynamic_encoder, decoder=decoder, dynamics=dynamics,
        combine=cfg.combine, spec=spec, reconstruct_cond=cfg.reconstruct_cond, skips=cfg.skips,
        anchor="none" if cfg.anchor == "auto" else cfg.anchor,  # auto is settled from the data (resolve_config)
    )
    if any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules()):
        # Channels-last convolutions are faster on CPU, and in bf16 they avoid oneDNN weight-gradient kernels
        # that are 15-100x slower in the NCHW layout for our layer shapes (docs/performance.md).
        model = model.to(memory_format=torch.channels_last)
    return model


def _served(spec: DataSpec, family: str) -> tuple[DataSpec, tuple[int, int] | None]:
    """The spec ``family``'s networks are built for, and the padded (H', W') when it differs from the data's."""
    if len(spec.frame_shape) != 3:
        return spec, None
    channels, height, width = spec.frame_shape
    size = served_size(family, height, width)
    if size == (height, width):
        return spec, None
    return replace(spec, frame_shape=(channels, *size)), size


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
