"""Your own data: train on arrays, NetCDF/Zarr variables or folders of images with a config and no code.

```yaml
data:
  kind: netcdf           # array | netcdf | zarr | frames  (then data.name defaults to custom)
  path: my_runs.nc       # relative paths are read from data.root, else from the current directory
  variable: temperature  # NetCDF/Zarr variable, or the array's key in a .npz file
```

Reading (varsep.data.custom.read): ``.npy`` files are memory-mapped; NetCDF and Zarr are read lazily,
window by window (varsep.data.custom.lazy), NetCDF from one file or several along time; ``.npz`` files are
loaded; images are kept as uint8 and read as [0, 1]. Observations are frames (C, H, W) — (H, W) gets
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

Masks: cells NaN in every frame (land) are the data set's ``valid_mask``; they are 0 in the windows and
left out of statistics, losses and metrics. Normalisation may also be ``per_pixel`` or ``climatology``
(per cell, per month or day of the year: varsep.data.custom.calendar).

Networks: vectors → ``mlp``, 64×64 frames → ``dcgan``, 32×32 frames → ``vgg32``, unless ``model.encoder``
/ ``model.decoder`` are set; other frame sizes take the smallest family that holds them, padded by the
model to the size it serves (:func:`default_family`, varsep.nets.pad).

Choices where the specification is silent: statistics are fitted on the training part *without* the
validation part (validation then measures what a new sequence would see); ``standard`` is the default
(it trains much faster than ``minmax`` on smooth fields, see the docs; ``model.final_activation: auto``
then drops the decoder's sigmoid, which ``minmax`` data keep); the gap
of a time split is one evaluation window; every validation and test window is kept (strides 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from varsep.config.datasets import CUSTOM_KINDS as KINDS
from varsep.config.datasets import CustomConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.custom.calendar import calendar_groups
from varsep.data.custom.lazy import LazyRows
from varsep.data.custom.norm import Normalization, RowScan, TrainingStatistics, read_once
from varsep.data.custom.read import DataDescription, RawData, guess_kind, netcdf_files, read
from varsep.data.custom.split import split_sequences, split_time
from varsep.data.windows import SpanWindows
from varsep.errors import ConfigError, DataError
from varsep.spec import DataSpec

DEFAULT_FAMILIES = {"vectors": "mlp", (64, 64): "dcgan", (32, 32): "vgg32"}


def default_family(frame_shape: tuple[int, ...]) -> str:
    """The network family for observations of ``frame_shape``: the paper's for 32×32 and 64×64 frames;
    other sizes are padded (varsep.nets.pad) to the next size of the smallest family that takes them —
    vgg32 (sides up to 32, padded to multiples of 8), dcgan (up to 64, padded to 64×64), else vgg64_skip
    (padded to multiples of 16)."""
    if len(frame_shape) == 1:
        return DEFAULT_FAMILIES["vectors"]
    size = tuple(frame_shape[1:])
    if size in DEFAULT_FAMILIES:
        return DEFAULT_FAMILIES[size]
    if max(size) <= 32:
        return "vgg32"
    return "dcgan" if max(size) <= 64 else "vgg64_skip"


class CustomWindows(WindowSet):
    """Windows over row ranges of the data, normalised (and resized) as they are taken."""

    def __init__(self, data: RawData, bounds: list[tuple[int, int]], length: int, stride: int,
                 transform: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.spans = SpanWindows.over_segments(data.rows, bounds, length, stride=stride,
                                               scale=data.raw_scale)
        self.description = data.description
        self.length = length
        self._transform = transform

    def __len__(self) -> int:
        return len(self.spans)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self._transform(self.spans.take(indices), self.rows(indices))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """(n, length) rows of the data behind windows ``indices`` (see DataDescription.locate)."""
        return self.spans.start[np.asarray(indices, dtype=np.int64)][:, None] + np.arange(self.length)

    def frame_ids(self, indices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        # the transform maps each frame by its row alone (normalisation, climatology, padding)
        return self.spans.frame_ids(indices, offsets)

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
    # The forecast carries the model's error on the last conditioning frame (unless D ends in a sigmoid): the
    # paper's unanchored forecast loses to persistence at short lead times on small fields (docs/data/custom.md).
    default_anchor = "last_residual"
    nominal_frame_shape = ()  # unknown until the file is read

    def __init__(self, config: CustomConfig) -> None:
        super().__init__(config)
        path = self._path(config)
        files = None
        if isinstance(config.path, list) or (config.kind in (None, "netcdf") and not path.exists()) \
                or (config.kind in (None, "netcdf") and path.is_dir()):
            assert config.path is not None
            files = netcdf_files(config.path, Path(config.root).expanduser() if config.root else None)
        if files is not None:
            if config.kind not in (None, "netcdf"):
                raise ConfigError(f"data.path names several NetCDF files; data.kind {config.kind} reads one "
                                  f"path")
            path = files[0] if len(files) == 1 else files  # type: ignore[assignment]
        elif not path.exists():
            expected = KINDS[config.kind] if config.kind else "; ".join(KINDS.values())
            raise DataError(f"data.path {path} does not exist; expected a {expected}")
        kind = "netcdf" if files is not None else config.kind or guess_kind(path)
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
        self._in_memory = _megabytes(self.data.rows.shape) <= config.in_memory_mb
        self._ready: RawData | None = None  # the normalised rows, when kept in memory (set below)
        if self._in_memory and isinstance(self.data.rows, LazyRows):  # small: one read, then none
            self.data = replace(self.data, rows=self.data.rows[0:len(self.data.rows)])
        stored = self.description.frame_shape
        if resize is not None and len(stored) == 1:
            raise ConfigError(f"data.resize applies to frames; {self._source()} holds vectors of {stored[0]}")
        self.frame_shape = stored if resize is None else (stored[0], *resize)
        self._resize = resize is not None and kind != "frames" and resize != stored[1:]
        self.description.resized = self.description.resized or self._resize
        self.normalization: Normalization | None = None
        self._stored_valid: np.ndarray | None = None  # the mask on the stored frames (before any resize)
        self.row_groups: np.ndarray | None = None  # climatology: the calendar group of every row
        self.climatology_period: str | None = None  # climatology: "month" or "day"
        self._check_lengths()
        self._split()
        self._read_once()
        self.description.normalization = self.normalization
        # Model values span [0, 1] with min-max scaling (on the training part), and for images read as is.
        self.unit_interval = config.normalization == "minmax" or (config.normalization == "none"
                                                                    and kind == "frames")
        self._family = self._default_family()
        # Small data: every row normalised (masked, resized) once, so taking a window is one gather.
        if self._in_memory and _megabytes((len(self.data.rows), *self.frame_shape)) <= config.in_memory_mb:
            rows = np.array(self.data.rows, dtype=np.float32)[None]  # a copy: normalised in place
            if self.data.raw_scale is not None:
                rows *= np.float32(self.data.raw_scale)
            ready = self._transform(rows, np.arange(len(self.data.rows))[None])[0]
            self._ready = RawData(np.ascontiguousarray(ready), self.description)

    # --------------------------------------------------------------------------------------- reading
    @staticmethod
    def _path(config: CustomConfig) -> Path:
        if config.path is None or config.path == []:
            raise DataError("data.path is not set; point it at your data: a .npy/.npz array, a NetCDF "
                            "file, a Zarr store or a folder of images (see docs/data/custom.md)")
        path = Path(config.path[0] if isinstance(config.path, list) else config.path).expanduser()
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

    @property
    def valid_mask(self) -> np.ndarray | None:  # type: ignore[override]
        """Cells of the model's frames that hold the field: those finite in at least one stored frame
        (resized with the frames: a cell counts when most of its area does). None when every cell does."""
        if self._stored_valid is None:
            return None
        if not self._resize:
            return self._stored_valid
        area = F.interpolate(torch.from_numpy(self._stored_valid.astype(np.float32))[None],
                             size=tuple(self.config.resize), mode="area")[0].numpy()
        return area >= 0.5

    def _read_once(self) -> None:
        """The one pass over the data before training: cells never finite become the mask (land), NaN/Inf
        elsewhere is an error unless data.fill_nan replaces them, and the normalisation statistics of the
        training part are gathered from the same blocks."""
        c = self.config
        method, train, rows = c.normalization, self.parts["train"], self.data.rows
        scan = RowScan(rows)
        if method == "climatology":
            self.row_groups, n_groups, self.climatology_period = self._calendar_groups()
            stats = TrainingStatistics(rows, train, vector=self.spec.is_vector, raw_scale=self.data.raw_scale,
                                       groups=self.row_groups, n_groups=n_groups)
        else:
            stats = TrainingStatistics(rows, train, vector=self.spec.is_vector, per_channel=c.per_channel,
                                       per_cell=method == "per_pixel", raw_scale=self.data.raw_scale)
        read_once(rows, [scan, stats])
        self._check_finite(scan)
        try:
            self.normalization = Normalization.fit(method, stats.total, vector=self.spec.is_vector,
                                                   fill=c.fill_nan, groups=stats.per_group)
        except DataError as err:
            raise DataError(f"{self._source()}: {err}") from None

    def _check_finite(self, scan: RowScan) -> None:
        ever, first_bad = scan.ever, scan.first_bad
        if not ever.any():
            raise DataError(f"{self._source()} holds no finite value")
        if not ever.all():
            self._stored_valid = ever
        if self.config.fill_nan is not None:
            return
        bad = first_bad[ever]
        if len(bad) and int(bad.min()) < len(self.data.rows):
            row = int(bad.min())
            raise DataError(f"{self._source()} holds NaN or Inf at {self._where(row)}; clean the data, "
                            f"or set data.fill_nan to a value (in the data's units) or to 'mean' to replace "
                            f"them (cells NaN in every frame are a mask, e.g. land, and need nothing)")

    def _calendar_groups(self) -> tuple[np.ndarray, int, str]:
        d = self.description
        times = d.coords.get(d.time_dim)
        if times is None or not len(times) or np.issubdtype(np.asarray(times).dtype, np.number):
            raise DataError(f"{self._source()}: normalization climatology needs a time coordinate of dates "
                            f"(a NetCDF/Zarr time with units such as 'days since …'); use per_pixel instead")
        per_time, n_groups, period = calendar_groups(times, self.config.climatology_period)
        seq, t = d.locate(np.arange(len(self.data.rows)))
        return per_time[t], n_groups, period

    def _groups(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.row_groups is None else self.row_groups[rows]

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

    def _transform(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.normalization is not None:
            self.normalization.apply(x, len(self.description.frame_shape), self._groups(rows))
        if self._stored_valid is not None:  # land: 0 (whatever the file holds there), before any resize
            x[..., ~self._stored_valid] = 0
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
        if self._ready is not None:
            return CustomWindows(self._ready, self.parts[part], length, stride, _as_is)
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
        groups = None
        if self.row_groups is not None:
            assert isinstance(windows, CustomWindows)
            groups = self._groups(windows.rows(indices)[:, offset:offset + frames.shape[1]])
        return self.normalization.physical(frames, len(self.frame_shape), groups)

    @property
    def climatology_reference(self) -> str | None:  # type: ignore[override]
        """per_pixel: each cell's training mean; climatology: its training mean for the frame's month or
        day of the year. Other normalisations fit no per-cell statistics: no climatology."""
        if self.config.normalization == "per_pixel":
            return "each cell's mean over the training part (data.normalization per_pixel)"
        if self.config.normalization == "climatology":
            return (f"each cell's mean over the training frames of the target's {self.climatology_period} of "
                    f"the year (data.normalization climatology)")
        return None

    def climatology_forecast(self, windows: WindowSet, indices: np.ndarray, offset: int, k: int) -> np.ndarray:
        """0 everywhere: per_pixel and climatology normalisation subtract exactly this mean."""
        if self.climatology_reference is None:
            return super().climatology_forecast(windows, indices, offset, k)
        return np.zeros((len(indices), k, *self.frame_shape), dtype=np.float32)

    def value_transform(self) -> dict | None:
        """model = (raw − offset) / scale per channel (or per cell: arrays), raw being the values in the
        files (0–255 pixels). None with a climatology: the map depends on each frame's date."""
        assert self.normalization is not None
        raw = self.data.raw_scale or 1.0
        norm = self.normalization
        if norm.climatology is not None:
            return None
        if norm.per_cell:
            return {"kind": "affine", "offset": (norm.shift / raw).astype(np.float32),
                    "scale": (norm.scale / raw).astype(np.float32), "axis": "frame"}
        return {"kind": "affine", "offset": (norm.shift / raw).tolist(), "scale": (norm.scale / raw).tolist(),
                "axis": -1 if self.spec.is_vector else -3}

    # -------------------------------------------------------------------------------- network family
    def _default_family(self) -> str:
        return default_family(tuple(self.frame_shape))

    @property
    def default_encoder(self) -> str:  # type: ignore[override]
        """The network family for these data's shape (see :func:`default_family`)."""
        return self._family

    @property
    def default_decoder(self) -> str:  # type: ignore[override]
        return self._family


def _megabytes(shape: tuple[int, ...]) -> float:
    """MiB of a float32 array of ``shape``."""
    return float(np.prod(shape, dtype=np.float64)) * 4 / 2**20


def _as_is(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The transform of rows already normalised."""
    return x
