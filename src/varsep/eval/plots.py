"""Figures and animations of forecasts (PNG via matplotlib, GIF via imageio).

Frames are drawn on the [0, 1] scale for data in [0, 1]; other data (SST's standardised values) are drawn
on the range of the ground truth shown. Difference rows use a diverging colour map scaled by their own
largest absolute value (the "scaled difference" of the paper's Fig. 5 and 7), printed in the row name.
Vector observations (WaveEq-100) are drawn as sensor × time maps.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

Row = tuple[str, np.ndarray, str]  # (name, frames (n, *frame), "image" | "diff")
REFERENCE_LINES = ("--", ":")  # line styles of the reference curves (repeat last frame, climatology)
LAND = (0.6, 0.6, 0.6)  # masked cells (land) in maps: plain grey, in no colour map used


def _as_image(frame: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) or (H, W, 3) for imshow."""
    if frame.shape[0] == 1:
        return frame[0]
    if frame.shape[0] == 3:
        return np.moveaxis(frame, 0, -1)
    return frame.mean(0)


def pick_columns(total: int, max_columns: int) -> list[int]:
    if total <= max_columns:
        return list(range(total))
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, max_columns)})


def value_range(reference: np.ndarray, unit_interval: bool) -> tuple[float, float]:
    if unit_interval:
        return 0.0, 1.0
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return (lo, hi) if hi > lo else (lo - 1.0, lo + 1.0)


def _save(fig: plt.Figure, path: Path, title: str) -> Path:
    if title:
        fig.suptitle(textwrap.fill(title, 6 * round(fig.get_figwidth() * 2)), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _show(ax: plt.Axes, frame: np.ndarray, kind: str, vrange: tuple[float, float], scale: float) -> None:
    if kind == "diff":
        ax.imshow(frame.mean(0), cmap="RdBu_r", vmin=-scale, vmax=scale)
    elif frame.shape[0] == 3:
        lo, hi = vrange
        ax.imshow(np.clip((_as_image(frame) - lo) / (hi - lo), 0, 1))
    else:
        ax.imshow(_as_image(frame), cmap="gray", vmin=vrange[0], vmax=vrange[1])
    ax.set_xticks([])
    ax.set_yticks([])


def frame_rows(rows: Sequence[Row], path: str | Path, *, steps: Sequence[int], unit_interval: bool = True,
               title: str = "", step_offset: int = 1) -> Path:
    """A grid: one row per (name, frames, kind), one column per index in ``steps`` (labelled t+k)."""
    path = Path(path)
    images = [r[1] for r in rows if r[2] == "image"]
    vrange = value_range(images[0] if images else rows[0][1], unit_interval)
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(1.2 * len(steps) + 1.3, 1.25 * len(rows) + 0.5),
                             squeeze=False)
    for r, (name, seq, kind) in enumerate(rows):
        scale = float(np.abs(seq).max()) or 1.0
        label = f"{name}\n(±{scale:.2g})" if kind == "diff" else name
        for c, k in enumerate(steps):
            _show(axes[r, c], seq[k], kind, vrange, scale)
            if r == 0:
                axes[r, c].set_title(f"t+{k + step_offset}", fontsize=8)
            if c == 0:
                axes[r, c].set_ylabel(label, fontsize=8)
    return _save(fig, path, title)


def forecast_strip(frames: np.ndarray, forecast: np.ndarray, cond: int, path: str | Path, *,
                   title: str = "", max_columns: int = 10, rows: Mapping[str, np.ndarray] | None = None,
                   unit_interval: bool = True) -> Path:
    """Ground truth, forecast and scaled difference of one window (paper Fig. 5, 6).

    ``frames`` is the whole window (τ+1+h, *frame); ``forecast`` its h predicted frames. Extra ``rows``
    (name → h frames) are drawn under the forecast.
    """
    target = frames[cond:]
    extra = dict(rows or {})
    if frames.ndim == 2:  # vectors (T, m)
        panels = [("ground truth", target, "image"), ("forecast", forecast, "image")]
        panels += [(k, v, "image") for k, v in extra.items()]
        panels.append(("difference", forecast - target, "diff"))
        return vector_panels(panels, path, title=title, unit_interval=unit_interval)
    named: list[Row] = [("ground truth", target, "image"), ("forecast", forecast, "image")]
    named += [(name, value, "image") for name, value in extra.items()]
    named.append(("difference", forecast - target, "diff"))
    return frame_rows(named, path, steps=pick_columns(len(target), max_columns), unit_interval=unit_interval,
                      title=title)


