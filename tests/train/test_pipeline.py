"""generate → fit → evaluate through the command line, on a tiny model, and the errors users meet."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from varsep.cli import main
from varsep.forecaster import load

TINY = ["--model.encoder_hidden", "[32]", "--model.decoder_hidden", "[32]", "--model.width", "16",
        "--model.blocks", "1", "--data.batch_size", "8", "--data.batches_per_epoch", "3",
        "--data.val_sequences", "1", "--data.val_stride", "20", "--trainer.max_epochs", "2",
        "--trainer.val_every_n_epochs", "1", "--trainer.checkpoint_every_n_steps", "2",
        "--trainer.log_every_n_steps", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_waveeq):
    run = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["fit", "-c", "configs/waveeq.yaml", "--run-dir", str(run), "--quiet",
                 "--data.root", str(tiny_waveeq), *TINY])
    assert code == 0
    return run


def test_fit_writes_a_complete_run_folder(trained):
    for rel in ("config.yaml", "run.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv"):
        assert (trained / rel).is_file(), rel
    info = json.loads((trained / "run.json").read_text())
    assert info["seed"] == 0 and info["spec"]["frame_shape"] == [1, 64, 64] and "torch" in info
    log = (trained / "logs/metrics.csv").read_text()
    assert "val/mse" in log and "train/pred" in log
    assert list((trained / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    run = load(trained, "last")
    assert run.step == 6 and run.config.model.encoder_hidden == [32]


def test_evaluate_writes_metrics_and_figures(trained, capsys):
    assert main(["evaluate", str(trained), "--quiet", "--limit", "20"]) == 0
    report = json.loads((trained / "eval" / "metrics.json").read_text())
    r = report["horizons"]["40"]
    assert r["windows"] == 20 and len(r["mse"]) == 40 and len(r["baseline_mse"]) == 40
    assert all(v > 0 for v in r["mse"]) and 0 < r["ssim_mean"] <= 1
    for name in ("forecast_t40.png", "mse_t40.png", "forecast_t40.gif"):
        assert (trained / "eval" / name).stat().st_size > 1000
    assert "t+40: MSE" in capsys.readouterr().out


def test_existing_run_folder_is_not_overwritten(trained, tiny_waveeq, capsys):
    before = (trained / "checkpoints" / "last.ckpt").read_bytes()
    assert main(["fit", "-c", "waveeq", "--run-dir", str(trained), "--quiet", "--data.root", str(tiny_waveeq),
                 *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (trained / "checkpoints" / "last.ckpt").read_bytes() == before


def test_missing_data_folder_names_the_generate_command(tmp_path, capsys):
    code = main(["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), "--data.root", str(tmp_path / "none")])
    assert code == 2
    assert "varsep generate waveeq --out" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_unknown_key_on_the_command_line(tmp_path, capsys):
    assert main(["fit", "-c", "waveeq", "--run-dir", str(tmp_path / "r"), "--model.sdim", "3"]) == 2
    assert "Did you mean 's_dim'" in capsys.readouterr().err


def test_evaluating_with_mismatched_data_states_both_shapes(trained, tiny_waveeq, capsys):
    code = main(["evaluate", str(trained), "--quiet", "--data.name", "waveeq100"])
    assert code == 2
    err = capsys.readouterr().err
    assert "(1, 64, 64)" in err and "(100,)" in err


def test_generate_command(tmp_path, capsys):
    assert main(["generate", "waveeq", "--out", str(tmp_path / "w"), "--num-sequences", "3", "--quiet"]) == 0
    assert (tmp_path / "w" / "frames.npy").is_file()
    assert main(["generate", "waveeq", "--out", str(tmp_path / "w"), "--num-sequences", "3", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_training_on_subsampled_sequences(tmp_path, tiny_waveeq):
    """Every 2nd frame observed, half of the targets kept: trains, and forecasts every frame after."""
    run = tmp_path / "strided"
    assert main(["fit", "-c", "waveeq", "--run-dir", str(run), "--quiet", "--data.root", str(tiny_waveeq),
                 *TINY, "--data.time_stride", "2", "--data.keep_prob", "0.5", "--data.pred_frames", "10",
                 "--data.test_horizons", "[20]", "--trainer.max_epochs", "1"]) == 0
    loaded = load(run, "last")
    assert loaded.model.time_stride == 2 and loaded.spec.train_length == 29
    from varsep.config import load_config
    from varsep.data import build_dataset

    data = build_dataset(load_config(run / "config.yaml").data)
    window = data.test_windows(20).take(np.array([0]))
    assert window.shape[1] == 9 + 20
    cond, target = loaded.model.split_window(torch.from_numpy(window))
    assert cond.shape[1] == 5 and target.shape[1] == 20
    assert loaded.model.forecast(cond, 20).shape == target.shape
    assert main(["evaluate", str(run), "--checkpoint", "last", "--quiet", "--limit", "8", "--no-swap"]) == 0
    import json

    stride = json.loads((run / "eval" / "metrics.json").read_text())["horizons"]["20"]["stride"]
    assert stride["time_stride"] == 2 and stride["mse_skipped_times_mean"] > 0
    assert (run / "eval" / "mse_observed_vs_skipped_t20.png").stat().st_size > 1000


def test_profiler_writes_a_report(tmp_path, tiny_waveeq):
    run = tmp_path / "profiled"
    assert main(["fit", "-c", "waveeq", "--run-dir", str(run), "--quiet", "--data.root", str(tiny_waveeq), *TINY,
                 "--trainer.max_epochs", "1", "--trainer.profiler", "simple"]) == 0
    report = next((run / "profile").glob("*profile*.txt")).read_text()
    assert "run_training_batch" in report or "training_step" in report


def test_reading_batches_ahead_in_threads_trains_the_same_weights(tmp_path, tiny_config):
    from varsep.storage import safe_torch_load
    from varsep.train import fit

    weights = []
    for workers in (0, 2):
        run = fit(tiny_config(data__num_workers=workers, trainer__max_epochs=1), tmp_path / f"w{workers}")
        weights.append(safe_torch_load(run / "checkpoints" / "last.ckpt")["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.parametrize("bar", ["true", "false"])
def test_the_progress_bar_follows_the_config_unless_quiet(tmp_path, tiny_waveeq, capsys, bar):
    code = main(["fit", "-c", "configs/waveeq.yaml", "--run-dir", str(tmp_path / "r"), "--data.root",
                 str(tiny_waveeq), *TINY, "--trainer.max_epochs", "1", "--trainer.progress_bar", bar])
    assert code == 0
    err = capsys.readouterr().err
    assert ("training" in err) == (bar == "true"), err[-500:]
