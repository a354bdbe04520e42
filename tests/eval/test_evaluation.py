"""Per-horizon scoring: values of forecasts whose errors are known, the scales of non-[0, 1] data, and the
files `varsep evaluate` writes (on a tiny trained WaveEq run)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL
from eval_fakes import FakeData, LinearOracle, ramp_windows, ramps

from varsep.cli import main
from varsep.config import load_config
from varsep.data.windows import ArrayWindows
from varsep.eval import metrics
from varsep.eval.evaluation import EvalOptions, evaluate, score_horizon, summary_lines
from varsep.eval.tables import parse_markdown_table
from varsep.forecaster import load
from varsep.precision import PrecisionWarning
from varsep.train import fit

C1, C2 = 0.01 ** 2, 0.03 ** 2


def test_perfect_forecast_and_the_repeat_last_frame_baseline():
    windows = ramp_windows(6, slope=0.01)
    result, _ = score_horizon(LinearOracle(), windows, 6, options=EvalOptions(progress=False, batch_size=5))
    assert result["windows"] == len(windows) == 4 * (30 - 11 + 1)
    assert max(result["mse"]) < 1e-12 and min(result["psnr"]) > 99 and min(result["ssim"]) > 0.999999
    # repeating frame 4 misses frame 4 + k by slope·k everywhere
    expected = [(0.01 * k) ** 2 for k in range(1, 7)]
    np.testing.assert_allclose(result["baseline_mse"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["baseline_psnr"], -10 * np.log10(expected), rtol=1e-5)
    assert result["mse_mean"] == pytest.approx(np.mean(result["mse"]))
    assert result["baseline_mse_mean"] == pytest.approx(np.mean(expected), rel=1e-5)


def test_constant_error_and_ssim_of_uniform_frames():
    frames = np.broadcast_to(np.array([0.2, 0.5], np.float32)[:, None, None, None, None], (2, 12, 1, 16, 16))
    windows = ArrayWindows(np.ascontiguousarray(frames), 5 + 4)
    result, _ = score_horizon(LinearOracle(bias=0.1), windows, 4, options=EvalOptions(progress=False))
    np.testing.assert_allclose(result["mse"], [0.01] * 4, rtol=1e-5)
    np.testing.assert_allclose(result["psnr"], [20.0] * 4, rtol=1e-5)
    # uniform frames a and b: SSIM = (2ab + C1) / (a² + b² + C1), the contrast-structure term being 1
    expected = np.mean([(2 * a * (a + 0.1) + C1) / (a * a + (a + 0.1) ** 2 + C1) for a in (0.2, 0.5)])
    np.testing.assert_allclose(result["ssim"], [expected] * 4, rtol=1e-5)


class AffineUnits(FakeData):
    """A data set whose values are standardised: physical = 10·x + 5, and not on [0, 1]."""

    unit_interval = False

    def __init__(self):
        self.offsets = []

    def physical(self, frames, windows, indices, offset):
        self.offsets.append(offset)
        return np.asarray(frames, dtype=np.float64) * 10 + 5


def test_data_not_in_unit_interval_are_rescaled_by_the_conditioning_range():
    dataset = AffineUnits()
    windows = ramp_windows(3, n=2, slope=0.02)
    result, _ = score_horizon(LinearOracle(bias=0.05), windows, 3, dataset=dataset, options=EvalOptions(progress=False))
    np.testing.assert_allclose(result["mse"], [0.05 ** 2] * 3, rtol=1e-4)
    np.testing.assert_allclose(result["mse_physical"], [100 * 0.05 ** 2] * 3, rtol=1e-4)
    # PSNR on [0, 1]-mapped frames: the error 0.05 over the range of each window's conditioning frames
    cond = windows.take(np.arange(len(windows)))[:, :5].reshape(len(windows), -1)
    span = cond.max(1) - cond.min(1)
    np.testing.assert_allclose(result["psnr_mean"], np.mean(10 * np.log10(span ** 2 / 0.05 ** 2)), rtol=1e-4)
    assert set(dataset.offsets) == {0, 1, 2, 3, 4, 5}  # targets at offset τ+1 = 5; conditioning frames 0…4
    assert "conditioning frames" in result["definitions"]["ssim"]


def test_paper_scale_and_vectors():
    class PaperScale(FakeData):
        paper_mse_factor = 204800.0  # the paper's TaxiBJ scale

    windows = ArrayWindows(ramps(n=3, shape=(20,)), 5 + 4)
    result, _ = score_horizon(LinearOracle(bias=0.01), windows, 4, dataset=PaperScale(),
                              options=EvalOptions(progress=False))
    np.testing.assert_allclose(result["mse_paper"], [0.01 ** 2 * 204800] * 4, rtol=1e-4)
    assert "ssim" not in result and "mse_physical" not in result  # vectors: no SSIM


def test_time_stride_splits_windows_like_the_model():
    model = LinearOracle(time_stride=2)
    windows = ramp_windows(4, cond=9, slope=0.01)  # τ+1 = 5 frames every 2nd frame span 9 frames
    result, _ = score_horizon(model, windows, 4, options=EvalOptions(progress=False))
    assert max(result["mse"]) < 1e-12
    np.testing.assert_allclose(result["baseline_mse"], [(0.01 * k) ** 2 for k in range(1, 5)], rtol=1e-5)


def test_metric_functions_one_value_per_frame():
    x = torch.rand(2, 3, 1, 16, 16)
    assert metrics.mse(x, x).shape == (2, 3) and metrics.ssim(x, x + 0.1).shape == (2, 3)
    shifted = torch.roll(x, 1, dims=-1)
    assert (metrics.ssim(shifted, x) < 1).all() and (metrics.mse(shifted, x) > 0).all()


# ------------------------------------------------------------------------------ on a tiny trained run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_waveeq):
    run = tmp_path_factory.mktemp("eval") / "tiny"
    fit(load_config("waveeq", {"data.root": str(tiny_waveeq), **TINY_MODEL}), run, progress=False)
    return run


def test_evaluate_writes_metrics_table_and_figures(tiny_run):
    out = tiny_run / "eval-full"
    report = evaluate(load(tiny_run, "last"), out_dir=out, options=EvalOptions(limit=12, batch_size=5, progress=False))
    saved = json.loads((out / "metrics.json").read_text())
    r = saved["horizons"]["40"]
    assert r["windows"] == 12 and len(r["mse"]) == len(r["psnr"]) == len(r["ssim"]) == 40
    assert saved["label"] == "tiny" and saved["limit"] == 12 and "ssim" in saved["definitions"]
    swap = r["swap"]
    assert swap["ground_truth"] is False and len(swap["change_mse"]) == 40
    assert swap["same_sequence_pairs"] == 0
    for name in ("forecast_t40.png", "forecast_t40.gif", "swap_t40.png", "mse_t40.png", "psnr_t40.png",
                 "ssim_t40.png", "fusion.png"):
        assert (out / name).stat().st_size > 1000, name
        assert name in saved["figures"]
    rows = parse_markdown_table((out / "results.md").read_text())
    assert [row["Model"] for row in rows] == ["tiny", "Repeat last frame"]
    assert float(rows[0]["MSE t+40"]) == pytest.approx(r["mse_mean"], rel=1e-3)
    assert float(rows[1]["SSIM t+40"]) == pytest.approx(r["baseline_ssim_mean"], abs=1e-4)
    lines = summary_lines(report)
    assert lines[0].startswith("t+40: MSE") and "content swap" in lines[-1]
    verdict = r["verdict"]["repeat_last_frame"]  # then whether it beats repeating the last frame, step by step
    assert saved["horizons"]["40"]["verdict"]["metric"] == "mse" and "climatology" not in r["verdict"]
    assert any(line.startswith("t+40: the model") for line in lines[1:-1])
    assert verdict["not_beaten"] == [k + 1 for k in range(40) if not r["mse"][k] < r["baseline_mse"][k]]


def test_evaluate_command_without_swap_or_figures(tiny_run, capsys):
    out = tiny_run / "eval-lean"
    assert main(["evaluate", str(tiny_run), "--quiet", "--limit", "6", "--no-swap", "--no-figures",
                 "--checkpoint", "last", "--out", str(out)]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert "swap" not in saved["horizons"]["40"] and saved["figures"] == []
    assert not list(out.glob("*.png")) and (out / "results.md").is_file()
    assert "t+40: MSE" in capsys.readouterr().out


def test_bf16_evaluation_is_close_to_fp32(tiny_run):
    run = load(tiny_run, "last")
    options = EvalOptions(limit=8, progress=False, figures=False, swap=False, precision="32")
    fp32 = evaluate(run, options=options)["horizons"]["40"]["mse_mean"]
    with warnings.catch_warnings():  # bf16 on a CPU without bf16 instructions warns that it is slow
        warnings.simplefilter("ignore", PrecisionWarning)
        bf16 = evaluate(run, options=replace(options, precision="bf16"))["horizons"]["40"]["mse_mean"]
    assert bf16 == pytest.approx(fp32, rel=0.05)


# ----------------------------------------------------------------------------------- SST in °C, for real
def sst_zones(root, days: int = 40, size: int = 16):
    """Zone files data_1.nc, data_2.nc in the real NetCDF layout; returns the raw °C per zone."""
    import xarray as xr

    raw = {}
    for zone in (1, 2):
        rng = np.random.default_rng(zone)
        t = np.arange(days)
        mean, std = 15 + zone + np.sin(t / 9), 0.8 + 0.1 * np.cos(t / 5)
        field = rng.normal(0, 1, (days, size, size)).cumsum(0) * 0.1
        thetao = mean[:, None, None] + std[:, None, None] * field
        xr.Dataset({"thetao": (("time", "lat", "lon"), thetao), "daily_mean": (("time",), mean),
                    "daily_std": (("time",), std)}).to_netcdf(root / f"data_{zone}.nc", engine="netcdf4")
        raw[zone] = (thetao, mean, std)
    return raw


@pytest.mark.parametrize("normalization", ["zone", "frame"])
def test_sst_scores_in_celsius(tmp_path, normalization):
    from varsep.config.datasets import SSTConfig
    from varsep.data import build_dataset
    from varsep.eval.scoring import headline_mse

    raw = sst_zones(tmp_path)
    config = SSTConfig(root=str(tmp_path), test_zones=[1, 2], val_days=0, test_horizons=[3],
                       normalization=normalization)
    dataset = build_dataset(config)
    windows = dataset.test_windows(3)
    model = LinearOracle(cond_frames=4)
    result, _ = score_horizon(model, windows, 3, dataset=dataset, options=EvalOptions(progress=False))
    assert result["windows"] == len(windows) == 2 * (8 - 7 + 1)
    assert np.isfinite(result["psnr_mean"]) and 0 < result["ssim_mean"] < 1
    if normalization == "frame":  # no °C without the targets' statistics: only the labelled variant
        assert "mse_physical" not in result and headline_mse(result) == "mse_paper_compatible"
        return
    # by hand: the forecast back in °C with the training days' zone statistics, against the file's °C
    frames = windows.take(np.arange(len(windows)))
    pred = model.forecast(torch.from_numpy(frames[:, :4]), 3).numpy()[:, :, 0]
    errors = []
    for i, zone in enumerate(windows.zone_positions(np.arange(len(windows)))):
        thetao, mean, std = raw[zone + 1]
        anomaly = (thetao - mean[:, None, None]) / std[:, None, None]
        mu, sigma = anomaly[:32].mean(), anomaly[:32].std()
        days = windows.days(np.array([i]))[0] + 4 + np.arange(3)
        celsius = (pred[i] * sigma + mu) * std[days, None, None] + mean[days, None, None]
        errors.append(((celsius - thetao[days]) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(result["mse_physical"], np.mean(errors, axis=0), rtol=1e-4)
    assert headline_mse(result) == "mse_physical"
    assert result["mse_paper_compatible_mean"] == pytest.approx(result["mse_physical_mean"], rel=1e-6)


def test_split_by_observed_times():
    from varsep.eval.evaluation import split_by_observed_times

    result = {"mse": [1.0, 2.0, 3.0, 4.0], "baseline_mse": [5.0, 5.0, 5.0, 5.0], "windows": 3}
    split = split_by_observed_times(result, 2)
    assert split["mse_observed_times_mean"] == 3.0 and split["mse_skipped_times_mean"] == 2.0
    assert split["baseline_mse_observed_times_mean"] == 5.0 and split["time_stride"] == 2
