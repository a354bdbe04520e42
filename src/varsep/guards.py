"""Checks made before anything is written, deleted or allocated: which folders ``--overwrite`` may replace,
which paths a command may write, and whether an array fits in memory.

They exist because a command line is easy to get wrong (``--run-dir .``, ``--out`` equal to ``--input``, an
extra zero in a horizon) and the cost of such a slip must be an error message, not a deleted folder, a
replaced observation file or a machine swapping itself to death.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Iterable
from pathlib import Path

from varsep.errors import ConfigError

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 6
_SHORT.maxlevel = 2


def short_repr(value: object) -> str:
    """``repr`` cut to a few dozen characters, so an error message never renders a huge value."""
    return _SHORT.repr(value)


def _protected(path: Path) -> str | None:
    """Why ``path`` may never be deleted wholesale (None: it may, if it is the right kind of folder)."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return "it is the current folder"
    if resolved in cwd.parents:
        return "it holds the current folder"
    home = Path.home().resolve()
    if resolved == home or resolved in home.parents:
        return "it is your home folder" if resolved == home else "it holds your home folder"
    if resolved.parent == resolved:
        return "it is the root of the file system"
    return None


def check_replaceable(path: Path, *, recognised: Callable[[Path], bool], what: str, option: str = "--overwrite"
                      ) -> None:
    """Refuse to let ``option`` delete ``path`` unless it is empty or ``recognised`` (e.g. a varsep run folder).

    Touches nothing. ``what`` names the kind of folder that may be replaced ("a varsep run folder")."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise ConfigError(f"{path} is a {'link' if path.is_symlink() else 'file'}, not a folder; {option} only "
                          f"replaces {what}: choose another path")
    reason = _protected(path)
    if reason is not None:
        raise ConfigError(f"refusing to replace {path}: {reason}; {option} only replaces {what}: choose "
                          f"another path")
    if any(True for _ in path.iterdir()) and not recognised(path):
        raise ConfigError(f"{path} is not {what}, so {option} will not delete it; choose another path, or "
                          f"remove it yourself")


def check_writable_folder(path: Path, what: str) -> None:
    """Refuse a folder that is a file or cannot be created or written (before anything is written)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder; choose another path")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"cannot create {what} {path}: {existing} is a file")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {path}: {existing} is not writable (permission denied)")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file (links and relative paths resolved; hard links too)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_an_input(outputs: Iterable[str | Path], inputs: Iterable[str | Path], option: str) -> None:
    """Refuse to write any of ``outputs`` over one of the command's ``inputs``."""
    inputs = [Path(p) for p in inputs]
    for out in outputs:
        for source in inputs:
            if same_file(out, source):
                raise ConfigError(f"{option} {out} would overwrite the input {source}; write somewhere else")


def available_memory() -> int | None:
    """Bytes of memory this process may still use (available RAM; None where the system does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(nbytes: int, what: str, fix: str) -> None:
    """Refuse an allocation of ``nbytes`` that the machine cannot hold (say how large, and what to change)."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise ConfigError(f"{what} would need {nbytes / 1e9:.3g} GB of memory and {free / 1e9:.3g} GB are "
                          f"available; {fix}")
