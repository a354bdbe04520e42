"""WaveEq and WaveEq-100 (paper Appendix D.1; docs/data/waveeq.md): reading the generated folder.

The folder is written by :func:`varsep.datagen.waveeq.generate` (``varsep generate waveeq``):
  frames.npy   float32 (N, 150, 64, 64), each sequence min-max normalised to [0, 1]; memory-mappable
  sensors.npy  int64 (100, 2): the (row, col) pixels observed by WaveEq-100, drawn with replacement
  meta.json    format/version, seed, dt, num_train, per-sequence c, f0 and raw min/max

Splits by sequence: the first ``num_train`` (240 of 300) train — their last ``val_sequences`` (24) held out
for validation — and the rest test. Training windows: every window of ``cond_frames + pred_frames`` frames of
a training sequence, drawn at random; test: every window of the conditioning frames + h of a test sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varsep.config.datasets import WaveEqConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.windows import ArrayWindows, check_finite
from varsep.errors import DataError
from varsep.spec import DataSpec

GRID = 64  # frames are GRID × GRID pixels
NUM_SENSORS = 100  # WaveEq-100 observes this many pixels
FORMAT = "varsep-waveeq"  # meta.json "format" of a generated folder
FORMAT_VERSION = 1


@dataclass
class WaveEqFiles:
    """A generated WaveEq folder, opened (frames memory-mapped) and checked."""

    root: Path
    frames: np.ndarray  # (N, 150, 64, 64) float32, memory-mapped
    sensors: np.ndarray  # (100, 2)
    meta: dict

    @classmethod
    def open(cls, root: str | Path | None) -> WaveEqFiles:
        hint = "generate it with: varsep generate waveeq --out DIR (then set data.root: DIR)"
        if root is None:
            raise DataError(f"data.root is not set for WaveEq; {hint}")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"WaveEq data folder {root} does not exist; {hint.replace('DIR', str(root))}")
        missing = [n for n in ("frames.npy", "meta.json", "sensors.npy") if not (root / n).is_file()]
        if missing:
            raise DataError(f"{root} is not a WaveEq data folder (missing {', '.join(missing)}); "
                            f"{hint.replace('DIR', str(root))} --overwrite")
        try:
            meta = json.loads((root / "meta.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{root / 'meta.json'} is corrupt ({err}); regenerate the data set") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{root / 'meta.json'} does not describe a WaveEq data set (format {meta.get('format')!r})")
        try:
            frames = np.load(root / "frames.npy", mmap_mode="r")
            sensors = np.load(root / "sensors.npy")
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{root / 'frames.npy'} or sensors.npy is truncated or corrupt ({err}); "
                            f"regenerate the data set") from None
        if frames.ndim != 4 or frames.shape[2:] != (GRID, GRID) or frames.dtype != np.float32:
            raise DataError(f"{root / 'frames.npy'} must hold float32 frames (N, T, 64, 64), "
                            f"got {frames.dtype} {frames.shape}")
        if sensors.shape != (NUM_SENSORS, 2) or sensors.min() < 0 or sensors.max() >= GRID:
            raise DataError(f"{root / 'sensors.npy'} must hold {NUM_SENSORS} (row, col) pixels in [0, 64), "
                            f"got shape {sensors.shape}")
        check_finite(frames, str(root / "frames.npy"))
        return cls(root=root, frames=frames, sensors=sensors, meta=meta)


class WaveEqDataset(SequenceDataset):
    """64×64 frames of the wave equation; train on random 25-frame chunks, test on every 45-frame chunk."""

    config_class = WaveEqConfig
    default_encoder = "mlp"
    default_decoder = "mlp"
    default_batches_per_epoch = 75  # the official code's epoch (docs/model.md, departures); 250 epochs = 18 750 steps
    nominal_frame_shape = (1, GRID, GRID)

    def __init__(self, config: WaveEqConfig) -> None:
        super().__init__(config)
        self.files = WaveEqFiles.open(config.root)
        self.observations = self._observations()
        n = len(self.observations)
        num_train = int(self.files.meta.get("num_train", round(0.8 * n)))
        if config.val_sequences >= num_train:
            raise DataError(f"data.val_sequences ({config.val_sequences}) must be smaller than the "
                            f"{num_train} training sequences of {self.files.root}")
        self.train_ids = np.arange(num_train - config.val_sequences)
        self.val_ids = np.arange(num_train - config.val_sequences, num_train)
        self.test_ids = np.arange(num_train, n)
        longest = self.window_length(max(config.test_horizons))
        if max(self.spec.train_length, longest) > self.observations.shape[1]:
            raise DataError(f"windows of {max(self.spec.train_length, longest)} frames do not fit in the "
                            f"{self.observations.shape[1]}-frame sequences of {self.files.root}")

    def _observations(self) -> np.ndarray:
        return self.files.frames[:, :, None]  # (N, T, 1, 64, 64): one channel

    @property
    def spec(self) -> DataSpec:
        return self.make_spec(tuple(self.observations.shape[2:]))

    def train_source(self) -> WindowSource:
        return SetSource(ArrayWindows(self.observations, self.spec.train_length, sequences=self.train_ids))

    def val_windows(self) -> WindowSet:
        length = self.window_length(max(self.config.test_horizons))
        return ArrayWindows(self.observations, length, sequences=self.val_ids, stride=self.config.val_stride)

    def test_windows(self, horizon: int) -> WindowSet:
        return ArrayWindows(self.observations, self.window_length(horizon), sequences=self.test_ids,
                            stride=self.config.test_stride)


class WaveEq100Dataset(WaveEqDataset):
    """WaveEq observed through 100 fixed pixels: each observation is a vector of 100 values."""

    nominal_frame_shape = (NUM_SENSORS,)

    def _observations(self) -> np.ndarray:
        rows, cols = self.files.sensors[:, 0], self.files.sensors[:, 1]
        return np.ascontiguousarray(self.files.frames[:, :, rows, cols])  # (N, T, 100)
