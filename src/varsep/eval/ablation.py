"""Ablations of the paper's Table 4 (and the "without S" rows of Tables 1 and 3): train and evaluate
variants of one config with the same seed and the same budget, then tabulate them side by side.

Variants (folder name → change to the config):
  full          the config as given ("Ours")
  without_s     model.content: false — T of size d+p, no L_reg^S, no L_reg^T (and model.skips: false, as
                skip maps come from E_S)
  lambda_ae_0   loss.lambda_ae: 0
  lambda_s_0    loss.lambda_s: 0
  lambda_t_0    loss.lambda_t: 0
  gru           model.dynamics: gru (a GRU recurrence instead of the ODE integrator; vector codes only,
                so it is reported as unavailable for the SST 2-D model)

Layout: ``RUN_ROOT/<variant>/`` is an ordinary run folder (config.yaml, checkpoints/, logs/, eval/) plus
``ablation.json`` once the variant is trained and evaluated. ``RUN_ROOT/ablation.md`` and
``RUN_ROOT/ablation.json`` hold the comparison table. Running the command again skips finished variants
(same config), resumes a variant whose training stopped part-way, and retrains nothing else; a larger
``--budget-steps`` continues every variant from its last checkpoint. Each variant is evaluated with its
last checkpoint, so every row has had exactly the same number of optimiser steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from varsep.config import RunConfig, apply_overrides, config_from_dict
from varsep.data import build_dataset
from varsep.data.base import SequenceDataset
from varsep.errors import ConfigError, VarsepError
from varsep.eval.evaluation import EvalOptions, evaluate
from varsep.eval.finished import finished_report, mark_finished
from varsep.eval.tables import columns, run_table, value
from varsep.forecaster import load
from varsep.runs import ABLATION_MARKER, CONFIG_FILE
from varsep.storage import atomic_write_text
from varsep.train import fit

DONE_FILE = ABLATION_MARKER
NO_BUDGET_EPOCHS = 1_000_000  # with --budget-steps, the step budget alone ends training


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {
    "full": Variant("Ours"),
    "without_s": Variant("Ours (without S)", {"model.content": False}),
    "lambda_ae_0": Variant("Ours (λ_AE = 0)", {"loss.lambda_ae": 0.0}),
    "lambda_s_0": Variant("Ours (λ_S = 0)", {"loss.lambda_s": 0.0}),
    "lambda_t_0": Variant("Ours (λ_T = 0)", {"loss.lambda_t": 0.0}),
    "gru": Variant("Ours (GRU)", {"model.dynamics": "gru"}),
}


def parse_variants(text: str | None) -> list[str]:
    """``"full,gru"`` → ["full", "gru"]; None → every variant."""
    if text is None:
        return list(VARIANTS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ConfigError(f"unknown ablation variant {', '.join(unknown) or repr(text)}; "
                          f"choose among: {', '.join(VARIANTS)}")
    return names


def variant_config(base: RunConfig, name: str, budget_steps: int | None = None) -> RunConfig:
    """The config of variant ``name``: the base config with the variant's changes and the step budget."""
    overrides = dict(VARIANTS[name].overrides)
    if name == "without_s" and base.model.skips:
        overrides["model.skips"] = False
    if budget_steps is not None:
        overrides["trainer.max_steps"] = budget_steps
        overrides["trainer.max_epochs"] = max(base.trainer.max_epochs, NO_BUDGET_EPOCHS)
    return config_from_dict(apply_overrides(base.to_dict(), overrides))


def unavailable(config: RunConfig, dataset: SequenceDataset) -> str | None:
    """Why a variant cannot be built for this data set (e.g. GRU on 2-D codes), or None."""
    from varsep.model import build_model
    from varsep.train.runner import resolve_config

    try:
        build_model(resolve_config(config, dataset).model, dataset.spec)
    except (ValueError, ConfigError) as err:
        return str(err)
    return None


def ablate(config: RunConfig, run_root: str | Path, *, variants: list[str] | None = None,
           budget_steps: int | None = None, options: EvalOptions | None = None, log=print) -> dict[str, Any]:
    """Train and evaluate each variant in ``run_root/<variant>``; write ablation.md and ablation.json.

    ``options`` are the evaluations' (every variant is scored alike); training shows a progress bar when
    ``options.progress`` does."""
    options = options or EvalOptions()
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps must be ≥ 1, got {budget_steps}")
    root = Path(run_root)
    root.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(config.data)
    rows: list[dict[str, Any]] = []
    for name in variants or list(VARIANTS):
        variant = VARIANTS[name]
        cfg = variant_config(config, name, budget_steps)
        run_dir = root / name
        reason = unavailable(cfg, dataset)
        if reason is not None:
            log(f"[{name}] unavailable for this model: {reason}")
            rows.append({"variant": name, "label": variant.label, "status": "unavailable", "reason": reason})
            continue
        report = finished_report(run_dir, DONE_FILE, cfg)
        if report is not None:
            log(f"[{name}] already trained and evaluated: {run_dir}")
        else:
            resume = (run_dir / CONFIG_FILE).is_file()
            log(f"[{name}] {'resuming' if resume else 'training'} in {run_dir}")
            start = time.perf_counter()
            try:
                fit(cfg, run_dir, resume=resume, progress=options.progress)
            except ConfigError as err:
                raise ConfigError(f"{err}. The ablation in {root} was started with other settings; use "
                                  f"another --run-root for the new settings") from None
            seconds = time.perf_counter() - start
            loaded = load(run_dir, "last")
            report = evaluate(loaded, dataset, out_dir=run_dir / "eval", options=replace(options, label=variant.label))
            mark_finished(run_dir, DONE_FILE, {"variant": name, "label": variant.label,
                                               "overrides": VARIANTS[name].overrides, "budget_steps": budget_steps,
                                               "step": loaded.step, "train_seconds_last_session": seconds}, cfg)
        rows.append({"variant": name, "label": variant.label, "status": "done", "step": report["step"],
                     "report": report})
    return write_summary(root, rows)


def write_summary(root: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ablation.md (the comparison table) and ablation.json (its values, per variant) in ``root``."""
    done = [r for r in rows if r["status"] == "done"]
    if not done:
        raise VarsepError("no ablation variant could be trained for this config")
    reports = [r["report"] for r in done]
    text = "# Ablation\n\n" + run_table(reports, [r["label"] for r in done])
    skipped = [r for r in rows if r["status"] != "done"]
    if skipped:
        text += "\n" + "\n".join(f"- {r['label']}: unavailable ({r['reason']})" for r in skipped) + "\n"
    steps = sorted({r["step"] for r in done})
    text += f"\nOptimiser steps per variant: {', '.join(map(str, steps))} (same seed for every variant).\n"
    cols = columns(reports)
    summary = {"variants": [
        {k: v for k, v in r.items() if k != "report"}
        | ({"values": {c.header: value(r["report"], c) for c in cols}} if r["status"] == "done" else {})
        for r in rows]}
    (root / "ablation.md").write_text(text)
    atomic_write_text(root / "ablation.json", json.dumps(summary, indent=1))
    summary["markdown"] = text
    return summary
