"""Write example.npy: damped standing waves on a square membrane, a small data set to try `kind: array` on.

One membrane (unit square, fixed edges, wave speed c = 0.75, damping γ = 0.3) is set vibrating in a new
way for each sequence: two of its modes, with mode numbers (p_k, q_k) ∈ {1, 2, 3}², amplitudes a_k and
phases φ_k drawn at random,

    u(x, y, t) = e^(−γ t) Σ_k a_k sin(π p_k x) sin(π q_k y) cos(ω_k t + φ_k),   ω_k = c π √(p_k² + q_k²),

sampled every dt = 0.05 on a grid of size × size pixel centres. The array is float32 of shape
(sequences, frames, size, size) — (N, T, H, W): frames of one channel.

    python docs/examples/make_example_array.py                # example.npy: (128, 40, 32, 32), 21 MB
    python docs/examples/make_example_array.py --out my.npy --sequences 16 --frames 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def damped_waves(sequences: int = 128, frames: int = 40, size: int = 32, *, speed: float = 0.75,
                 damping: float = 0.3, dt: float = 0.05, seed: int = 0) -> np.ndarray:
    """(sequences, frames, size, size) float32 damped membrane waves (see the module docstring)."""
    rng = np.random.default_rng(seed)
    x = (np.arange(size) + 0.5) / size  # pixel centres on (0, 1)
    t = np.arange(frames) * dt
    out = np.zeros((sequences, frames, size, size), dtype=np.float64)
    for n in range(sequences):
        for _ in range(2):
            p, q = rng.integers(1, 4, size=2)
            amplitude, phase = rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi)
            omega = speed * np.pi * np.hypot(p, q)
            shape = np.outer(np.sin(np.pi * p * x), np.sin(np.pi * q * x))  # (y, x)
            out[n] += amplitude * np.cos(omega * t + phase)[:, None, None] * shape
        out[n] *= np.exp(-damping * t)[:, None, None]
    return out.astype(np.float32)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="example.npy", help="file to write (default: example.npy)")
    parser.add_argument("--sequences", type=int, default=128)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=32, help="frame height and width in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    waves = damped_waves(args.sequences, args.frames, args.size, seed=args.seed)
    out = Path(args.out)
    np.save(out, waves)
    print(f"wrote {out}: {waves.dtype} {waves.shape}")
    return out


if __name__ == "__main__":
    main()
