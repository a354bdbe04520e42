"""Training a run: ``fit(config, run_dir)`` — start, resume, or continue on another machine.

Everything that can fail is checked before anything is written (the run folder, the data, the settings a
resume may not change); the run folder then gets the resolved config, run.json and, as training goes,
checkpoints and logs (varsep.runs describes the layout).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from varsep.config import RunConfig, config_from_dict, load_config, read_yaml
from varsep.data import build_dataset
from varsep.data.base import SequenceDataset
from varsep.errors import ConfigError
from varsep.precision import ENV_RESOLVED, accelerator_device, resolve_precision
from varsep.runs import CONFIG_FILE, INFO_FILE, read_info
from varsep.storage import safe_torch_load
from varsep.train.datamodule import SequenceDataModule
from varsep.train.rundir import (
    check_run_dir,
    environment,
    is_primary_process,
    machine_change,
    model_summary,
    resume_checkpoint,
)
from varsep.train.task import TrainingTask
from varsep.train.trainer import build_trainer, epoch_batches, planned_steps, quiet_lightning


def resolve_config(config: RunConfig, dataset: SequenceDataset) -> RunConfig:
    """The config with what depends on the data made explicit: network families (the data set's defaults
    where the config names none — custom frames of an unusual size have none and raise a ConfigError that
    says what to set) and the output activation (``auto``: a sigmoid when the data lie in [0, 1])."""
    model = config.model
    if model.kind != "separable":  # a baseline builds its own networks from the data's shape
        return config
    activation = model.final_activation
    if activation == "auto":
        activation = "sigmoid" if dataset.unit_interval else "none"
    model = replace(model, encoder=model.encoder or dataset.default_encoder,
                    decoder=model.decoder or dataset.default_decoder, final_activation=activation)
    return replace(config, model=model)


def fit(config: RunConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool | None = None, callbacks: list | None = None) -> Path:
    """Train ``config`` in ``run_dir`` (resuming from its last checkpoint if asked); returns run_dir."""

    run_dir = Path(run_dir)
    primary = is_primary_process()
    if primary:
        check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    # Open the data before anything is written or deleted: bad data never costs an existing run.
    dataset = build_dataset(config.data)
    config = resolve_config(config, dataset)
    if config.trainer.stop_below_val_mse is not None and len(dataset.val_windows()) == 0:
        raise ConfigError("trainer.stop_below_val_mse needs validation data, and this data set has no "
                          "validation windows: hold some out (e.g. data.val_sequences) or drop the target")
    if resume and (run_dir / CONFIG_FILE).is_file():
        saved = resolve_config(config_from_dict(read_yaml(run_dir / CONFIG_FILE)), dataset)
        _check_resumable(saved, config)
    ckpt = resume_checkpoint(run_dir, resume)
    choice = resolve_precision(config.trainer.precision, accelerator_device(config.trainer.accelerator))
    # Build the model before anything is written, so a setting it cannot take costs no run folder.
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    task = TrainingTask(config.to_dict(), dataset.spec.to_dict(), config.model.encoder, config.model.decoder,
                        dataset.value_transform(), dataset.valid_mask)
    if primary:
        previous = read_info(run_dir) if resume else None
        print(choice.summary())
        change = machine_change(previous, choice)
        if change:
            print(change)
        if overwrite and not resume and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(config.to_yaml())
        info = {"command": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "seed": config.seed,
                "resumed_from": str(ckpt) if ckpt else None, "spec": dataset.spec.to_dict(),
                "precision": choice.to_dict(), **environment()}
        if previous:  # one entry per earlier session of this run (each resume may run on another machine)
            info["history"] = [*previous.get("history", []),
                               {k: v for k, v in previous.items() if k not in ("history", "spec")}]
        (run_dir / INFO_FILE).write_text(json.dumps(info, indent=1))

    if config.trainer.compile and task.separable:  # the loss calls the sub-networks: compile those
        for net in (task.model.content_encoder, task.model.dynamic_encoder, task.model.decoder,
                    *getattr(task.model.dynamics, "blocks", [task.model.dynamics])):
            if net is not None:
                net.compile()
    datamodule = SequenceDataModule(dataset, config, task.ae_choices, task.keep)
    resume_step = int(safe_torch_load(ckpt).get("global_step", 0)) if ckpt is not None else None
    per_epoch = epoch_batches(dataset, config)
    with quiet_lightning():
        trainer = build_trainer(config, run_dir, progress=progress, extra_callbacks=callbacks,
                                resume_step=resume_step, precision=choice.value,
                                total_steps=planned_steps(config, per_epoch), epoch_batches=per_epoch)
    if primary:
        print(model_summary(task.model))
    inherited = os.environ.get(ENV_RESOLVED)
    os.environ[ENV_RESOLVED] = choice.value  # worker processes (DDP) run in the precision decided here
    try:
        with quiet_lightning():
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    finally:
        if inherited is None:
            os.environ.pop(ENV_RESOLVED, None)
        else:
            os.environ[ENV_RESOLVED] = inherited
    return run_dir


# Settings that may change when a run is resumed (they do not change what was learnt so far).
_RESUMABLE_CHANGES = {"trainer.max_epochs", "trainer.precision", "trainer.max_steps", "trainer.max_time_minutes",
                      "trainer.stop_below_val_mse", "trainer.progress_bar", "trainer.threads",
                      "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.val_every_n_epochs",
                      "trainer.val_every_n_steps", "model.baseline.lstm_from_step",
                      "data.root", "data.num_workers", "data.val_batch_size"}


def _check_resumable(saved: RunConfig, requested: RunConfig) -> None:
    diffs = [k for k, (a, b) in _flat_diff(saved.to_dict(), requested.to_dict()).items()
             if k not in _RESUMABLE_CHANGES]
    if diffs:
        raise ConfigError("cannot resume with a different config; these settings differ from the run's "
                          f"config.yaml: {', '.join(diffs)}")


def _flat_diff(a: dict, b: dict, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_flat_diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            out[f"{prefix}{key}"] = (va, vb)
    return out


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The saved config of a run, with optional overrides (for `varsep fit --resume RUN_DIR`)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    return load_config(path, overrides)
