"""Window sets over arrays of sequences, indexed without Python loops over samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from varsep.data.base import WindowSet
from varsep.errors import DataError


class ArrayWindows(WindowSet):
    """All windows of ``length`` consecutive frames of the sequences in an (N, T, *frame) array.

    ``sequences`` selects which sequences take part (default: all); ``stride`` keeps every stride-th start.
    The array may be a read-only memory map: :meth:`take` reads only the frames it returns. ``scale``
    multiplies the values as they are read (e.g. 1/255 for uint8 frames stored on disk).
    """

    def __init__(
        self,
        array: np.ndarray,
        length: int,
        *,
        sequences: Sequence[int] | np.ndarray | None = None,
        stride: int = 1,
        name: str = "sequence",
        scale: float | None = None,
    ) -> None:
        if array.ndim < 3:
            raise DataError(f"expected an array of shape (N, T, *frame), got shape {array.shape}")
        n_seq, n_time = array.shape[:2]
        if length > n_time:
            raise DataError(f"windows of {length} frames do not fit in sequences of {n_time} frames")
        seqs = np.arange(n_seq) if sequences is None else np.asarray(sequences, dtype=np.int64)
        starts = np.arange(0, n_time - length + 1, stride)
        self.array = array
        self.length = length
        self.seq = np.repeat(seqs, len(starts))
        self.start = np.tile(starts, len(seqs))
        self._offsets = np.arange(length)
        self._name = name
        self._scale = scale

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        seq = self.seq[indices]
        time = self.start[indices][:, None] + self._offsets
        # Sort by position so a memory map is read front to back, then restore the requested order.
        order = np.lexsort((time[:, 0], seq))
        out = np.empty((len(indices), self.length, *self.array.shape[2:]), dtype=np.float32)
        out[order] = self.array[seq[order][:, None], time[order]]
        if self._scale is not None:
            out *= self._scale
        return out

    def describe(self, index: int) -> str:
        return f"{self._name} {self.seq[index]}, frames {self.start[index]}–{self.start[index] + self.length - 1}"

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray:
        return self.seq[np.asarray(indices, dtype=np.int64)]

    def frame_ids(self, indices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        time = self.start[indices][:, None] + np.asarray(offsets, dtype=np.int64)
        return self.seq[indices][:, None] * self.array.shape[1] + time  # the array's (sequence, time) in one


class ListWindows(WindowSet):
    """All windows over a list of sequences of different lengths (each an array (T_i, *frame))."""

    def __init__(self, sequences: Sequence[np.ndarray], length: int, *, stride: int = 1,
                 names: Sequence[str] | None = None) -> None:
        self.sequences = list(sequences)
        self.length = length
        seq_ids, starts = [], []
        for i, s in enumerate(self.sequences):
            st = np.arange(0, len(s) - length + 1, stride)
            seq_ids.append(np.full(len(st), i))
            starts.append(st)
        self.seq = np.concatenate(seq_ids) if seq_ids else np.zeros(0, np.int64)
        self.start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.names = list(names) if names is not None else [f"sequence {i}" for i in range(len(sequences))]

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        shape = self.sequences[0].shape[1:] if self.sequences else ()
        out = np.empty((len(indices), self.length, *shape), dtype=np.float32)
        for row, i in enumerate(indices):  # one slice per window: sequences differ in length
            s, t = self.seq[i], self.start[i]
            out[row] = self.sequences[s][t:t + self.length]
        return out

    def describe(self, index: int) -> str:
        return f"{self.names[self.seq[index]]}, frames {self.start[index]}–{self.start[index] + self.length - 1}"

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray:
        return self.seq[np.asarray(indices, dtype=np.int64)]

    def frame_ids(self, indices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        longest = max((len(s) for s in self.sequences), default=0)
        return self.seq[indices][:, None] * longest + self.start[indices][:, None] + np.asarray(offsets)


def check_finite(array: np.ndarray, source: str, *, axis_name: str = "sequence", chunk: int = 16) -> None:
    """Raise a DataError naming ``source`` and the first sequence holding NaN or Inf."""
    for lo in range(0, len(array), chunk):
        block = np.asarray(array[lo:lo + chunk])
        if not np.isfinite(block).all():
            bad = lo + int(np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0])
            raise DataError(f"{source}: {axis_name} {bad} holds NaN or Inf values; regenerate or clean the file")


class SpanWindows(WindowSet):
    """Windows of ``length`` consecutive rows of one array (T, *frame), starting at the given rows.

    For data kept as one long array of frames with breaks in it (days dropped from a time series,
    videos stored back to back): :meth:`over_segments` admits only windows inside a segment, and
    :meth:`take` gathers them with one vectorised index, reading uint8 arrays scaled by ``scale``.
    """

    def __init__(self, array: np.ndarray, starts: np.ndarray, length: int, *, scale: float | None = None,
                 segment: np.ndarray | None = None, names: Sequence[str] | None = None,
                 origins: np.ndarray | None = None) -> None:
        self.array = array
        self.start = np.asarray(starts, dtype=np.int64)
        self.length = length
        self._offsets = np.arange(length)
        self._scale = scale
        self.segment = segment  # per window, the segment it lies in (for describe)
        self._names = list(names) if names is not None else None
        self._origins = origins  # first row of each segment

    @classmethod
    def over_segments(cls, array: np.ndarray, bounds: Sequence[tuple[int, int]], length: int, *,
                      stride: int = 1, scale: float | None = None,
                      names: Sequence[str] | None = None) -> SpanWindows:
        """Every window (every ``stride``-th start) lying inside one of the rows ranges ``[lo, hi)``."""
        starts, seg = [], []
        for i, (lo, hi) in enumerate(bounds):
            st = np.arange(lo, hi - length + 1, stride, dtype=np.int64)
            starts.append(st)
            seg.append(np.full(len(st), i, dtype=np.int64))
        origins = np.array([lo for lo, _ in bounds], dtype=np.int64)
        empty = np.zeros(0, np.int64)
        return cls(array, np.concatenate(starts) if starts else empty, length, scale=scale,
                   segment=np.concatenate(seg) if seg else empty, names=names, origins=origins)

    def __len__(self) -> int:
        return len(self.start)

    def take(self, indices: np.ndarray) -> np.ndarray:
        rows = self.start[np.asarray(indices, dtype=np.int64)][:, None] + self._offsets
        out = self.array[rows].astype(np.float32, copy=False)
        if self._scale is not None:
            out = out * np.float32(self._scale)
        return out

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray | None:
        return None if self.segment is None else self.segment[np.asarray(indices, dtype=np.int64)]

    def frame_ids(self, indices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return self.start[np.asarray(indices, dtype=np.int64)][:, None] + np.asarray(offsets, dtype=np.int64)

    def describe(self, index: int) -> str:
        start = int(self.start[index])
        if self.segment is None or self._names is None or self._origins is None:
            return f"rows {start}–{start + self.length - 1}"
        seg = int(self.segment[index])
        first = start - int(self._origins[seg])
        return f"{self._names[seg]}, frames {first}–{first + self.length - 1}"
