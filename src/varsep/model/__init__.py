"""The separable forecaster, its dynamics and its losses."""

from varsep.model.build import build_model, count_parameters
from varsep.model.separable import Content, SeparableForecaster

__all__ = ["Content", "SeparableForecaster", "build_model", "count_parameters"]
