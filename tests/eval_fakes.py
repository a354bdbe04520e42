"""Fake models and data for the evaluation tests: forecasts whose right answer is known exactly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from varsep.data.base import WindowSet
from varsep.data.windows import ArrayWindows
from varsep.model.separable import Content
from varsep.spec import DataSpec


class FakeData:
    """The hooks of varsep.data.base.SequenceDataset the scoring reads, with their defaults; fakes override."""

    unit_interval = True
    paper_mse_factor = None
    reports_paper_compatible = False
    valid_mask = None
    climatology_reference = None

    def physical(self, frames, windows, indices, offset):
        return None

    def test_motion(self):
        return None


class FakeModel(nn.Module):
    """The parts of SeparableModel the evaluation uses; subclasses say what a forecast is."""

    stochastic = False

    def __init__(self, cond_frames: int = 5, *, content: bool = True, time_stride: int = 1) -> None:
        super().__init__()
        self.spec = DataSpec((), cond_frames, 0, time_stride)  # the window arithmetic the scoring uses
        self.cond_frames = cond_frames
        self.time_stride = time_stride
        self.uses_content = content
        self.swappable = content
        self.calls: list[tuple[int, bool]] = []  # (batch, swapped) of every forecast call

    @property
    def cond_span(self) -> int:
        return self.spec.cond_span

    def split_window(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spec.split(frames)

    def encode(self, cond: torch.Tensor) -> tuple[Content | None, torch.Tensor]:
        assert cond.shape[1] == self.cond_frames
        code = Content(self.content_code(cond)) if self.uses_content else None
        return code, cond[:, -1]

    def content_code(self, cond: torch.Tensor) -> torch.Tensor:
        return cond.flatten(1).mean(1, keepdim=True)

    def encode_content(self, cond: torch.Tensor) -> Content | None:
        return self.encode(cond)[0]

    def forecast_with_swap(self, cond: torch.Tensor, content_cond: torch.Tensor,
                           horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forecast(cond, horizon), self.forecast(cond, horizon, content=self.encode(content_cond)[0])

    def forecast(self, cond: torch.Tensor, horizon: int, *, content: Content | None = None) -> torch.Tensor:
        assert cond.shape[1] == self.cond_frames
        self.calls.append((len(cond), content is not None))
        return self.predict(cond, horizon, content)

    def predict(self, cond: torch.Tensor, horizon: int, content: Content | None) -> torch.Tensor:
        raise NotImplementedError


class LinearOracle(FakeModel):
    """Extrapolates the last two conditioning frames linearly, plus ``bias``: exact on linear ramps."""

    def __init__(self, bias: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bias = bias

    def predict(self, cond, horizon, content):
        last, prev = cond[:, -1:], cond[:, -2:-1]
        k = torch.arange(1, horizon + 1, dtype=cond.dtype).view(1, -1, *([1] * (cond.dim() - 2)))
        return last + k * (last - prev) / self.time_stride + self.bias


def ramps(n: int = 4, length: int = 30, shape: tuple[int, ...] = (1, 16, 16), slope: float = 0.01,
          seed: int = 0) -> np.ndarray:
    """Sequences whose frame t is a fixed random image (values in [0.1, 0.3]) plus slope·t."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.3, size=(n, 1, *shape))
    t = np.arange(length).reshape(1, length, *([1] * len(shape)))
    return (base + slope * t).astype(np.float32)


def ramp_windows(horizon: int, cond: int = 5, **kwargs) -> ArrayWindows:
    return ArrayWindows(ramps(**kwargs), cond + horizon)


class LookupOracle(FakeModel):
    """Knows the test windows: identifies a window by its first frame, and renders a swap with ``render``.

    ``render(content_windows, dynamic_windows)`` returns the frames (n, length, *frame) a perfect swap
    shows; the forecast is their part after the conditioning window.
    """

    def __init__(self, windows: WindowSet, render: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 **kwargs) -> None:
        super().__init__(**kwargs)
        firsts = windows.take(np.arange(len(windows)))[:, 0]
        self.index = {f.tobytes(): i for i, f in reversed(list(enumerate(firsts)))}
        self.render = render

    def ids(self, cond: torch.Tensor) -> np.ndarray:
        return np.array([self.index[f.numpy().tobytes()] for f in cond[:, 0].float()])

    def content_code(self, cond):
        return torch.from_numpy(self.ids(cond)).float()[:, None]

    def predict(self, cond, horizon, content):
        dynamic = self.ids(cond)
        source = dynamic if content is None else content.code[:, 0].long().numpy()
        frames = self.render(source, dynamic)
        return torch.from_numpy(np.ascontiguousarray(frames[:, self.cond_span:self.cond_span + horizon]))
