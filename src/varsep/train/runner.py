"""Training a run: ``fit(config, run_dir)`` — start, resume, or continue on another machine.

Everything that can fail is checked before anything is written (the run folder, the data, the settings a
resume may not change); the run folder then gets the resolved config, run.json and, as training goes,
checkpoints and logs (varsep.runs describes the layout).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from varsep.allocator import keep_freed_memory
from varsep.config import RunConfig, config_from_dict, load_config, read_yaml
from varsep.config.schema import BASELINE_KINDS
from varsep.data import build_dataset
from varsep.data.base import SequenceDataset
from varsep.errors import ConfigError, Interrupted, VarsepError
from varsep.guards import check_fits_in_memory, short_repr
from varsep.precision import ENV_RESOLVED, accelerator_device, resolve_precision
from varsep.registry import suggest
from varsep.runs import CONFIG_FILE, INFO_FILE, read_info
from varsep.storage import atomic_write_text, safe_torch_load
from varsep.train.callbacks import LastCheckpoint
from varsep.train.datamodule import SequenceDataModule
from varsep.train.rundir import (
    RunLock,
    check_run_dir,
    clear_run_dir,
    environment,
    is_primary_process,
    machine_change,
    model_summary,
    remove_stale_temp_files,
    resume_checkpoint,
)
from varsep.train.task import TrainingTask
from varsep.train.trainer import build_trainer, epoch_batches, planned_steps, quiet_lightning


def resolve_config(config: RunConfig, dataset: SequenceDataset) -> RunConfig:
    """The config with what depends on the data made explicit: network families (the data set's defaults
    where the config names none — custom frames of an unusual size have none and raise a ConfigError that
    says what to set), the output activation (``auto``: a sigmoid when the data lie in [0, 1]) and what the
    forecast is anchored on (``model.anchor: auto``: the data set's ``default_anchor``, none under a sigmoid,
    last_frame instead of last_residual without reconstruct_cond)."""
    model = config.model
    if model.kind != "separable":  # a baseline builds its own networks from the data's shape
        _check_output_range(model.kind, config.data.name, dataset)
        return replace(config, model=replace(model, anchor="none"))  # and renders frames
    activation = model.final_activation
    if activation == "auto":
        activation = "sigmoid" if dataset.unit_interval else "none"
    anchor = model.anchor
    if anchor == "auto":  # the data set's, where it can apply (varsep.model.separable: anchoring)
        anchor = dataset.default_anchor if activation == "none" else "none"
        if anchor == "last_residual" and not model.reconstruct_cond:
            anchor = "last_frame"
    elif anchor == "last_frame" and activation == "sigmoid":
        raise ConfigError("model.anchor: last_frame makes the decoder render departures from the last "
                          "conditioning frame, which a final sigmoid cannot (set model.final_activation: none)")
    elif anchor == "last_residual" and not model.reconstruct_cond:
        raise ConfigError("model.anchor: last_residual needs the model's code of the last conditioning frame "
                          "(model.reconstruct_cond: true), or choose model.anchor: last_frame")
    model = replace(model, encoder=model.encoder or dataset.default_encoder,
                    decoder=model.decoder or dataset.default_decoder, final_activation=activation, anchor=anchor)
    return replace(config, model=model)


def _check_output_range(kind: str, data_name: str, dataset: SequenceDataset) -> None:
    """A baseline whose frames come out of a sigmoid cannot forecast data outside [0, 1]: refuse it with the
    reason, rather than train a model that can never reach the data's negative (or > 1) values."""
    from varsep.baselines import baseline_class

    bounds = baseline_class(kind).output_range
    served = dataset.training_range
    if bounds is None or (served is not None and bounds[0] <= served[0] and served[1] <= bounds[1]):
        return
    hint = {"custom": "set data.normalization: minmax (values scaled to [0, 1] on the training part)",
            "sst": "set data.normalization: zone_minmax (each zone's anomalies scaled to [0, 1] on its training "
                   "days)"}.get(data_name, f"the {data_name} data set serves values outside it")
    unbounded = ", ".join(k for k in BASELINE_KINDS if baseline_class(k).output_range is None)
    raise ConfigError(f"the {kind} baseline's frames come out of a sigmoid, so they lie in [{bounds[0]:g}, "
                      f"{bounds[1]:g}], and this data set's values are not scaled to that interval ({hint}); "
                      f"or choose a baseline with unbounded frames: {unbounded}")


