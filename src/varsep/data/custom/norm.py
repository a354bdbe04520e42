"""Normalisation of the user's own data: statistics of the training part, applied as windows are read.

Statistics are taken per channel (per component for vectors) or over everything (``per_channel: false``),
on the training part only — never validation or test — in the one pass of chunks (:func:`read_once`) that
also finds the mask and the non-finite values, so a memory-mapped or lazily read array is read once, never
whole. Means and variances are combined chunk by chunk (Chan et al.'s pairwise update), which
keeps the variance accurate when the mean is large (e.g. temperatures in kelvin).

``normalised = (x − shift) / scale`` with

- none: shift 0, scale 1 (the values as read; image pixels are read as [0, 1]);
- minmax: shift = min, scale = max − min, so the training part spans [0, 1] (the default: it matches the
  decoders' final sigmoid);
- standard: shift = mean, scale = standard deviation (set ``model.final_activation: none`` with it);
- per_pixel: shift = each cell's training mean, scale = each cell's standard deviation: the model sees
  anomalies, and the fixed spatial pattern of a field (warm tropics, cold poles) no longer has to be carried
  through every forecast step;
- climatology: shift = each cell's mean over the training frames of the same month (or day) of the year,
  scale = each cell's standard deviation of these anomalies over the whole training part (one per cell:
  per-day standard deviations from a few years are noise). Groups without a training frame take the cell's
  overall mean.

Per-cell statistics of a cell with no finite training value (land, masked by the data set) are shift 0,
scale 1; the data set sets such cells to 0 after normalising.

A channel that is constant over the training part gets scale 1. NaN/Inf values are left out of the
statistics and, when ``data.fill_nan`` is set, replaced before normalising (by a value in the data's units
or by the channel's training mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from varsep.config.datasets import NORMALIZATIONS as METHODS  # data.normalization's values
from varsep.errors import DataError

CHUNK_BYTES = 64 * 2**20


@dataclass
class Statistics:
    """Per-channel count, min, max, mean and sum of squared deviations of the finite values."""

    count: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))

    def merge(self, other: Statistics) -> Statistics:
        n = self.count + other.count
        safe = np.maximum(n, 1)
        delta = other.mean - self.mean
        return Statistics(n, np.fmin(self.minimum, other.minimum), np.fmax(self.maximum, other.maximum),
                          self.mean + delta * other.count / safe,
                          self.m2 + other.m2 + delta**2 * self.count * other.count / safe)


def _block_statistics(block: np.ndarray, axes: tuple[int, ...]) -> Statistics:
    finite = np.isfinite(block)
    if finite.all():
        mean = block.mean(axis=axes)
        count = np.full(np.shape(mean), block.size / max(np.size(mean), 1))
        return Statistics(count, block.min(axis=axes), block.max(axis=axes), mean,
                          ((block - np.expand_dims(mean, axes)) ** 2).sum(axis=axes))
    count = finite.sum(axis=axes).astype(np.float64)
    total = np.where(finite, block, 0).sum(axis=axes)
    mean = total / np.maximum(count, 1)
    dev = np.where(finite, block - np.expand_dims(mean, axes), 0)
    return Statistics(count, np.where(finite, block, np.inf).min(axis=axes),
                      np.where(finite, block, -np.inf).max(axis=axes), mean, (dev**2).sum(axis=axes))


def _empty(shape: tuple[int, ...]) -> Statistics:
    zeros = np.zeros(shape)
    return Statistics(zeros, np.full(shape, np.inf), np.full(shape, -np.inf), zeros, zeros)


class RowScan:
    """What one pass learns about every row: the cells finite in at least one row (``ever``) and each cell's
    first non-finite row (``first_bad``; R where it has none)."""

    def __init__(self, rows: np.ndarray) -> None:
        frame = tuple(rows.shape[1:])
        self.floating = np.issubdtype(rows.dtype, np.floating)
        self.ever = np.zeros(frame, dtype=bool) if self.floating else np.ones(frame, dtype=bool)
        self.first_bad = np.full(frame, len(rows), dtype=np.int64)
        self._rows = len(rows)

    def add(self, lo: int, block: np.ndarray) -> None:
        if not self.floating:
            return
        finite = np.isfinite(block)
        self.ever |= finite.any(axis=0)
        bad = ~finite
        if bad.any():
            index = np.where(bad.any(axis=0), lo + bad.argmax(axis=0), self._rows)
            self.first_bad = np.minimum(self.first_bad, index)


class TrainingStatistics:
    """Statistics of the rows in ``ranges`` (the training part): per channel (per component for vectors),
    overall (``per_channel=False``), or per cell; with ``groups`` (one calendar group per row) per cell and
    group, the per-cell total then being the merge of the groups."""

    def __init__(self, rows: np.ndarray, ranges: Sequence[tuple[int, int]], *, vector: bool,
                 per_channel: bool = True, per_cell: bool = False, raw_scale: float | None = None,
                 groups: np.ndarray | None = None, n_groups: int = 0) -> None:
        frame = tuple(rows.shape[1:])
        if per_cell or groups is not None:
            self.axes, self.shape = (0,), frame
        elif per_channel:
            self.axes = (0,) if vector else (0, *range(2, 1 + len(frame)))
            self.shape = (frame[0],)
        else:
            self.axes, self.shape = tuple(range(1 + len(frame))), (1,)
        self.ranges = list(ranges)
        self.raw_scale = raw_scale
        self.groups = groups
        self._total = _empty(self.shape)
        self.per_group = [_empty(frame) for _ in range(n_groups)] if groups is not None else None

    def add(self, lo: int, block: np.ndarray) -> None:
        hi = lo + len(block)
        for a, b in self.ranges:
            first, last = max(a, lo), min(b, hi)
            if first >= last:
                continue
            part = np.asarray(block[first - lo:last - lo], dtype=np.float64)
            if self.raw_scale is not None:
                part *= self.raw_scale
            if self.per_group is None:
                stats = _block_statistics(part, self.axes)
                self._total = self._total.merge(Statistics(*(np.reshape(v, self.shape) for v in (
                    stats.count, stats.minimum, stats.maximum, stats.mean, stats.m2))))
                continue
            assert self.groups is not None
            part_groups = self.groups[first:last]
            for g in np.unique(part_groups):
                self.per_group[g] = self.per_group[g].merge(_block_statistics(part[part_groups == g], (0,)))

    @property
    def total(self) -> Statistics:
        if self.per_group is None:
            return self._total
        total = _empty(self.shape)
        for group in self.per_group:
            total = total.merge(group)
        return total


def read_once(rows: np.ndarray, consumers: Sequence[RowScan | TrainingStatistics],
              chunk_bytes: int | None = None) -> None:
    """One pass over ``rows`` (R, *frame) in blocks of at most ``chunk_bytes`` (as float64), each block given
    to every consumer: a store larger than memory is read once, whatever is learnt from it."""
    frame_values = max(1, int(np.prod(rows.shape[1:])))
    step = max(1, (chunk_bytes or CHUNK_BYTES) // (8 * frame_values))
    for lo in range(0, len(rows), step):
        block = np.asarray(rows[lo:lo + step])
        for consumer in consumers:
            consumer.add(lo, block)


@dataclass
class Normalization:
    """``(x − shift) / scale`` per channel (or overall), and its inverse for metrics in the data's units."""

    method: str
    shift: np.ndarray  # (C,), (m,) or (1,)
    scale: np.ndarray
    mean: np.ndarray  # training mean per channel, in the data's units
    vector: bool
    fill: np.ndarray | None = None  # replacement of NaN/Inf per channel, in the data's units
    per_cell: bool = False  # shift and scale have the frame's shape (per_pixel, climatology)
    climatology: np.ndarray | None = None  # (groups, *frame): the shift of each group (method climatology)
    fill_mean: bool = False  # per-cell methods with fill_nan "mean": NaN become 0 after normalising

    @classmethod
    def fit(cls, method: str, stats: Statistics, *, vector: bool, fill: float | str | None = None,
            groups: list[Statistics] | None = None) -> Normalization:
        if method in ("per_pixel", "climatology"):
            return cls._fit_cells(method, stats, vector=vector, fill=fill, groups=groups)
        empty = np.flatnonzero(stats.count == 0)
        if len(empty):
            raise DataError(f"channel {int(empty[0])} holds no finite value in the training part")
        if method == "minmax":
            shift, scale = stats.minimum, stats.maximum - stats.minimum
        elif method == "standard":
            shift, scale = stats.mean, stats.std
        elif method == "none":
            shift, scale = np.zeros_like(stats.mean), np.ones_like(stats.mean)
        else:
            raise ValueError(f"unknown normalisation {method!r}; valid: {', '.join(METHODS)}")
        scale = np.where(scale > 0, scale, 1.0)
        fill_values = None
        if fill is not None:
            fill_values = stats.mean.copy() if fill == "mean" else np.full_like(stats.mean, float(fill))
        return cls(method, np.asarray(shift, np.float64), np.asarray(scale, np.float64),
                   np.asarray(stats.mean, np.float64), vector, fill_values)

    @classmethod
    def _fit_cells(cls, method: str, stats: Statistics, *, vector: bool, fill: float | str | None,
                   groups: list[Statistics] | None) -> Normalization:
        """Per-cell statistics ``stats`` (the frame's shape); ``groups`` those of each calendar group."""
        seen = stats.count > 0
        if not seen.any():
            raise DataError("the training part holds no finite value")
        mean = np.where(seen, stats.mean, 0.0)
        climatology = None
        if method == "climatology":
            if not groups:
                raise ValueError("climatology needs the statistics of each calendar group")
            climatology = np.stack([np.where(g.count > 0, g.mean, mean) for g in groups])
            within = sum(g.m2 for g in groups)  # squared deviations from each group's own mean
            scale = np.sqrt(within / np.maximum(stats.count, 1))
        else:
            scale = stats.std
        scale = np.where(seen & (scale > 0), scale, 1.0)
        fill_values = None if fill is None or fill == "mean" else np.full(np.shape(mean), float(fill))
        return cls(method, np.asarray(mean, np.float64), np.asarray(scale, np.float64), np.asarray(mean, np.float64),
                   vector, fill_values, per_cell=True, climatology=climatology, fill_mean=fill == "mean")

    def _broadcast(self, values: np.ndarray, ndim: int) -> np.ndarray:
        """Per-channel values shaped to broadcast against (..., C, H, W) or (..., m) arrays (per-cell values
        broadcast as they are)."""
        if self.per_cell:
            return values
        return values.reshape(-1) if self.vector else values.reshape(-1, *([1] * (ndim - 1)))

    def _shift(self, frame_ndim: int, groups: np.ndarray | None) -> np.ndarray:
        if self.climatology is None:
            return self._broadcast(self.shift, frame_ndim)
        if groups is None:
            raise ValueError("climatology normalisation needs the calendar group of every frame")
        return self.climatology[np.asarray(groups)]

    def apply(self, x: np.ndarray, frame_ndim: int, groups: np.ndarray | None = None) -> np.ndarray:
        """Normalise float32 ``x`` (..., *frame) in place (filling NaN/Inf first if asked); returns it.
        ``groups`` (the leading shape of ``x``): each frame's calendar group (climatology only)."""
        if self.fill is not None:
            bad = ~np.isfinite(x)
            if bad.any():
                np.copyto(x, np.broadcast_to(self._broadcast(self.fill, frame_ndim).astype(x.dtype), x.shape),
                          where=bad)
        if self.method != "none":
            x -= self._shift(frame_ndim, groups).astype(x.dtype)
            x /= self._broadcast(self.scale, frame_ndim).astype(x.dtype)
        if self.fill_mean:  # the cell's own (or its calendar group's) training mean: 0 once normalised
            np.copyto(x, 0, where=~np.isfinite(x))
        return x

    def physical(self, z: np.ndarray, frame_ndim: int, groups: np.ndarray | None = None) -> np.ndarray:
        """Normalised values (..., *frame) back in the data's units (float64)."""
        z = np.asarray(z, dtype=np.float64)
        return z * self._broadcast(self.scale, frame_ndim) + self._shift(frame_ndim, groups)

    def to_dict(self) -> dict:
        """A JSON-ready record (e.g. for the attributes of written forecasts)."""
        if self.per_cell:  # per-cell arrays are too large for attributes: say what they are
            return {"method": self.method, "shift": "per cell", "scale": "per cell",
                    "fill": "mean" if self.fill_mean else None if self.fill is None else float(self.fill.flat[0])}
        return {"method": self.method, "shift": self.shift.tolist(), "scale": self.scale.tolist(),
                "fill": None if self.fill is None else self.fill.tolist()}
