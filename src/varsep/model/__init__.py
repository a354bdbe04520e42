"""The separable model (docs/model.md): encoders, dynamics of T, decoder, losses, and building it."""

from varsep.model.build import build_model, count_parameters
from varsep.model.separable import Content, SeparableModel

__all__ = ["Content", "SeparableModel", "build_model", "count_parameters"]