def prediction_strip(history: np.ndarray, forecast: np.ndarray, times: Sequence[float], path: str | Path, *,
                     title: str = "", max_columns: int = 8) -> Path:
    """The last observed frames, then forecast frames at ``times`` (no ground truth: `varsep predict`)."""
    path = Path(path)
    past = list(range(max(0, len(history) - 4), len(history)))
    ahead = pick_columns(len(forecast), max_columns)
    vrange = value_range(np.concatenate([history, forecast]), unit_interval=False)
    fig, axes = plt.subplots(1, len(past) + len(ahead), figsize=(1.2 * (len(past) + len(ahead)) + 0.5, 1.9),
                             squeeze=False)
    for c, k in enumerate(past):
        _show(axes[0, c], history[k], "image", vrange, 1.0)
        axes[0, c].set_title("t" if k == len(history) - 1 else f"t−{len(history) - 1 - k}", fontsize=8)
    for c, k in enumerate(ahead, start=len(past)):
        _show(axes[0, c], forecast[k], "image", vrange, 1.0)
        axes[0, c].set_title(f"t+{float(times[k]):g}", fontsize=8, color="tab:blue")
    axes[0, 0].set_ylabel("observed | forecast", fontsize=8)
    return _save(fig, path, title)


def swap_strip(target: np.ndarray, content: np.ndarray, forecast: np.ndarray, swapped: np.ndarray,
               path: str | Path, *, truth: np.ndarray | None = None, unit_interval: bool = True,
               title: str = "", max_columns: int = 10) -> Path:
    """Content swap of one window over its h predicted steps (paper Fig. 2 swap row, 3, 7).

    Rows: the dynamic sequence's ground truth, the content source's frames, the forecast, the forecast with
    the content source's S, the swap's ground truth (when known) and the scaled difference swap − forecast.
    """
    rows: list[Row] = [("dynamics (truth)", target, "image"), ("content source", content, "image"),
                       ("forecast", forecast, "image"), ("swap", swapped, "image")]
    if truth is not None:
        rows.append(("swap truth", truth, "image"))
    rows.append(("swap − forecast", swapped - forecast, "diff"))
    if target.ndim == 2:
        return vector_panels(rows, path, title=title, unit_interval=unit_interval)
    return frame_rows(rows, path, steps=pick_columns(len(target), max_columns), unit_interval=unit_interval,
                      title=title)


