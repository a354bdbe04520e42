"""Data parallelism: Lightning's DDP strategy with 2 CPU processes (gloo) matches one process.

Both runs see the same global batches (each of the 2 processes takes half of every batch, see
varsep.data.stream), so they differ only by the order of floating-point sums in the gradient all-reduce.
Adam turns such rounding differences into visible ones where a gradient is near zero (its update is then
≈ ±lr whatever the gradient's size), so the comparison is on the whole update: after 6 steps the two
weight changes differ by 0.2 % of their size (measured); the test allows 1 %.
"""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L

from varsep.storage import safe_torch_load
from varsep.train.task import TrainingTask as ForecastTask


def test_two_process_ddp_matches_single_process(tmp_path, tiny_config):
    # (a time limit that is never reached: its per-step check is a collective under DDP)
    config = tiny_config(trainer__max_epochs=1, data__batches_per_epoch=6, trainer__threads=1,
                         trainer__max_time_minutes=60)
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = {}
    for name, extra in (("single", []), ("ddp", ["--trainer.strategy", "ddp", "--trainer.devices", "2",
                                                 "--trainer.accelerator", "cpu"])):
        done = subprocess.run([sys.executable, "-m", "varsep", "fit", "-c", str(tmp_path / "config.yaml"),
                               "--run-dir", str(tmp_path / name), "--quiet", *extra],
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = safe_torch_load(tmp_path / name / "checkpoints" / "last.ckpt")
    single, ddp = runs["single"], runs["ddp"]
    assert single["global_step"] == ddp["global_step"] == 6
    hp = single["hyper_parameters"]
    L.seed_everything(config.seed, verbose=False)
    initial = ForecastTask(hp["config"], hp["spec"]).state_dict()  # what both runs started from
    moved = sum(((single["state_dict"][k] - initial[k]) ** 2).sum() for k in initial).sqrt()
    gap = sum(((ddp["state_dict"][k] - single["state_dict"][k]) ** 2).sum() for k in initial).sqrt()
    assert moved > 0 and gap / moved < 0.01, float(gap / moved)
