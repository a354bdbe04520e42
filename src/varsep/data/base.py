"""The contract between data sets, the model and training.

A data set is a collection of sequences of observations (frames C×H×W or vectors of m values). The model
sees *windows*: ``cond_frames + n`` consecutive observations of one sequence. Each data set provides

- a :class:`~varsep.spec.DataSpec` (observation shape, window lengths): it sets the networks' shapes;
- its training windows as a :class:`WindowSource` (drawn at random or taken in order);
- validation windows carved from the training part, and test windows for each horizon.

Windows are produced in batches by vectorised indexing, never by a Python loop over samples.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from varsep.config import DataConfig
from varsep.errors import DataError
from varsep.spec import DataSpec


class WindowSet(abc.ABC):
    """A fixed, indexable collection of windows of equal length."""

    length: int  # frames per window

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def take(self, indices: np.ndarray) -> np.ndarray:
        """Windows ``indices`` as a float32 array (n, length, *frame_shape)."""

    def describe(self, index: int) -> str:
        """Where window ``index`` comes from, for figures and error messages."""
        return f"window {index}"

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray | None:
        """The sequence (video, chair, zone …) each window comes from, or None where the set cannot tell.
        The content swap uses it to count partners from the same sequence."""
        return None

    def frame_ids(self, indices: np.ndarray, offsets: np.ndarray) -> np.ndarray | None:
        """An id (n, len(offsets)) for frame ``offsets`` of windows ``indices`` such that equal ids mean equal
        frames as :meth:`take` returns them, or None where the set cannot tell. Overlapping windows share
        frames; the scoring computes what depends on a target frame alone once per frame, not per window."""
        return None

    def swap_truth(self, content: np.ndarray, dynamic: np.ndarray) -> np.ndarray | None:
        """Ground truth (n, length, *frame) of content-swapped windows — the content of windows ``content``
        moving as windows ``dynamic`` — where the data can render it (Chairs), else None."""
        return None


class WindowSource(abc.ABC):
    """Training windows: either a finite :class:`WindowSet` or a generator of fresh windows."""

    length: int

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` windows chosen at random with ``rng`` (n, length, *frame_shape) float32."""

    @property
    def windows(self) -> WindowSet | None:
        """The finite set behind this source, if any (an epoch can then be a pass over it)."""
        return None


class SetSource(WindowSource):
    """Training windows drawn uniformly (with replacement) from a finite set, or taken in order."""

    def __init__(self, windows: WindowSet) -> None:
        self._windows = windows
        self.length = windows.length

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._windows.take(rng.integers(0, len(self._windows), size=n))

    @property
    def windows(self) -> WindowSet:
        return self._windows


