"""Rows of NetCDF/Zarr variables read on demand: data sets larger than memory, one file or many.

:class:`LazyRows` looks like the (R, *frame) float32 array of rows the custom data set indexes (a slice or
an integer array of any shape), but holds only xarray variables opened lazily (no dask needed: xarray's
backend arrays read just the slice asked for). A request is served by sorting the rows it needs, merging
them into runs of consecutive times of one file and sequence — runs closer than one storage chunk are read
as one, so a chunk is decoded once per request rather than once per window — and reading each run with one
``isel``. ``reads`` and ``largest_read`` count what was read, so tests can show the whole array never is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from varsep.errors import DataError


@dataclass
class Part:
    """One file's variable, transposed to ([sequence,] time, *obs), and the rows it fills."""

    array: Any  # xarray.DataArray as stored, lazily indexed (transposed only once a block is read)
    time_dim: str
    sequence_dim: str | None
    order: tuple[str, ...]  # (time, *obs): the dims of a block once the sequence is picked
    time_chunk: int  # storage chunk length along time (1 when unknown)
    source: str = ""  # the file and variable, for errors


class LazyRows:
    """(R, *frame) float32 rows of one or more lazily opened variables (see the module docstring).

    Row r is time ``row_time[r]`` of sequence ``row_seq[r]`` in part ``row_part[r]``; rows are sequence-major,
    files in time order within a sequence. ``channel_added`` inserts the channel axis of (H, W) fields.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, parts: list[Part], row_part: np.ndarray, row_seq: np.ndarray, row_time: np.ndarray,
                 frame_shape: tuple[int, ...], channel_added: bool) -> None:
        self.parts = parts
        self.row_part, self.row_seq, self.row_time = row_part, row_seq, row_time
        self.frame_shape = tuple(frame_shape)
        self.channel_added = channel_added
        self.reads = 0  # rows read so far
        self.largest_read = 0  # the most rows one request read

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.row_part), *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    def __len__(self) -> int:
        return len(self.row_part)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        elif isinstance(index, int | np.integer):
            return self[np.array([index])][0]
        else:
            rows = np.asarray(index, dtype=np.int64)
        flat = rows.reshape(-1)
        wanted, inverse = np.unique(flat, return_inverse=True)
        values = np.empty((len(wanted), *self.frame_shape), dtype=np.float32)
        for lo, hi in self._runs(wanted):
            first = int(wanted[lo])
            part = self.parts[int(self.row_part[first])]
            t0, t1 = int(self.row_time[first]), int(self.row_time[wanted[hi - 1]]) + 1
            selection = {part.time_dim: slice(t0, t1)}
            if part.sequence_dim is not None:
                selection[part.sequence_dim] = int(self.row_seq[first])
            try:
                block = np.asarray(part.array.isel(selection).transpose(*part.order).values, dtype=np.float32)
            except Exception as err:  # a truncated file fails only when its data are read
                raise DataError(f"{part.source} cannot be read ({type(err).__name__}: {err})") from None
            if self.channel_added:
                block = block[:, None]
            values[lo:hi] = block[self.row_time[wanted[lo:hi]] - t0]
            self.reads += t1 - t0
            self.largest_read = max(self.largest_read, t1 - t0)
        return values[inverse].reshape(*rows.shape, *self.frame_shape)

    def _runs(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """[lo, hi) ranges of the sorted ``rows`` each read by one request: same part and sequence, and no
        gap of a storage chunk or more between consecutive times."""
        if len(rows) == 0:
            return []
        part, seq, time = self.row_part[rows], self.row_seq[rows], self.row_time[rows]
        chunk = np.array([p.time_chunk for p in self.parts])[part]
        breaks = np.flatnonzero((part[1:] != part[:-1]) | (seq[1:] != seq[:-1])
                                | (time[1:] - time[:-1] > np.maximum(chunk[1:], 1))) + 1
        edges = np.concatenate([[0], breaks, [len(rows)]])
        return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def time_chunk(array: Any, time_dim: str) -> int:
    """The storage chunk length of ``array`` along ``time_dim`` (NetCDF chunksizes, Zarr chunks), or 1."""
    encoding = getattr(array, "encoding", {}) or {}
    sizes = encoding.get("chunksizes") or encoding.get("chunks") or encoding.get("preferred_chunks")
    if isinstance(sizes, dict):
        return int(sizes.get(time_dim, 1) or 1)
    if sizes:
        try:
            return int(tuple(sizes)[list(array.dims).index(time_dim)])
        except (ValueError, IndexError, TypeError):
            return 1
    return 1
