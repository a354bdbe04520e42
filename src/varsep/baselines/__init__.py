"""Baselines: the methods the paper compares with, in the same harness as the separable model (docs/baselines.md).

Each method is its own module, a plain ``nn.Module`` built from shapes and numbers (the contract:
:mod:`varsep.baselines.base`), whose docstring cites its paper and says what follows the official code (or
OpenSTL, where that is the reference for parameter counts) and what does not. ``model.kind: <name>`` in a
config trains one (``model.baseline`` holds its constructor settings); :func:`build_baseline` wraps it in
:class:`BaselineModel`, which gives it the same forecasting interface as the separable model, so training,
evaluation, reports, prediction and the Python API work unchanged.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch
from torch import nn

from varsep.baselines.base import Baseline
from varsep.errors import ConfigError
from varsep.registry import suggest
from varsep.spec import DataSpec

# model.kind → "module:class" (config.schema.BASELINE_KINDS lists the same names)
BASELINES: dict[str, str] = {
    "convlstm": "varsep.baselines.convlstm:ConvLSTM",
    "predrnn": "varsep.baselines.predrnn:PredRNN",
    "predrnn_v2": "varsep.baselines.predrnn:PredRNNv2",
    "predrnnpp": "varsep.baselines.predrnnpp:PredRNNpp",
    "mim": "varsep.baselines.mim:MIM",
    "e3dlstm": "varsep.baselines.e3dlstm:E3DLSTM",
    "phydnet": "varsep.baselines.phydnet:PhyDNet",
    "simvp": "varsep.baselines.simvp:SimVP",
    "tau": "varsep.baselines.tau:TAU",
    "drnet": "varsep.baselines.drnet:DrNet",
    "svg": "varsep.baselines.svg:SVGLP",
    "pknl": "varsep.baselines.pknl:PKnl",
    "ddpae": "varsep.baselines.ddpae:DDPAE",
}
# Harness settings that sit beside a baseline's constructor settings in model.baseline.
HARNESS_SETTINGS = ("lstm_from_step",)  # DrNet: switch from its first training stage to its second at this step


def baseline_class(kind: str) -> type[Baseline]:
    if kind not in BASELINES:
        valid = sorted(BASELINES)
        raise ConfigError(f"unknown baseline {kind!r}; valid: {', '.join(valid)}.{suggest(kind, valid)}")
    module, name = BASELINES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def constructor_settings(kind: str) -> list[str]:
    """The keyword settings ``model.baseline`` may hold for ``kind`` (following ``**kwargs`` into the base
    classes' constructors)."""
    names: list[str] = []
    for cls in baseline_class(kind).__mro__:
        if "__init__" not in vars(cls) or cls in (Baseline, nn.Module, object):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters
        names += [n for n, p in params.items() if n not in ("self", "frame_shape", "cond_frames", "train_horizon")
                  and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names + (["lstm_from_step"] if kind == "drnet" else [])


def build_baseline(kind: str, spec: DataSpec, settings: dict[str, Any] | None = None) -> BaselineModel:
    """The baseline ``kind`` for the data of ``spec``, with its ``settings`` (unknown ones are an error)."""
    cls = baseline_class(kind)
    settings = dict(settings or {})
    if len(spec.frame_shape) != 3:
        raise ConfigError(f"the {kind} baseline forecasts frames (C, H, W); this data set's observations have "
                          f"shape {tuple(spec.frame_shape)}")
    if spec.time_stride != 1:
        raise ConfigError(f"the {kind} baseline observes every frame; data.time_stride must be 1")
    harness = {k: settings.pop(k) for k in HARNESS_SETTINGS if k in settings}
    valid = constructor_settings(kind)
    unknown = [k for k in settings if k not in valid]
    if unknown:
        raise ConfigError(f"unknown setting model.baseline.{unknown[0]} for {kind}.{suggest(unknown[0], valid)} "
                          f"Valid: {', '.join(valid)}")
    try:
        net = cls(tuple(spec.frame_shape), spec.cond_frames, spec.pred_frames, **settings)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.baseline settings do not build {kind} for frames {tuple(spec.frame_shape)}: "
                          f"{err}") from None
    return BaselineModel(kind, net, spec, lstm_from_step=harness.get("lstm_from_step"))


OPENSTL_METHODS = ("convlstm", "predrnn", "predrnn_v2", "predrnnpp", "mim", "e3dlstm", "phydnet", "simvp", "tau")


def load_openstl_weights(model: BaselineModel, state: Any) -> None:
    """Load an OpenSTL checkpoint of the same method (bare state dict, ``{"state_dict": …}`` or a Lightning
    ``.ckpt`` with ``model.`` keys) into ``model``, names and shapes checked (a ConfigError says what differs)."""
    if model.kind not in OPENSTL_METHODS:
        raise ConfigError(f"{model.kind} has no OpenSTL checkpoint layout (OpenSTL methods: "
                          f"{', '.join(OPENSTL_METHODS)}); its official code saves pickled modules, not state dicts")
    try:
        if model.kind in ("simvp", "tau"):
            model.net.from_openstl_state_dict(state)
        else:
            module = importlib.import_module(BASELINES[model.kind].split(":")[0])
            model.net.load_state_dict(module.from_openstl_state_dict(state, model.net))
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"the checkpoint does not fit {model.kind} with these settings: "
                          f"{str(err).splitlines()[0]}") from None


