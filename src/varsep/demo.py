"""`varsep demo`: the whole pipeline on an embedded default, in a few minutes on two CPU cores.

It generates a small WaveEq set (no download), trains the paper's WaveEq model (bf16 autocast) for a
fixed wall-clock budget, evaluates it on the held-out test sequences against "repeat the last frame",
and leaves metrics and figures in the run folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.datagen.waveeq import generate
from varsep.errors import ConfigError
from varsep.eval import evaluate, summary_lines
from varsep.forecaster import load
from varsep.train import fit

DEMO_SEQUENCES = 60  # 48 for training (6 of them for validation), 12 for testing


def fresh_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` … — the first that does not exist or is empty."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def run_demo(out: Path, *, minutes: float = 3.0, overwrite: bool = False, progress: bool = True) -> dict:
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it, or --out for another folder")
    start = time.perf_counter()
    data_dir, run_dir = out / "data", out / "run"
    print(f"[1/3] generating {DEMO_SEQUENCES} WaveEq sequences in {data_dir}")
    generate(data_dir, num_sequences=DEMO_SEQUENCES, seed=0, overwrite=True, progress=progress)
    config = load_config("waveeq", {
        "data.root": str(data_dir), "data.val_sequences": 6, "data.val_stride": 10,
        "data.batches_per_epoch": 25, "trainer.max_epochs": 1000, "trainer.val_every_n_epochs": 4,
        "trainer.precision": "bf16", "trainer.max_time_minutes": minutes, "trainer.log_every_n_steps": 5,
    })
    print(f"[2/3] training the paper's WaveEq model for {minutes:g} minutes (bf16) in {run_dir}")
    fit(config, run_dir, overwrite=True, progress=progress)
    print("[3/3] evaluating on the test sequences (every 45-frame chunk, 40 forecast steps)")
    run = load(run_dir, "last")
    report = evaluate(run, build_dataset(config.data), out_dir=run_dir / "eval", progress=progress)
    result = report["horizons"]["40"]
    beats = result["mse_mean"] < result["baseline_mse_mean"]
    summary = {"run_dir": str(run_dir), "steps": run.step, "minutes": (time.perf_counter() - start) / 60,
               "mse_mean": result["mse_mean"], "repeat_last_frame_mse_mean": result["baseline_mse_mean"],
               "beats_repeat_last_frame": beats}
    (run_dir / "eval" / "demo.json").write_text(json.dumps(summary, indent=1))
    print()
    for line in summary_lines(report):
        print(line)
    verdict = "beats" if beats else "does NOT beat"
    print(f"After {run.step} training steps the forecast {verdict} repeating the last frame "
          f"(mean MSE over 40 steps {result['mse_mean']:.3e} vs {result['baseline_mse_mean']:.3e}).")
    print(f"Figures: {run_dir / 'eval'} (forecast_t40.png, forecast_t40.gif, mse_t40.png); "
          f"logs: {run_dir / 'logs' / 'metrics.csv'}")
    return summary
