"""Side-by-side comparisons: the separable model and baselines trained on the same data at the same budget.

``compare(config, root, models=[...], budget_steps=N | budget_minutes=M)`` takes the data (and trainer
settings) of ``config`` — a data set's preset such as ``configs/waveeq.yaml`` — and for each model:

- ``varsep``: the config as given (the paper's model for that data set);
- a baseline name (``phydnet``, ``convlstm``, …): the model and optimiser sections of its preset
  ``configs/baselines/<name>.yaml`` (the method's reference settings) with the same data, windows, seed and
  budget;

trains it in ``root/<model>/`` (an ordinary run folder), scores its **last** checkpoint with the same
:class:`~varsep.eval.evaluation.EvalOptions`, and writes ``root/compare.md`` (the paper-style table),
``root/compare.json``, ``root/compare_mse_t<h>.png`` (every model's per-step MSE, with "repeat the last
frame") and ``root/compare_forecasts_t<h>.png`` (one test window: the truth and every model's forecast).

Budgets. ``budget_steps``: every model makes that many optimiser steps (OneCycle schedules span them).
``budget_minutes``: every model trains for that much wall-clock time on this machine (its step count is
what it could do); schedules that need the step count in advance (OneCycle) are replaced by a constant
learning rate, which the table says. Running the command again skips finished models (same config),
resumes unfinished ones, and continues every model when the budget grows — as ``varsep ablate`` does.

DrNet trains in two stages (its autoencoder, then its pose LSTM); the comparison gives each half the budget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from varsep.config import RunConfig, apply_overrides, config_from_dict, read_yaml, resolve_config_path
from varsep.config.schema import BASELINE_KINDS
from varsep.data import build_dataset
from varsep.errors import ConfigError, VarsepError
from varsep.eval.evaluation import EvalOptions, autocast, evaluate
from varsep.eval.finished import finished_report, mark_finished
from varsep.eval.tables import run_table
from varsep.forecaster import load
from varsep.runs import COMPARE_MARKER, CONFIG_FILE
from varsep.storage import atomic_write_text, safe_torch_load
from varsep.train import fit

DONE_FILE = COMPARE_MARKER
NO_BUDGET_EPOCHS = 1_000_000
SEPARABLE = "varsep"
LABELS = {SEPARABLE: "Ours (varsep)", "convlstm": "ConvLSTM", "predrnn": "PredRNN", "predrnn_v2": "PredRNN-V2",
          "predrnnpp": "PredRNN++", "mim": "MIM", "e3dlstm": "E3D-LSTM", "phydnet": "PhyDNet", "simvp": "SimVP",
          "tau": "TAU", "drnet": "DrNet", "svg": "SVG-LP", "pknl": "PKnl", "ddpae": "DDPAE"}


def parse_models(text: str) -> list[str]:
    """``"varsep,phydnet"`` → ["varsep", "phydnet"] (unknown names are an error listing the valid ones)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    valid = [SEPARABLE, *BASELINE_KINDS]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ConfigError(f"unknown model {', '.join(unknown) or repr(text)}; choose among: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--models names a model twice: {text}")
    return names


def model_config(base: RunConfig, model: str, *, budget_steps: int | None = None,
                 budget_minutes: float | None = None) -> RunConfig:
    """The run config of ``model`` on the data of ``base``, with the budget."""
    raw = base.to_dict()
    if model != SEPARABLE:
        preset = read_yaml(resolve_config_path(f"baselines/{model}"))
        raw["model"] = dict(preset["model"])
        raw["optim"] = dict(preset.get("optim", {}))
        raw["data"].update(preset.get("data", {}))
    overrides: dict[str, Any] = {"trainer.max_epochs": NO_BUDGET_EPOCHS}
    if budget_steps is not None:
        overrides["trainer.max_steps"] = budget_steps
        if model == "drnet":
            overrides["model.baseline.lstm_from_step"] = budget_steps // 2
    if budget_minutes is not None:
        overrides["trainer.max_time_minutes"] = budget_minutes
        overrides["trainer.max_steps"] = -1
        overrides["optim.schedule"] = "milestones"  # a OneCycle span needs the step count in advance
        overrides["optim.milestones"] = []
        if model == "drnet":  # stage 2 starts where the first half of the time ends (see compare())
            overrides["model.baseline.lstm_from_step"] = 10**9
    return config_from_dict(apply_overrides(raw, overrides))