def fit(config: RunConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool | None = None, callbacks: list | None = None) -> Path:
    """Train ``config`` in ``run_dir`` (resuming from its last checkpoint if asked); returns run_dir.

    One process at a time trains a run folder (``RUN_DIR/.lock``); a signal that stops training (Ctrl-C,
    SIGTERM) saves ``last.ckpt`` and raises :class:`~varsep.errors.Interrupted` with the resume command."""

    keep_freed_memory()  # large tensors reused from step to step, not faulted in again (varsep.allocator)
    run_dir = Path(run_dir)
    primary = is_primary_process()
    lock = RunLock(run_dir)
    if primary:
        check_run_dir(run_dir, resume=resume, overwrite=overwrite)
        if (resume or overwrite) and _holds_run(run_dir):  # an existing run: nobody else may train it
            lock.acquire()
    try:
        return _fit(config, run_dir, resume=resume, overwrite=overwrite, progress=progress, callbacks=callbacks,
                    primary=primary, lock=lock)
    finally:
        lock.release()


def _fit(config: RunConfig, run_dir: Path, *, resume: bool, overwrite: bool, progress: bool | None,
         callbacks: list | None, primary: bool, lock: RunLock) -> Path:
    check_trainer_settings(config)
    # Open the data before anything is written or deleted: bad data never costs an existing run.
    dataset = build_dataset(config.data)
    config = resolve_config(config, dataset)
    if config.trainer.stop_below_val_mse is not None and len(dataset.val_windows()) == 0:
        raise ConfigError("trainer.stop_below_val_mse needs validation data, and this data set has no "
                          "validation windows: hold some out (e.g. data.val_sequences) or drop the target")
    if resume and (run_dir / CONFIG_FILE).is_file():
        saved = resolve_config(saved_config(read_yaml(run_dir / CONFIG_FILE)), dataset)
        _check_resumable(saved, config)
    ckpt = resume_checkpoint(run_dir, resume)
    resume_step = None
    if ckpt is not None:  # the checkpoint, not config.yaml (which may have been edited), says what was trained
        state = safe_torch_load(ckpt)
        resume_step = int(state.get("global_step", 0))
        trained = (state.get("hyper_parameters") or {}).get("config")
        if isinstance(trained, dict):
            try:
                trained_config = resolve_config(saved_config(trained), dataset)
            except ConfigError:
                trained_config = None
            if trained_config is not None:
                _check_resumable(trained_config, config, against=f"checkpoint {ckpt.name} (was {CONFIG_FILE} "
                                 f"edited?)")
        del state
    choice = resolve_precision(config.trainer.precision, accelerator_device(config.trainer.accelerator))
    # Build the model before anything is written, so a setting it cannot take costs no run folder.
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    task = _build_task(config, dataset)
    if primary:
        previous = read_info(run_dir) if resume else None
        print(choice.summary())
        change = machine_change(previous, choice)
        if change:
            print(change)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create run folder {run_dir} ({err.strerror})") from None
        if not lock.held:
            lock.acquire()
            if not resume and not overwrite and _holds_run(run_dir):  # another process started here meanwhile
                raise ConfigError(f"run folder {run_dir} already exists; continue it with --resume, or start "
                                  f"over with --overwrite (deletes it)")
        if overwrite and not resume:
            clear_run_dir(run_dir)
        for path in remove_stale_temp_files(run_dir):
            print(f"removed {path}, left by an interrupted write")
        atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
        info = {"command": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "seed": config.seed,
                "resumed_from": str(ckpt) if ckpt else None, "spec": dataset.spec.to_dict(),
                "precision": choice.to_dict(), **environment()}
        if previous:  # one entry per earlier session of this run (each resume may run on another machine)
            info["history"] = [*previous.get("history", []),
                               {k: v for k, v in previous.items() if k not in ("history", "spec")}]
        atomic_write_text(run_dir / INFO_FILE, json.dumps(info, indent=1))

    if config.trainer.compile and task.separable:  # the loss calls the sub-networks: compile those
        for net in (task.model.content_encoder, task.model.dynamic_encoder, task.model.decoder,
                    *getattr(task.model.dynamics, "blocks", [task.model.dynamics])):
            if net is not None:
                net.compile()
    datamodule = SequenceDataModule(dataset, config, task.ae_choices, task.keep)
    per_epoch = epoch_batches(dataset, config)
    with quiet_lightning():
        try:
            trainer = build_trainer(config, run_dir, progress=progress, extra_callbacks=callbacks,
                                    resume_step=resume_step, precision=choice.value,
                                    total_steps=planned_steps(config, per_epoch), epoch_batches=per_epoch)
        except MisconfigurationException as err:
            raise ConfigError(f"the trainer settings do not work here: {str(err).splitlines()[0]}") from None
    if primary:
        print(model_summary(task.model))
    last = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
    inherited = os.environ.get(ENV_RESOLVED)
    os.environ[ENV_RESOLVED] = choice.value  # worker processes (DDP) run in the precision decided here
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with quiet_lightning():
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    except SystemExit:  # Lightning ends Ctrl-C with sys.exit(1), SIGTERM with a SystemExit of 0
        if last.interrupted_by is None:
            raise
        raise _interrupted(last, run_dir) from None
    finally:
        with contextlib.suppress(ValueError, TypeError):  # Lightning ignores Ctrl-C after the first one
            signal.signal(signal.SIGINT, sigint)
        if inherited is None:
            os.environ.pop(ENV_RESOLVED, None)
        else:
            os.environ[ENV_RESOLVED] = inherited
    return run_dir


