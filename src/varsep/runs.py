"""The layout of a run folder, and reading it (writing it is varsep.train's job).

A run folder holds everything needed to continue, evaluate or reuse a run:

    config.yaml          the resolved config (every setting, defaults included)
    run.json             seed, versions, git commit, command line, data spec, precision and hardware, start
                         time; ``history`` lists the earlier sessions of a resumed run
    checkpoints/         last.ckpt (latest step), best.ckpt (best validation MSE), snapshots/ (optional)
    logs/metrics.csv     CSV log; logs/tensorboard/ TensorBoard events
    eval/                written by `varsep evaluate`
    .lock                held (flock) by the one process training the run; the OS releases it when that
                         process ends, however it ends

Interrupted atomic writes can leave hidden temporary files (``checkpoints/.last.ckpt.XXXXXXXX.tmp``,
``.run.json.XXXXXXXX.tmp``, ``eval/.metrics.json.XXXXXXXX.tmp``, ``logs/metrics.csv.tmp``);
:func:`stale_temp_files` finds them so the next start removes them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from varsep.errors import CheckpointError

CONFIG_FILE = "config.yaml"
INFO_FILE = "run.json"
# the markers `varsep compare` and `varsep ablate` leave in a model's run folder (varsep.eval.finished)
COMPARE_MARKER = "compare.json"
ABLATION_MARKER = "ablation.json"
CHECKPOINTS = Path("checkpoints")
LAST = CHECKPOINTS / "last.ckpt"
BEST = CHECKPOINTS / "best.ckpt"
LOCK_FILE = ".lock"
# the temporary files of varsep's own atomic writes (varsep.storage.atomic_torch_save and
# atomic_write_text, the CSV log)
_CHECKPOINT_TEMP = re.compile(r"^\.[^/]+\.ckpt\.[A-Za-z0-9_]+\.tmp$")
_RECORDS = (CONFIG_FILE, INFO_FILE, COMPARE_MARKER, ABLATION_MARKER, "metrics.json", "demo.json")
_RECORD_TEMP = re.compile(rf"^\.({'|'.join(map(re.escape, _RECORDS))})\.[A-Za-z0-9_]+\.tmp$")
_RECORD_FOLDERS = (Path("."), Path("eval"))
_LOG_TEMPS = ("logs/metrics.csv.tmp",)
RECORD_TEMP_MIN_AGE_S = 60.0


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is recognisably a folder varsep wrote: a run.json naming the varsep version that
    wrote it, next to a config.yaml."""
    path = Path(path)
    info = read_info(path)
    return info is not None and "varsep" in info and (path / CONFIG_FILE).is_file()


def stale_temp_files(run_dir: str | Path) -> list[Path]:
    """The temporary files interrupted writes left in a run folder (only names varsep's writers use)."""
    run_dir = Path(run_dir)
    found = []
    folder = run_dir / CHECKPOINTS
    if folder.is_dir():
        found += [p for p in folder.rglob(".*.tmp") if p.is_file() and _CHECKPOINT_TEMP.match(p.name)]
    now = time.time()
    for rel in _RECORD_FOLDERS:  # a record's temporary file lives for milliseconds: a young one is in flight
        if (run_dir / rel).is_dir():  # (`varsep evaluate` writes eval/ without the training lock)
            found += [p for p in (run_dir / rel).glob(".*.tmp")
                      if p.is_file() and _RECORD_TEMP.match(p.name) and now - _mtime(p) > RECORD_TEMP_MIN_AGE_S]
    found += [run_dir / rel for rel in _LOG_TEMPS if (run_dir / rel).is_file()]
    return sorted(found)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")  # gone meanwhile: not stale


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


def read_info(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's run.json, or None when it has none (or an unreadable one)."""
    try:
        info = json.loads((Path(run_dir) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
