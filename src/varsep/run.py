"""Run folders: start, resume and load training runs.

A run folder holds everything needed to continue, evaluate or reuse a run:
  config.yaml          the resolved config (every setting, defaults included)
  run.json             seed, versions, git commit, command line, data spec, start time
  checkpoints/         last.ckpt (latest step), best.ckpt (best validation MSE)
  logs/metrics.csv     CSV log; logs/tensorboard/ TensorBoard events
  eval/                written by `varsep evaluate`
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from varsep import __version__
from varsep.checkpoint import safe_torch_load
from varsep.config import RunConfig, config_from_dict, load_config, read_yaml
from varsep.data import build_dataset
from varsep.data.base import DataSpec, SequenceDataset
from varsep.errors import CheckpointError, ConfigError, VarsepError
from varsep.model import SeparableForecaster
from varsep.precision import ENV_RESOLVED, Precision, accelerator_device, resolve_precision

CONFIG_FILE = "config.yaml"
INFO_FILE = "run.json"
LAST = Path("checkpoints") / "last.ckpt"
BEST = Path("checkpoints") / "best.ckpt"


def git_commit() -> str | None:
    """The commit of the varsep source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    return {"varsep": __version__, "torch": torch.__version__, "lightning": L.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit()}


def model_summary(model: SeparableForecaster) -> str:
    """One line: the parameter count of the model and of each sub-network."""
    def millions(module: torch.nn.Module | None) -> str:
        return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M" if module is not None else "—"

    parts = [("E_S", model.content_encoder), ("E_T", model.dynamic_encoder), ("dynamics", model.dynamics),
             ("D", model.decoder)]
    inner = ", ".join(f"{name} {millions(net)}" for name, net in parts if net is not None)
    return f"model: {millions(model)} parameters ({inner})"


