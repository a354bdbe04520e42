"""Figures and animations of forecasts (PNG via matplotlib, GIF via imageio)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _as_image(frame: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) or (H, W, 3) for imshow."""
    if frame.shape[0] == 1:
        return frame[0]
    if frame.shape[0] == 3:
        return np.moveaxis(frame, 0, -1).clip(0, 1)
    return frame.mean(0)


def pick_columns(total: int, max_columns: int) -> list[int]:
    if total <= max_columns:
        return list(range(total))
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, max_columns)})


def forecast_strip(frames: np.ndarray, forecast: np.ndarray, cond: int, path: str | Path, *,
                   title: str = "", max_columns: int = 10, rows: Mapping[str, np.ndarray] | None = None) -> Path:
    """Ground truth, forecast and scaled difference of one window (like the paper's Fig. 6).

    ``frames`` is the whole window (τ+1+h, *frame); ``forecast`` its h predicted frames. Vector
    observations are drawn as (sensor × time) maps instead of image strips. Extra ``rows`` (e.g. a content
    swap) are drawn under the forecast.
    """
    path = Path(path)
    target = frames[cond:]
    extra = dict(rows or {})
    if frames.ndim == 2:  # vectors (T, m)
        return _vector_strip(frames, forecast, cond, path, title=title, rows=extra)
    steps = pick_columns(len(target), max_columns)
    diff = forecast - target
    scale = float(np.abs(diff).max()) or 1.0
    named = [("ground truth", target, "gray"), ("forecast", forecast, "gray")]
    named += [(name, value, "gray") for name, value in extra.items()]
    named.append((f"difference (±{scale:.2g})", diff, "RdBu_r"))
    fig, axes = plt.subplots(len(named), len(steps), figsize=(1.2 * len(steps) + 1.2, 1.25 * len(named) + 0.5),
                             squeeze=False)
    for r, (name, seq, cmap) in enumerate(named):
        for c, k in enumerate(steps):
            ax = axes[r, c]
            if cmap == "RdBu_r":
                ax.imshow(_as_image(seq[k]) if seq[k].shape[0] != 3 else seq[k].mean(0), cmap=cmap,
                          vmin=-scale, vmax=scale)
            else:
                ax.imshow(_as_image(seq[k]), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t+{k + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _vector_strip(frames: np.ndarray, forecast: np.ndarray, cond: int, path: Path, *, title: str,
                  rows: Mapping[str, np.ndarray]) -> Path:
    target = frames[cond:]
    panels = [("ground truth", target.T), ("forecast", forecast.T)]
    panels += [(k, v.T) for k, v in rows.items()]
    panels.append(("difference", (forecast - target).T))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels) + 0.5), squeeze=False)
    for ax, (name, data) in zip(axes[:, 0], panels, strict=True):
        if name == "difference":
            scale = float(np.abs(data).max()) or 1.0
            im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_ylabel(f"{name}\nsensor", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.02)
    axes[-1, 0].set_xlabel("forecast step")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_curves(curves: Mapping[str, Sequence[float]], path: str | Path, *, ylabel: str,
                  log: bool = False, title: str = "") -> Path:
    """Per-horizon curves of one metric (one line per model or baseline)."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name, marker="." if len(curve) <= 20 else None)
    ax.set_xlabel("forecast step (t + k)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    img = _as_image(frame)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def forecast_gif(frames: np.ndarray, forecast: np.ndarray, cond: int, path: str | Path, *,
                 duration_ms: int = 120, scale: int = 2) -> Path | None:
    """An animation: ground truth (left) next to the forecast (right); conditioning frames shown on both."""
    path = Path(path)
    if frames.ndim != 4:
        return None
    shown = np.concatenate([frames[:cond], forecast], axis=0)
    tiles = []
    for truth, pred in zip(frames, shown, strict=True):
        left, right = _to_uint8(truth), _to_uint8(pred)
        gap = np.full((left.shape[0], 2, *left.shape[2:]), 255, np.uint8)
        tile = np.concatenate([left, gap, right], axis=1)
        tiles.append(np.kron(tile, np.ones((scale, scale, *([1] * (tile.ndim - 2))), np.uint8)))
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(tiles), duration=duration_ms, loop=0)
    return path
