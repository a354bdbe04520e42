"""Train / validation / test splits of the user's own data: by sequence, or by time within each sequence.

By sequence (the default with several sequences): the last ``test_fraction`` of the sequences are the test
part, and the last ``val_fraction`` of the others the validation part — in file order, or after a seeded
shuffle. Counts are rounded half up, and a fraction above 0 keeps at least one sequence when there are two
or more to share.

By time (the default with one sequence, i.e. one long series): each sequence is cut, in time order, into
``[training | gap | validation | gap | test]``. The test part is the last ``test_fraction`` of the frames, the
validation part the last ``val_fraction`` of what remains, each at least one window long; the gaps (one
test window by default) keep every frame of a held-out part at least a window away from the frames the
model is trained on, so no window of one part ever overlaps or touches another part's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def share(n: int, fraction: float) -> int:
    """round(fraction · n), halves up; at least 1 when fraction > 0 and n ≥ 2."""
    k = int(fraction * n + 0.5)
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return min(k, n)


@dataclass
class SequenceSplit:
    """Sequence indices of each part (sorted)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_sequences(n: int, *, test_fraction: float, val_fraction: float, shuffle: bool = False,
                    seed: int = 0, test_sequences: list[int] | None = None) -> SequenceSplit:
    """Split sequences 0 … n−1; ``test_sequences`` (explicit indices) replaces ``test_fraction``."""
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    if test_sequences is not None:
        test = np.array(sorted(set(test_sequences)), dtype=np.int64)
        rest = order[~np.isin(order, test)]
    else:
        n_test = share(n, test_fraction)
        test, rest = order[n - n_test:], order[:n - n_test]
    n_val = share(len(rest), val_fraction)
    val, train = rest[len(rest) - n_val:], rest[:len(rest) - n_val]
    return SequenceSplit(np.sort(train), np.sort(val), np.sort(test))


@dataclass
class TimeSplit:
    """Frame ranges [lo, hi) of each part within a sequence of ``length`` frames."""

    length: int
    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    gap: int


def split_time(length: int, *, test_fraction: float, val_fraction: float, gap: int, min_test: int,
               min_val: int) -> TimeSplit:
    """Cut ``length`` frames into training | gap | validation | gap | test (see the module docstring).

    The test and validation parts hold at least ``min_test`` / ``min_val`` frames (one window) when their
    fraction is above 0; the training part gets what is left, possibly nothing (the caller checks).
    """
    n_test = max(int(test_fraction * length + 0.5), min_test) if test_fraction > 0 else 0
    rest = max(0, length - n_test - (gap if n_test else 0))
    n_val = max(int(val_fraction * rest + 0.5), min_val) if val_fraction > 0 else 0
    n_train = max(0, rest - n_val - (gap if n_val else 0))
    val_lo = n_train + (gap if n_val else 0)
    return TimeSplit(length, (0, n_train), (val_lo, val_lo + n_val) if n_val else (val_lo, val_lo),
                     (length - n_test, length), gap)
