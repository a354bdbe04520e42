"""Checkpoint files that are safe to write and safe to read (no Lightning here: see varsep.train.checkpoint_io).

- Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the target:
  a crash or a full disk never leaves a truncated checkpoint under the final name. The small text records
  of a run folder (config.yaml, run.json, metrics.json, the markers of finished comparisons) are written
  the same way (:func:`atomic_write_text`).
- Reads use ``torch.load(weights_only=True)``: a file carrying pickled code is refused, with a message.
- A checkpoint holds state dicts, the resolved config, the data spec and the library version, so a model
  rebuilds itself from the file alone (varsep.forecaster.load_checkpoint).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from varsep.errors import CheckpointError


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save ``obj`` to ``path`` through a temporary file and an atomic rename."""
    _atomic_write(Path(path), lambda f: torch.save(obj, f),
                  full=f"no space left to write checkpoint {path}; the previous checkpoint is intact. Free some "
                       f"disk space and resume with --resume")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a small text file (a run's config.yaml, run.json, metrics.json …) through a temporary file
    and an atomic rename: a reader, or a run resumed after a crash, sees the old file or the new one,
    never half of one."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()),
                  full=f"no space left to write {path}; the previous version is intact. Free some disk space "
                       f"and run the command again")


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any], *, full: str) -> None:
    """``write`` into ``.NAME.XXXXXXXX.tmp`` next to ``path`` (the pattern varsep.runs.stale_temp_files
    removes after a crash), flush it to disk, then rename it over ``path``. The file gets the permissions a
    plain write would give it (the target's, or 0666 less the umask; a temporary file is private), and a
    full disk (or quota) raises a CheckpointError saying ``full``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _mode_for(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in (28, 122):  # ENOSPC, EDQUOT
            raise CheckpointError(full) from err
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: from /proc on Linux (reading it with os.umask means setting it, for a moment,
    for every thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; clear errors for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds pickled Python objects, not just tensors and plain "
            f"values, and loading it could run code. Only load checkpoints written by varsep "
            f"(detail: {str(err).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({str(err).splitlines()[0]})") from None
