"""scripts/training_curve.py: one row per snapshot, the numbers `evaluate` gives, and reuse of scored rows."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from varsep.data import build_dataset
from varsep.eval.evaluation import EvalOptions, evaluate
from varsep.forecaster import load_checkpoint
from varsep.train import fit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "training_curve.py"


@pytest.fixture(scope="module")
def curve():
    spec = importlib.util.spec_from_file_location("training_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_snapshot_is_scored_like_evaluate_and_scored_rows_are_reused(tmp_path, tiny_config, curve,
                                                                          monkeypatch):
    run = tmp_path / "run"
    fit(tiny_config(trainer__max_epochs=2, trainer__snapshot_every_n_epochs=1), run)
    out = tmp_path / "curve"
    curve.main([str(run), "--out", str(out)])

    rows = read_rows(out.with_suffix(".csv"))
    assert [(r["checkpoint"], int(r["step"])) for r in rows] == [
        ("epoch-0001.ckpt", 5), ("epoch-0002.ckpt", 10), ("last.ckpt", 10)]
    assert out.with_suffix(".png").stat().st_size > 0
    snapshot = load_checkpoint(run / "checkpoints" / "snapshots" / "epoch-0001.ckpt")
    report = evaluate(snapshot, build_dataset(snapshot.config.data),
                      options=EvalOptions(progress=False, figures=False, swap=False, ssim=False))
    horizon = report["horizons"]["40"]
    assert float(rows[0]["mse_t40"]) == pytest.approx(horizon["mse_mean"], rel=1e-6)
    assert int(rows[0]["windows"]) == horizon["windows"]
    assert 0 < float(rows[0]["train_hours"]) <= float(rows[1]["train_hours"])

    # A second pass scores nothing already in the CSV ...
    calls = []
    real_evaluate = curve.evaluate
    monkeypatch.setattr(curve, "evaluate", lambda *a, **k: calls.append(1) or real_evaluate(*a, **k))
    curve.main([str(run), "--out", str(out)])
    assert calls == [] and read_rows(out.with_suffix(".csv")) == rows
    # ... but a different --limit, or --rescore, is scored again.
    curve.main([str(run), "--out", str(out), "--limit", "3"])
    assert len(calls) == 3 and {int(r["windows"]) for r in read_rows(out.with_suffix(".csv"))} == {3}
    curve.main([str(run), "--out", str(out), "--rescore"])
    assert len(calls) == 6


def test_validation_curve_reads_every_validation_of_the_log(tmp_path, tiny_config, curve):
    run = tmp_path / "run"
    fit(tiny_config(trainer__max_epochs=3), run)  # validation after every epoch: steps 4, 9, 14 (0-based)
    points = curve.validation_curve(run)
    with open(run / "logs" / "metrics.csv", newline="") as f:
        logged = [(int(r["step"]), float(r["val/mse"])) for r in csv.DictReader(f) if r.get("val/mse")]
    assert [(p[0], p[2]) for p in points] == logged and len(logged) == 3
    hours = [p[1] for p in points]
    assert 0 < hours[0] < hours[1] < hours[2]
    out = tmp_path / "val"
    curve.main([str(run), "--out", str(out), "--no-test"])  # scores nothing, draws the figure
    assert out.with_suffix(".png").stat().st_size > 0 and not out.with_suffix(".csv").exists()


def test_validation_curve_of_a_folder_without_logs_is_explained(tmp_path, curve):
    with pytest.raises(SystemExit, match="no logs/metrics.csv"):
        curve.validation_curve(tmp_path)
