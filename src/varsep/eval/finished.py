"""The marker a comparison or an ablation leaves in a model's run folder once it is trained and scored.

A rerun of ``varsep compare`` or ``varsep ablate`` skips a model whose marker records the config it
would train now, so an interrupted comparison continues where it stopped and a finished one costs
nothing. Two configs that differ only in how the data folder is written (``data/waveeq`` from one
folder, ``/work/data/waveeq`` from its parent) are the same run: the marker stores the folder (and your
own data's ``data.path``) as an absolute path. A marker is written atomically, after the model's metrics.json.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from varsep.config import RunConfig, config_from_dict
from varsep.errors import ConfigError
from varsep.storage import atomic_write_text


def mark_finished(run_dir: Path, marker: str, info: dict[str, Any], config: RunConfig) -> None:
    """Write ``run_dir/marker``: ``info`` and the config the model was trained with."""
    atomic_write_text(run_dir / marker, json.dumps({**info, "config": _absolute_locations(config).to_dict()}, indent=1))


def finished_report(run_dir: Path, marker: str, config: RunConfig) -> dict[str, Any] | None:
    """The model's eval/metrics.json when ``run_dir`` holds a marker for ``config``, else None."""
    try:
        record = json.loads((run_dir / marker).read_text())
    except (OSError, ValueError):
        return None
    metrics = run_dir / "eval" / "metrics.json"
    if not isinstance(record, dict) or not metrics.is_file() or not same_config(record.get("config"), config):
        return None
    try:
        return json.loads(metrics.read_text())
    except (OSError, ValueError):
        return None


def same_config(recorded: Any, config: RunConfig) -> bool:
    """Whether a recorded config is ``config``: read with today's defaults for settings added since (a new
    setting at its default does not make every finished model train and score again), data folders
    compared as absolute paths (a relative one in an old record is taken from the current folder)."""
    if not isinstance(recorded, dict):
        return False
    try:
        then = _absolute_locations(config_from_dict(recorded))
    except ConfigError:
        return False
    return then.to_dict() == _absolute_locations(config).to_dict()


def _absolute_locations(config: RunConfig) -> RunConfig:
    """``config`` with its data locations as absolute paths: ``data.root``, and your own data's
    ``data.path`` (a file, a glob or a list of them), which the reader takes relative to ``data.root``
    when that is set, else relative to the current folder."""
    root = config.data.root
    changes: dict[str, Any] = {}
    if isinstance(root, str) and root:
        root = changes["root"] = _absolute(Path(root))
    path = getattr(config.data, "path", None)
    if isinstance(path, str) and path:
        changes["path"] = _absolute(Path(path), root)
    elif isinstance(path, list):
        changes["path"] = [_absolute(Path(p), root) if isinstance(p, str) else p for p in path]
    return replace(config, data=replace(config.data, **changes)) if changes else config


def _absolute(path: Path, root: str | None = None) -> str:
    path = path.expanduser()
    if root and not path.is_absolute():
        path = Path(root) / path
    return str(path.resolve())
