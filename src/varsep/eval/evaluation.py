"""Evaluation protocols: forecast every test window, score every predicted frame, write a report.

For each test horizon h, every test window (its conditioning window, then h frames) is forecast from its
τ+1 conditioning frames and every predicted frame is scored (definitions: :mod:`varsep.eval.scoring`); values
are averaged over windows for each step 1…h (per-horizon curves) and over the horizon (``<metric>_mean``,
the numbers of the paper's tables). "Repeat the last conditioning frame" is scored alongside as a
baseline. For models with a content code, the content swap is scored too (:mod:`varsep.eval.swap`).

``evaluate(loaded, dataset, out_dir=…)`` writes into ``out_dir``:
  metrics.json           every curve and mean, with the definition of each metric
  results.md             the paper-style table of this run (varsep.eval.tables)
  forecast_t<h>.png      ground truth / forecast / scaled difference of one window (paper Fig. 5, 6)
  forecast_t<h>.gif      the same window animated: ground truth left, forecast right
  swap_t<h>.png          content swap of that window: content source, swap forecast, its ground truth
                         when known, scaled difference swap − forecast (paper Fig. 2 swap row, 3, 7)
  mse_t<h>.png, psnr_t<h>.png, ssim_t<h>.png   per-step curves: model, repeat-last-frame, swap
  fusion.png             content of row r (first column) with dynamics of column c (first row), at the
                         last step of the first horizon (paper Fig. 4, 11)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from varsep.allocator import keep_freed_memory
from varsep.data import build_dataset
from varsep.data.base import SequenceDataset, WindowSet
from varsep.errors import ConfigError, DataError
from varsep.eval.scoring import CurveAccumulator, FrameScorer, headline_mse, mse_label
from varsep.eval.swap import SwapScorer, partners, swap_forecast, swap_truths
from varsep.forecaster import Forecaster
from varsep.model import SeparableModel
from varsep.precision import Precision, resolve_precision
from varsep.storage import atomic_write_text

__all__ = ["EvalOptions", "check_compatible", "evaluate", "reference_verdict", "score_horizon", "summary_lines"]

# The references every forecast is held against: (prefix of their metrics, key in the verdict, in words).
REFERENCES = (("baseline_", "repeat_last_frame", "repeating the last frame"),
              ("climatology_", "climatology", "the climatology"))
REFERENCE_PREFIXES = tuple(prefix for prefix, _, _ in REFERENCES)


@dataclass(frozen=True)
class EvalOptions:
    """How to score a run (every option of ``varsep evaluate``, and of the evaluations ``ablate`` runs).

    ``limit``: score only the first N test windows of each horizon; ``precision``: "auto" (bf16 autocast
    where the hardware runs it natively and faster, see varsep.precision), "32", "bf16" or a resolved
    :class:`~varsep.precision.Precision`; ``device``: cpu, cuda, or auto; ``figures`` / ``swap`` / ``ssim``:
    what to compute besides MSE and PSNR; ``label``: the run's name in tables (default: its folder);
    ``samples``: for a stochastic model (SVG-LP), also score the best of this many samples per window (the
    SVG protocol: the sample with the highest mean SSIM over the horizon, PSNR without SSIM) as ``best_of_*``.
    """

    batch_size: int = 64
    limit: int | None = None
    precision: str | Precision = "auto"
    device: str = "cpu"
    figures: bool = True
    swap: bool = True
    ssim: bool = True
    progress: bool = True
    label: str | None = None
    samples: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"the evaluation batch size must be ≥ 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"the window limit must be ≥ 1, got {self.limit}")
        if self.samples < 0:
            raise ConfigError(f"the number of samples must be ≥ 0, got {self.samples}")


def autocast(precision: str, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast for a resolved precision "bf16", nothing for "32"."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(device: str | None) -> torch.device:
    """``auto`` (or None) → CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: no CUDA GPU is available on this machine; use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device}: no Apple GPU is available on this machine; use cpu or auto")
    return dev


