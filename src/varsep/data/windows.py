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


def check_finite(array: np.ndarray, source: str, *, axis_name: str = "sequence", chunk: int = 16) -> None:
    """Raise a DataError naming ``source`` and the first sequence holding NaN or Inf."""
    for lo in range(0, len(array), chunk):
        block = np.asarray(array[lo:lo + chunk])
        if not np.isfinite(block).all():
            bad = lo + int(np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0])
            raise DataError(f"{source}: {axis_name} {bad} holds NaN or Inf values; regenerate or clean the file")
