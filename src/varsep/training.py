"""Training with Lightning: the LightningModule, the data module, callbacks and the Trainer set-up.

Networks (varsep.nets), the model and its losses (varsep.model) and the data (varsep.data) know nothing
of Lightning; this module wires them into a Trainer with our checkpoint I/O, logs and resume logic.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import MeanMetric
from tqdm.auto import tqdm

from varsep import __version__
from varsep.checkpoint import AtomicCheckpointIO
from varsep.config import RunConfig, config_from_dict
from varsep.data.base import DataSpec, SequenceDataset
from varsep.data.stream import TrainStream, WindowBatches
from varsep.errors import TrainingError
from varsep.logs import ResumableCSVLogger
from varsep.model import SeparableForecaster, build_model
from varsep.model.losses import ae_choices, loss_terms
from varsep.precision import accelerator_device, resolve_precision


class ForecastTask(L.LightningModule):
    """Losses, optimiser and validation of a :class:`SeparableForecaster`.

    Its hyperparameters are plain mappings (the resolved config and the data spec), so checkpoints load
    with ``weights_only=True`` and rebuild the model without the data set at hand.
    """

    def __init__(self, config: dict[str, Any], spec: dict[str, Any], default_encoder: str = "mlp",
                 default_decoder: str = "mlp", transform: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.run_config: RunConfig = config_from_dict(config)
        self.spec = DataSpec(frame_shape=tuple(spec["frame_shape"]), cond_frames=int(spec["cond_frames"]),
                             pred_frames=int(spec["pred_frames"]), time_stride=int(spec.get("time_stride", 1)))
        self.model: SeparableForecaster = build_model(self.run_config.model, self.spec,
                                                      default_encoder=default_encoder,
                                                      default_decoder=default_decoder)
        self.ae_choices = ae_choices(self.spec.observed_length, self.spec.cond_frames, self.model.first_index)
        keep_prob = self.run_config.data.keep_prob
        self.keep = None if keep_prob is None else (self.spec.observed_length - self.model.first_index, keep_prob)
        self.val_mse = MeanMetric()
        self._val_curve: torch.Tensor | None = None
        self._pending_key: torch.Tensor | None = None
        self.train_seconds = 0.0  # wall-clock time spent in training steps, kept across resumes
        self._step_start = 0.0

    def forward(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.model.forecast(cond, horizon)

    # ---------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        terms = loss_terms(self.model, batch["frames"], batch["ae_index"], self.run_config.loss, batch.get("keep"))
        loss = terms["loss"]
        if not torch.isfinite(loss):
            values = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            raise TrainingError(
                f"the loss is not finite at step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{batch_idx}): {values}. Training stopped; the last good checkpoint is kept. Try a lower "
                f"optim.lr or trainer.precision: '32'")
        self._pending_key = batch["key"]
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False,
                      batch_size=batch["frames"].shape[0])
        self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=batch["frames"].shape[0])
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.train_seconds += time.perf_counter() - self._step_start  # before any checkpoint of this step
        # Only now is the batch part of the weights: checkpoints record the next batch to train on.
        stream = self._train_stream()
        if stream is not None and self._pending_key is not None:
            stream.mark_trained(self._pending_key)

    def _train_stream(self) -> TrainStream | None:
        datamodule = getattr(self.trainer, "datamodule", None)
        return getattr(datamodule, "train_stream", None)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("train/seconds", self.train_seconds, on_step=True, on_epoch=False, batch_size=1)

    # -------------------------------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        frames = batch["frames"]
        cond, target = self.model.split_window(frames)
        forecast = self.model.forecast(cond, target.shape[1])
        per_step = (forecast.float() - target.float()).pow(2).flatten(2).mean(2)  # (B, horizon)
        self.val_mse.update(per_step.mean(1))
        curve = per_step.sum(0)
        self._val_curve = curve if self._val_curve is None else self._val_curve + curve

    def on_validation_epoch_end(self) -> None:
        self.log("val/mse", self.val_mse.compute(), prog_bar=True, sync_dist=True)
        self.val_mse.reset()
        self._val_curve = None

    # -------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        opt = self.run_config.optim
        fused = opt.fused and all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        optimizer = torch.optim.Adam(self.parameters(), lr=opt.lr, betas=tuple(opt.betas), fused=fused or None)
        milestones, gamma = list(opt.milestones), opt.gamma

        def factor(epoch: int) -> float:
            return gamma ** sum(epoch >= m for m in milestones)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ----------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["varsep"] = {"version": __version__, "rng": _rng_state(), "train_seconds": self.train_seconds}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_seconds = float(checkpoint.get("varsep", {}).get("train_seconds", 0.0))
        state = checkpoint.get("varsep", {}).get("rng")
        if state is not None:
            _set_rng_state(state)


def _rng_state() -> dict[str, Any]:
    """Global random states as plain values and tensors (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                      has_gauss, cached],
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class SequenceDataModule(L.LightningDataModule):
    """Serves a :class:`SequenceDataset` to Lightning: a resumable training stream and validation batches."""

    def __init__(self, dataset: SequenceDataset, config: RunConfig, ae_choices: int,
                 keep: tuple[int, float] | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.ae_choices = ae_choices
        self.keep = keep
        self.train_stream: TrainStream | None = None
        self._stream_state: dict[str, int] | None = None

    # The stream's position is saved here as well as by Lightning's loader-state mechanism: Lightning
    # restores loader states only when resuming mid-epoch, while data-module states are always restored.
    def state_dict(self) -> dict[str, Any]:
        return {"train_stream": self.train_stream.state_dict()} if self.train_stream is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stream_state = state.get("train_stream")

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> TrainStream:
        data = self.config.data
        rank, world = self._rank()
        per_epoch = data.batches_per_epoch or self.dataset.default_batches_per_epoch
        self.train_stream = TrainStream(self.dataset.train_source(), batch_size=data.batch_size,
                                        batches_per_epoch=per_epoch, seed=self.config.seed,
                                        ae_choices=self.ae_choices, rank=rank, world_size=world, keep=self.keep)
        if self._stream_state is not None:
            self.train_stream.load_state_dict(self._stream_state)
        return self.train_stream

    def val_dataloader(self) -> WindowBatches | list:
        windows = self.dataset.val_windows()
        if len(windows) == 0:
            return []
        rank, world = self._rank()
        return WindowBatches(windows, self.config.data.val_batch_size, rank=rank, world_size=world)


class ThreadSettings(Callback):
    """Sets torch's intra-op threads in every process (DDP workers included)."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)


class LastCheckpoint(Callback):
    """Keeps ``last.ckpt`` current: every ``every_n_steps`` steps, at every epoch end and when training ends;
    and ends training once ``max_seconds`` of training time have passed, counted over every resume.

    (Lightning's ModelCheckpoint stops saving at epoch ends once a step interval is set, so the last
    checkpoint could lag the final weights.) On Ctrl-C it saves too, before Lightning shuts down.
    The time limit is ours rather than Lightning's ``max_time``: that one stops mid-epoch and saves the
    loops as if the epoch had ended, so a resumed run skipped the rest of that epoch; here the checkpoint is
    written *before* the stop, like a periodic one, and a resumed run continues exactly where it stopped.
    """

    def __init__(self, path: Path, every_n_steps: int, max_seconds: float | None = None,
                 epoch_batches: int | None = None) -> None:
        self.path = path
        self.every_n_steps = every_n_steps
        # Epoch ends are checkpointed only when an epoch is at least a checkpoint interval long: with
        # one-batch epochs a save at each would cost more than the training.
        self.at_epoch_end = epoch_batches is None or epoch_batches >= every_n_steps
        self.max_seconds = max_seconds
        self._saved_step = -1
        self._seconds_before = 0.0  # training time of the run before this process (from the checkpoint)
        self._started: float | None = None

    def elapsed_seconds(self) -> float:
        return self._seconds_before + (time.monotonic() - self._started if self._started is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_seconds": self.elapsed_seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._seconds_before = float(state_dict.get("elapsed_seconds", 0.0))

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self._saved_step and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)  # full: optimiser, schedule, loops, RNG
            self._saved_step = trainer.global_step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        out_of_time = False
        if self.max_seconds is not None:  # rank 0's clock decides, so every process stops at the same step
            out_of_time = trainer.strategy.broadcast(self.elapsed_seconds() >= self.max_seconds)
        if out_of_time or trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)
        if out_of_time and not trainer.should_stop:
            trainer.should_stop = True
            print(f"\nTime limit of {self.max_seconds / 60:g} min reached at step {trainer.global_step}: saved "
                  f"{self.path}; continue with: varsep fit --resume --run-dir {self.path.parent.parent} "
                  "--trainer.max_time_minutes MORE")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_epoch_end:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
            self._save(trainer)
            print(f"\nInterrupted: saved {self.path}; continue with: "
                  f"varsep fit --resume --run-dir {self.path.parent.parent}")


class Snapshots(Callback):
    """Weights-only snapshots ``checkpoints/snapshots/epoch-NNNN.ckpt`` every n epochs (model + config, no
    optimiser state: a third of a full checkpoint), to score a run at several points of its training."""

    def __init__(self, folder: Path, every_n_epochs: int) -> None:
        self.folder = folder
        self.every = every_n_epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # an epoch cut short by the time limit: its snapshot is taken when a resume completes it
        if epoch % self.every == 0:
            trainer.save_checkpoint(self.folder / f"epoch-{epoch:04d}.ckpt", weights_only=True)


class RunProgress(Callback):
    """One progress bar over the whole run (steps done of the run's total, with its ETA), the latest
    training loss and validation MSE — rather than Lightning's bar per epoch, which on small data sets
    restarts every fraction of a second and never says when the run will end."""

    def __init__(self, total_steps: int | None, max_seconds: float | None = None) -> None:
        self.total = total_steps
        self.max_seconds = max_seconds
        self.bar: tqdm | None = None
        self._postfix: dict[str, str] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        total = self.total
        note = f" (stops after {self.max_seconds / 60:g} min of training)" if self.max_seconds else ""
        self.bar = tqdm(total=total, initial=trainer.global_step, unit="step", desc="training" + note,
                        dynamic_ncols=True, smoothing=0.1)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.bar is None:
            return
        loss = trainer.callback_metrics.get("loss")
        if loss is not None:
            self._postfix["loss"] = f"{float(loss):.4g}"
        self.bar.set_postfix(self._postfix, refresh=False)
        self.bar.update(trainer.global_step - self.bar.n)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        val = trainer.callback_metrics.get("val/mse")
        if self.bar is not None and val is not None and not trainer.sanity_checking:
            self._postfix["val_mse"] = f"{float(val):.3e}"
            self.bar.set_postfix(self._postfix)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()


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


def target_reached(threshold: float) -> EarlyStopping:
    """Stops training at the first validation whose MSE is at or below ``threshold`` ("stop once the paper's
    number is matched"), judged on the validation split so the test set plays no part; never on patience."""
    return EarlyStopping(monitor="val/mse", mode="min", stopping_threshold=threshold, patience=10**9,
                         check_on_train_epoch_end=False, strict=False, verbose=True)


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
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/mse", mode="min", save_top_k=1,
                           enable_version_counter=False)
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

