"""The WaveEq simulator (paper Appendix D.1; docs/data/waveeq.md): ``varsep generate waveeq``.

Physics: ∂²w/∂t² = c²(∂²w/∂x² + ∂²w/∂y²) + f0·exp(−t/0.05) on the disk (i−32)² + (j−32)² < 25, on a 64×64
grid with unit spacing, w = ∂w/∂t = 0 at t = 0. Spatial derivatives: the 4th-order 5-point stencil
(−1/12, 4/3, −5/2, 4/3, −1/12) on interior indices 2..61, the 2-pixel border held at 0. Time: the classic
RK4 "3/8 rule" with step 0.001 over 300 states (t = 0 … 0.299); every 2nd state is kept (150 frames,
Δt = 0.002). Each sequence is min-max normalised to [0, 1] over all 300 states. Per sequence f0 ~ U(1, 30)
is drawn first, then c ~ U(300, 400); the WaveEq-100 pixels come from an independent seeded stream.

The folder it writes is read by varsep.data.waveeq (its format is described there).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from varsep.data.waveeq import FORMAT, FORMAT_VERSION, GRID, NUM_SENSORS
from varsep.errors import DataError
from varsep.guards import check_replaceable

NUM_STATES = 300
STEP = 1e-3
KEEP_EVERY = 2
NUM_FRAMES = NUM_STATES // KEEP_EVERY  # 150
SOURCE_CENTER = 32
SOURCE_RADIUS_SQ = 25
SOURCE_DECAY = 0.05
STENCIL = (-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12)


# ------------------------------------------------------------------------------------------- numerics
def laplacian(w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """4th-order finite-difference Laplacian of (..., H, W) fields on indices 2..H−3; border set to 0."""
    if out is None:
        out = torch.zeros_like(w)
    h, wd = w.shape[-2:]
    r, c = slice(2, h - 2), slice(2, wd - 2)
    o = out[..., r, c]
    torch.mul(w[..., r, c], 2 * STENCIL[2], out=o)
    o.add_(w[..., 1:h - 3, c] + w[..., 3:h - 1, c] + w[..., r, 1:wd - 3] + w[..., r, 3:wd - 1], alpha=STENCIL[1])
    o.add_(w[..., 0:h - 4, c] + w[..., 4:h, c] + w[..., r, 0:wd - 4] + w[..., r, 4:wd], alpha=STENCIL[0])
    return out


Accel = Callable[[float, torch.Tensor, torch.Tensor], torch.Tensor]


def integrate_second_order(
    accel: Accel,
    w0: torch.Tensor,
    v0: torch.Tensor,
    *,
    step: float,
    num_states: int,
    t0: float = 0.0,
    on_state: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve w'' = a(t, w) with the RK4 3/8 rule applied to the first-order system (w, v = w').

    ``accel(t, w, out)`` writes a(t, w) into ``out`` and returns it. ``on_state(k, w_k)`` sees every state
    k = 0 … num_states−1. The stages are those of the 3/8 rule for y = (w, v), y' = (v, a(t, w)):
    since the w-component of each stage derivative is the v-component of that stage's input, the w-stages
    reduce exactly to
        a1 = a(t, w),  a2 = a(t+h/3, w + h v/3),  a3 = a(t+2h/3, w + 2h v/3 + h² a1/3),
        a4 = a(t+h, w + h v + h² (a2 − 2 a1/3)),
        w ← w + h v + h²/8 (a1 + 2 a2 + a3),   v ← v + h/8 (a1 + 3 a2 + 3 a3 + a4),
    which needs one acceleration per stage and no stored w-derivatives.
    """
    h = step
    w, v = w0.clone(), v0.clone()
    a1, a2, a3, a4, tmp = (torch.zeros_like(w) for _ in range(5))
    if on_state is not None:
        on_state(0, w)
    for k in range(num_states - 1):
        t = t0 + k * h
        accel(t, w, a1)
        torch.add(w, v, alpha=h / 3, out=tmp)
        accel(t + h / 3, tmp, a2)
        torch.add(w, v, alpha=2 * h / 3, out=tmp).add_(a1, alpha=h * h / 3)
        accel(t + 2 * h / 3, tmp, a3)
        torch.add(w, v, alpha=h, out=tmp).add_(a2, alpha=h * h).add_(a1, alpha=-2 * h * h / 3)
        accel(t + h, tmp, a4)
        w.add_(v, alpha=h).add_(a1 + 2 * a2 + a3, alpha=h * h / 8)
        v.add_(a1 + 3 * (a2 + a3) + a4, alpha=h / 8)
        if on_state is not None:
            on_state(k + 1, w)
    return w, v


