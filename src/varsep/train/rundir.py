"""Writing run folders (their layout: varsep.runs): provenance, the checks before anything is written, and
what a run prints about itself."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch

from varsep import __version__
from varsep.allocator import state as allocator_state
from varsep.errors import ConfigError
from varsep.guards import check_replaceable, check_writable_folder
from varsep.model import SeparableModel
from varsep.precision import Precision
from varsep.runs import CONFIG_FILE, LAST, LOCK_FILE, is_run_folder, stale_temp_files


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
            "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit(),
            "allocator": allocator_state()}


def model_summary(model: SeparableModel) -> str:
    """One line: the parameter count of the model and of each sub-network."""
    def millions(module: torch.nn.Module | None) -> str:
        return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M" if module is not None else "—"

    if not isinstance(model, SeparableModel):  # a baseline: its kind and its largest top-level networks
        sizes = {name: sum(p.numel() for p in net.parameters()) for name, net in model.net.named_children()}
        parts = [(name, getattr(model.net, name)) for name in sorted(sizes, key=lambda n: -sizes[n])[:6]
                 if sizes[name] >= 5_000]
        inner = ", ".join(f"{name} {millions(net)}" for name, net in parts)
        return f"model: {model.kind}, {millions(model)} parameters ({inner})"
    parts = [("E_S", model.content_encoder), ("E_T", model.dynamic_encoder), ("dynamics", model.dynamics),
             ("D", model.decoder)]
    inner = ", ".join(f"{name} {millions(net)}" for name, net in parts if net is not None)
    return f"model: {millions(model)} parameters ({inner})"


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
    """Refuse to start where a run exists (unless resuming or overwriting a varsep run); touches nothing.

    ``--overwrite`` replaces only a folder that is recognisably a varsep run (run.json and config.yaml
    written by varsep) or empty — never the current folder, a home folder or a folder of other files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} is a file, not a folder; choose another --run-dir")
    if resume:
        if not (run_dir / LAST).is_file() and not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"nothing to resume in {run_dir}: it has no {CONFIG_FILE}")
        check_writable_folder(run_dir, "run folder")
        return
    if overwrite:
        check_replaceable(run_dir, recognised=lambda p: is_run_folder(p) or not _holds_files(p),
                          what="a varsep run folder (with the run.json and config.yaml varsep writes)")
    elif run_dir.exists() and _holds_files(run_dir):
        raise ConfigError(f"run folder {run_dir} already exists; continue it with --resume, "
                          f"or start over with --overwrite (deletes it)")
    check_writable_folder(run_dir, "run folder")


def _holds_files(run_dir: Path) -> bool:
    """Whether a folder holds anything but the lock file a run leaves."""
    return any(p.name != LOCK_FILE for p in run_dir.iterdir())


def clear_run_dir(run_dir: Path) -> None:
    """Delete a run folder's contents (checked by check_run_dir first), keeping the lock file this process
    holds: deleting it would let a second process lock a new one and write here too."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files interrupted checkpoint and log writes left (varsep's own names only)."""
    removed = []
    for path in stale_temp_files(run_dir):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``RUN_DIR/.lock``, held while a run trains.

    The operating system drops the lock when the process ends, however it ends (SIGKILL included), so a
    crashed run never leaves its folder locked; the PID written into the file only names the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._file: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock on this system (Windows): one writer is then the user's care
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open as long as the lock
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise ConfigError(f"another process (PID {holder}) is training in {self.path.parent}; wait for it "
                              f"to finish or stop it, or choose another --run-dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def resume_checkpoint(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a resumed run starts from (None: start afresh, e.g. it stopped before its first)."""
    return run_dir / LAST if resume and (run_dir / LAST).is_file() else None
