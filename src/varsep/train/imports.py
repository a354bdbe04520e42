"""A run folder from weights trained elsewhere (an OpenSTL checkpoint of a baseline, or the official DDPAE
code's checkpoint folder), so that ``varsep evaluate``, ``report``, ``predict`` and ``varsep.load`` work on it
like on a run trained here."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from varsep.baselines.ddpae_official import OFFICIAL_NETS
from varsep.config import RunConfig
from varsep.data import build_dataset
from varsep.errors import CheckpointError, ConfigError
from varsep.runs import BEST, CONFIG_FILE, INFO_FILE, LAST
from varsep.storage import atomic_torch_save, atomic_write_text, safe_torch_load
from varsep.train.rundir import check_run_dir, environment
from varsep.train.task import TrainingTask


def import_weights(config: RunConfig, weights: str | Path, run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``run_dir`` holding the baseline of ``config`` with the OpenSTL ``weights`` (for DDPAE: the
    official code's checkpoint folder, or one of its ``net_<name>_<epoch>.pth`` files); returns run_dir.

    The data set of ``config`` gives the frame shape and windows the model is scored on; the checkpoint's
    names and shapes must fit the baseline's settings (``model.baseline``), or nothing is written."""
    from varsep.baselines import load_ddpae_weights, load_openstl_weights

    if config.model.kind == "separable":
        raise ConfigError("import-weights takes a baseline's checkpoint: set --model (e.g. --model convlstm)")
    run_dir, weights = Path(run_dir), Path(weights)
    check_run_dir(run_dir, resume=False, overwrite=overwrite)
    state = read_ddpae_checkpoint(weights) if config.model.kind == "ddpae" else safe_torch_load(weights)
    dataset = build_dataset(config.data)
    task = TrainingTask(config.to_dict(), dataset.spec.to_dict(), "mlp", "mlp", dataset.value_transform())
    if config.model.kind == "ddpae":
        load_ddpae_weights(task.model, state)
    else:
        load_openstl_weights(task.model, state)
    checkpoint = {"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict(), "global_step": 0,
                  "varsep": {"imported_from": str(weights)}}
    if overwrite and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    info = {"command": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "imported_from": str(weights),
            "spec": dataset.spec.to_dict(), **environment()}
    atomic_write_text(run_dir / INFO_FILE, json.dumps(info, indent=1))
    for path in (LAST, BEST):
        atomic_torch_save(checkpoint, run_dir / path)
    try:
        safe_torch_load(run_dir / LAST)
    except CheckpointError as err:  # pragma: no cover - written just above
        raise CheckpointError(f"could not read back {run_dir / LAST}: {err}") from None
    return run_dir


DDPAE_FILE = re.compile(rf"^net_({'|'.join(OFFICIAL_NETS)})_(.+)\.pth$")


def read_ddpae_checkpoint(path: Path) -> dict[str, Any]:
    """The four state dicts of an official DDPAE checkpoint (``net_<name>_<epoch>.pth``, its ``base_model.save``):
    from a folder, the newest epoch that has all four (by number; other names only where no numbered epoch is
    complete); from one of the files, that file's epoch."""
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (the official DDPAE checkpoint: a folder of "
                              f"net_<name>_<epoch>.pth files, or one of them)")
    if path.is_dir():
        epochs: dict[str, set[str]] = {}
        for file in path.iterdir():
            match = DDPAE_FILE.match(file.name)
            if match:
                epochs.setdefault(match.group(2), set()).add(match.group(1))
        complete = [e for e, nets in epochs.items() if len(nets) == 4]
        if not complete:
            found = ", ".join(sorted(f"{e} ({len(n)} of 4 nets)" for e, n in epochs.items())) or "no net_*.pth files"
            raise CheckpointError(f"{path} holds no complete official DDPAE checkpoint (net_pose_model_<epoch>.pth, "
                                  f"net_content_lstm_…, net_object_encoder_…, net_object_decoder_…): {found}")
        numbered = [e for e in complete if re.fullmatch(r"[0-9]+", e)]
        epoch = max(numbered, key=int) if numbered else max(complete)
        folder = path
    else:
        match = DDPAE_FILE.match(path.name)
        if not match:
            raise CheckpointError(f"{path} is not an official DDPAE checkpoint file (net_<name>_<epoch>.pth) "
                                  f"or a folder of them")
        folder, epoch = path.parent, match.group(2)
    files = {name: folder / f"net_{name}_{epoch}.pth" for name in OFFICIAL_NETS}
    missing = [file.name for file in files.values() if not file.is_file()]
    if missing:
        raise CheckpointError(f"the official DDPAE checkpoint of epoch {epoch} in {folder} lacks {', '.join(missing)}")
    return {name: safe_torch_load(file) for name, file in files.items()}