def _interrupted(last: LastCheckpoint, run_dir: Path) -> Interrupted:
    """The Interrupted error of a run a signal stopped: what was saved and how to continue."""
    signum = int(last.interrupted_by)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    saved = (f"saved {last.path} at step {last.saved_step}" if last.path.is_file() and last.saved_step >= 0
             else f"{last.path} is the latest checkpoint" if last.path.is_file() else "no checkpoint was written yet")
    return Interrupted(f"interrupted by {name}: {saved}; continue with: varsep fit --resume --run-dir {run_dir}",
                       signum)


def _holds_run(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).exists() or (run_dir / INFO_FILE).exists()


def _build_task(config: RunConfig, dataset: SequenceDataset) -> TrainingTask:
    """The LightningModule; settings too large for this machine's memory are a ConfigError, not a crash.

    The networks are first built on PyTorch's meta device (shapes, no memory) to count their parameters:
    weights, gradients and Adam's two moments must fit in the memory available, and, for a baseline that
    estimates them (``Baseline.training_activation_bytes``), one training step's activations too."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            probe = TrainingTask(config.to_dict(), dataset.spec.to_dict(), config.model.encoder,
                                 config.model.decoder, dataset.value_transform())
        count = sum(p.numel() for p in probe.parameters())
        # a baseline whose activations dwarf its weights (E3D-LSTM) says how much one training step keeps
        activations = None if probe.separable else probe.model.training_activation_bytes(config.data.batch_size)
        del probe
    except VarsepError:
        raise
    except Exception:  # a network that cannot be built on the meta device: the real build below decides
        count = activations = None
    if count is not None:
        check_fits_in_memory(16 * count, f"this model ({count:,} parameters: weights, gradients and "
                             f"Adam's moments)", "lower model.width, model.s_dim, model.t_dim or the hidden sizes")
    if activations:
        check_fits_in_memory(16 * count + activations,
                             f"training {config.model.kind} at batch {config.data.batch_size} (weights, gradients, "
                             f"Adam's moments and {activations / 1e9:.3g} GB of activations per step)",
                             "lower data.batch_size (the memory grows in proportion to it)")
    try:
        return TrainingTask(config.to_dict(), dataset.spec.to_dict(), config.model.encoder, config.model.decoder,
                            dataset.value_transform(), dataset.valid_mask)
    except (MemoryError, OverflowError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, RuntimeError) and not any(word in first.lower() for word in
                                                     ("memory", "allocate", "overflow", "too large", "negative")):
            raise
        raise ConfigError(f"cannot build this model: its networks do not fit in memory ({first[:160]}); lower "
                          f"model.width, model.s_dim, model.t_dim or the hidden sizes") from None


# Lightning's names of accelerators (its registry holds more, e.g. tpu and hpu, when installed)
_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")


def check_trainer_settings(config: RunConfig) -> None:
    """Refuse an accelerator or strategy Lightning does not know, or hardware that is not there, before
    anything is written (Lightning would raise only once training starts)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    tc = config.trainer
    accelerators = sorted(set(_ACCELERATORS) | set(AcceleratorRegistry.available_accelerators()))
    if tc.accelerator not in accelerators:
        raise ConfigError(f"trainer.accelerator must be one of {', '.join(accelerators)}, got "
                          f"{short_repr(tc.accelerator)}.{suggest(str(tc.accelerator), accelerators)}")
    if tc.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator {tc.accelerator}: no CUDA GPU is available on this machine; use "
                          f"cpu or auto")
    if tc.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator mps: no Apple GPU is available on this machine; use cpu or auto")
    strategies = sorted({"auto", *StrategyRegistry.available_strategies()})
    if tc.strategy not in strategies:
        raise ConfigError(f"trainer.strategy {short_repr(tc.strategy)} is unknown; valid: "
                          f"{', '.join(strategies)}.{suggest(str(tc.strategy), strategies)}")