def _train(cfg: RunConfig, run_dir: Path, model: str, budget_minutes: float | None, progress: bool) -> RunConfig:
    resume = (run_dir / CONFIG_FILE).is_file()
    if model == "drnet" and budget_minutes is not None and not resume:  # stage 1 on the first half of the time
        half = apply_overrides(cfg.to_dict(), {"trainer.max_time_minutes": budget_minutes / 2})
        fit(config_from_dict(half), run_dir, progress=progress)
        step = int(safe_torch_load(run_dir / "checkpoints" / "last.ckpt").get("global_step", 0))
        cfg = config_from_dict(apply_overrides(cfg.to_dict(), {"model.baseline.lstm_from_step": step}))
        resume = True
    elif model == "drnet" and budget_minutes is not None:
        saved = config_from_dict(read_yaml(run_dir / CONFIG_FILE))
        cfg = config_from_dict(apply_overrides(cfg.to_dict(), {
            "model.baseline.lstm_from_step": saved.model.baseline.get("lstm_from_step", 10**9)}))
    fit(cfg, run_dir, resume=resume, progress=progress)
    return cfg


def compare(config: RunConfig, run_root: str | Path, models: list[str], *, budget_steps: int | None = None,
            budget_minutes: float | None = None, options: EvalOptions | None = None, log=print) -> dict[str, Any]:
    """Train and evaluate each model in ``run_root/<model>``; write the table and figures (module docstring)."""
    if (budget_steps is None) == (budget_minutes is None):
        raise ConfigError("give one budget: --budget-steps N or --budget-minutes M")
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps must be ≥ 1, got {budget_steps}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be > 0, got {budget_minutes}")
    options = options or EvalOptions()
    configs = {m: model_config(config, m, budget_steps=budget_steps, budget_minutes=budget_minutes) for m in models}
    root = Path(run_root)
    dataset = build_dataset(config.data)
    finished = {m: finished_report(root / m, DONE_FILE, c) for m, c in configs.items()}
    _check_every_model_applies({m: c for m, c in configs.items() if finished[m] is None}, dataset)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for model in models:
        cfg, run_dir, label = configs[model], root / model, LABELS[model]
        report = finished[model]
        if report is not None:
            log(f"[{model}] already trained and evaluated: {run_dir}")
        else:
            log(f"[{model}] {'resuming' if (run_dir / CONFIG_FILE).is_file() else 'training'} in {run_dir}")
            start = time.perf_counter()
            try:
                cfg = _train(cfg, run_dir, model, budget_minutes, options.progress)
            except ConfigError as err:
                raise ConfigError(f"{err}. The comparison in {root} was started with other settings; use "
                                  f"another --run-root for the new settings") from None
            seconds = time.perf_counter() - start
            trained = load(run_dir, "last")
            report = evaluate(trained, dataset, out_dir=run_dir / "eval", options=_with_label(options, label))
            info = {"model": model, "label": label, "budget_steps": budget_steps, "budget_minutes": budget_minutes,
                    "step": trained.step, "train_seconds_last_session": seconds}
            mark_finished(run_dir, DONE_FILE, info, configs[model])
        step = int(report["step"])
        rows.append({"model": model, "label": label, "step": step, "report": report})
    return write_summary(root, rows, dataset, options, budget_steps=budget_steps, budget_minutes=budget_minutes)


