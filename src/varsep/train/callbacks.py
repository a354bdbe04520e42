"""Callbacks of a training run: threads, the last checkpoint and the time limit, snapshots, the progress bar,
and the stop at a validation target."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tqdm.auto import tqdm


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
    checkpoint could lag the final weights.) On Ctrl-C and SIGTERM it saves too, before Lightning shuts down.
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
        self.interrupted_by: int | None = None  # the signal that stopped training (None: it was not stopped)

    @property
    def saved_step(self) -> int:
        """The step of the last checkpoint this process wrote (-1: none yet)."""
        return self._saved_step

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
        # a limit within a microsecond of the time used is used up (minutes × 60 round-trips by an ulp)
        spent = self.max_seconds is not None and self._seconds_before >= self.max_seconds - 1e-6
        if self.max_seconds is not None and trainer.strategy.broadcast(spent):
            # resumed with its time already spent (e.g. varsep compare run again): not one step more, and the
            # checkpoint it resumed from is left as it is (it holds this step)
            trainer.should_stop = True
            self._saved_step = trainer.global_step
            print(f"Time limit of {self.max_seconds / 60:g} min already used at step {trainer.global_step}; to "
                  f"train on: varsep fit --resume --run-dir {self.path.parent.parent} --trainer.max_time_minutes "
                  "MORE")

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        out_of_time = False
        if self.max_seconds is not None:  # rank 0's clock decides, so every process stops at the same step
            out_of_time = trainer.strategy.broadcast(self.elapsed_seconds() >= self.max_seconds)
        # SIGTERM: Lightning stops right after this hook; saving here is the periodic save's point, so the
        # resumed run continues exactly as one that was never stopped
        terminated = bool(trainer.received_sigterm)
        if out_of_time or terminated or trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)
        if terminated:
            self.interrupted_by = signal.SIGTERM
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
        """Ctrl-C (KeyboardInterrupt) and SIGTERM (Lightning's SIGTERMException, e.g. during validation):
        save what was trained, and remember the signal so that ``fit`` raises :class:`Interrupted`."""
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted_by = signal.SIGINT
        elif isinstance(exception, SIGTERMException):
            self.interrupted_by = signal.SIGTERM
        else:
            return
        if trainer.global_step > 0:
            self._save(trainer)


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


def target_reached(threshold: float) -> EarlyStopping:
    """Stops training at the first validation whose MSE is at or below ``threshold`` ("stop once the paper's
    number is matched"), judged on the validation split so the test set plays no part; never on patience."""
    return EarlyStopping(monitor="val/mse", mode="min", stopping_threshold=threshold, patience=10**9,
                         check_on_train_epoch_end=False, strict=False, verbose=True)