# Settings that may change when a run is resumed (they do not change what was learnt so far).
_RESUMABLE_CHANGES = {"trainer.max_epochs", "trainer.precision", "trainer.max_steps", "trainer.max_time_minutes",
                      "trainer.stop_below_val_mse", "trainer.progress_bar", "trainer.threads",
                      "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.val_every_n_epochs",
                      "trainer.val_every_n_steps", "model.baseline.lstm_from_step",
                      "data.root", "data.num_workers", "data.val_batch_size"}


def _check_resumable(saved: RunConfig, requested: RunConfig, against: str = CONFIG_FILE) -> None:
    diffs = [k for k, (a, b) in _flat_diff(saved.to_dict(), requested.to_dict()).items()
             if k not in _RESUMABLE_CHANGES]
    if diffs:
        raise ConfigError("cannot resume with a different config; these settings differ from the run's "
                          f"{against}: {', '.join(diffs)}")


def _flat_diff(a: dict, b: dict, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_flat_diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            out[f"{prefix}{key}"] = (va, vb)
    return out


def saved_config(values: dict[str, Any]) -> RunConfig:
    """The config a run was trained with, from its config.yaml or checkpoint. Settings added since keep the
    behaviour of the code that trained it: a run saved without ``model.anchor`` decoded whole frames."""
    return _as_trained(config_from_dict(values), values)


def _as_trained(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``config`` with the settings its saved ``values`` predate set as the code that wrote them behaved."""
    model = values.get("model") if isinstance(values, dict) else None
    if isinstance(model, dict) and "anchor" not in model:
        config = replace(config, model=replace(config.model, anchor="none"))
    return config


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The saved config of a run, with optional overrides (for `varsep fit --resume RUN_DIR`)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    config = load_config(path, overrides)
    return config if "model.anchor" in (overrides or {}) else _as_trained(config, read_yaml(path))
