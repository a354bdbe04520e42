"""`varsep demo`: the whole pipeline on an embedded default, in a few minutes on two CPU cores of any class.

It generates a small WaveEq set (no download), trains the paper's WaveEq model — at a size that fits the
slowest CPUs this project supports (see :data:`DEMO_SCALE`) — for a fixed number of steps, evaluates it
on the held-out test sequences against "repeat the last frame", and leaves metrics and figures in the run
folder.

Budget: a fixed number of optimiser steps, not a time limit, so every machine does the same training (its
result still differs from machine to machine through floating-point rounding, which training amplifies: the
same seed gave 8.2× on AVX-512 and 5.6× on AVX2 at the earlier budget of 600 steps of batch 64). It is sized
for the slowest class, 2 AVX2 cores, measured on a stand-in for it (``benchmarks/cpu_standin.py --isa avx2
--fp32-gflops 46``: instruction sets capped at AVX2 and CPU time throttled until an fp32 matrix product runs
at the 46 GFLOP/s of a real 2-core AVX2 EPYC): there 800 steps of batch 32 train in 3.3 minutes and the demo
takes 4.0, 8.6× better than "repeat the last frame" (docs/performance.md). Batch 32 rather than 64: about 60 %
of the time a step and, over three seeds (``benchmarks/demo_budget.py``), a forecast at least 8.3× better than
repeating the last frame in fp32 and in bf16, where 600 steps of batch 64 gave 7.0× and 6.7× at worst. The
time cap (:data:`DEMO_MINUTES`, ``--minutes``) ends training on anything slower, with a note (the ETA line
says so in advance), so that the whole demo stays within about 5 minutes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.datagen.waveeq import generate
from varsep.errors import ConfigError
from varsep.eval import EvalOptions, evaluate, summary_lines
from varsep.forecaster import load
from varsep.storage import atomic_write_text, safe_torch_load
from varsep.train import fit

DEMO_SEQUENCES = 60  # 48 for training (6 of them for validation), 12 for testing
DEMO_STEPS = 800
DEMO_MINUTES = 4.0  # the cap on training time (800 steps took 3.3 min on the AVX2 stand-in): ends it on slower CPUs
# For the ETA, measured on 2 cores (docs/performance.md): validations add ~10 % to the training time, and the
# evaluation costs about as much as this many training steps (23 s against 0.22 s a step on the AVX2 stand-in).
VALIDATION_OVERHEAD = 1.1
EVALUATION_STEPS = 110
# What the demo changes from the paper's WaveEq configuration so that it trains in minutes on any CPU; the
# rest (architecture, codes, integrator depth, losses, optimiser) is the paper's. Printed by the demo.
DEMO_SCALE = {
    "model.encoder_hidden": [256, 256],  # paper: [1200, 1200]
    "model.decoder_hidden": [256, 256, 256],  # paper: [1200, 1200, 1200]
    "model.width": 128,  # integrator width H, paper: 512
    "data.batch_size": 32,  # paper: 128
    "data.keep_prob": 0.5,  # supervise each window at half its frames, drawn at random (paper: all)
    "trainer.max_steps": DEMO_STEPS,  # paper: 18 750
}
def fresh_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` … — the first that does not exist or is empty."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def demo_config(data_dir: Path, *, steps: int = DEMO_STEPS, minutes: float | None = DEMO_MINUTES,
                precision: str = "auto"):
    """The demo's run config: the paper's WaveEq model at the scale of :data:`DEMO_SCALE`."""
    overrides: dict[str, Any] = {
        "data.root": str(data_dir), "data.val_sequences": 6, "data.val_stride": 10,
        "data.batches_per_epoch": 25, "trainer.max_epochs": 10**6, "trainer.val_every_n_epochs": 2,
        "trainer.precision": precision, "trainer.log_every_n_steps": 5, "trainer.checkpoint_every_n_steps": 100,
        **DEMO_SCALE, "trainer.max_steps": steps,
    }
    if minutes is not None:
        overrides["trainer.max_time_minutes"] = minutes
    return load_config("waveeq", overrides)


def scale_note(steps: int) -> str:
    """What the demo scaled down, for its output (from :data:`DEMO_SCALE`)."""
    hidden = DEMO_SCALE["model.encoder_hidden"][0]
    return (f"encoder/decoder widths {hidden} (paper: 1200), integrator width {DEMO_SCALE['model.width']} "
            f"(paper: 512), batch {DEMO_SCALE['data.batch_size']} (paper: 128), each window supervised at "
            f"{DEMO_SCALE['data.keep_prob']:.0%} of its frames drawn at random (paper: all), {steps} steps "
            f"(paper: 18 750); codes, integrator depth, losses and optimiser as in the paper")


class DemoETA(Callback):
    """After a few steps, one line: when training and the whole demo will end, from the measured pace.

    Where the pace says the time cap (``minutes``) will end training first, the line says so, with the step
    training will then reach, and counts the cap rather than the steps."""

    def __init__(self, start: float, steps: int, at_step: int = 10, minutes: float | None = None) -> None:
        self.start = start
        self.steps = steps
        self.at_step = at_step
        self.minutes = minutes
        self._t0: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.at_step or self._t0 is None:
            return
        tqdm.write(self.line(time.perf_counter() - self._t0, time.perf_counter() - self.start))

    def line(self, trained: float, elapsed: float) -> str:
        """The ETA after :attr:`at_step` steps took ``trained`` seconds, ``elapsed`` since the demo began."""
        pace = trained / self.at_step
        training = pace * (self.steps - self.at_step) * VALIDATION_OVERHEAD
        capped = ""
        if self.minutes is not None and trained + training > self.minutes * 60:
            training = max(self.minutes * 60 - trained, 0.0)
            reach = self.at_step + int(training / (pace * VALIDATION_OVERHEAD))
            capped = (f" (the {self.minutes:g}-minute cap will end it near step {min(reach, self.steps)} of "
                      f"{self.steps}: this machine is slower than the demo was sized for)")
        total = elapsed + training + pace * EVALUATION_STEPS
        return (f"ETA: {pace:.2f} s per step, training ends in ~{_minutes(training)}{capped}, the demo in "
                f"~{_minutes(total)} in all")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run_demo(out: Path, *, steps: int = DEMO_STEPS, minutes: float | None = DEMO_MINUTES, overwrite: bool = False,
             progress: bool = True, precision: str = "auto") -> dict:
    if steps < 1:
        raise ConfigError(f"--steps must be ≥ 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise ConfigError(f"--minutes must be > 0, got {minutes}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it, or --out for another folder")
    start = time.perf_counter()
    data_dir, run_dir = out / "data", out / "run"
    print(f"[1/3] generating {DEMO_SEQUENCES} WaveEq sequences in {data_dir}")
    generate(data_dir, num_sequences=DEMO_SEQUENCES, seed=0, overwrite=True, progress=progress)
    config = demo_config(data_dir, steps=steps, minutes=minutes, precision=precision)
    print(f"[2/3] training the paper's WaveEq model in {run_dir}, scaled to run in minutes on any CPU: "
          f"{scale_note(steps)}")
    fit(config, run_dir, overwrite=True, progress=progress, callbacks=[DemoETA(start, steps, minutes=minutes)])
    run = load(run_dir, "best")
    print(f"[3/3] evaluating step {run.step}'s checkpoint (the best on validation) on the test sequences: every "
          "45-frame chunk, 40 forecast steps")
    report = evaluate(run, build_dataset(config.data), out_dir=run_dir / "eval",
                      options=EvalOptions(progress=progress, precision=precision))
    result = report["horizons"]["40"]
    ratio = result["baseline_mse_mean"] / result["mse_mean"]
    trained = _trained_steps(run_dir)
    summary = {"run_dir": str(run_dir), "steps": trained, "checkpoint_step": run.step,
               "minutes": (time.perf_counter() - start) / 60, "mse_mean": result["mse_mean"],
               "repeat_last_frame_mse_mean": result["baseline_mse_mean"], "times_better": ratio,
               "beats_repeat_last_frame": ratio > 1, "precision": report["precision"], "scale": DEMO_SCALE}
    atomic_write_text(run_dir / "eval" / "demo.json", json.dumps(summary, indent=1))
    print()
    for line in summary_lines(report):
        print(line)
    if trained < steps:
        print(f"Note: the {minutes:g}-minute cap ended training after {trained} of {steps} steps (this machine is "
              f"slower than the demo was sized for); --minutes sets the cap.")
    verdict = f"{ratio:.1f}× lower than" if ratio >= 1 else f"{1 / ratio:.1f}× HIGHER than"
    print(f"After {trained} training steps the forecast error is {verdict} repeating the last frame "
          f"(mean MSE over 40 steps {result['mse_mean']:.3e} vs {result['baseline_mse_mean']:.3e}); "
          f"{summary['minutes']:.1f} min in all.")
    print(f"Figures: {run_dir / 'eval'} (forecast_t40.png, forecast_t40.gif, mse_t40.png); "
          f"logs: {run_dir / 'logs' / 'metrics.csv'}")
    return summary


def _trained_steps(run_dir: Path) -> int:
    return int(safe_torch_load(run_dir / "checkpoints" / "last.ckpt").get("global_step", 0))
