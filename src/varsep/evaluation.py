"""Evaluation protocols: forecast every test window, score every predicted frame, write a report.

For each test horizon h, every test window of τ+1+h frames is forecast from its τ+1 conditioning frames,
and MSE (and, for frames, PSNR and SSIM) are computed per predicted frame, then averaged over windows for
each horizon step 1…h. "Repeat the last conditioning frame" is scored alongside as a baseline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from varsep import metrics
from varsep.data import build_dataset
from varsep.data.base import SequenceDataset, WindowSet
from varsep.errors import DataError
from varsep.model import SeparableForecaster
from varsep.run import LoadedRun


@dataclass
class CurveAccumulator:
    """Running sums of per-step metric values over windows."""

    horizon: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def add(self, name: str, values: torch.Tensor) -> None:
        """``values`` (windows, horizon) of one batch."""
        total = values.double().sum(0).cpu().numpy()
        self.sums[name] = self.sums.get(name, 0) + total

    def curves(self) -> dict[str, list[float]]:
        return {k: (v / max(self.count, 1)).tolist() for k, v in self.sums.items()}


def autocast(precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def iterate_forecasts(model: SeparableForecaster, windows: WindowSet, horizon: int, *, batch_size: int,
                      limit: int | None = None, precision: str = "32", progress: bool = True,
                      desc: str = "forecast") -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield (window indices, targets (b, h, *frame), forecasts (b, h, *frame)) batch by batch."""
    n = len(windows) if limit is None else min(limit, len(windows))
    cond = model.cond_frames
    with torch.inference_mode(), tqdm(total=n, desc=desc, unit="win", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            idx = np.arange(lo, min(lo + batch_size, n))
            frames = torch.from_numpy(windows.take(idx))
            with autocast(precision):
                pred = model.forecast(frames[:, :cond], horizon)
            yield idx, frames, pred.float()
            bar.update(len(idx))


def score_horizon(model: SeparableForecaster, windows: WindowSet, horizon: int, *, batch_size: int = 64,
                  limit: int | None = None, precision: str = "32", progress: bool = True,
                  keep: int = 1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per-step metric curves for one horizon, and ``keep`` example windows for figures."""
    cond = model.cond_frames
    acc = CurveAccumulator(horizon)
    examples: dict[str, list[np.ndarray]] = {"frames": [], "forecast": [], "index": []}
    is_frame = len(windows.take(np.array([0])).shape) == 5
    frame_dims = 3 if is_frame else 1
    for idx, frames, pred in iterate_forecasts(model, windows, horizon, batch_size=batch_size, limit=limit,
                                               precision=precision, progress=progress, desc=f"t+{horizon}"):
        target = frames[:, cond:]
        last = frames[:, cond - 1:cond].expand_as(target)
        acc.add("mse", metrics.mse(pred, target, frame_dims=frame_dims))
        acc.add("psnr", metrics.psnr(pred, target, frame_dims=frame_dims))
        acc.add("baseline_mse", metrics.mse(last, target, frame_dims=frame_dims))
        if is_frame and min(target.shape[-2:]) >= 11:
            acc.add("ssim", metrics.ssim(pred, target))
        acc.count += len(idx)
        if len(examples["index"]) < keep:
            take = slice(0, keep - len(examples["index"]))
            examples["frames"].extend(frames[take].numpy())
            examples["forecast"].extend(pred[take].numpy())
            examples["index"].extend(idx[take])
    curves = acc.curves()
    result: dict[str, Any] = {"windows": acc.count}
    for name, curve in curves.items():
        result[name] = curve
        result[f"{name}_mean"] = float(np.mean(curve))
    return result, {k: np.stack(v) if v else np.zeros(0) for k, v in examples.items()}


def evaluate(loaded: LoadedRun, dataset: SequenceDataset | None = None, *, out_dir: str | Path | None = None,
             batch_size: int = 64, limit: int | None = None, precision: str = "32", progress: bool = True,
             figures: bool = True) -> dict[str, Any]:
    """Score a loaded run on every test horizon of its data set; write metrics.json and figures."""
    from varsep import plots

    dataset = dataset or build_dataset(loaded.config.data)
    check_compatible(loaded, dataset)
    report: dict[str, Any] = {"checkpoint": str(loaded.checkpoint), "step": loaded.step,
                              "data": loaded.config.data.name, "precision": precision, "horizons": {}}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for horizon in loaded.config.data.test_horizons:
        windows = dataset.test_windows(horizon)
        result, examples = score_horizon(loaded.model, windows, horizon, batch_size=batch_size, limit=limit,
                                         precision=precision, progress=progress)
        report["horizons"][str(horizon)] = result
        if out is not None and figures and len(examples["index"]):
            cond = loaded.model.cond_frames
            label = windows.describe(int(examples["index"][0]))
            plots.forecast_strip(examples["frames"][0], examples["forecast"][0], cond,
                                 out / f"forecast_t{horizon}.png", title=label)
            plots.forecast_gif(examples["frames"][0], examples["forecast"][0], cond, out / f"forecast_t{horizon}.gif")
            plots.metric_curves({"model": result["mse"], "repeat last frame": result["baseline_mse"]},
                                out / f"mse_t{horizon}.png", ylabel="MSE", log=True)
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(report, indent=1))
    return report


def check_compatible(loaded: LoadedRun, dataset: SequenceDataset) -> None:
    """Refuse data whose observations or windows do not match what the model was trained on."""
    got, want = dataset.spec, loaded.spec
    if got.frame_shape != want.frame_shape:
        raise DataError(f"the model expects observations of shape {want.frame_shape} but the data "
                        f"({loaded.config.data.name}) have shape {got.frame_shape}")
    if got.cond_frames != want.cond_frames:
        raise DataError(f"the model conditions on {want.cond_frames} frames but the data config gives "
                        f"{got.cond_frames} (data.cond_frames)")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines: mean MSE per horizon against the repeat-last-frame baseline."""
    lines = []
    for horizon, r in report["horizons"].items():
        ratio = r["baseline_mse_mean"] / r["mse_mean"] if r["mse_mean"] > 0 else float("inf")
        versus = f"{ratio:.1f}× lower" if ratio >= 1 else f"{1 / ratio:.1f}× HIGHER"
        extra = f", SSIM {r['ssim_mean']:.4f}" if "ssim_mean" in r else ""
        lines.append(f"t+{horizon}: MSE {r['mse_mean']:.3e} (repeat-last-frame {r['baseline_mse_mean']:.3e}: "
                     f"{versus}), PSNR {r['psnr_mean']:.2f} dB{extra} over {r['windows']} windows")
    return lines
