"""Bouncing digits: trajectories and rendering of Moving MNIST (the version of Franceschi et al., 2020).

Coordinates: a digit's position is its top-left pixel (row, col); in a 64×64 frame a 28×28 digit has
positions in [0, L]² with L = 64 − 28 = 36. A motion is a start position p_0 (integers in [0, L]²) and a
start velocity v_0 (integers in [−4, 4]², zero allowed), both per digit.

One time step, per axis independently (this is the exact reflection law: a wall is axis-aligned, so a
bounce flips only the velocity component normal to it):

    q = p_t + v_t
    if q < 0:  p_{t+1} = −q,       v_{t+1} = −v_t     (bounce on the top / left border)
    if q > L:  p_{t+1} = 2L − q,   v_{t+1} = −v_t     (bounce on the bottom / right border)
    else:      p_{t+1} = q,        v_{t+1} = v_t      (landing exactly on 0 or L is no bounce yet)

With |v| ≤ L a step bounces at most once per axis, and a corner bounce is simply a bounce on both axes in
the same step. Positions and velocities stay integers, so the official code's rounding for drawing is the
identity here. Frame t shows every digit pasted at p_t; overlapping digits add, and the sum is clipped to
255 (1.0 on the [0, 1] scale).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from varsep.data.base import WindowSet, WindowSource

FRAME = 64  # frame height and width
MAX_SPEED = 4  # velocity components are drawn from [−4, 4]


def trajectories(start: np.ndarray, velocity: np.ndarray, steps: int, limit: int | np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of ``steps`` frames from start positions and velocities (..., 2).

    ``limit`` is L, the largest position per axis (a scalar or one value per axis). Returns positions and
    velocities of shape (..., steps, 2) (int16 and int8): entry t is the state shown in frame t (the
    velocity being the one applied to reach frame t+1). Vectorised over all leading axes; loops over time.
    """
    p = np.asarray(start, dtype=np.int64)
    v = np.asarray(velocity, dtype=np.int64)
    lim = np.broadcast_to(np.asarray(limit, dtype=np.int64), p.shape)
    if p.shape != v.shape or p.shape[-1:] != (2,):
        raise ValueError(f"start and velocity must have the same shape (..., 2), got {p.shape} and {v.shape}")
    if (p < 0).any() or (p > lim).any():
        raise ValueError("start positions must lie in [0, limit]")
    if (np.abs(v) > lim).any():
        raise ValueError("a speed larger than the free space would bounce more than once in a step")
    pos = np.empty((*p.shape[:-1], steps, 2), dtype=np.int16)
    vel = np.empty((*p.shape[:-1], steps, 2), dtype=np.int8)
    p, v = p.copy(), v.copy()
    for t in range(steps):
        pos[..., t, :], vel[..., t, :] = p, v
        q = p + v
        low, high = q < 0, q > lim
        p = np.where(low, -q, np.where(high, 2 * lim - q, q))
        v = np.where(low | high, -v, v)
    return pos, vel


