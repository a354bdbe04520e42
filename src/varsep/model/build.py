"""Build a :class:`SeparableModel` from a model config and the data set's spec.

Shapes come from the data (observation shape, τ+1), never from the config, so no number is typed twice.
"""

from __future__ import annotations

import torch
from torch import nn

from varsep.config import ModelConfig
from varsep.errors import ConfigError
from varsep.model.dynamics import DYNAMICS
from varsep.model.families import DECODERS, ENCODERS
from varsep.model.separable import SeparableModel
from varsep.nets.init import init_encoder_decoder
from varsep.nets.norm import per_frame_norm
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
    make_encoder = ENCODERS.get(encoder_family)
    content_encoder = make_encoder(spec, s_dim, cfg, skips=cfg.skips) if s_dim is not None else None
    dynamic_encoder = make_encoder(spec, t_dim, cfg, skips=False)
    latent = t_dim if s_dim is None or cfg.combine == "mul" else s_dim + t_dim  # D's input size
    skip_channels = getattr(content_encoder, "skip_channels", None) if cfg.skips else None
    decoder = DECODERS.get(decoder_family)(spec, latent, cfg, skip_channels=skip_channels)
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
    )
    if any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules()):
        # Channels-last convolutions are faster on CPU, and in bf16 they avoid oneDNN weight-gradient kernels
        # that are 15-100x slower in the NCHW layout for our layer shapes (docs/performance.md).
        model = model.to(memory_format=torch.channels_last)
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