def load_ddpae_weights(model: BaselineModel, states: dict[str, Any]) -> None:
    """Load the official DDPAE code's four state dicts (pose_model, content_lstm, object_encoder,
    object_decoder) into ``model``, names and shapes checked (a ConfigError says what differs)."""
    from varsep.baselines.ddpae_official import from_official_state_dicts

    if model.kind != "ddpae":
        raise ConfigError(f"the official DDPAE checkpoint does not fit {model.kind}")
    try:
        model.net.load_state_dict(from_official_state_dicts(states, model.net))
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"the checkpoint does not fit ddpae with these settings: "
                          f"{str(err).splitlines()[0]}") from None


class BaselineModel(nn.Module):
    """A baseline with the forecasting interface of :class:`varsep.model.SeparableModel`: ``spec``,
    ``forecast(cond, horizon)``, ``forecast_with_swap(cond, content_cond, horizon)``, ``uses_content``, and
    ``training_terms(frames, step)`` on the training windows the data stream serves."""

    def __init__(self, kind: str, net: Baseline, spec: DataSpec, *, lstm_from_step: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.net = net
        self.spec = spec
        self.lstm_from_step = lstm_from_step

    # ------------------------------------------------------------------------------ the shared interface
    @property
    def uses_content(self) -> bool:
        """Whether the content swap applies (DrNet separates content and pose)."""
        return bool(self.net.supports_swap)

    @property
    def swappable(self) -> bool:
        """The same as :attr:`uses_content` (the evaluation asks every model)."""
        return self.uses_content

    @property
    def stochastic(self) -> bool:
        return bool(self.net.stochastic)

    def training_activation_bytes(self, batch: int) -> int | None:
        """The method's estimate of one training step's activations at ``batch`` (None: not estimated)."""
        return self.net.training_activation_bytes(batch)

    @property
    def cond_frames(self) -> int:
        return self.spec.cond_frames

    @property
    def time_stride(self) -> int:
        return 1

    @property
    def cond_span(self) -> int:
        return self.spec.cond_span

    def split_window(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spec.split(frames)

    def forecast(self, cond: torch.Tensor, horizon: int | None = None, *, times: Any = None,
                 method: str = "residual", **solver: Any) -> torch.Tensor:
        """The ``horizon`` frames after ``cond`` (B, Tc, C, H, W) → (B, horizon, C, H, W)."""
        if times is not None or horizon is None:
            raise ValueError(f"the {self.kind} baseline forecasts whole frames after the window (horizon=N); "
                             f"times between frames need the separable model")
        self.net.check_cond(cond)
        return self.net.forecast(cond, int(horizon))

    def forecast_with_swap(self, cond: torch.Tensor, content_cond: torch.Tensor,
                           horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The forecast, and the forecast with the content of ``content_cond`` (only where ``uses_content``)."""
        return self.forecast(cond, horizon), self.net.swap_forecast(cond, content_cond, horizon)

    def forecast_samples(self, cond: torch.Tensor, horizon: int, samples: int) -> torch.Tensor:
        """(samples, B, horizon, *frame): draws of a stochastic baseline (SVG-LP); deterministic ones repeat."""
        return self.net.forecast_samples(cond, horizon, samples)

    # ------------------------------------------------------------------------------------------ training
    def training_terms(self, frames: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The method's own objective on training windows (B, Tc + Th, *frame); "loss" sums the main networks'
        loss and, for methods with an adversary, the adversary's (the two act on disjoint parameters: each
        is computed with the other's inputs detached), so one optimiser step trains both."""
        if self.lstm_from_step is not None:
            wanted = "lstm" if step >= self.lstm_from_step else "autoencoder"
            if self.net.stage != wanted:  # only DrNet takes lstm_from_step (constructor_settings)
                self.net.set_stage(wanted)
        cond, target = frames[:, :self.cond_frames], frames[:, self.cond_frames:]
        terms = dict(self.net.training_terms(cond, target, step=step))
        if self.net.adversary_parameters():
            adversary = self.net.adversary_terms(cond, target, step=step)
            terms.update({f"adversary_{k}": v for k, v in adversary.items()})
            terms["loss"] = terms["loss"] + adversary["loss"]
        return terms