def render(digits: np.ndarray, positions: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """Frames (n, T, frame, frame) uint8 of digits (n, k, h, w) uint8 at top-left positions (n, k, T, 2).

    Digits are added (in uint16) and the sum clipped to 255. Each digit's paste is one vectorised
    fancy-indexed addition into a strided view of the canvas: no loop over sequences or frames.
    """
    n, k, h, w = digits.shape
    steps = positions.shape[2]
    if positions.shape != (n, k, steps, 2):
        raise ValueError(f"positions must have shape ({n}, {k}, T, 2), got {positions.shape}")
    if positions.size and (positions.min() < 0 or (positions[..., 0] > frame - h).any()
                           or (positions[..., 1] > frame - w).any()):
        raise ValueError(f"positions must keep the {h}×{w} digits inside the {frame}×{frame} frame")
    canvas = np.zeros((n, steps, frame, frame), dtype=np.uint16)
    patches = sliding_window_view(canvas, (h, w), axis=(2, 3), writeable=True)  # (n, T, L+1, L+1, h, w)
    seq = np.arange(n)[:, None]
    time = np.arange(steps)[None, :]
    for j in range(k):  # one paste per digit slot (2 for Moving MNIST), vectorised over sequences and frames
        rows, cols = positions[:, j, :, 0], positions[:, j, :, 1]
        patches[seq, time, rows, cols] += digits[:, j, None]
    return np.minimum(canvas, 255).astype(np.uint8)


@dataclass(frozen=True)
class Motion:
    """Digits and their trajectories: everything needed to render (or re-render) sequences.

    ``digits`` (n, k, h, w) uint8; ``digit_ids`` (n, k) indices into the digit set they were taken from;
    ``labels`` (n, k); ``positions`` (n, k, T, 2) top-left (row, col); ``velocities`` (n, k, T, 2).
    """

    digits: np.ndarray
    digit_ids: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray

    def __len__(self) -> int:
        return len(self.digits)

    @property
    def steps(self) -> int:
        return self.positions.shape[2]

    def render(self, index: np.ndarray | slice = slice(None), steps: int | None = None) -> np.ndarray:
        """uint8 frames (n, T, 64, 64) of sequences ``index`` (their first ``steps`` frames)."""
        return render(self.digits[index], self.positions[index, :, :steps])

    def swap_truths(self, content: np.ndarray, dynamic: np.ndarray, steps: int | None = None) -> np.ndarray:
        """Ground truths of a content swap (Appendix D.3): the digits of sequences ``content`` moving along
        the trajectories of sequences ``dynamic``, once for every assignment of digits to trajectories.

        Returns uint8 (k!, n, T, 64, 64) — for two digits, [as drawn, swapped]; the protocol keeps, per
        sequence, the score against the closer of them.
        """
        content, dynamic = np.asarray(content), np.asarray(dynamic)
        k = self.digits.shape[1]
        return np.stack([render(self.digits[content][:, list(order)], self.positions[dynamic, :, :steps])
                         for order in itertools.permutations(range(k))])


def limits(digit_shape: tuple[int, ...], frame: int = FRAME) -> np.ndarray:
    """L per axis: the largest top-left (row, col) that keeps a digit of this shape inside the frame."""
    return np.array([frame - digit_shape[0], frame - digit_shape[1]], dtype=np.int64)


def random_motion(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int, num_digits: int,
                  steps: int, max_speed: int = MAX_SPEED) -> Motion:
    """``n`` random sequences: digits drawn uniformly (with replacement), uniform start positions and
    velocities, all drawn in a few vectorised calls."""
    lim = limits(images.shape[1:])
    ids = rng.integers(0, len(images), size=(n, num_digits))
    start = rng.integers(0, lim + 1, size=(n, num_digits, 2))
    velocity = rng.integers(-max_speed, max_speed + 1, size=(n, num_digits, 2))
    pos, vel = trajectories(start, velocity, steps, lim)
    return Motion(images[ids], ids, labels[ids], pos, vel)


def frames_to_float(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (n, T, H, W) → float32 windows (n, T, 1, H, W) on the [0, 1] scale."""
    out = frames.astype(np.float32)[:, :, None]
    out *= np.float32(1 / 255)
    return out


class MovingDigitsSource(WindowSource):
    """Training windows generated on the fly: every draw is a batch of fresh random sequences."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, length: int, *, num_digits: int = 2,
                 max_speed: int = MAX_SPEED) -> None:
        self.images, self.labels = images, labels
        self.length = length
        self.num_digits, self.max_speed = num_digits, max_speed

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        motion = random_motion(rng, self.images, self.labels, n, self.num_digits, self.length, self.max_speed)
        return frames_to_float(motion.render())


class RenderedWindows(WindowSet):
    """A fixed set of sequences stored as digits + trajectories, rendered when taken (the first
    ``length`` frames of each sequence: one window per sequence)."""

    def __init__(self, motion: Motion, length: int, name: str = "sequence") -> None:
        if length > motion.steps:
            raise ValueError(f"windows of {length} frames do not fit in {motion.steps}-frame sequences")
        self.motion = motion
        self.length = length
        self._name = name

    def __len__(self) -> int:
        return len(self.motion)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return frames_to_float(self.motion.render(np.asarray(indices, dtype=np.int64), self.length))

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(indices, dtype=np.int64)  # one window per rendered sequence

    def describe(self, index: int) -> str:
        labels = ", ".join(str(int(x)) for x in self.motion.labels[index])
        return f"{self._name} {index} (digits {labels})"
