"""Shared fixtures: small data sets generated once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from varsep.datagen.waveeq import generate

torch.set_num_threads(2)
# The precision probe's cache (varsep.precision) goes to a scratch folder, never the user's ~/.cache.
os.environ.setdefault("VARSEP_CACHE_DIR", tempfile.mkdtemp(prefix="varsep-test-cache-"))


@pytest.fixture(autouse=True)
def _two_threads():
    """Every test starts with two intra-op threads: a test that changes them cannot change the arithmetic
    (and so the bit-identical resume checks) of the tests after it."""
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_waveeq(tmp_path_factory) -> Path:
    """8 WaveEq sequences (6 train, 2 test), seed 0 — about half a second to simulate."""
    return generate(tmp_path_factory.mktemp("waveeq") / "waveeq", num_sequences=8, seed=0, num_train=6,
                    progress=False)


TINY_MODEL = {
    "model.encoder_hidden": [32], "model.decoder_hidden": [32], "model.width": 16, "model.blocks": 1,
    "data.batch_size": 8, "data.batches_per_epoch": 5, "data.val_sequences": 1, "data.val_stride": 20,
    "trainer.max_epochs": 2, "trainer.val_every_n_epochs": 1, "trainer.checkpoint_every_n_steps": 2,
    "trainer.log_every_n_steps": 1, "trainer.progress_bar": False,
    "trainer.precision": "32",  # the same arithmetic on every machine (tests/test_precision.py tests auto)
}


@pytest.fixture
def tiny_config(tiny_waveeq):
    """A factory of small WaveEq configs (a few ms per training step) with optional overrides."""
    from varsep.config import load_config

    def make(**overrides):
        over = {"data.root": str(tiny_waveeq), **TINY_MODEL}
        over.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config("waveeq", over)

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_waveeq):
    """A tiny WaveEq model trained for 10 steps (a few seconds), shared by the tests that only read it."""
    from varsep.config import load_config
    from varsep.train import fit

    config = load_config("waveeq", {"data.root": str(tiny_waveeq), **TINY_MODEL})
    return fit(config, tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids thread hand-off costs on busy shared cores (restored after).
    A module takes it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
