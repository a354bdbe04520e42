"""Your own data: train on arrays, NetCDF/Zarr variables or folders of images with a config and no code.

```yaml
data:
  kind: netcdf           # array | netcdf | zarr | frames  (then data.name defaults to custom)
  path: my_runs.nc       # relative paths are read from data.root, else from the current directory
  variable: temperature  # NetCDF/Zarr variable, or the array's key in a .npz file
```

Reading (varsep.data.custom.read): ``.npy`` files are memory-mapped; ``.npz``, NetCDF and Zarr are loaded
into memory; images are kept as uint8 and read as [0, 1]. Observations are frames (C, H, W) — (H, W) gets
one channel — or vectors (m,).

Splits (varsep.data.custom.split): with several sequences, by sequence (last 10 % test, last 10 % of the
rest validation, in order or shuffled with ``split_seed``); with one long series, by time with a gap of one
window between parts. ``split: time`` cuts every sequence by time instead. Validation is always carved
from the training data, never from the test part.

Windows: training windows are every window of ``cond_frames + pred_frames`` frames of the training part
(an epoch is one shuffled pass over them unless ``batches_per_epoch`` is set); validation and test windows
of ``cond_frames + h`` frames start every ``val_stride`` / ``test_stride`` frames. No window crosses a
sequence or part boundary.

Values (varsep.data.custom.norm): normalised per channel with statistics of the training part only;
:meth:`CustomDataset.physical` gives them back in the data's units. NaN/Inf are an error naming the
sequence and time index unless ``fill_nan`` is set. ``resize: [H, W]`` resizes frames: images with a
Lanczos filter as they are read; arrays as windows are taken, by area averaging when
shrinking and bilinear interpolation otherwise.

Networks: vectors → ``mlp``, 64×64 frames → ``dcgan``, 32×32 frames → ``vgg32``, unless ``model.encoder``
/ ``model.decoder`` are set; other frame sizes need one of those or ``data.resize``: their
``default_encoder`` raises a ConfigError saying so, asked for only when the config names no family.

Choices where the specification is silent: statistics are fitted on the training part *without* the
validation part (validation then measures what a new sequence would see); ``standard`` is the default
(it trains much faster than ``minmax`` on smooth fields, see the docs; ``model.final_activation: auto``
then drops the decoder's sigmoid, which ``minmax`` data keep); the gap
of a time split is one evaluation window; every validation and test window is kept (strides 1).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from varsep.config.datasets import CUSTOM_KINDS as KINDS
from varsep.config.datasets import CustomConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.custom.norm import Normalization, channel_statistics, first_nonfinite
from varsep.data.custom.read import DataDescription, RawData, guess_kind, read
from varsep.data.custom.split import split_sequences, split_time
from varsep.data.windows import SpanWindows
from varsep.errors import ConfigError, DataError
from varsep.spec import DataSpec

DEFAULT_FAMILIES = {"vectors": "mlp", (64, 64): "dcgan", (32, 32): "vgg32"}


class CustomWindows(WindowSet):
    """Windows over row ranges of the data, normalised (and resized) as they are taken."""

    def __init__(self, data: RawData, bounds: list[tuple[int, int]], length: int, stride: int,
                 transform) -> None:
        self.spans = SpanWindows.over_segments(data.rows, bounds, length, stride=stride,
                                               scale=data.raw_scale)
        self.description = data.description
        self.length = length
        self._transform = transform

    def __len__(self) -> int:
        return len(self.spans)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self._transform(self.spans.take(indices))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """(n, length) rows of the data behind windows ``indices`` (see DataDescription.locate)."""
        return self.spans.start[np.asarray(indices, dtype=np.int64)][:, None] + np.arange(self.length)

    def describe(self, index: int) -> str:
        seq, t = (int(v) for v in self.description.locate(int(self.spans.start[index])))
        text = f"{self.description.sequence_names[seq]}, frames {t}–{t + self.length - 1}"
        first = self.description.time_label(seq, t)
        last = self.description.time_label(seq, t + self.length - 1)
        return f"{text} ({first} … {last})" if first is not None and last is not None else text


class CustomDataset(SequenceDataset):
    """Sequences from your own files: see the module docstring and docs/data/custom.md."""

    config_class = CustomConfig
    default_batches_per_epoch = None  # an epoch is one pass over every training window
    nominal_frame_shape = ()  # unknown until the file is read

    def __init__(self, config: CustomConfig) -> None:
        super().__init__(config)
        path = self._path(config)
        if not path.exists():
            expected = KINDS[config.kind] if config.kind else "; ".join(KINDS.values())
            raise DataError(f"data.path {path} does not exist; expected a {expected}")
        kind = config.kind or guess_kind(path)
        if kind is None:
            raise DataError(f"cannot tell the kind of {path}; set data.kind to one of "
                            + "; ".join(f"{k} ({v})" for k, v in KINDS.items()))
        if config.channels is not None and kind != "frames":
            raise ConfigError(f"data.channels applies to kind frames (images), not {kind}")
        self.kind = kind
        resize = tuple(config.resize) if config.resize else None
        self.data = read(kind, path, variable=config.variable, time_dim=config.time_dim,
                         sequence_dim=config.sequence_dim, channel_dim=config.channel_dim,
                         channels=config.channels, resize=resize)
        self.description: DataDescription = self.data.description
        stored = self.description.frame_shape
        if resize is not None and len(stored) == 1:
            raise ConfigError(f"data.resize applies to frames; {self._source()} holds vectors of {stored[0]}")
        self.frame_shape = stored if resize is None else (stored[0], *resize)
        self._resize = resize is not None and kind != "frames" and resize != stored[1:]
        self.description.resized = self.description.resized or self._resize
        self.normalization: Normalization | None = None
        self._check_lengths()
        self._check_finite()
        self._split()
        stats = channel_statistics(self.data.rows, self.parts["train"], vector=self.spec.is_vector,
                                   per_channel=config.per_channel, raw_scale=self.data.raw_scale)
        try:
            self.normalization = Normalization.fit(config.normalization, stats, vector=self.spec.is_vector,
                                                   fill=config.fill_nan)
        except DataError as err:
            raise DataError(f"{self._source()}: {err}") from None
        self.description.normalization = self.normalization
        # Model values span [0, 1] with min-max scaling (on the training part), and for images read as is.
        self.unit_interval = config.normalization == "minmax" or (config.normalization == "none"
                                                                    and kind == "frames")
        self._family = self._default_family()

    # --------------------------------------------------------------------------------------- reading
    @staticmethod
    def _path(config: CustomConfig) -> Path:
        if config.path is None:
            raise DataError("data.path is not set; point it at your data: a .npy/.npz array, a NetCDF "
                            "file, a Zarr store or a folder of images (see docs/data/custom.md)")
        path = Path(config.path).expanduser()
        if not path.is_absolute() and config.root is not None:
            path = Path(config.root).expanduser() / path
        return path

    def _source(self) -> str:
        d = self.description
        return f"{d.source}" + (f" (variable {d.variable!r})" if d.variable and d.kind != "frames" else "")

    def _where(self, row: int) -> str:
        d = self.description
        seq, t = (int(v) for v in d.locate(row))
        label = d.time_label(seq, t)
        place = f"time index {t}" + (f" ({label})" if label is not None else "")
        return f"{d.sequence_names[seq]}, {place}" if d.num_sequences > 1 else place

    def frames_needed(self, horizon: int | None) -> str:
        """How many frames a test window (``horizon``) or a training window (None) needs, with the sum."""
        c = self.config
        cond = "cond_frames" if c.time_stride == 1 else "(cond_frames − 1)·time_stride + 1"
        cond_len = self.spec.cond_span
        if horizon is None:
            more = self.spec.train_length - cond_len
            return f"{cond} + pred_frames = {cond_len} + {more} = {self.spec.train_length}"
        return f"{cond} + max(test_horizons) = {cond_len} + {horizon} = {self.window_length(horizon)}"

    def _check_lengths(self) -> None:
        d, horizon = self.description, max(self.config.test_horizons)
        longest = int(d.lengths.max())
        held = "the series holds" if d.num_sequences == 1 else "the longest sequence holds"
        for what, length, needs in (("a test window", self.window_length(horizon), self.frames_needed(horizon)),
                                    ("a training window", self.spec.train_length, self.frames_needed(None))):
            if longest < length:
                raise DataError(f"{self._source()}: {held} {longest} frames, fewer than {what} needs: "
                                f"{needs}")

    def _check_finite(self) -> None:
        if self.config.fill_nan is not None:
            return
        row = first_nonfinite(self.data.rows)
        if row is not None:
            raise DataError(f"{self._source()} holds NaN or Inf at {self._where(row)}; clean the data, "
                            f"or set data.fill_nan to a value (in the data's units) or to 'mean' to replace "
                            f"them")

    # ---------------------------------------------------------------------------------------- splits
    def _split(self) -> None:
        c, d = self.config, self.description
        by = c.split if c.split != "auto" else ("sequence" if d.num_sequences > 1 else "time")
        if by == "sequence" and d.num_sequences < 2:
            raise DataError(f"{self._source()} holds one sequence; it cannot be split by sequence "
                            f"(use data.split: time)")
        self.split_by = by
        self.eval_length = self.window_length(max(c.test_horizons))
        if by == "sequence":
            self._split_sequences()
        else:
            self._split_time()
        self.require_windows(self._source(), train_part="any training sequence", test_part="any test sequence")
        if self.parts["val"] and len(self.val_windows()) == 0:
            warnings.warn(f"{self._source()}: the validation sequences are shorter than a validation window "
                          f"({self.eval_length} frames); training runs without validation", stacklevel=3)

    def _split_sequences(self) -> None:
        c, d = self.config, self.description
        if c.test_sequences is not None:
            bad = [i for i in c.test_sequences if not 0 <= i < d.num_sequences]
            if bad:
                raise ConfigError(f"data.test_sequences {bad} are not sequences of {self._source()} "
                                  f"(0 … {d.num_sequences - 1})")
        split = split_sequences(d.num_sequences, test_fraction=c.test_fraction,
                                val_fraction=c.val_fraction, shuffle=c.shuffle, seed=c.split_seed,
                                test_sequences=c.test_sequences)
        if len(split.train) == 0:
            raise DataError(f"{self._source()}: no sequence is left for training out of {d.num_sequences}; "
                            f"lower data.test_fraction / data.val_fraction")
        self.sequence_split = split
        bounds = self.data.bounds
        self.parts = {part: [bounds[i] for i in getattr(split, part)] for part in ("train", "val", "test")}

    def _split_time(self) -> None:
        c, d = self.config, self.description
        gap = c.gap if c.gap is not None else self.eval_length
        self.parts = {"train": [], "val": [], "test": []}
        self.time_splits = []
        for s, (lo, _) in enumerate(self.data.bounds):
            cut = split_time(int(d.lengths[s]), test_fraction=c.test_fraction, val_fraction=c.val_fraction,
                             gap=gap, min_test=self.eval_length, min_val=self.eval_length)
            n_train = cut.train[1]
            if n_train < self.spec.train_length:
                n_val, n_test = cut.val[1] - cut.val[0], cut.test[1] - cut.test[0]
                name = "the series" if d.num_sequences == 1 else d.sequence_names[s]
                raise DataError(
                    f"{self._source()}: {name} holds {cut.length} frames; after the test part ({n_test}), "
                    f"the validation part ({n_val}) and gaps of {gap} frames, {n_train} remain for training, "
                    f"fewer than a training window of {self.frames_needed(None)}. Lower data.test_fraction, "
                    f"data.val_fraction or data.gap, or use shorter windows")
            self.time_splits.append(cut)
            for part in ("train", "val", "test"):
                a, b = getattr(cut, part)
                if b > a:
                    self.parts[part].append((lo + a, lo + b))

    # --------------------------------------------------------------------------------------- windows
    @property
    def spec(self) -> DataSpec:
        return self.make_spec(tuple(self.frame_shape))

    def _transform(self, x: np.ndarray) -> np.ndarray:
        if self.normalization is not None:
            self.normalization.apply(x, len(self.description.frame_shape))
        if self._resize and len(x):
            n, length = x.shape[:2]
            size = tuple(self.config.resize)
            flat = torch.from_numpy(x).flatten(0, 1)
            if all(a <= b for a, b in zip(size, flat.shape[2:], strict=True)):  # shrink: average the area
                out = F.interpolate(flat, size=size, mode="area")
            else:
                out = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
            x = out.reshape(n, length, *self.frame_shape).numpy()
        return x

    def _windows(self, part: str, length: int, stride: int = 1) -> CustomWindows:
        return CustomWindows(self.data, self.parts[part], length, stride, self._transform)

    def train_source(self) -> WindowSource:
        return SetSource(self._windows("train", self.spec.train_length))

    def val_windows(self) -> WindowSet:
        return self._windows("val", self.eval_length, self.config.val_stride)

    def test_windows(self, horizon: int) -> WindowSet:
        return self._windows("test", self.window_length(horizon), self.config.test_stride)

    def physical(self, frames: np.ndarray, windows: WindowSet, indices: np.ndarray,
                 offset: int) -> np.ndarray:
        """Frames in the data's units: the normalisation reverted with the training statistics."""
        assert self.normalization is not None
        return self.normalization.physical(frames, len(self.frame_shape))

    def value_transform(self) -> dict:
        """model = (raw − offset) / scale per channel, raw being the values in the files (0–255 pixels)."""
        assert self.normalization is not None
        raw = self.data.raw_scale or 1.0
        norm = self.normalization
        return {"kind": "affine", "offset": (norm.shift / raw).tolist(), "scale": (norm.scale / raw).tolist(),
                "axis": -1 if self.spec.is_vector else -3}

    # -------------------------------------------------------------------------------- network family
    def _default_family(self) -> str | None:
        if len(self.frame_shape) == 1:
            return DEFAULT_FAMILIES["vectors"]
        return DEFAULT_FAMILIES.get(tuple(self.frame_shape[1:]))

    def _family_or_error(self) -> str:
        if self._family is not None:
            return self._family
        h, w = self.frame_shape[1:]
        raise ConfigError(
            f"{self._source()}: frames of {h}×{w} pixels have no default network family (defaults: "
            f"vectors → mlp, 64×64 frames → dcgan, 32×32 frames → vgg32). Set data.resize: [64, 64] or "
            f"[32, 32], or choose the networks with model.encoder and model.decoder: vgg32 takes sizes "
            f"divisible by 8, vgg64_skip sizes divisible by 16, mlp any size")

    @property
    def default_encoder(self) -> str:  # type: ignore[override]
        """The network family for these data's shape (ConfigError for frame sizes without one)."""
        return self._family_or_error()

    @property
    def default_decoder(self) -> str:  # type: ignore[override]
        return self._family_or_error()
