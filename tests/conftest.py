"""Shared fixtures: small data sets generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from varsep.data.waveeq import generate

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_waveeq(tmp_path_factory) -> Path:
    """8 WaveEq sequences (6 train, 2 test), seed 0 — about half a second to simulate."""
    return generate(tmp_path_factory.mktemp("waveeq") / "waveeq", num_sequences=8, seed=0, num_train=6,
                    progress=False)
