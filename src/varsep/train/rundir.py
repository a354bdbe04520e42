"""Writing run folders (their layout: varsep.runs): provenance, the checks before anything is written, and
what a run prints about itself."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch

from varsep import __version__
from varsep.errors import ConfigError
from varsep.model import SeparableModel
from varsep.precision import Precision
from varsep.runs import CONFIG_FILE, LAST


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


def model_summary(model: SeparableModel) -> str:
    """One line: the parameter count of the model and of each sub-network."""
    def millions(module: torch.nn.Module | None) -> str:
        return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M" if module is not None else "—"

    if not isinstance(model, SeparableModel):  # a baseline: its kind and its own top-level networks
        parts = list(model.net.named_children())[:6]
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
