"""Lightning's checkpoint I/O through varsep's safe file functions (atomic writes, weights-only reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from varsep.storage import atomic_torch_save, safe_torch_load


class AtomicCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O with atomic writes and weights-only reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return safe_torch_load(path, map_location=map_location or "cpu")

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)
