"""Build a :class:`SeparableForecaster` from a model config and the data set's spec.

Shapes come from the data (observation shape, τ+1), never from the config, so no number is typed twice.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from varsep.config import ModelConfig
from varsep.data.base import DataSpec
from varsep.errors import ConfigError
from varsep.model.dynamics import DYNAMICS
from varsep.model.separable import SeparableForecaster
from varsep.nets import DECODERS, ENCODERS
from varsep.nets.conv import use_fast_bf16_convolutions
from varsep.nets.init import init_encoder_decoder


def code_sizes(cfg: ModelConfig) -> tuple[int | None, int]:
    """(d, p): the sizes of S and T. Without S, T takes the size d+p (Appendix E.2)."""
    if cfg.content:
        return cfg.s_dim, cfg.t_dim
    return None, cfg.s_dim + cfg.t_dim


def build_model(cfg: ModelConfig, spec: DataSpec, *, default_encoder: str = "mlp",
                default_decoder: str = "mlp") -> SeparableForecaster:
    if cfg.final_activation == "auto":  # run.resolve_config settles it from the data; unresolved: data in [0, 1]
        cfg = replace(cfg, final_activation="sigmoid")
    encoder_family = cfg.encoder or default_encoder
    decoder_family = cfg.decoder or default_decoder
    s_dim, t_dim = code_sizes(cfg)
    if cfg.skips and not cfg.content:
        raise ConfigError("model.skips needs the content encoder (model.content: true)")
    make_encoder = ENCODERS.get(encoder_family)
    content_encoder = make_encoder(spec, s_dim, cfg, skips=cfg.skips) if s_dim is not None else None
    dynamic_encoder = make_encoder(spec, t_dim, cfg, skips=False)
    if s_dim is None or cfg.combine == "mul":
        latent = t_dim
    else:
        latent = s_dim + t_dim
    skip_channels = getattr(content_encoder, "skip_channels", None) if cfg.skips else None
    decoder = DECODERS.get(decoder_family)(spec, latent, cfg, skip_channels=skip_channels)
    spatial = bool(getattr(dynamic_encoder, "spatial_code", False))
    dynamics = DYNAMICS.get(cfg.dynamics)(t_dim, cfg.width, cfg.blocks, cfg.gain, conv=spatial)
    for net in (content_encoder, dynamic_encoder, decoder):
        if net is not None:
            init_encoder_decoder(net)
            use_fast_bf16_convolutions(net)
    return SeparableForecaster(
        content_encoder=content_encoder, dynamic_encoder=dynamic_encoder, decoder=decoder, dynamics=dynamics,
        combine=cfg.combine, cond_frames=spec.cond_frames, reconstruct_cond=cfg.reconstruct_cond,
        skips=cfg.skips, time_stride=spec.time_stride,
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
