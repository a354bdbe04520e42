"""The forecasting API (varsep.load) and `varsep predict` on .npy and NetCDF files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import varsep
from varsep.cli import main
from varsep.errors import DataError
from varsep.forecaster import apply_transform
from varsep.predict import continue_times, predict


@pytest.fixture(scope="module")
def model(tiny_run):
    return varsep.load(tiny_run, "last", precision="32")  # exact comparisons with the fp32 module


@pytest.fixture(scope="module")
def frames(tiny_waveeq):
    return np.load(tiny_waveeq / "frames.npy")[6:8, 20:30, None]  # 2 test sequences, 10 frames, 1 channel


def test_forecast_numpy_in_numpy_out_one_or_many_windows(model, frames):
    many = model.forecast(frames[:, -5:], horizon=7)
    one = model.forecast(frames[0, -5:], horizon=7)
    assert isinstance(many, np.ndarray) and many.shape == (2, 7, 1, 64, 64) and one.shape == (7, 1, 64, 64)
    np.testing.assert_allclose(one, many[0], rtol=1e-5, atol=1e-6)
    # Longer histories use their last conditioning window.
    np.testing.assert_array_equal(model.forecast(frames, horizon=7), many)
    expected = model.model.forecast(torch.from_numpy(frames[:, -5:]), 7)
    np.testing.assert_array_equal(many, expected.detach().numpy())


def test_encode_decode_and_times(model, frames):
    cond = torch.from_numpy(frames[:, -5:])
    content, t0 = model.encode(cond)
    codes = model.model.rollout(t0, 4 + 3)[:, 5:]
    torch.testing.assert_close(model.decode(content, codes), model.forecast(cond, horizon=3))
    halfway = model.forecast(cond, times=[0.5, 1.0, 1.5])
    torch.testing.assert_close(halfway[:, 1], model.forecast(cond, horizon=1)[:, 0])


def test_bad_inputs_are_explained(model, frames):
    with pytest.raises(ValueError, match=r"expected conditioning frames of shape \(B, 5, 1, 64, 64\).*got \(2, 5, 32"):
        model.forecast(np.zeros((2, 5, 32, 32), np.float32), horizon=2)
    with pytest.raises(ValueError, match="conditions on 5 frames.*got 3"):
        model.forecast(frames[:, :3], horizon=2)
    bad = frames[:, -5:].copy()
    bad[1, 2, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf \(sequence 1, frame 2\)"):
        model.forecast(bad, horizon=2)


def test_predict_npy_round_trip(tiny_run, model, frames, tmp_path):
    np.save(tmp_path / "one.npy", frames[0, :, 0])  # (time, H, W): the channel axis may be left out
    out = predict(tiny_run, tmp_path / "one.npy", tmp_path / "f.npy", horizon=6, checkpoint="last", precision="32")
    got = np.load(out)
    assert got.shape == (6, 64, 64)
    np.testing.assert_allclose(got, model.forecast(frames[0, -5:], horizon=6)[:, 0], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "f.png").stat().st_size > 1000
    np.save(tmp_path / "many.npy", frames)
    assert np.load(predict(tiny_run, tmp_path / "many.npy", tmp_path / "g.npy", horizon=2,
                           checkpoint="last", figure=False)).shape == (2, 2, 1, 64, 64)


def test_predict_netcdf_matches_the_input(tiny_run, model, frames, tmp_path):
    time = np.array("2020-01-01", dtype="datetime64[ns]") + np.arange(10) * np.timedelta64(6, "h")
    ds = xr.Dataset({"height": (("time", "y", "x"), frames[0, :, 0], {"units": "m"})},
                    coords={"time": time, "y": np.arange(64) * 0.5, "x": np.arange(64) * 2.0}, attrs={"source": "t"})
    ds.to_netcdf(tmp_path / "obs.nc")
    out = predict(tiny_run, tmp_path / "obs.nc", tmp_path / "fc.nc", times=[1, 2.5], checkpoint="last",
                  figure=False, precision="32")
    fc = xr.open_dataset(out)
    assert list(fc.data_vars) == ["height"] and fc["height"].dims == ("time", "y", "x")
    assert fc["height"].attrs["units"] == "m" and fc.attrs["source"] == "t"
    np.testing.assert_array_equal(fc["x"], ds["x"])
    assert list(fc["time"].values) == [time[-1] + np.timedelta64(6, "h"), time[-1] + np.timedelta64(15, "h")]
    expected = model.forecast(frames[0, -5:], times=[1, 2.5])[:, 0]
    np.testing.assert_allclose(fc["height"].values, expected, rtol=1e-5, atol=1e-6)


def test_predict_command_and_its_errors(tiny_run, frames, tmp_path, capsys):
    np.save(tmp_path / "in.npy", frames[0])
    assert main(["predict", str(tiny_run), "--checkpoint", "last", "--input", str(tmp_path / "in.npy"),
                 "--horizon", "3", "--out", str(tmp_path / "o.npy")]) == 0
    assert np.load(tmp_path / "o.npy").shape == (3, 1, 64, 64)
    np.save(tmp_path / "short.npy", frames[0, :2])
    assert main(["predict", str(tiny_run), "--checkpoint", "last", "--input", str(tmp_path / "short.npy"),
                 "--horizon", "3", "--out", str(tmp_path / "x.npy")]) == 2
    assert "conditions on the last 5 observations, the file holds 2" in capsys.readouterr().err
    assert main(["predict", str(tiny_run), "--checkpoint", "last", "--input", str(tmp_path / "in.npy"),
                 "--times", "-1", "--out", str(tmp_path / "x.npy")]) == 2
    assert "≥ 0" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"model takes observations of shape \(1, 64, 64\).*\(10, 100\)"):
        np.save(tmp_path / "vec.npy", np.zeros((10, 100), np.float32))
        predict(tiny_run, tmp_path / "vec.npy", tmp_path / "x.npy", horizon=1, checkpoint="last")
    assert not (tmp_path / "x.npy").exists()


def test_value_transform_round_trip():
    t = {"kind": "affine", "offset": [10.0, -1.0], "scale": [2.0, 0.5], "axis": -3}
    raw = np.random.default_rng(0).normal(size=(3, 4, 2, 5, 5)).astype(np.float32)
    model_values = apply_transform(t, raw, inverse=False)
    np.testing.assert_allclose(model_values[:, :, 0], (raw[:, :, 0] - 10) / 2, rtol=1e-6)
    np.testing.assert_allclose(apply_transform(t, model_values, inverse=True), raw, rtol=1e-5, atol=1e-5)


def test_time_coordinates_continue_at_the_input_spacing():
    assert continue_times(np.array([0.0, 0.5, 1.0]), np.array([1.0, 2.0])).tolist() == [1.5, 2.0]
    days = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]")
    assert continue_times(days, np.array([0.5]))[0] == np.datetime64("2020-01-02T12:00", "ns")
