"""Benchmark: per-step overhead of training on a small data set (the cost of everything but the model).

    python benchmarks/bench_small_data.py [--epochs 200] [--frames 240] [--batch-size 256]

Writes a NetCDF series like a user's own small field (``--frames`` time steps of a 37×49 grid, one
variable, a 360-day calendar), trains the default MLP model on it with ``varsep fit`` settings where one
epoch is one batch, and compares

- the wall time per optimiser step of the real run (`varsep.run.fit`: Lightning loop, data stream, logs,
  checkpoints, validation) with
- the time of the model's own work on the same batch: forward, backward and the Adam step, timed in a
  plain loop in the same process,

so ``overhead = 1 − model / step``. Target (issue 15): ≤ 10 %. The run's steps are timed by a callback
(the interval between the ends of successive training batches): the median interval is the per-step cost of
the loop (data, logging, the step itself), the mean adds the amortised validations and checkpoints, and the
start-up (data opening, Lightning set-up, up to the first batch) is reported apart. Prints one JSON object
with the hardware.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware, json_only_stdout  # noqa: E402


def write_series(path: Path, frames: int, seed: int = 0) -> Path:
    """A smooth field on a 37×49 lat/lon grid with a seasonal cycle and a drifting pattern."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None]
    lat = np.linspace(-60, 60, 37)[None, :, None]
    lon = np.linspace(0, 360, 49, endpoint=False)[None, None, :]
    field = (15 + 10 * np.cos(np.deg2rad(lat)) + 3 * np.sin(2 * np.pi * t / 12)
             + 2 * np.sin(np.deg2rad(lon) * 2 - 0.3 * t) * np.cos(np.deg2rad(lat)))
    field = field + 0.1 * rng.standard_normal(field.shape)
    import cftime

    times = [cftime.Datetime360Day(2000 + i // 12, i % 12 + 1, 15) for i in range(frames)]
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), field.astype(np.float32))},
                    coords={"time": times, "lat": lat.ravel(), "lon": lon.ravel()})
    ds.to_netcdf(path)
    return path


def model_step_seconds(run_dir: Path, repeats: int = 30) -> float:
    """Median time of forward + backward + Adam on one training batch of the run, outside Lightning."""
    from dataclasses import asdict

    from varsep.config import config_from_dict, read_yaml
    from varsep.data import build_dataset
    from varsep.model.losses import loss_terms
    from varsep.train.stream import TrainStream
    from varsep.train.task import TrainingTask

    config = config_from_dict(read_yaml(run_dir / "config.yaml"))
    dataset = build_dataset(config.data)
    task = TrainingTask(config.to_dict(), asdict(dataset.spec), config.model.encoder, config.model.decoder)
    model = task.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas), fused=True)
    stream = TrainStream(dataset.train_source(), batch_size=config.data.batch_size,
                         batches_per_epoch=config.data.batches_per_epoch, seed=0, ae_choices=task.ae_choices)
    batch = stream.batch(0, 0)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        terms = loss_terms(model, batch["frames"], batch["ae_index"], config.loss)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


class StepClock:
    """Wall-clock time of each training batch's end (a Lightning callback, built lazily)."""

    def __init__(self) -> None:
        from lightning.pytorch.callbacks import Callback

        clock = self

        class _Callback(Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                clock.ends.append(time.perf_counter())

        self.ends: list[float] = []
        self.callback = _Callback()

    def intervals(self) -> list[float]:
        return [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="256: every window in one batch (an epoch "
                        "is one step); smaller: several steps an epoch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from varsep.config import load_config
    from varsep.train import fit

    with tempfile.TemporaryDirectory() as tmp, json_only_stdout():
        tmp = Path(tmp)
        path = write_series(tmp / "series.nc", args.frames)
        config = load_config(None, {
            "data.kind": "netcdf", "data.path": str(path), "data.variable": "tas", "data.cond_frames": 5,
            "data.pred_frames": 10, "data.test_horizons": [10], "data.batch_size": args.batch_size,
            "model.encoder": "mlp", "model.decoder": "mlp", "model.encoder_hidden": [256, 256],
            "model.decoder_hidden": [256, 256], "model.s_dim": 16, "model.t_dim": 16, "model.width": 128,
            "trainer.max_epochs": args.epochs, "trainer.precision": "32", "trainer.progress_bar": False,
            "trainer.threads": args.threads})
        clock = StepClock()
        start = time.perf_counter()
        run_dir = fit(config, tmp / "run", progress=False, callbacks=[clock.callback])
        wall = time.perf_counter() - start
        model = model_step_seconds(run_dir)
        intervals = clock.intervals()
        median, mean = statistics.median(intervals), statistics.fmean(intervals)
        out = {"benchmark": "small data set: per-step overhead outside the model", "hardware": hardware(),
               "frames": args.frames, "grid": [37, 49], "epochs": args.epochs,
               "batch_size": args.batch_size, "steps": len(intervals) + 1,
               "fit_seconds": round(wall, 2), "startup_seconds": round(clock.ends[0] - start, 2),
               "model_seconds_per_step": round(model, 4),
               "loop_seconds_per_step_median": round(median, 4),
               "loop_seconds_per_step_mean": round(mean, 4),
               "overhead_fraction": round(1 - model / median, 3),
               "overhead_fraction_with_validation_and_checkpoints": round(1 - model / mean, 3)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
