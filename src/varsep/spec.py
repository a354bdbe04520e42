"""What the model must know about the data, and every window calculation in one place.

A *window* is a run of consecutive observations of one sequence. With frames observed every
``time_stride`` frames (1 by default; see docs/model.md, "Continuous time"), a window of ``n`` observed
frames spans ``(n − 1)·time_stride + 1`` frames of the sequence. Three lengths follow from the spec:

- the conditioning window: ``cond_frames`` (τ+1) observations spanning :attr:`DataSpec.cond_span` frames;
- a training window: ``cond_frames + pred_frames`` (ν+1) observations, :attr:`DataSpec.train_length` frames;
- an evaluation window for horizon h: the conditioning window, then the h frames after it,
  :meth:`DataSpec.window_length` = ``cond_span + h`` frames, split by :meth:`DataSpec.split`.

Nothing else in varsep computes these: data sets, the model, the losses and the scoring all ask the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataSpec:
    """One observation's shape and the window lengths; it sets the networks' shapes."""

    frame_shape: tuple[int, ...]  # (C, H, W) for frames, (m,) for vectors of sensor values
    cond_frames: int  # τ+1
    pred_frames: int  # frames predicted after the conditioning window in training (ν−τ)
    time_stride: int = 1  # frames are observed every time_stride frames (training on subsampled sequences)

    @property
    def is_vector(self) -> bool:
        return len(self.frame_shape) == 1

    @property
    def channels(self) -> int:
        return self.frame_shape[0]

    @property
    def frame_size(self) -> int:
        return math.prod(self.frame_shape)

    @property
    def observed_length(self) -> int:
        """ν+1: the observed frames of a training window."""
        return self.cond_frames + self.pred_frames

    @property
    def train_length(self) -> int:
        """The frames a training window spans (its observed frames are every time_stride-th of them)."""
        return (self.observed_length - 1) * self.time_stride + 1

    @property
    def cond_span(self) -> int:
        """The frames the conditioning window spans."""
        return (self.cond_frames - 1) * self.time_stride + 1

    @property
    def last_cond_time(self) -> int:
        """The time of the last conditioning frame, in frames from the window's first frame."""
        return (self.cond_frames - 1) * self.time_stride

    def window_length(self, horizon: int) -> int:
        """Frames of an evaluation window: the conditioning window, then ``horizon`` frames."""
        return self.cond_span + horizon

    def split(self, frames: Any) -> tuple[Any, Any]:
        """An evaluation window (B, cond_span + h, *frame) → (the observed conditioning frames, the h frames
        after them). Works on tensors and arrays alike."""
        return frames[:, :self.cond_span:self.time_stride], frames[:, self.cond_span:]

    def ae_choices(self, first_index: int) -> int:
        """How many window offsets i the auto-encoding loss can draw from (see :func:`ae_choices`)."""
        return ae_choices(self.observed_length, self.cond_frames, first_index)

    def forecast_targets(self, first_index: int) -> int:
        """Frames of a training window the forecast is compared with: those from ``first_index`` on."""
        return self.observed_length - first_index

    def to_dict(self) -> dict[str, Any]:
        return {"frame_shape": list(self.frame_shape), "cond_frames": self.cond_frames,
                "pred_frames": self.pred_frames, "time_stride": self.time_stride}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSpec:
        return cls(frame_shape=tuple(int(s) for s in values["frame_shape"]), cond_frames=int(values["cond_frames"]),
                   pred_frames=int(values["pred_frames"]), time_stride=int(values.get("time_stride", 1)))


def ae_choices(observed_length: int, cond_frames: int, first_index: int) -> int:
    """How many window offsets i the auto-encoding loss can draw from (i = 0 … choices−1).

    The window V_τ(t0+i) of ``cond_frames`` observations must fit in the training window of
    ``observed_length`` observations, and the frame its code stands for (i + first_index) must be one of
    the window's frames.
    """
    return max(1, min(observed_length - cond_frames, observed_length - 1 - first_index) + 1)