def source_mask(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """1 on the source disk (i−32)² + (j−32)² < 25, 0 elsewhere (64×64)."""
    i, j = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    return (((i - SOURCE_CENTER) ** 2 + (j - SOURCE_CENTER) ** 2) < SOURCE_RADIUS_SQ).to(dtype)


def simulate_batch(
    c: np.ndarray | torch.Tensor,
    f0: np.ndarray | torch.Tensor,
    *,
    num_states: int = NUM_STATES,
    step: float = STEP,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Raw states (B, num_states, 64, 64), before normalisation, for celerities ``c`` and amplitudes ``f0``."""
    c = torch.as_tensor(np.asarray(c, dtype=np.float64)).to(dtype).reshape(-1)
    f0 = torch.as_tensor(np.asarray(f0, dtype=np.float64)).to(dtype).reshape(-1)
    if c.shape != f0.shape:
        raise ValueError(f"c and f0 must have the same length, got {tuple(c.shape)} and {tuple(f0.shape)}")
    batch = c.numel()
    c_sq = (c * c).view(batch, 1, 1)
    amplitude = f0.view(batch, 1, 1) * source_mask(dtype)
    states = torch.empty(batch, num_states, GRID, GRID, dtype=dtype)

    def accel(t: float, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        laplacian(w, out).mul_(c_sq)
        return out.add_(amplitude, alpha=math.exp(-t / SOURCE_DECAY))

    def keep(k: int, w: torch.Tensor) -> None:
        states[:, k] = w

    zeros = torch.zeros(batch, GRID, GRID, dtype=dtype)
    integrate_second_order(accel, zeros, zeros, step=step, num_states=num_states, on_state=keep)
    return states


def simulate(c: float, f0: float, **kwargs) -> np.ndarray:
    """Raw states (300, 64, 64) of one sequence, before normalisation (float64)."""
    return simulate_batch(np.array([c]), np.array([f0]), **kwargs)[0].numpy()


def normalize(states: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sequence min-max scaling of (B, T, H, W) states to [0, 1]; returns (scaled, min, max)."""
    x = torch.as_tensor(states)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (x - lo) / (hi - lo)
    return scaled.numpy(), lo.flatten().numpy(), hi.flatten().numpy()


def draw_parameters(num_sequences: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sequence (c, f0) and the WaveEq-100 sensor pixels, reproducibly from ``seed``.

    Sequence by sequence, f0 ~ U(1, 30) is drawn first, then c ~ U(300, 400). Sensors come from an
    independent stream so they do not depend on the number of sequences.
    """
    params_ss, sensors_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(params_ss)
    draws = np.empty((num_sequences, 2))
    for i in range(num_sequences):
        draws[i, 0] = rng.uniform(1, 30)
        draws[i, 1] = rng.uniform(300, 400)
    sensors = np.random.default_rng(sensors_ss).integers(0, GRID, size=(NUM_SENSORS, 2))
    return draws[:, 1].copy(), draws[:, 0].copy(), sensors


# ------------------------------------------------------------------------------------------ generation
def _is_waveeq_folder(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def generate(
    out: str | Path,
    *,
    num_sequences: int = 300,
    seed: int = 0,
    num_train: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    chunk: int = 20,
) -> Path:
    """Write the WaveEq data set to folder ``out`` (see the module docstring for the format).

    The folder is assembled under a temporary name and renamed at the end, so an interrupted run leaves
    no half-written data set behind. ``num_train`` defaults to 80 % (240 of the paper's 300).
    """
    out = Path(out)
    if num_sequences < 2:
        raise DataError(f"--num-sequences must be at least 2 (a training and a test sequence), got {num_sequences}")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    if overwrite:  # only a WaveEq folder this generator wrote (or an empty one) is replaced
        check_replaceable(out, recognised=_is_waveeq_folder, what="a WaveEq data folder (with the meta.json "
                          "varsep generate writes)")
    num_train = round(0.8 * num_sequences) if num_train is None else num_train
    if not 1 <= num_train < num_sequences:
        raise DataError(f"num_train must be between 1 and {num_sequences - 1}, got {num_train}")
    c, f0, sensors = draw_parameters(num_sequences, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        frames = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.float32,
                                           shape=(num_sequences, NUM_FRAMES, GRID, GRID))
        raw_min, raw_max = np.empty(num_sequences), np.empty(num_sequences)
        with tqdm(total=num_sequences, desc="WaveEq", unit="seq", disable=not progress) as bar:
            for lo in range(0, num_sequences, chunk):
                hi = min(lo + chunk, num_sequences)
                scaled, raw_min[lo:hi], raw_max[lo:hi] = normalize(simulate_batch(c[lo:hi], f0[lo:hi]))
                frames[lo:hi] = scaled[:, ::KEEP_EVERY]
                bar.update(hi - lo)
        frames.flush()
        del frames
        np.save(tmp / "sensors.npy", sensors)
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "seed": seed, "num_sequences": num_sequences,
            "num_train": num_train, "frames": [num_sequences, NUM_FRAMES, GRID, GRID], "dt": STEP * KEEP_EVERY,
            "solver": {"scheme": "rk4-3/8", "step": STEP, "states": NUM_STATES, "keep_every": KEEP_EVERY},
            "c": c.tolist(), "f0": f0.tolist(), "raw_min": raw_min.tolist(), "raw_max": raw_max.tolist(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
