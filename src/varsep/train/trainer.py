"""The Lightning Trainer of a run: checkpoints, logs, callbacks and precision, with Lightning's own chatter
silenced."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from varsep.config import RunConfig
from varsep.data.base import SequenceDataset
from varsep.precision import accelerator_device, resolve_precision
from varsep.train.callbacks import LastCheckpoint, RunProgress, Snapshots, ThreadSettings, target_reached
from varsep.train.checkpoint_io import AtomicCheckpointIO
from varsep.train.logs import ResumableCSVLogger


def epoch_batches(dataset: SequenceDataset, config: RunConfig) -> int:
    """Batches in one training epoch (what TrainStream serves)."""
    per_epoch = config.data.batches_per_epoch or dataset.default_batches_per_epoch
    if per_epoch is not None:
        return per_epoch
    windows = dataset.train_source().windows
    return max(1, len(windows) // config.data.batch_size) if windows is not None else 1


def planned_steps(config: RunConfig, batches_per_epoch: int) -> int:
    """The optimiser steps a run will make (the smaller of max_steps and max_epochs × batches per epoch)."""
    tc = config.trainer
    by_epochs = tc.max_epochs * batches_per_epoch
    return min(tc.max_steps, by_epochs) if tc.max_steps > 0 else by_epochs


# Lightning's notices that say nothing to a varsep user (our own lines say what ran, in what precision, and
# where the results are); genuine warnings are kept.
_NOISE = (
    r".*is not supported by the model summary.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*does not have many workers which may be a bottleneck.*",
    r".*`training_step` returned `None`.*",
    r".*could not find the monitored key in the returned metrics.*",  # no validation data: best.ckpt not written
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banners and tips (GPU/TPU available, AMP used, cloud-logging adverts, "fit
    stopped") and the notices in ``_NOISE`` for the duration of a fit."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def build_trainer(config: RunConfig, run_dir: Path, *, progress: bool | None = None,
                  extra_callbacks: list[Callback] | None = None, resume_step: int | None = None,
                  precision: str | None = None, total_steps: int | None = None,
                  epoch_batches: int | None = None) -> L.Trainer:
    """A Trainer writing checkpoints, CSV and TensorBoard logs under ``run_dir``.

    ``resume_step``: the global step of the checkpoint a resumed run starts from (its logs continue there).
    ``precision``: the resolved precision, "32" or "bf16" (default: ``trainer.precision`` resolved here).
    """
    tc = config.trainer
    if precision is None:
        precision = resolve_precision(tc.precision, accelerator_device(tc.accelerator)).value
    ckpt_dir = run_dir / "checkpoints"
    # best.ckpt is for scoring and forecasting, never resuming (last.ckpt is): weights only, a third of the size
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/mse", mode="min", save_top_k=1,
                           enable_version_counter=False, save_weights_only=True)
    show_progress = tc.progress_bar if progress is None else progress
    max_seconds = None if tc.max_time_minutes is None else 60 * tc.max_time_minutes
    callbacks: list[Callback] = [LastCheckpoint(ckpt_dir / "last.ckpt", tc.checkpoint_every_n_steps, max_seconds,
                                                epoch_batches), best,
                                 ThreadSettings(tc.threads)]
    if tc.snapshot_every_n_epochs:
        callbacks.append(Snapshots(ckpt_dir / "snapshots", tc.snapshot_every_n_epochs))
    if tc.stop_below_val_mse is not None:
        callbacks.append(target_reached(tc.stop_below_val_mse))
    if show_progress:
        callbacks.append(RunProgress(total_steps, max_seconds))
    callbacks += extra_callbacks or []
    loggers = [ResumableCSVLogger(save_dir=run_dir, name="logs", version="", resume_step=resume_step),
               TensorBoardLogger(save_dir=run_dir / "logs", name="tensorboard", version="",
                                 default_hp_metric=False)]
    profiler = None
    if tc.profiler != "none":
        from lightning.pytorch import profilers

        kinds = {"simple": profilers.SimpleProfiler, "advanced": profilers.AdvancedProfiler,
                 "pytorch": profilers.PyTorchProfiler}
        profiler = kinds[tc.profiler](dirpath=run_dir / "profile", filename="profile")
    return L.Trainer(
        profiler=profiler,
        max_epochs=tc.max_epochs, max_steps=tc.max_steps,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes, strategy=tc.strategy,
        logger=loggers, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        check_val_every_n_epoch=None if tc.val_every_n_steps else tc.val_every_n_epochs,
        val_check_interval=tc.val_every_n_steps, log_every_n_steps=tc.log_every_n_steps,
        enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, num_sanity_val_steps=0, default_root_dir=run_dir,
        benchmark=False, deterministic=False, gradient_clip_val=None,
    )