class SequenceDataset(abc.ABC):
    """A data set: sequences split into train / validation / test, served as windows.

    Besides the abstract methods, every hook the evaluation may use is declared here with its default, so
    nothing is probed with ``hasattr``: override what your data set provides.
    """

    config_class: ClassVar[type[DataConfig]] = DataConfig
    default_encoder: str = "mlp"
    default_decoder: str = "mlp"
    # What the forecast is anchored on when model.anchor is auto (varsep.model.separable): "none" (the paper's
    # data sets), "last_residual" (your own data: the model's error on the last conditioning frame carried on).
    default_anchor: ClassVar[str] = "none"
    # One training epoch: "pass" = every training window once (shuffled), "draws" = batches_per_epoch
    # batches of random windows (the data set default used when batches_per_epoch is not set).
    default_batches_per_epoch: ClassVar[int | None] = None
    # The observation shape of the real data (C, H, W) or (m,), so configs can be checked and their models
    # built without the data files (tests/config/test_presets.py builds and trains every preset that way).
    nominal_frame_shape: ClassVar[tuple[int, ...]] = ()
    # Whether observations lie on [0, 1]: PSNR and SSIM then use data range 1 on the model's scale; other
    # data (SST's standardised values) are rescaled first (varsep.eval.scoring).
    unit_interval: bool = True
    # The paper's reported MSE scale, as a factor on the [0, 1] MSE (TaxiBJ's ×100·32·32·2), or None.
    paper_mse_factor: ClassVar[float | None] = None
    # Whether :meth:`paper_compatible` gives the official code's conversion to physical units (SST).
    reports_paper_compatible: ClassVar[bool] = False
    # Cells of the frame (its shape, True = valid) that hold the field; None: all of them. Invalid cells
    # (land in ocean data) are 0 in the windows served, and no loss or metric counts them.
    valid_mask: np.ndarray | None = None
    # What :meth:`climatology_forecast` forecasts, in words (for the report), or None where the data set has
    # no climatology: the evaluation then scores no climatology reference and never calls it.
    climatology_reference: str | None = None

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    @property
    def training_range(self) -> tuple[float, float] | None:
        """The interval the training values are scaled into, or None when they are not bounded (standardised
        data). A baseline whose frames come out of a sigmoid needs (0, 1) (varsep.train.runner). It differs
        from :attr:`unit_interval`, which decides how PSNR and SSIM are scored: SST scaled min–max per zone
        trains in [0, 1] but is still scored in °C."""
        return (0.0, 1.0) if self.unit_interval else None

    @property
    @abc.abstractmethod
    def spec(self) -> DataSpec: ...

    def make_spec(self, frame_shape: tuple[int, ...]) -> DataSpec:
        """The spec of observations of ``frame_shape`` with this config's window settings."""
        c = self.config
        return DataSpec(frame_shape=tuple(frame_shape), cond_frames=c.cond_frames, pred_frames=c.pred_frames,
                        time_stride=c.time_stride)

    def window_length(self, horizon: int) -> int:
        """Frames of an evaluation window: the conditioning window, then ``horizon`` frames (known from the
        config alone, before the data are read)."""
        return self.make_spec(()).window_length(horizon)

    def frames_needed(self, horizon: int | None) -> str:
        """Frames of a test window (``horizon``) or a training window (None), as error messages state it."""
        return str(self.spec.train_length if horizon is None else self.window_length(horizon))

    def require_windows(self, where: str, *, train_part: str, test_part: str) -> None:
        """Fail at opening, naming the frames needed, when no training or no test window fits the data."""
        horizon = max(self.config.test_horizons)
        if len(self.train_source().windows) == 0:
            raise DataError(f"{where}: no training window of {self.frames_needed(None)} frames fits in "
                            f"{train_part}")
        if len(self.test_windows(horizon)) == 0:
            raise DataError(f"{where}: no test window of {self.frames_needed(horizon)} frames fits in {test_part}")

    @abc.abstractmethod
    def train_source(self) -> WindowSource: ...

    @abc.abstractmethod
    def val_windows(self) -> WindowSet:
        """Windows of cond_frames + max(test_horizons) frames from the validation part of training data."""

    @abc.abstractmethod
    def test_windows(self, horizon: int) -> WindowSet:
        """Every test window of cond_frames + horizon frames."""

    def value_transform(self) -> dict | None:
        """How raw values (as in the data files) map to model values, for `varsep predict`: a plain mapping
        ``{"kind": "affine", "offset": [...], "scale": [...], "axis": -3}`` meaning model = (raw − offset) /
        scale per channel (axis of the channel in (..., *frame)), or None when the files hold model values
        already (or the map depends on more than the values, like SST's calendar)."""
        return None

    def test_motion(self) -> Any:
        """The trajectories and digits behind the test windows, for swap ground truths (Moving MNIST's
        :class:`~varsep.data.mmnist.motion.Motion`), or None."""
        return None

    def paper_compatible(self, pred: np.ndarray, target: np.ndarray, windows: WindowSet, indices: np.ndarray,
                         offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Forecast and target in physical units the way the official code converted them (only where
        :attr:`reports_paper_compatible`)."""
        raise NotImplementedError(f"{type(self).__name__} has no paper-compatible conversion")

    def climatology_forecast(self, windows: WindowSet, indices: np.ndarray, offset: int, k: int) -> np.ndarray:
        """The climatology forecast of frames ``offset`` … ``offset+k−1`` of windows ``indices``, (n, k, *frame)
        on the model's scale: each cell's climatological value for the frame's date — a reference any
        forecast should beat, known in advance (calendar, training statistics), never from the targets.
        Only called where :attr:`climatology_reference` is set."""
        raise NotImplementedError(f"{type(self).__name__} has no climatology (climatology_reference is None)")

    def physical(self, frames: np.ndarray, windows: WindowSet, indices: np.ndarray, offset: int) -> np.ndarray | None:
        """Frames in physical units (e.g. °C for SST), or None where the data have none.

        ``frames`` (n, k, *frame) are frames ``offset`` … ``offset+k−1`` (relative to the window start) of
        windows ``indices`` of ``windows`` — targets or forecasts alike. Only what is known at forecast time
        may be used (calendar, climatology, statistics of the training part), never the targets.
        """
        return None