def score_horizon(model: SeparableModel, windows: WindowSet, horizon: int, *,
                  dataset: SequenceDataset | None = None, options: EvalOptions | None = None, keep: int = 1,
                  precision: str = "32", device: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-step metric curves for one horizon (and the swap's), and ``keep`` example windows for figures.

    ``precision`` is resolved ("32" or "bf16") and ``device`` a device: :func:`evaluate` settles both."""
    options = options or EvalOptions()
    batch_size, limit, progress, swap, ssim = (options.batch_size, options.limit, options.progress, options.swap,
                                               options.ssim)
    scorer = FrameScorer.build(dataset, windows, model.spec, ssim=ssim)
    acc = CurveAccumulator(horizon)
    best = CurveAccumulator(horizon)  # best of options.samples draws, for stochastic models
    can_swap = swap and model.swappable and len(windows) >= 2
    swapper = SwapScorer(scorer, dataset, horizon) if can_swap else None
    examples: dict[str, list] = {"index": [], "frames": [], "forecast": [], "swap": [], "content": []}
    n = len(windows) if limit is None else min(limit, len(windows))
    with torch.inference_mode(), tqdm(total=n, desc=f"t+{horizon}", unit="win", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            idx = np.arange(lo, min(lo + batch_size, n))
            frames = torch.from_numpy(windows.take(idx)).to(device)
            swapped = content = None
            if swapper is None:
                with autocast(precision, device):
                    pred = model.forecast(scorer.split(frames)[0], horizon).float()
            else:
                content = torch.from_numpy(windows.take(swapper.content_indices(idx))).to(device)
                with autocast(precision, device):  # one integration, decoded with its own and the partner's S
                    pred, swapped = model.forecast_with_swap(scorer.split(frames)[0], scorer.split(content)[0],
                                                             horizon)
                pred, swapped = pred.float(), swapped.float()
            acc.add_all(scorer.score(idx, frames, pred), len(idx))
            if options.samples and model.stochastic:
                best.add_all(best_of_samples(model, scorer, idx, frames, horizon, options.samples, precision,
                                             device), len(idx))
            if swapped is not None:
                swapper.add(idx, frames, pred, swapped)
            take = slice(0, max(0, keep - len(examples["index"])))
            examples["index"].extend(idx[take])
            examples["frames"].extend(frames[take].cpu().numpy())
            examples["forecast"].extend(pred[take].cpu().numpy())
            if swapped is not None and content is not None:
                examples["swap"].extend(swapped[take].cpu().numpy())
                examples["content"].extend(content[take].cpu().numpy())
            bar.update(len(idx))
    result: dict[str, Any] = acc.result()
    if best.count:
        result.update({f"best_of_{k}": v for k, v in best.result().items() if k != "windows"})
        result["samples"] = options.samples
    result["definitions"] = scorer.definitions
    if swapper is not None:
        result["swap"] = swapper.result()
    return result, examples


def best_of_samples(model, scorer: FrameScorer, idx: np.ndarray, frames: torch.Tensor, horizon: int, samples: int,
                    precision: str, device) -> dict[str, torch.Tensor]:
    """Per window, the metrics of the one of ``samples`` draws with the highest mean SSIM (PSNR without SSIM)."""
    with autocast(precision, device):
        draws = model.forecast_samples(scorer.split(frames)[0], horizon, samples).float()  # (n, b, h, *frame)
    scores = [scorer.score(idx, frames, draw) for draw in draws]
    key = "ssim" if "ssim" in scores[0] else "psnr"
    choice = torch.stack([s[key].mean(1) for s in scores]).argmax(0)  # (b,)
    rows = torch.arange(len(idx))
    return {name: torch.stack([s[name] for s in scores])[choice, rows] for name in scores[0]
            if not name.startswith(REFERENCE_PREFIXES)}


def evaluate(run: Forecaster, dataset: SequenceDataset | None = None, *, out_dir: str | Path | None = None,
             options: EvalOptions | None = None) -> dict[str, Any]:
    """Score a trained run on every test horizon of its data set; write metrics.json, results.md, figures.

    metrics.json records the precision that ran and why (see :class:`EvalOptions`)."""
    options = options or EvalOptions()
    keep_freed_memory()  # varsep.allocator
    loaded = run
    dataset = dataset or build_dataset(loaded.config.data)
    check_compatible(loaded, dataset)
    dev = resolve_device(options.device)
    choice = options.precision if isinstance(options.precision, Precision) else resolve_precision(options.precision,
                                                                                                    dev)
    precision = choice.value
    model = loaded.model.to(dev).eval()
    report: dict[str, Any] = {
        "label": options.label or _run_label(loaded), "checkpoint": str(loaded.checkpoint), "step": loaded.step,
        "data": loaded.config.data.name, "precision": precision, "precision_reason": choice.reason,
        "limit": options.limit,
        "content": model.uses_content, "horizons": {}, "figures": []}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for number, horizon in enumerate(loaded.config.data.test_horizons):
        windows = dataset.test_windows(horizon)
        if len(windows) == 0:
            raise DataError(f"the test set of {loaded.config.data.name} has no window of "
                            f"{model.cond_frames} + {horizon} frames")
        result, examples = score_horizon(model, windows, horizon, dataset=dataset, options=options,
                                         precision=precision, device=dev)
        report["definitions"] = result.pop("definitions")
        if model.time_stride > 1:
            result["stride"] = split_by_observed_times(result, model.time_stride)
        result["verdict"] = reference_verdict(result)
        report["horizons"][str(horizon)] = result
        if out is not None and options.figures and examples["index"]:
            report["figures"] += _figures(out, model, dataset, windows, horizon, result, examples,
                                          fusion=number == 0, precision=precision, device=dev)
    if out is not None:
        from varsep.eval.tables import run_table

        atomic_write_text(out / "metrics.json", json.dumps(report, indent=1))
        (out / "results.md").write_text(run_table([report]))
    return report


def split_by_observed_times(result: dict[str, Any], stride: int) -> dict[str, Any]:
    """For a model trained on every ``stride``-th frame: metric means over the forecast steps at times it
    was trained to see (step k with k % stride == 0, the last conditioning frame being observed) and over
    the skipped in-between frames it never saw."""
    out: dict[str, Any] = {"time_stride": stride}
    for name, curve in result.items():
        if not isinstance(curve, list) or not curve or not isinstance(curve[0], float):
            continue
        steps = np.arange(1, len(curve) + 1)
        values = np.asarray(curve)
        out[f"{name}_observed_times_mean"] = float(values[steps % stride == 0].mean())
        if (steps % stride != 0).any():
            out[f"{name}_skipped_times_mean"] = float(values[steps % stride != 0].mean())
    return out


def _run_label(loaded: Forecaster) -> str:
    if loaded.checkpoint is None:  # a model built in memory
        return loaded.config.model.kind
    path = Path(loaded.checkpoint)
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def _figures(out: Path, model: SeparableModel, dataset: SequenceDataset, windows: WindowSet,
             horizon: int, result: dict[str, Any], examples: dict[str, list], *, fusion: bool,
             precision: str, device: torch.device) -> list[str]:
    from varsep.eval import plots

    cond = model.cond_span  # targets start after the conditioning window's span
    index = int(examples["index"][0])
    frames, forecast = examples["frames"][0], examples["forecast"][0]
    unit = dataset.unit_interval
    title = windows.describe(index)
    made = [plots.forecast_strip(frames, forecast, cond, out / f"forecast_t{horizon}.png", title=title,
                                 unit_interval=unit),
            plots.forecast_gif(frames, forecast, cond, out / f"forecast_t{horizon}.gif", unit_interval=unit)]
    swap = result.get("swap")
    if examples["swap"] and swap is not None:
        partner = int(partners(len(windows))[index])
        truths = swap_truths(dataset, windows, np.array([partner]), np.array([index]))
        truth = None if truths is None else _closest(truths[:, 0, cond:], examples["swap"][0])
        made.append(plots.swap_strip(frames[cond:], examples["content"][0][cond:], forecast,
                                     examples["swap"][0], out / f"swap_t{horizon}.png", truth=truth,
                                     unit_interval=unit,
                                     title=f"dynamics: {title}; content: {windows.describe(partner)}"))
    mse_key = headline_mse(result)
    for key, ylabel, log in ((mse_key, mse_label(mse_key), True), ("psnr", "PSNR (dB)", False),
                             ("ssim", "SSIM", False)):
        if key not in result:
            continue
        curves = {"model": result[key], "repeat last frame": result[f"baseline_{key}"]}
        if f"climatology_{key}" in result:
            curves["climatology"] = result[f"climatology_{key}"]
        if swap is not None and key in swap:
            curves["content swap"] = swap[key]
        name = "mse" if key.startswith("mse") else key
        made.append(plots.metric_curves(curves, out / f"{name}_t{horizon}.png", ylabel=ylabel, log=log,
                                        title=f"{result['windows']} test windows",
                                        references=("repeat last frame", "climatology")))
    if dataset.valid_mask is not None and len(np.asarray(frames).shape) == 4:
        made.append(_masked_map(out / f"map_t{horizon}.png", dataset, windows, index, frames, forecast, cond,
                                title))
    if "stride" in result:
        made.append(plots.stride_curve(result["mse"], result["baseline_mse"], model.time_stride,
                                       out / f"mse_observed_vs_skipped_t{horizon}.png"))
    if fusion and model.swappable and len(np.asarray(frames).shape) == 4 and len(windows) >= 2:
        made.append(_fusion(out / "fusion.png", model, windows, horizon, unit, precision, device))
    return [str(p.name) for p in made if p is not None]


def _masked_map(path: Path, dataset: SequenceDataset, windows: WindowSet, index: int, frames: np.ndarray,
                forecast: np.ndarray, cond: int, title: str) -> Path:
    """Truth, forecast and difference of one window as maps, in the data's units where it has them, the
    masked cells (land) drawn grey."""
    from varsep.eval import plots

    which = np.array([index])
    truth, guess = np.asarray(frames[cond:])[None], np.asarray(forecast)[None]
    phys_truth = dataset.physical(truth, windows, which, cond)
    units = ""
    if phys_truth is not None:
        truth, guess = phys_truth, dataset.physical(guess, windows, which, cond)
        units = "data units"
    return plots.masked_maps(truth[0], guess[0], dataset.valid_mask, path, units=units,
                             title=f"{title}: land (masked cells) grey")


def _closest(truths: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    errors = [float(np.mean((t - forecast) ** 2)) for t in truths]
    return truths[int(np.argmin(errors))]


def _fusion(path: Path, model: SeparableModel, windows: WindowSet, horizon: int, unit: bool,
            precision: str, device: torch.device, size: int = 4) -> Path:
    """Grid of forecasts: S from window rows[r], T from window cols[c], frame t+horizon (paper Fig. 4)."""
    from varsep.eval import plots

    n = len(windows)
    picks = np.unique(np.linspace(0, n - 1, min(2 * size, n)).round().astype(np.int64))
    rows, cols = picks[0::2], picks[1::2]
    row_frames = torch.from_numpy(windows.take(rows)).to(device)
    col_frames = torch.from_numpy(windows.take(cols)).to(device)
    row_cond, col_cond = model.split_window(row_frames)[0], model.split_window(col_frames)[0]
    r = np.repeat(np.arange(len(rows)), len(cols))
    c = np.tile(np.arange(len(cols)), len(rows))
    with torch.inference_mode(), autocast(precision, device):
        fused = swap_forecast(model, col_cond[c], row_cond[r], horizon).float()
    grid = fused[:, -1].cpu().numpy().reshape(len(rows), len(cols), *fused.shape[2:])
    return plots.fusion_grid(row_cond[:, -1].cpu().numpy(), col_frames[:, -1].cpu().numpy(), grid, path,
                             unit_interval=unit,
                             title=f"content (first column) × dynamics (first row), t+{horizon}")


def check_compatible(loaded: Forecaster, dataset: SequenceDataset) -> None:
    """Refuse data whose observations or windows do not match what the model was trained on."""
    got, want = dataset.spec, loaded.spec
    if got.frame_shape != want.frame_shape:
        raise DataError(f"the model expects observations of shape {want.frame_shape} but the data "
                        f"({loaded.config.data.name}) have shape {got.frame_shape}")
    if got.cond_frames != want.cond_frames:
        raise DataError(f"the model conditions on {want.cond_frames} frames but the data config gives "
                        f"{got.cond_frames} (data.cond_frames)")


def reference_verdict(result: dict[str, Any]) -> dict[str, Any]:
    """Whether the model beats each reference of a horizon's result at every forecast step.

    Compared on the headline MSE (:func:`~varsep.eval.scoring.headline_mse`: the data's units where the data
    set has them), step by step: a step is beaten when the model's MSE is strictly below the reference's.
    Returns ``{"metric": key, "steps": h, <reference>: {"not_beaten": [steps, 1-based], "beats_every_step":
    bool, "worst_ratio": max over steps of model / reference MSE}}`` for each reference scored."""
    key = headline_mse(result)
    model = result[key]
    out: dict[str, Any] = {"metric": key, "steps": len(model)}
    for prefix, name, _ in REFERENCES:
        reference = result.get(prefix + key)
        if reference is None:
            continue
        pairs = list(zip(model, reference, strict=True))
        missed = [step for step, (m, r) in enumerate(pairs, start=1) if not m < r]
        ratios = [m / r if r > 0 else float("inf") if m > 0 else 1.0 for m, r in pairs]
        out[name] = {"not_beaten": missed, "beats_every_step": not missed, "worst_ratio": max(ratios)}
    return out


def step_ranges(steps: list[int]) -> str:
    """[1, 2, 3, 7] → "1–3, 7"."""
    runs: list[list[int]] = []
    for step in steps:
        if runs and step == runs[-1][-1] + 1:
            runs[-1].append(step)
        else:
            runs.append([step])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


def verdict_lines(horizon: str, result: dict[str, Any], verdict: dict[str, Any]) -> list[str]:
    """Plain lines: which references the model does not beat, at which steps, or that it beats them all."""
    key, n = verdict["metric"], verdict["steps"]
    present = [(prefix, name, words) for prefix, name, words in REFERENCES if name in verdict]
    beaten = [words for _, name, words in present if verdict[name]["beats_every_step"]]
    lines = []
    for prefix, name, words in present:
        missed = verdict[name]["not_beaten"]
        if not missed:
            continue
        ratios = [m / r if r > 0 else float("inf") for m, r in zip(result[key], result[prefix + key], strict=True)]
        worst = int(np.argmax(ratios))
        at = "steps" if len(missed) > 1 else "step"
        lines.append(f"t+{horizon}: the model does NOT beat {words} at {at} {step_ranges(missed)} of {n} "
                     f"({key} {result[key][worst]:.3g} against {result[prefix + key][worst]:.3g} at step "
                     f"{worst + 1})")
    if beaten:
        worst_ratio = max(verdict[name]["worst_ratio"] for _, name, words in present if words in beaten)
        both = " and ".join(beaten)
        if len(beaten) == len(present):
            lines.append(f"t+{horizon}: the model beats {both} at every one of the {n} steps ({key} at most "
                         f"{worst_ratio:.2f}× theirs)")
        else:
            lines.append(f"t+{horizon}: it beats {both} at every step ({key} at most {worst_ratio:.2f}× theirs)")
    return lines


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines: mean MSE per horizon against the repeat-last-frame baseline (and climatology),
    whether the model beats them at every step, and the swap."""
    lines = []
    for horizon, r in report["horizons"].items():
        ratio = r["baseline_mse_mean"] / r["mse_mean"] if r["mse_mean"] > 0 else float("inf")
        versus = f"{ratio:.1f}× lower" if ratio >= 1 else f"{1 / ratio:.1f}× HIGHER"
        extra = f", SSIM {r['ssim_mean']:.4f}" if "ssim_mean" in r else ""
        key = headline_mse(r)
        if key != "mse":
            extra += f", {key} {r[f'{key}_mean']:.4g}"
        lines.append(f"t+{horizon}: MSE {r['mse_mean']:.3e} (repeat-last-frame {r['baseline_mse_mean']:.3e}: "
                     f"{versus}), PSNR {r['psnr_mean']:.2f} dB{extra} over {r['windows']} windows")
        if "climatology_mse_mean" in r:
            lines.append(f"t+{horizon}: climatology MSE {r['climatology_mse_mean']:.3e}" +
                         (f", {key} {r[f'climatology_{key}_mean']:.4g}" if key != "mse" else ""))
        lines += verdict_lines(horizon, r, r.get("verdict") or reference_verdict(r))
        if "best_of_mse_mean" in r:
            lines.append(f"t+{horizon} best of {r['samples']} samples: MSE {r['best_of_mse_mean']:.3e}, PSNR "
                         f"{r['best_of_psnr_mean']:.2f} dB" + (f", SSIM {r['best_of_ssim_mean']:.4f}"
                                                               if "best_of_ssim_mean" in r else ""))
        swap = r.get("swap")
        if swap and swap.get("ground_truth"):
            ssim = f", SSIM {swap['ssim_mean']:.4f}" if "ssim_mean" in swap else ""
            lines.append(f"t+{horizon} content swap: PSNR {swap['psnr_mean']:.2f} dB{ssim} "
                         f"(best of {swap['assignments']} ground truth(s) per sequence)")
        elif swap:
            lines.append(f"t+{horizon} content swap: forecast changes by MSE {swap['change_mse_mean']:.3e} "
                         f"when S comes from another sequence (no ground truth for this data set)")
    return lines
