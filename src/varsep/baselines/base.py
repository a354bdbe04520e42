"""The contract every baseline model follows.

A baseline is a plain ``nn.Module`` built from plain shapes and numbers (no config objects, no data sets):

    model = ConvLSTM(frame_shape=(1, 64, 64), cond_frames=10, train_horizon=10, **hyperparameters)

- ``forecast(cond, horizon)``: conditioning frames (B, Tc, C, H, W) in [the data's scale] → the next
  ``horizon`` frames (B, horizon, C, H, W), for ANY horizon ≥ 1 (recurrent models roll out
  autoregressively on their own outputs; fixed-output models such as SimVP/TAU predict ``train_horizon``
  frames at a time and feed their last ``cond_frames`` outputs back in for the next chunk). No teacher
  forcing, no randomness (stochastic models: their mean/prior-sampled forecast, see ``forecast_samples``).
- ``training_terms(cond, target, *, step)``: one training step's objective on conditioning frames
  (B, Tc, C, H, W) and the ``train_horizon`` target frames (B, Th, C, H, W) that follow them. Returns a dict
  of scalar tensors: ``"loss"`` (what the optimiser minimises, with the method's own weights) and every named
  term (``"mse"`` always: the MSE of the forecast frames against ``target``). ``step`` is the global optimiser
  step (0-based): methods trained with scheduled sampling / reverse scheduled sampling / teacher forcing
  decay derive their schedule from it, drawing their coin flips from torch's global RNG (the harness seeds it).
- ``DEFAULTS``: a class attribute, the method's reference training hyperparameters (optimiser, lr, batch
  size, epochs, schedule, loss weights, sampling schedule) with where they come from.
- ``output_range``: a class attribute, the interval the method's frames are confined to by construction
  ((0, 1) where its decoder ends in a sigmoid: PhyDNet, SVG-LP, DrNet, DDPAE), or None. Such a method
  cannot forecast data outside that interval, so training one on them is refused with the reason
  (varsep.train.runner.resolve_config).

Optional hooks (declared here with defaults, so the harness never probes with hasattr):
- ``adversary_parameters()`` / ``adversary_terms(cond, target, *, step)``: a second network trained with its
  own optimiser against the first (DrNet's scene discriminator). Default: none.
- ``forecast_samples(cond, horizon, samples)``: (samples, B, horizon, C, H, W) for stochastic models
  (SVG-LP); default: the deterministic forecast repeated once.
- ``encode_content(cond)`` and ``swap_forecast(cond, content_cond, horizon)``: content/pose swap for models
  that separate content (DrNet); default: not supported (``supports_swap = False``).
- ``training_activation_bytes(batch)``: an estimate of the memory one training step at this batch keeps for the
  backward pass (activations, not weights), for models whose activations dwarf their weights, so that the
  harness refuses a batch the machine cannot hold instead of being killed; default: None (not estimated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn


class Baseline(nn.Module):
    """Base class of the baselines (see the module docstring)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    supports_swap: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False
    output_range: ClassVar[tuple[float, float] | None] = None

    def __init__(self, frame_shape: tuple[int, int, int], cond_frames: int, train_horizon: int) -> None:
        super().__init__()
        if len(frame_shape) != 3:
            raise ValueError(f"baselines take frames (C, H, W), got {tuple(frame_shape)}")
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.cond_frames = int(cond_frames)
        self.train_horizon = int(train_horizon)

    # ------------------------------------------------------------------------------------------ required
    def forecast(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        raise NotImplementedError

    def training_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ optional
    def adversary_parameters(self) -> list[nn.Parameter]:
        return []

    def adversary_terms(self, cond: torch.Tensor, target: torch.Tensor, *, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no adversary")

    def forecast_samples(self, cond: torch.Tensor, horizon: int, samples: int) -> torch.Tensor:
        return self.forecast(cond, horizon).unsqueeze(0)

    def training_activation_bytes(self, batch: int) -> int | None:
        return None

    def encode_content(self, cond: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not separate content")

    def swap_forecast(self, cond: torch.Tensor, content_cond: torch.Tensor, horizon: int) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not separate content")

    # --------------------------------------------------------------------------------------------- checks
    def check_cond(self, cond: torch.Tensor) -> None:
        if cond.dim() != 5 or tuple(cond.shape[2:]) != self.frame_shape or cond.shape[1] != self.cond_frames:
            raise ValueError(f"{type(self).__name__} expects conditioning frames (B, {self.cond_frames}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(cond.shape)}")


def init_dcgan_(module: nn.Module) -> None:
    """The DCGAN initialisation that DrNet's, SVG's and DDPAE's official code share: conv and linear weights
    N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0; LSTMs keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    """Parameters counted once each (shared sub-modules included once), as published counts do."""
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------ checkpoint loading
def unwrap_checkpoint(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside an OpenSTL / thuml checkpoint, with leading ``model.`` / ``module.`` removed.

    Accepts a bare state dict, a Lightning ``.ckpt`` / pre-Lightning ``latest.pth`` dict (``'state_dict'``), or a
    thuml/predrnn-pytorch checkpoint (``'net_param'``).
    """
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a state dict or checkpoint dict, got {type(obj).__name__}")
    for wrapper in ("state_dict", "net_param"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        name = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in ("model.", "module."):
                if name.startswith(prefix):
                    name, changed = name[len(prefix):], True
        if name in out:
            raise ValueError(f"checkpoint key {key!r} collides with another key after prefix stripping")
        out[name] = value
    return out


def check_state_dict(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                     what: str) -> None:
    """Raise a ValueError naming every missing key, unexpected key and shape mismatch (none → return)."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k])}"
                  for k in sorted(set(expected) & set(state_dict))
                  if tuple(state_dict[k].shape) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches [{'; '.join(mismatched)}]")
    if problems:
        raise ValueError(f"the checkpoint does not fit {what}: " + "; ".join(problems))
