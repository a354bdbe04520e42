"""A trained model: ``varsep.load(run_dir)`` → a :class:`Forecaster` (the one type every command and the
Python API use for a trained run: evaluation, prediction, reports).

    >>> import varsep
    >>> model = varsep.load("runs/waveeq")            # best checkpoint of a run folder (or a .ckpt path)
    >>> future = model.forecast(cond, horizon=40)      # cond: (B, τ+1, *frame) or (τ+1, *frame)
    >>> halfway = model.forecast(cond, times=[0.5, 1, 1.5], method="dopri5")
    >>> S, T0 = model.encode(cond)
    >>> frames = model.decode(S, T)                    # T: (B, n, p) codes → (B, n, *frame)

Inputs may be NumPy arrays or tensors and come back as the same kind. Values are in the model's space
(what the data set feeds the model); :meth:`Forecaster.to_model` / :meth:`Forecaster.from_model` convert
raw values when the run recorded a value transform (see ``varsep predict``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from varsep.config import RunConfig, config_from_dict
from varsep.errors import CheckpointError, VarsepError
from varsep.model import Content, SeparableModel, build_model
from varsep.precision import Precision, resolve_precision
from varsep.runs import find_checkpoint
from varsep.spec import DataSpec
from varsep.storage import safe_torch_load


class Forecaster:
    """A trained separable model with its config, data spec and provenance; forecasts run with input
    checks, in evaluation mode, without gradients.

    ``model`` is the :class:`~varsep.model.SeparableModel` (an ``nn.Module``); ``checkpoint`` and ``step``
    say which weights these are; ``transform`` maps raw values to the model's (see ``to_model``).
    """

    def __init__(self, model: SeparableModel, config: RunConfig, spec: DataSpec, *, checkpoint: Path | None = None,
                 step: int = 0, transform: dict[str, Any] | None = None,
                 precision: str | Precision = "auto") -> None:
        self.model = model.eval()
        self.config = config
        self.spec = spec
        self.checkpoint = checkpoint
        self.step = step
        self.transform = transform  # raw ↔ model values (see SequenceDataset.value_transform)
        self._precision = precision

    @property
    def precision(self) -> Precision:
        """The arithmetic forecasts run in (resolved on first use; see :mod:`varsep.precision`)."""
        if not isinstance(self._precision, Precision):
            device = next(self.model.parameters()).device
            self._precision = resolve_precision(self._precision, device)
        return self._precision

    @property
    def cond_frames(self) -> int:
        """How many observations the model conditions on (τ+1)."""
        return self.spec.cond_frames

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.spec.frame_shape)

    @property
    def valid_mask(self) -> np.ndarray | None:
        """Cells the model forecasts (the frame's shape, True = valid; land is False), or None for all."""
        mask = getattr(self.model, "valid_mask", None)  # baselines have none
        return None if mask is None else mask.cpu().numpy()

    # ------------------------------------------------------------------------------------------ public
    def forecast(self, cond: Any, horizon: int | None = None, *, times: Sequence[float] | Any = None,
                 method: str = "residual", **solver: Any) -> Any:
        """Frames after the conditioning window: ``horizon`` frames, or frames at ``times`` (see
        :meth:`varsep.model.SeparableForecaster.forecast`). (B, n, *frame), or (n, *frame) for one window."""
        window, single, as_numpy, bare = self._window(cond)
        if horizon is not None and horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        with torch.no_grad(), self.precision.autocast(window.device):
            out = self.model.forecast(window, horizon, times=None if times is None else torch.as_tensor(times),
                                      method=method, **solver)
        out = out.float()
        return self._out(out[:, :, 0] if bare else out, single, as_numpy)

    def encode(self, cond: Any) -> tuple[Content | None, Any]:
        """(S, T_t0) of conditioning windows; S is a :class:`Content` (code and skip maps) or None."""
        window, single, as_numpy, _ = self._window(cond)
        with torch.no_grad():
            content, t0 = self.model.encode(window)
        return content, self._out(t0, single, as_numpy)

    def decode(self, content: Content | None, codes: Any) -> Any:
        """D(S, T): frames (B, n, *frame) from S and codes T (B, n, …). An anchored model's forecast adds
        ``model.anchor_frame(cond)`` to these (``config.model.anchor``, docs/model.md; :meth:`forecast` does):
        the model's error on the last conditioning frame (``last_residual``, your own data by default), or
        the last frame itself, D then rendering departures from it (``last_frame``)."""
        as_numpy = isinstance(codes, np.ndarray)
        codes = torch.as_tensor(codes, dtype=torch.float32)
        with torch.no_grad():
            out = self.model.decode(content, codes)
        return out.numpy() if as_numpy else out

    def to_model(self, values: np.ndarray) -> np.ndarray:
        """Raw values (as in the data files) → the model's value space."""
        return apply_transform(self.transform, values, inverse=False)

    def from_model(self, values: np.ndarray) -> np.ndarray:
        """Model values → raw values (as in the data files)."""
        return apply_transform(self.transform, values, inverse=True)

    # ---------------------------------------------------------------------------------------- checks
    def _window(self, cond: Any) -> tuple[torch.Tensor, bool, bool, bool]:
        """(B, span, *frame) conditioning frames, whether one window was given, whether as NumPy, and whether
        one-channel frames came without their channel axis ((τ+1, H, W), as `varsep predict` accepts them;
        forecasts then come back without it too)."""
        as_numpy = isinstance(cond, np.ndarray)
        x = torch.as_tensor(np.asarray(cond) if not isinstance(cond, torch.Tensor) else cond)
        x = x.float()
        frame = self.frame_shape
        bare = (len(frame) == 3 and frame[0] == 1 and tuple(x.shape[-2:]) == frame[1:] and x.dim() in (3, 4)
                and (x.dim() == 3 or x.shape[-3] != 1))
        if bare:
            x = x.unsqueeze(-3)
        if tuple(x.shape[-len(frame):]) != frame or x.dim() not in (len(frame) + 1, len(frame) + 2):
            raise ValueError(f"expected conditioning frames of shape (B, {self.cond_frames}, "
                             f"{', '.join(map(str, frame))}) or ({self.cond_frames}, {', '.join(map(str, frame))}),"
                             f" got {tuple(x.shape)}")
        single = x.dim() == len(frame) + 1
        if single:
            x = x.unsqueeze(0)
        span = self.model.cond_span
        if x.shape[1] < span:
            raise ValueError(f"the model conditions on {self.cond_frames} frames (spanning {span}), got "
                             f"{x.shape[1]}")
        mask = getattr(self.model, "valid_mask", None)
        if mask is not None:  # masked cells (land) may hold anything, NaN included: the model ignores them
            x = x.masked_fill(~mask.to(x.device), 0)
        if not torch.isfinite(x).all():
            bad = torch.nonzero(~torch.isfinite(x.flatten(2)).all(-1))[0].tolist()
            raise ValueError(f"the conditioning frames hold NaN or Inf (sequence {bad[0]}, frame {bad[1]})")
        x = x[:, x.shape[1] - span:][:, ::self.model.time_stride]  # the last conditioning window
        return x, single, as_numpy, bare

    @staticmethod
    def _out(x: torch.Tensor, single: bool, as_numpy: bool) -> Any:
        x = x[0] if single else x
        return x.numpy() if as_numpy else x


def apply_transform(transform: dict[str, Any] | None, values: np.ndarray, *, inverse: bool) -> np.ndarray:
    """Per-channel affine maps model = (raw − offset) / scale (and back); None is the identity.

    ``values`` is (..., *frame): the channel axis is the first axis of the frame (axis −3 for frames
    (C, H, W), the last axis for vectors, whose "channels" are their entries). ``axis: "frame"``: offset
    and scale are arrays of the frame's shape (per-cell normalisation, ``data.normalization: per_pixel``).
    """
    if transform is None:
        return values
    if transform.get("kind") != "affine":
        raise ValueError(f"unknown value transform {transform.get('kind')!r}")
    offset = np.asarray(transform["offset"], dtype=np.float64)
    scale = np.asarray(transform["scale"], dtype=np.float64)
    axis = transform.get("axis", -3)
    if axis != "frame":
        shape = [1] * values.ndim
        if offset.size > 1:
            shape[axis] = offset.size
        offset, scale = offset.reshape(shape), scale.reshape(shape)
    out = values * scale + offset if inverse else (values - offset) / scale
    return out.astype(np.float32)


def load_checkpoint(path: str | Path, *, precision: str | Precision = "auto") -> Forecaster:
    """Rebuild the model stored in a checkpoint (weights-only load; config and spec come from the file)."""
    path = Path(path)
    ckpt = safe_torch_load(path)
    try:
        hp = ckpt["hyper_parameters"]
        config = config_from_dict(hp["config"])
        spec = DataSpec.from_dict(hp["spec"])
        model = build_model(config.model, spec, default_encoder=hp.get("default_encoder", "mlp"),
                            default_decoder=hp.get("default_decoder", "mlp"))
        weights = {key[len("model."):]: value for key, value in ckpt["state_dict"].items()
                   if key.startswith("model.")}
        if "valid_mask" in weights and isinstance(model, SeparableModel):
            model.set_mask(weights["valid_mask"])
        transform = hp.get("transform")
        if transform is not None:  # arrays are kept in the state (varsep.train.task); fetch them
            transform = {k: ckpt["state_dict"][v[len("state:"):]].numpy()
                         if isinstance(v, str) and v.startswith("state:") else v for k, v in transform.items()}
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a varsep checkpoint (missing {err})") from None
    except VarsepError as err:
        raise CheckpointError(f"{path} holds a config this version cannot build: {err}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model its config describes: "
                              f"{str(err).splitlines()[0]}") from None
    return Forecaster(model, config, spec, checkpoint=path, step=int(ckpt.get("global_step", 0)),
                      transform=transform, precision=precision)


def load(run_dir_or_checkpoint: str | Path, which: str = "best", *, precision: str | Precision = "auto") -> Forecaster:
    """Load a trained model from a run folder (``best`` or ``last`` checkpoint) or a ``.ckpt`` file.

    ``precision``: "auto" (bf16 autocast where the hardware runs it natively and faster), "32" or "bf16"."""
    path = Path(run_dir_or_checkpoint)
    checkpoint = path if path.is_file() else find_checkpoint(path, which)
    loaded = load_checkpoint(checkpoint, precision=precision)
    if which == "best" and not path.is_file() and checkpoint.name != "best.ckpt":
        # said, not silent: these weights were never chosen by a validation score
        warnings.warn(f"{path} has no best.ckpt (no validation ran yet): using {checkpoint.name}, the weights of "
                      f"step {loaded.step}", stacklevel=2)
    return loaded
