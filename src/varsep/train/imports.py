"""A run folder from weights trained elsewhere (an OpenSTL checkpoint of a baseline), so that
``varsep evaluate``, ``report``, ``predict`` and ``varsep.load`` work on it like on a run trained here."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from varsep.config import RunConfig
from varsep.data import build_dataset
from varsep.errors import CheckpointError, ConfigError
from varsep.runs import BEST, CONFIG_FILE, INFO_FILE, LAST
from varsep.storage import atomic_torch_save, safe_torch_load
from varsep.train.rundir import check_run_dir, environment
from varsep.train.task import TrainingTask


def import_weights(config: RunConfig, weights: str | Path, run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``run_dir`` holding the baseline of ``config`` with the OpenSTL ``weights``; returns run_dir.

    The data set of ``config`` gives the frame shape and windows the model is scored on; the checkpoint's
    names and shapes must fit the baseline's settings (``model.baseline``), or nothing is written."""
    from varsep.baselines import load_openstl_weights

    if config.model.kind == "separable":
        raise ConfigError("import-weights takes a baseline's checkpoint: set --model (e.g. --model convlstm)")
    run_dir, weights = Path(run_dir), Path(weights)
    check_run_dir(run_dir, resume=False, overwrite=overwrite)
    state = safe_torch_load(weights)
    dataset = build_dataset(config.data)
    task = TrainingTask(config.to_dict(), dataset.spec.to_dict(), "mlp", "mlp", dataset.value_transform())
    load_openstl_weights(task.model, state)
    checkpoint = {"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict(), "global_step": 0,
                  "varsep": {"imported_from": str(weights)}}
    if overwrite and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config.to_yaml())
    info = {"command": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "imported_from": str(weights),
            "spec": dataset.spec.to_dict(), **environment()}
    (run_dir / INFO_FILE).write_text(json.dumps(info, indent=1))
    for path in (LAST, BEST):
        atomic_torch_save(checkpoint, run_dir / path)
    try:
        safe_torch_load(run_dir / LAST)
    except CheckpointError as err:  # pragma: no cover - written just above
        raise CheckpointError(f"could not read back {run_dir / LAST}: {err}") from None
    return run_dir