def _check_every_model_applies(configs: dict[str, RunConfig], dataset) -> None:
    """Refuse a model that cannot train on this data set before any model trains (or a folder is made),
    naming it; ``configs`` are the models still to train (a finished one is only read back)."""
    from varsep.train.runner import resolve_config

    for model, cfg in configs.items():
        try:
            resolve_config(cfg, dataset)
        except ConfigError as err:
            who = LABELS[model] if model == SEPARABLE else f"{LABELS[model]} ({model})"
            raise ConfigError(f"{who} cannot take part in this comparison: {err}. Leave it out of "
                              f"--models") from None


def _with_label(options: EvalOptions, label: str) -> EvalOptions:
    from dataclasses import replace

    return replace(options, label=label)


def write_summary(root: Path, rows: list[dict[str, Any]], dataset, options: EvalOptions, *,
                  budget_steps: int | None, budget_minutes: float | None) -> dict[str, Any]:
    """compare.md, compare.json and the two figures in ``root``."""
    from varsep.eval import plots
    from varsep.eval.scoring import headline_mse, mse_label

    if not rows:
        raise VarsepError("no model was compared")
    reports = [r["report"] for r in rows]
    budget = (f"{budget_steps} optimiser steps each" if budget_steps is not None else
              f"{budget_minutes:g} minutes of training each on this machine (constant learning rates)")
    text = "# Comparison\n\n" + run_table(reports, [r["label"] for r in rows])
    text += f"\nBudget: {budget}; steps made: " + ", ".join(f"{r['label']} {r['step']}" for r in rows) + ".\n"
    figures = []
    for horizon in reports[0]["horizons"]:
        key = headline_mse(reports[0]["horizons"][horizon])
        curves = {r["label"]: r["report"]["horizons"][horizon][key] for r in rows}
        curves["repeat last frame"] = reports[0]["horizons"][horizon][f"baseline_{key}"]
        figures.append(plots.metric_curves(curves, root / f"compare_mse_t{horizon}.png", ylabel=mse_label(key),
                                           log=True, title=f"MSE per forecast step ({budget})",
                                           references=("repeat last frame",)).name)
        figures.append(_forecast_figure(root, rows, dataset, int(horizon), options).name)
    text += "\nFigures: " + ", ".join(figures) + "\n"
    summary = {"budget_steps": budget_steps, "budget_minutes": budget_minutes, "figures": figures,
               "models": [{"model": r["model"], "label": r["label"], "step": r["step"],
                           "horizons": {h: {k: v for k, v in res.items() if k.endswith("_mean") or k == "windows"}
                                        for h, res in r["report"]["horizons"].items()}} for r in rows]}
    (root / "compare.md").write_text(text)
    atomic_write_text(root / "compare.json", json.dumps(summary, indent=1))
    summary["markdown"] = text
    return summary


def _forecast_figure(root: Path, rows: list[dict[str, Any]], dataset, horizon: int, options: EvalOptions) -> Path:
    """One test window: the truth, then each model's forecast, at up to ten steps."""
    from varsep.eval import plots

    windows = dataset.test_windows(horizon)
    index = len(windows) // 2
    frames = windows.take(np.array([index]))
    panels = []
    for r in rows:
        trained = load(root / r["model"], "last")
        model = trained.model
        cond, target = model.split_window(torch.from_numpy(frames))
        with torch.inference_mode(), autocast(r["report"]["precision"]):
            pred = model.forecast(cond, horizon).float()[0].numpy()
        panels.append((r["label"], pred, "image"))
    target = target[0].numpy()
    rows_ = [("ground truth", target, "image"), *panels]
    title = f"{windows.describe(index)}: forecasts from {frames.shape[1] - horizon} frames"
    if target.ndim == 2:
        return plots.vector_panels(rows_, root / f"compare_forecasts_t{horizon}.png", title=title,
                                   unit_interval=dataset.unit_interval)
    return plots.frame_rows(rows_, root / f"compare_forecasts_t{horizon}.png",
                            steps=plots.pick_columns(horizon, 10), unit_interval=dataset.unit_interval, title=title)
