"""The LightningModule of a training run: the separable model's losses, optimiser, validation and what a
checkpoint carries beyond Lightning's own state (training time, random states).

Networks (varsep.nets), the model and its losses (varsep.model) and the data (varsep.data) know nothing of
Lightning; varsep.train wires them into a Trainer.
"""

from __future__ import annotations

import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torchmetrics import MeanMetric

from varsep import __version__
from varsep.config import RunConfig, config_from_dict
from varsep.errors import ConfigError, TrainingError
from varsep.model import SeparableModel, build_model
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec
from varsep.train.stream import TrainStream

STATE_PREFIX = "state:"  # a hyperparameter value naming a tensor of the checkpoint's state_dict


class TrainingTask(L.LightningModule):
    """Losses, optimiser and validation of a :class:`~varsep.model.SeparableModel`.

    Its hyperparameters are plain mappings (the resolved config and the data spec), so checkpoints load
    with ``weights_only=True`` and rebuild the model without the data set at hand.
    """

    def __init__(self, config: dict[str, Any], spec: dict[str, Any], default_encoder: str = "mlp",
                 default_decoder: str = "mlp", transform: dict[str, Any] | None = None,
                 valid_mask: Any = None) -> None:
        super().__init__()
        # Arrays — the mask (land) and per-cell normalisation statistics — live in the state (buffers), not
        # in the hyperparameters: a large grid's would bloat hparams.yaml. The hyperparameters name them.
        plain = None if transform is None else dict(transform)
        for key, value in (transform or {}).items():
            if isinstance(value, np.ndarray | torch.Tensor):
                self.register_buffer(f"transform_{key}", torch.as_tensor(np.asarray(value)))
                plain[key] = f"{STATE_PREFIX}transform_{key}"  # type: ignore[index]
        # save_hyperparameters reads this frame's arguments: give it the plain transform, and no mask.
        transform = plain
        self.save_hyperparameters(ignore=["valid_mask"])
        self.run_config: RunConfig = config_from_dict(config)
        self.spec = DataSpec.from_dict(spec)
        self.model: SeparableModel = build_model(self.run_config.model, self.spec, default_encoder=default_encoder,
                                                 default_decoder=default_decoder)
        if valid_mask is not None and self.run_config.model.kind == "separable":
            self.model.set_mask(torch.as_tensor(np.asarray(valid_mask)))
        # The separable model trains on the paper's objective; a baseline (model.kind) on its method's own.
        self.separable = self.run_config.model.kind == "separable"
        keep_prob = self.run_config.data.keep_prob
        if self.separable:
            self.ae_choices = self.spec.ae_choices(self.model.first_index)
            self.keep = None if keep_prob is None else (self.spec.forecast_targets(self.model.first_index),
                                                        keep_prob)
        else:
            if keep_prob is not None:
                raise ConfigError(f"data.keep_prob (irregular supervision) applies to the separable model, not "
                                  f"to the {self.run_config.model.kind} baseline")
            self.ae_choices, self.keep = 1, None
        self.val_mse = MeanMetric()
        self._pending_key: torch.Tensor | None = None
        self.train_seconds = 0.0  # wall-clock time spent in training steps, kept across resumes
        self._step_start = 0.0

    def forward(self, cond: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.model.forecast(cond, horizon)

    # ---------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.separable:
            terms = loss_terms(self.model, batch["frames"], batch["ae_index"], self.run_config.loss, batch.get("keep"))
        else:
            terms = self.model.training_terms(batch["frames"], self.global_step)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise TrainingError(
                f"the loss is not finite at step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{batch_idx}): {values}. Training stopped; the last good checkpoint is kept. Try a lower "
                f"optim.lr or trainer.precision: '32'")
        self._pending_key = batch["key"]
        if self._logs_this_step():
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False,
                          batch_size=batch["frames"].shape[0])
            self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=batch["frames"].shape[0])
        return loss

    def _logs_this_step(self) -> bool:
        """Whether Lightning writes this step's logs (every ``trainer.log_every_n_steps``, and the last).

        Each ``self.log`` costs about a millisecond of bookkeeping in Lightning whether or not the value is
        written — a fifth of a small model's step — so values that would be dropped are not logged at all."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

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
        if self._logs_this_step():
            self.log("train/seconds", self.train_seconds, on_step=True, on_epoch=False, batch_size=1)

    # -------------------------------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        frames = batch["frames"]
        cond, target = self.model.split_window(frames)
        forecast = self.model.forecast(cond, target.shape[1])
        err = (forecast.float() - target.float()).pow(2)
        valid = self.model.valid_mask if self.separable else None  # baselines carry no mask
        if valid is None:
            per_step = err.flatten(2).mean(2)  # (B, horizon)
        else:
            per_step = err.masked_fill(~valid, 0).flatten(2).sum(2) / valid.sum()
        self.val_mse.update(per_step.mean(1))

    def on_validation_epoch_end(self) -> None:
        self.log("val/mse", self.val_mse.compute(), prog_bar=True, sync_dist=True)
        self.val_mse.reset()

    # -------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        opt = self.run_config.optim
        fused = opt.fused and all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        optimizer = torch.optim.Adam(self.parameters(), lr=opt.lr, betas=tuple(opt.betas),
                                     weight_decay=opt.weight_decay, fused=fused or None)
        if opt.schedule == "onecycle":  # OpenSTL's default for its baselines, over the run's planned steps
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=opt.lr, total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
                pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4, cycle_momentum=True,
                base_momentum=0.85, max_momentum=0.95)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
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
