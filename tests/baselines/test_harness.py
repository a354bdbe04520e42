"""Baselines in varsep's harness: configs, two training steps through the CLI, checkpoints, evaluation,
comparison and imported OpenSTL weights — on a tiny WaveEq set, with tiny versions of every method."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from varsep.baselines import BASELINES, build_baseline, constructor_settings, load_openstl_weights
from varsep.cli import main
from varsep.config import load_config
from varsep.config.schema import BASELINE_KINDS
from varsep.errors import ConfigError
from varsep.forecaster import load
from varsep.spec import DataSpec

# Small versions of every method (the reference sizes are tested in the method's own test file).
TINY = {
    "convlstm": {"num_hidden": [4, 4], "filter_size": 3},
    "predrnn": {"num_hidden": [4, 4], "filter_size": 3},
    "predrnn_v2": {"num_hidden": [4, 4], "filter_size": 3},
    "predrnnpp": {"num_hidden": [4, 4], "filter_size": 3},
    "mim": {"num_hidden": [4, 4, 4], "filter_size": 3},
    "e3dlstm": {"num_hidden": [4, 4], "patch_size": 8},
    "phydnet": {"convlstm_hidden": [8, 64]},
    "simvp": {"hid_S": 8, "hid_T": 16, "N_S": 2, "N_T": 2},
    "tau": {"hid_S": 8, "hid_T": 16, "N_S": 2, "N_T": 2},
    "drnet": {"content_dim": 8, "pose_dim": 4, "sd_nf": 8, "rnn_size": 8, "rnn_layers": 1, "lstm_from_step": 1},
    "svg": {"g_dim": 8, "z_dim": 2, "rnn_size": 8},
    "pknl": {"widths": [4, 4, 4, 4, 4], "up_widths": [4, 4, 4, 4, 4]},
    "ddpae": {"content_dim": 8, "image_dim": 8, "hidden": 8, "ngf": 2},
}
TINY_DATA = ["--data.batch_size", "4", "--data.batches_per_epoch", "2", "--data.val_sequences", "1",
             "--data.val_stride", "20", "--trainer.max_epochs", "1", "--trainer.val_every_n_epochs", "100",
             "--trainer.precision", "32"]


def settings_args(kind: str) -> list[str]:
    return [f"--model.baseline.{k}={json.dumps(v)}" for k, v in TINY[kind].items()]


def test_the_table_the_config_and_the_presets_name_the_same_methods():
    assert sorted(BASELINES) == sorted(BASELINE_KINDS) == sorted(TINY)
    spec = DataSpec((1, 64, 64), 5, 10)
    for kind in BASELINES:
        config = load_config(f"baselines/{kind}", {"data.name": "mmnist"})
        assert config.model.kind == kind
        assert set(config.model.baseline) <= set(constructor_settings(kind)), kind
        with torch.device("meta"):  # the reference sizes, built without allocating them
            model = build_baseline(kind, spec, config.model.baseline)
        assert model.spec == spec and model.forecast is not None


@pytest.mark.parametrize("kind", sorted(BASELINES))
def test_two_steps_through_the_cli_then_evaluate_and_reload(kind, tiny_waveeq, tmp_path, capsys):
    run = tmp_path / kind
    code = main(["fit", "-c", "waveeq", "--data.root", str(tiny_waveeq), "--run-dir", str(run), "--quiet",
                 "--model.kind", kind, *settings_args(kind), *TINY_DATA])
    assert code == 0, capsys.readouterr().err
    assert f"model: {kind}," in capsys.readouterr().out
    code = main(["evaluate", str(run), "--checkpoint", "last", "--limit", "2", "--no-figures", "--quiet",
                 "--no-ssim", "--no-swap", "--precision", "32"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["horizons"]["40"]["windows"] == 2 and np.isfinite(metrics["horizons"]["40"]["mse_mean"])
    first, second = load(run, "last", precision="32"), load(run, "last", precision="32")
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cond = np.load(tiny_waveeq / "frames.npy")[6:7, :5, None]
    longer = first.forecast(cond, horizon=25)  # trained on 20 frames after the window
    assert longer.shape == (1, 25, 1, 64, 64) and np.isfinite(longer).all()
    np.testing.assert_array_equal(longer, second.forecast(cond, horizon=25))


def test_bad_baseline_settings_are_refused_before_anything_is_written(tiny_waveeq, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["fit", "-c", "waveeq", "--data.root", str(tiny_waveeq), "--run-dir", str(run),
                 "--model.kind", "convlstm", "--model.baseline.num_hiden=[4]", *TINY_DATA])
    err = capsys.readouterr().err
    assert code == 2 and "unknown setting model.baseline.num_hiden" in err and "Did you mean 'num_hidden'?" in err
    assert not run.exists()
    code = main(["fit", "-c", "waveeq", "--data.root", str(tiny_waveeq), "--run-dir", str(run),
                 "--model.kind", "convlstm", *settings_args("convlstm"), "--data.keep_prob", "0.5", *TINY_DATA])
    assert code == 2 and "keep_prob" in capsys.readouterr().err and not run.exists()
    code = main(["fit", "-c", "waveeq100", "--data.root", str(tiny_waveeq), "--run-dir", str(run),
                 "--model.kind", "simvp", *settings_args("simvp"), *TINY_DATA])
    assert code == 2 and "forecasts frames" in capsys.readouterr().err and not run.exists()
    code = main(["fit", "-c", "waveeq", "--data.root", str(tiny_waveeq), "--run-dir", str(run),
                 "--model.kind", "convlsmt"])
    assert code == 2 and "Did you mean 'convlstm'?" in capsys.readouterr().err


def own_field_config(tmp_path, kind: str = "separable", normalization: str = "standard") -> str:
    """A config file for a field of your own: 10 sequences of 20 frames of 32×32 around 280 K (std 5), a .npy."""
    frames = np.random.default_rng(0).normal(280.0, 5.0, size=(10, 20, 32, 32)).astype(np.float32)
    np.save(tmp_path / "field.npy", frames)
    baseline = json.dumps(TINY.get(kind, {}))
    path = tmp_path / f"own-{kind}-{normalization}.yaml"
    path.write_text(f"data: {{name: custom, path: {tmp_path / 'field.npy'}, cond_frames: 5, pred_frames: 5, "
                    f"batch_size: 2, batches_per_epoch: 1, normalization: {normalization}}}\n"
                    f"model: {{kind: {kind}, baseline: {baseline}}}\n"
                    f"trainer: {{max_epochs: 1, precision: '32'}}\n")
    return str(path)


@pytest.mark.parametrize("kind", ["phydnet", "svg", "drnet", "ddpae"])
def test_a_sigmoid_baseline_on_data_outside_the_unit_interval_is_refused(kind, tmp_path, capsys):
    # A field standardised to mean 0 / std 1 (the default for your own data): half its values are negative,
    # which a decoder ending in a sigmoid can never produce. Min-max scaling makes the same data trainable.
    code = main(["fit", "-c", own_field_config(tmp_path, kind), "--run-dir", str(tmp_path / "refused"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"the {kind} baseline's frames come out of a sigmoid, so they lie in [0, 1]" in err, err
    able = err.split("a baseline with unbounded frames: ")[1].strip()
    assert "data.normalization: minmax" in err
    assert able == "convlstm, predrnn, predrnn_v2, predrnnpp, mim, e3dlstm, simvp, tau, pknl", able
    assert not (tmp_path / "refused").exists()
    assert main(["fit", "-c", own_field_config(tmp_path, kind, "minmax"), "--run-dir", str(tmp_path / "ok"),
                 "--quiet"]) == 0
    assert load(tmp_path / "ok", "last").step == 1


def test_on_sst_a_sigmoid_baseline_trains_on_zones_scaled_to_the_unit_interval(tmp_path, capsys):
    # SST is standardised per zone by default (the paper's text): PhyDNet is refused with the setting that
    # scales each zone to [0, 1] instead, and trains with it. Three zones of 80 days in the real file format.
    import xarray as xr

    days = 80
    for zone in (1, 2, 3):
        mean, std = np.full(days, 15.0 + zone), np.full(days, 0.8)
        field = mean[:, None, None] + std[:, None, None] * np.random.default_rng(zone).normal(
            0, 1, (days, 64, 64)).cumsum(0) * 0.1
        time = (np.datetime64("2010-01-01") + np.arange(days)).astype("datetime64[ns]")
        xr.Dataset({"thetao": (("time", "lat", "lon"), field), "daily_mean": (("time",), mean),
                    "daily_std": (("time",), std)}, coords={"time": time}).to_netcdf(tmp_path / f"data_{zone}.nc")
    common = ["fit", "-c", "baselines/phydnet", "--data.name", "sst", "--data.root", str(tmp_path), "--quiet",
              *settings_args("phydnet"), "--data.test_zones", "[2, 3]", "--data.val_days", "20",
              "--data.batch_size", "2", "--data.batches_per_epoch", "1", "--trainer.max_epochs", "1",
              "--trainer.precision", "32"]
    assert main([*common, "--run-dir", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "set data.normalization: zone_minmax" in err and not (tmp_path / "refused").exists()
    assert main([*common, "--data.normalization", "zone_minmax", "--run-dir", str(tmp_path / "ok")]) == 0
    assert load(tmp_path / "ok", "last").step == 1


def test_compare_refuses_a_model_that_cannot_take_the_data_before_anything_trains(tmp_path, capsys):
    code = main(["compare", "-c", own_field_config(tmp_path), "--models", "convlstm,phydnet", "--budget-steps", "1",
                 "--run-root", str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert code == 2 and "PhyDNet (phydnet) cannot take part in this comparison" in err, err
    assert "Leave it out of --models" in err and not (tmp_path / "cmp").exists()


def test_a_batch_whose_activations_do_not_fit_is_refused_before_anything_is_written(tiny_waveeq, tmp_path, capsys,
                                                                                    monkeypatch):
    # E3D-LSTM at its reference size and batch 16 on WaveEq keeps ~14.5 GB of activations per step: on a machine
    # with 8 GB available the fit is a clear error, not a kernel OOM kill half-way through the first step.
    import varsep.guards

    monkeypatch.setattr(varsep.guards, "available_memory", lambda: 8 * 10**9)
    run = tmp_path / "run"
    code = main(["fit", "-c", "baselines/e3dlstm", "--data.name", "waveeq", "--data.root", str(tiny_waveeq),
                 "--run-dir", str(run), "--quiet", "--data.val_sequences", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "training e3dlstm at batch 16" in err and "14.5 GB of activations" in err, err
    assert "lower data.batch_size" in err and not run.exists()


def test_compare_trains_each_model_at_the_budget_and_writes_table_and_figures(tiny_waveeq, tmp_path, capsys,
                                                                             monkeypatch):
    from conftest import TINY_MODEL

    import varsep.eval.compare as cmp
    from varsep.config import config_from_dict

    real = cmp.model_config

    def tiny(config, model, **budget):  # the presets hold the reference sizes (SimVP: 58 M): shrink them
        out = real(config, model, **budget)
        if model == "varsep":
            return out
        raw = out.to_dict()
        raw["model"]["baseline"] = dict(TINY[model])
        raw["data"]["batch_size"] = 4
        return config_from_dict(raw)

    monkeypatch.setattr(cmp, "model_config", tiny)
    root = tmp_path / "cmp"
    tiny_separable = [f"--{k}={json.dumps(v)}" for k, v in TINY_MODEL.items()
                      if k.startswith(("model.", "data.")) and k != "data.batches_per_epoch"]
    args = ["compare", "-c", "waveeq", "--data.root", str(tiny_waveeq), "--run-root", str(root), "--models",
            "varsep,simvp", "--budget-steps", "3", "--limit", "4", "--quiet", "--no-ssim", "--precision", "32",
            *tiny_separable]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((root / "compare.json").read_text())
    assert [m["step"] for m in summary["models"]] == [3, 3] and summary["budget_steps"] == 3
    table = (root / "compare.md").read_text()
    assert "Ours (varsep)" in table and "SimVP" in table and "Repeat last frame" in table
    assert (root / "compare_mse_t40.png").stat().st_size > 1000 and (root / "compare_forecasts_t40.png").is_file()
    assert main(args) == 0 and "already trained and evaluated" in capsys.readouterr().out  # nothing retrained
    # a run recorded before a setting existed (here model.anchor) is finished too when the setting is at its default
    for model in ("varsep", "simvp"):
        done = root / model / cmp.DONE_FILE
        record = json.loads(done.read_text())
        del record["config"]["model"]["anchor"]
        done.write_text(json.dumps(record))
    out = (capsys.readouterr(), main(args), capsys.readouterr().out)[2]
    assert out.count("already trained and evaluated") == 2
    base = load_config("waveeq", {"data.root": str(tiny_waveeq)})
    assert real(base, "phydnet", budget_minutes=1.0).optim.schedule == "milestones"  # no OneCycle without steps
    assert real(base, "drnet", budget_steps=10).model.baseline["lstm_from_step"] == 5
    assert main(["compare", "-c", "waveeq", "--models", "varsep,prednet", "--budget-steps", "1"]) == 2
    assert "unknown model prednet" in capsys.readouterr().err


def test_an_openstl_checkpoint_becomes_a_run_that_evaluate_scores(tiny_waveeq, tmp_path, capsys):
    from varsep.baselines.convlstm import ConvLSTM

    torch.manual_seed(3)
    source = ConvLSTM((1, 64, 64), 5, 20, **TINY["convlstm"]).eval()
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}, "epoch": 7},
               tmp_path / "openstl.ckpt")  # OpenSTL's Lightning layout: keys prefixed "model."
    run = tmp_path / "imported"
    code = main(["import-weights", "--model", "convlstm", "--weights", str(tmp_path / "openstl.ckpt"), "-c", "waveeq",
                 "--run-dir", str(run), "--data.root", str(tiny_waveeq), "--data.val_sequences", "1",
                 *settings_args("convlstm")])
    assert code == 0, capsys.readouterr().err
    imported = load(run, precision="32")
    cond = torch.from_numpy(np.load(tiny_waveeq / "frames.npy")[6:8, :5, None])
    torch.testing.assert_close(imported.forecast(cond, horizon=6), source.forecast(cond, 6), rtol=0, atol=0)
    assert main(["evaluate", str(run), "--limit", "2", "--no-figures", "--quiet", "--no-ssim", "--precision",
                 "32"]) == 0
    wrong = build_baseline("convlstm", DataSpec((1, 64, 64), 5, 20), {"num_hidden": [8, 8]})
    with pytest.raises(ConfigError, match="does not fit convlstm"):
        load_openstl_weights(wrong, torch.load(tmp_path / "openstl.ckpt"))
    with pytest.raises(ConfigError, match="no OpenSTL checkpoint layout"):
        load_openstl_weights(build_baseline("svg", DataSpec((1, 64, 64), 5, 20), TINY["svg"]), {})


def test_a_stochastic_baseline_is_scored_on_the_best_of_its_samples(tiny_waveeq):
    from varsep.data import build_dataset
    from varsep.eval import EvalOptions, evaluate
    from varsep.eval.evaluation import summary_lines

    config = load_config("waveeq", {"data.root": str(tiny_waveeq), "data.val_sequences": 1, "model.kind": "svg",
                                    "model.baseline": TINY["svg"]})
    from varsep.forecaster import Forecaster

    torch.manual_seed(0)
    model = build_baseline("svg", DataSpec((1, 64, 64), 5, 20), TINY["svg"])
    run = Forecaster(model, config, model.spec, precision="32")
    dataset = build_dataset(config.data)
    report = evaluate(run, dataset, options=EvalOptions(limit=3, samples=4, progress=False, figures=False,
                                                        swap=False, precision="32"))
    result = report["horizons"]["40"]
    assert result["samples"] == 4 and result["best_of_ssim_mean"] >= result["ssim_mean"] - 1e-9
    assert len(result["best_of_mse"]) == 40 and any("best of 4 samples" in line for line in summary_lines(report))
    plain = evaluate(run, dataset, options=EvalOptions(limit=3, progress=False, figures=False, swap=False,
                                                       precision="32"))
    assert "best_of_mse_mean" not in plain["horizons"]["40"]
