"""Helpers for data kept as files on disk."""

from __future__ import annotations

import re


def natural_key(name: str) -> tuple:
    """Sort key comparing the runs of digits in ``name`` as numbers ("image-2" < "image-10")."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))