def read_info(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's run.json, or None when it has none (or an unreadable one)."""
    try:
        info = json.loads((Path(run_dir) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def machine_change(previous: dict[str, Any] | None, choice: Precision) -> str | None:
    """What a resumed run should say when it continues on other hardware or in another precision."""
    if not previous:
        return None
    before = previous.get("precision")
    if not isinstance(before, dict):  # a run from before precision was recorded
        return None
    old_hw, new_hw = before.get("hardware") or {}, choice.hardware or {}
    where_then = f"{old_hw.get('name', '?')} ({old_hw.get('capability', '?')})"
    where_now = f"{new_hw.get('name', '?')} ({new_hw.get('capability', '?')})"
    same_machine = all(old_hw.get(k) == new_hw.get(k) for k in ("name", "capability", "device"))
    old_label = "bf16 autocast" if before.get("value") == "bf16" else "fp32"
    if before.get("value") != choice.value:
        return (f"resumed on {where_now}: this run trained in {old_label} on {where_then} before; precision "
                f"{choice.requested} now resolves to {choice.label}")
    if not same_machine and new_hw:
        return f"resumed on another machine, {where_now} (before: {where_then}); precision stays {choice.label}"
    return None


def is_primary_process() -> bool:
    """False in the extra processes of a multi-process run (Lightning's DDP children, torchrun, SLURM):
    they reuse the run folder the primary process prepared, and must neither check nor write it."""
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable) not in (None, "", "0"):
            return False
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start where a run exists (unless resuming or overwriting); touches nothing."""
    if resume:
        if not (run_dir / LAST).is_file() and not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"nothing to resume in {run_dir}: it has no {CONFIG_FILE}")
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(f"run folder {run_dir} already exists; continue it with --resume, "
                          f"or start over with --overwrite (deletes it)")


def resume_checkpoint(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a resumed run starts from (None: start afresh, e.g. it stopped before its first)."""
    return run_dir / LAST if resume and (run_dir / LAST).is_file() else None


def resolve_config(config: RunConfig, dataset: SequenceDataset) -> RunConfig:
    """The config with what depends on the data made explicit: network families (the data set's defaults
    where the config names none — custom frames of an unusual size have none and raise a ConfigError that
    says what to set) and the output activation (``auto``: a sigmoid when the data lie in [0, 1])."""
    model = config.model
    activation = model.final_activation
    if activation == "auto":
        activation = "sigmoid" if getattr(dataset, "unit_interval", True) else "none"
    model = replace(model, encoder=model.encoder or dataset.default_encoder,
                    decoder=model.decoder or dataset.default_decoder, final_activation=activation)
    return replace(config, model=model)


def open_dataset(config: RunConfig) -> SequenceDataset:
    dataset = build_dataset(config.data)
    return dataset


def fit(config: RunConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool | None = None, callbacks: list | None = None) -> Path:
    """Train ``config`` in ``run_dir`` (resuming from its last checkpoint if asked); returns run_dir."""
    from varsep.training import (
        ForecastTask,
        SequenceDataModule,
        build_trainer,
        epoch_batches,
        planned_steps,
        quiet_lightning,
    )

    run_dir = Path(run_dir)
    primary = is_primary_process()
    if primary:
        check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    # Open the data before anything is written or deleted: bad data never costs an existing run.
    dataset = open_dataset(config)
    config = resolve_config(config, dataset)
    if config.trainer.stop_below_val_mse is not None and len(dataset.val_windows()) == 0:
        raise ConfigError("trainer.stop_below_val_mse needs validation data, and this data set has no "
                          "validation windows: hold some out (e.g. data.val_sequences) or drop the target")
    if resume and (run_dir / CONFIG_FILE).is_file():
        saved = resolve_config(config_from_dict(read_yaml(run_dir / CONFIG_FILE)), dataset)
        _check_resumable(saved, config)
    ckpt = resume_checkpoint(run_dir, resume)
    choice = resolve_precision(config.trainer.precision, accelerator_device(config.trainer.accelerator))
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
                "resumed_from": str(ckpt) if ckpt else None, "spec": asdict(dataset.spec),
                "precision": choice.to_dict(), **environment()}
        if previous:  # one entry per earlier session of this run (each resume may run on another machine)
            info["history"] = [*previous.get("history", []),
                               {k: v for k, v in previous.items() if k not in ("history", "spec")}]
        (run_dir / INFO_FILE).write_text(json.dumps(info, indent=1))

    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    task = ForecastTask(config.to_dict(), asdict(dataset.spec), config.model.encoder, config.model.decoder,
                        dataset.value_transform())
    if config.trainer.compile:  # the loss calls the sub-networks, not the model's forward: compile those
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
                      "trainer.val_every_n_steps",
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


# --------------------------------------------------------------------------------------------- loading
def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The saved config of a run, with optional overrides (for `varsep fit --resume RUN_DIR`)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    return load_config(path, overrides)


def find_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """``best`` (falls back to ``last``), ``last``, or an explicit file path."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        path = Path(which)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    order = [BEST, LAST] if which == "best" else [LAST]
    for rel in order:
        if (run_dir / rel).is_file():
            return run_dir / rel
    raise CheckpointError(f"{run_dir} has no checkpoint ({' or '.join(map(str, order))}); train it with "
                          f"varsep fit first")


class LoadedRun:
    """A trained model with its config and data spec, rebuilt from a checkpoint."""

    def __init__(self, model: SeparableForecaster, config: RunConfig, spec: DataSpec, checkpoint: Path,
                 step: int, transform: dict[str, Any] | None = None) -> None:
        self.model = model
        self.config = config
        self.spec = spec
        self.checkpoint = checkpoint
        self.step = step
        self.transform = transform  # raw ↔ model values (see SequenceDataset.value_transform)


def load_checkpoint(path: str | Path) -> LoadedRun:
    """Rebuild the model stored in a checkpoint (weights-only load; config and spec come from the file)."""
    from varsep.training import ForecastTask

    path = Path(path)
    ckpt = safe_torch_load(path)
    try:
        hp = ckpt["hyper_parameters"]
        task = ForecastTask(hp["config"], hp["spec"], hp.get("default_encoder", "mlp"),
                            hp.get("default_decoder", "mlp"), hp.get("transform"))
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a varsep checkpoint (missing {err})") from None
    except VarsepError as err:
        raise CheckpointError(f"{path} holds a config this version cannot build: {err}") from None
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model its config describes: "
                              f"{str(err).splitlines()[0]}") from None
    task.eval()
    return LoadedRun(task.model, task.run_config, task.spec, path, int(ckpt.get("global_step", 0)),
                     hp.get("transform"))


def load(run_dir: str | Path, which: str = "best") -> LoadedRun:
    """Load the model of a run folder (``best`` checkpoint by default)."""
    return load_checkpoint(find_checkpoint(run_dir, which))
