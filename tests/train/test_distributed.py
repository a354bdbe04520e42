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
from pathlib import Path

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


def _lazy_store(path) -> None:
    """A small Zarr store chunked along time (4 frames a chunk), so batches are read lazily."""
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(3)
    t = np.arange(96)[:, None, None]
    field = (np.sin(0.3 * t + np.arange(10)[None, :, None] / 3) * np.cos(np.arange(12)[None, None, :] / 4)
             + 0.05 * rng.standard_normal((96, 10, 12))).astype(np.float32)
    field[:, :2, :3] = np.nan  # land
    xr.Dataset({"tas": (("time", "lat", "lon"), field)}, coords={"time": np.arange(96)}).to_zarr(
        path, encoding={"tas": {"chunks": (4, 10, 12)}}, consolidated=False)


def _lazy_config(store) -> dict:
    return {"data": {"kind": "zarr", "path": str(store), "cond_frames": 3, "pred_frames": 4,
                     "test_horizons": [4], "batch_size": 8, "in_memory_mb": 0},
            "model": {"encoder": "mlp", "decoder": "mlp", "encoder_hidden": [32], "decoder_hidden": [32],
                      "s_dim": 4, "t_dim": 4, "width": 16, "blocks": 1},
            "trainer": {"max_steps": 4, "threads": 1, "max_time_minutes": 60, "progress_bar": False,
                        "precision": "32"}}


def test_two_processes_on_one_lazy_store_match_one_process(tmp_path):
    """Lightning's own launch (its DDP child inherits the run folder chosen by the parent: no --run-dir) and
    torchrun's (every process started at once, as on several nodes) both equal one process."""
    import glob

    from varsep.config import config_from_dict

    _lazy_store(tmp_path / "field.zarr")
    config = config_from_dict(_lazy_config(tmp_path / "field.zarr"))
    (tmp_path / "lazy.yaml").write_text(config.to_yaml())
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    fit = ["-m", "varsep", "fit", "-c", str(tmp_path / "lazy.yaml"), "--quiet"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    commands = {"single": [sys.executable, *fit, "--run-dir", "single"],
                "lightning": [sys.executable, *fit, *ddp],
                "torchrun": [*torchrun, *fit, "--run-dir", "torchrun", *ddp]}
    runs = {}
    for name, command in commands.items():
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        if name != "single":
            assert done.stdout.count("done: checkpoints") == 1, done.stdout  # one process speaks
        folder = glob.glob(str(tmp_path / "runs" / "lazy-*")) if name == "lightning" else [tmp_path / name]
        assert len(folder) == 1
        runs[name] = safe_torch_load(Path(folder[0]) / "checkpoints" / "last.ckpt")
    hp = runs["single"]["hyper_parameters"]
    L.seed_everything(config.seed, verbose=False)
    initial = ForecastTask(hp["config"], hp["spec"]).state_dict()
    single = runs["single"]["state_dict"]
    moved = sum(((single[k] - initial[k]) ** 2).sum() for k in initial).sqrt()
    for name in ("lightning", "torchrun"):
        assert runs[name]["global_step"] == runs["single"]["global_step"] == 4
        gap = sum(((runs[name]["state_dict"][k] - single[k]) ** 2).sum() for k in initial).sqrt()
        assert moved > 0 and gap / moved < 0.01, (name, float(gap / moved))


def test_each_process_reads_only_its_share_of_a_lazy_store(tmp_path, monkeypatch):
    import numpy as np

    from varsep.config import config_from_dict
    from varsep.data import build_dataset
    from varsep.data.custom.lazy import LazyRows
    from varsep.train.stream import TrainStream, WindowBatches

    _lazy_store(tmp_path / "field.zarr")
    dataset = build_dataset(config_from_dict(_lazy_config(tmp_path / "field.zarr")).data)
    assert isinstance(dataset.data.rows, LazyRows)
    asked: list[np.ndarray] = []
    original = LazyRows.__getitem__
    monkeypatch.setattr(LazyRows, "__getitem__", lambda self, index: (asked.append(np.asarray(index).ravel()),
                                                                      original(self, index))[1])
    windows = dataset.train_source().windows

    def rows_read(rank: int, world: int) -> tuple[set[int], np.ndarray]:
        asked.clear()
        stream = TrainStream(dataset.train_source(), batch_size=8, batches_per_epoch=None, seed=0,
                             ae_choices=1, rank=rank, world_size=world)
        frames = stream.batch(0, 1)["frames"].numpy()
        return set(np.concatenate(asked).tolist()), frames

    whole, all_frames = rows_read(0, 1)
    order = np.random.default_rng([0, 0, 2**32 - 1]).permutation(len(windows))[8:16]
    for rank in (0, 1):
        mine, frames = rows_read(rank, 2)
        share = order[rank * 4:(rank + 1) * 4]
        assert mine == set(windows.rows(share).ravel().tolist())  # its 4 windows' rows, nothing else
        np.testing.assert_array_equal(frames, all_frames[rank * 4:(rank + 1) * 4])
    assert len(mine) < len(whole)
    val = dataset.val_windows()
    for rank in (0, 1):
        asked.clear()
        batches = WindowBatches(val, 4, rank=rank, world_size=2)
        for _ in batches:
            pass
        share = np.array_split(np.arange(len(val)), 2)[rank]
        assert set(np.concatenate(asked).tolist()) == set(val.rows(share).ravel().tolist())