def vector_panels(panels: Sequence[Row], path: str | Path, *, title: str = "",
                  unit_interval: bool = True) -> Path:
    """Vector observations (T, m): one sensor × step map per panel."""
    path = Path(path)
    vrange = value_range(panels[0][1], unit_interval)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels) + 0.5), squeeze=False)
    for ax, (name, data, kind) in zip(axes[:, 0], panels, strict=True):
        if kind == "diff":
            scale = float(np.abs(data).max()) or 1.0
            im = ax.imshow(data.T, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            im = ax.imshow(data.T, aspect="auto", cmap="viridis", vmin=vrange[0], vmax=vrange[1])
        ax.set_ylabel(f"{name}\nsensor", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.02)
    axes[-1, 0].set_xlabel("forecast step")
    return _save(fig, path, title)


def fusion_grid(content: np.ndarray, dynamics: np.ndarray, grid: np.ndarray, path: str | Path, *,
                unit_interval: bool = True, title: str = "") -> Path:
    """Paper Fig. 4: cell (r, c) = forecast with the content of row r and the dynamics of column c.

    ``content`` (R, *frame): a frame of each content source (first column); ``dynamics`` (C, *frame): the
    true frame of each dynamic source at the step shown (first row); ``grid`` (R, C, *frame).
    """
    path = Path(path)
    rows, cols = grid.shape[:2]
    vrange = value_range(np.concatenate([content, dynamics]), unit_interval)
    fig, axes = plt.subplots(rows + 1, cols + 1, figsize=(1.2 * (cols + 1) + 0.4, 1.2 * (rows + 1) + 0.5),
                             squeeze=False)
    axes[0, 0].axis("off")
    axes[0, 0].text(0.5, 0.5, "first row, first\ncolumn: truth;\nthe others:\nforecasts", ha="center",
                    va="center", fontsize=7, transform=axes[0, 0].transAxes)
    for c in range(cols):
        _show(axes[0, c + 1], dynamics[c], "image", vrange, 1.0)
        axes[0, c + 1].set_title(f"dynamics {c + 1}\n(truth)", fontsize=8)
    for r in range(rows):
        _show(axes[r + 1, 0], content[r], "image", vrange, 1.0)
        axes[r + 1, 0].set_ylabel(f"content {r + 1}\n(truth)", fontsize=8)
        for c in range(cols):
            _show(axes[r + 1, c + 1], grid[r, c], "image", vrange, 1.0)
            if r == 0:
                axes[r + 1, c + 1].set_title("forecast", fontsize=7)
    return _save(fig, path, title)


def metric_curves(curves: Mapping[str, Sequence[float]], path: str | Path, *, ylabel: str,
                  log: bool = False, title: str = "", references: Sequence[str] = ()) -> Path:
    """Per-horizon curves of one metric (one line per model or baseline).

    Every curve gets its own colour (tab20 beyond ten curves, where the default cycle would repeat);
    the curves named in ``references`` (e.g. "repeat last frame", "climatology") are drawn black, dashed
    then dotted, so that a reference is never mistaken for a model."""
    path = Path(path)
    models = [name for name in curves if name not in references]
    many = len(models) > 10
    colours = plt.get_cmap("tab20" if many else "tab10")
    fig, ax = plt.subplots(figsize=(7.5 if many else 5.5, 3.8 if many else 3.5))
    for name, curve in curves.items():
        style = ({"color": "black", "linestyle": REFERENCE_LINES[list(references).index(name) % len(REFERENCE_LINES)]}
                 if name in references else {"color": colours(models.index(name) % colours.N)})
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name, marker="." if len(curve) <= 20 else None,
                **style)
    ax.set_xlabel("forecast step (t + k)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers: no 2.5 or 7.5
    ax.set_ylabel(ylabel)
    if log and all(v > 0 for curve in curves.values() for v in curve):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(curves) > 6:  # beside the axes: a legend of many lines would cover them
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def masked_frame(frame: np.ndarray, valid: np.ndarray | None) -> np.ma.MaskedArray:
    """One channel (H, W) of a frame (C, H, W) as a masked array: the cells outside ``valid`` (land) masked,
    whatever they hold (0, NaN), so they are drawn as :data:`LAND` and set no colour limit."""
    image = np.asarray(frame, dtype=np.float64).mean(0) if frame.ndim == 3 else np.asarray(frame, np.float64)
    hidden = ~np.isfinite(image)
    if valid is not None:
        cells = np.asarray(valid, dtype=bool)
        hidden |= ~(cells.all(0) if cells.ndim == 3 else cells)
    return np.ma.masked_array(image, mask=hidden)


def masked_maps(truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray | None, path: str | Path, *,
                steps: Sequence[int] | None = None, units: str = "", title: str = "",
                extent: tuple[float, float, float, float] | None = None) -> Path:
    """Maps of a field forecast: ground truth, forecast and their difference at a few steps, land grey.

    ``truth`` and ``forecast`` (h, C, H, W) are in the data's units; ``valid`` (the data set's mask, True
    where the field is) hides the other cells, drawn plain :data:`LAND`. Truth and forecast share the
    colour range of the truth's valid cells; the difference is diverging, scaled by its largest absolute
    value. ``extent`` (lon0, lon1, lat0, lat1) labels the axes (cells drawn as equal squares)."""
    path = Path(path)
    steps = list(steps) if steps is not None else pick_columns(len(truth), 4)
    shown = [masked_frame(truth[k], valid) for k in steps]
    lo = float(min(m.min() for m in shown))
    hi = float(max(m.max() for m in shown))
    diffs = [masked_frame(forecast[k], valid) - masked_frame(truth[k], valid) for k in steps]
    scale = float(max(np.abs(d).max() for d in diffs)) or 1.0
    rows = [("ground truth", shown, "viridis", (lo, hi)),
            ("forecast", [masked_frame(forecast[k], valid) for k in steps], "viridis", (lo, hi)),
            (f"forecast − truth\n(±{scale:.2g} {units})".rstrip(), diffs, "RdBu_r", (-scale, scale))]
    fig, axes = plt.subplots(3, len(steps), figsize=(2.1 * len(steps) + 1.6, 5.6), squeeze=False)
    for r, (name, images, cmap, (vmin, vmax)) in enumerate(rows):
        colours = plt.get_cmap(cmap).with_extremes(bad=LAND)
        for c, image in enumerate(images):
            ax = axes[r, c]
            shown_image = ax.imshow(image, cmap=colours, vmin=vmin, vmax=vmax, origin="lower",
                                    interpolation="nearest", extent=extent, aspect="auto")
            if r == 0:
                ax.set_title(f"t+{steps[c] + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            ax.tick_params(labelsize=6)
        fig.colorbar(shown_image, ax=list(axes[r]), shrink=0.85, label=units if r < 2 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stride_curve(mse: Sequence[float], baseline: Sequence[float], stride: int, path: str | Path) -> Path:
    """Per-step MSE of a model trained on every ``stride``-th frame: steps at observed times vs the skipped
    in-between frames it never saw in training."""
    path = Path(path)
    steps = np.arange(1, len(mse) + 1)
    values = np.asarray(mse)
    seen = steps % stride == 0
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(steps, values, color="0.6", lw=1)
    ax.scatter(steps[seen], values[seen], color="tab:blue", s=18, zorder=3,
               label=f"observed times (mean {values[seen].mean():.2e})")
    if (~seen).any():
        ax.scatter(steps[~seen], values[~seen], color="tab:orange", marker="s", s=18, zorder=3,
                   label=f"skipped in-between frames (mean {values[~seen].mean():.2e})")
    ax.plot(steps, baseline, color="tab:red", ls="--", lw=1, label="repeat last frame")
    ax.set_xlabel("forecast step (t + k)")
    ax.set_ylabel("MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, f"trained on every {ordinal(stride)} frame")


def ordinal(n: int) -> str:
    """2 → "2nd", 11 → "11th", 23 → "23rd" (for titles)."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _to_uint8(frame: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    lo, hi = vrange
    img = (_as_image(frame) - lo) / (hi - lo)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _labels(shape: tuple[int, ...], width: int, gap: int) -> np.ndarray:
    """A white band with "truth" over the left panel and "forecast" over the right one (PIL's bitmap font)."""
    from PIL import Image, ImageDraw

    band = Image.new("L", (shape[1], 12), 255)
    draw = ImageDraw.Draw(band)
    draw.text((2, 0), "truth", fill=0)
    draw.text((width + gap + 2, 0), "forecast", fill=0)
    out = np.asarray(band, np.uint8)
    return np.repeat(out[..., None], shape[2], axis=2) if len(shape) == 3 else out


def forecast_gif(frames: np.ndarray, forecast: np.ndarray, cond: int, path: str | Path, *,
                 duration_ms: int = 120, scale: int = 2, unit_interval: bool = True) -> Path | None:
    """An animation: ground truth (left) next to the forecast (right), labelled "truth" and "forecast" above;
    conditioning frames shown on both."""
    path = Path(path)
    if frames.ndim != 4:
        return None
    vrange = value_range(frames, unit_interval)
    shown = np.concatenate([frames[:cond], forecast], axis=0)
    tiles = []
    for truth, pred in zip(frames, shown, strict=True):
        left, right = _to_uint8(truth, vrange), _to_uint8(pred, vrange)
        gap = np.full((left.shape[0], 2, *left.shape[2:]), 255, np.uint8)
        tile = np.concatenate([left, gap, right], axis=1)
        tile = np.kron(tile, np.ones((scale, scale, *([1] * (tile.ndim - 2))), np.uint8))
        tiles.append(np.concatenate([_labels(tile.shape, left.shape[1] * scale, gap.shape[1] * scale), tile]))
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(tiles), duration=duration_ms, loop=0)
    return path
