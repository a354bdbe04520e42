"""Long runs, kept out of CI (`python -m pytest -m slow`): the paper's model must actually learn."""

from __future__ import annotations

import pytest

from varsep.config import load_config
from varsep.datagen.waveeq import generate
from varsep.eval.evaluation import EvalOptions, evaluate
from varsep.forecaster import load
from varsep.train import fit

pytestmark = pytest.mark.slow


def test_paper_waveeq_model_beats_repeating_the_last_frame(tmp_path):
    """≈ 2–3 minutes: the paper's WaveEq network, 200 bf16 steps on 40 sequences, then 300 test windows."""
    data = generate(tmp_path / "data", num_sequences=40, progress=False)
    config = load_config("waveeq", {"data.root": str(data), "data.val_sequences": 2, "data.batches_per_epoch": 25,
                                    "trainer.max_epochs": 8, "trainer.precision": "bf16",
                                    "trainer.val_every_n_epochs": 8, "trainer.progress_bar": False})
    fit(config, tmp_path / "run")
    report = evaluate(load(tmp_path / "run", "last"),
                      options=EvalOptions(limit=300, progress=False, figures=False, swap=False, ssim=False))
    result = report["horizons"]["40"]
    assert result["mse_mean"] < result["baseline_mse_mean"] / 3, result["mse_mean"]
