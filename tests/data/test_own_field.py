"""The worked example of README "Your own field": the script writes two NetCDF files of an SST-like field
(irregular 37×49 grid, land NaN in every frame, 360_day calendar), and the example config reads them with
the climatology reference and the mask that `varsep evaluate` uses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from eval_fakes import LinearOracle

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.eval.evaluation import EvalOptions, score_horizon

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_own_field", EXAMPLES / "make_own_field.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = tmp_path_factory.mktemp("own-field")
    return script.main(["--out-dir", str(folder), "--years", "1"]), script


def test_two_files_irregular_grid_land_and_a_360_day_calendar(files):
    paths, script = files
    assert [p.name for p in paths] == ["sst_2001-2001.nc", "sst_2002-2002.nc"]
    raw = [xr.open_dataset(p, decode_times=False) for p in paths]
    for ds in raw:
        assert ds.sst.dims == ("time", "lat", "lon") and ds.sst.shape == (72, 37, 49)  # 360 days / 5
        assert ds.time.attrs["calendar"] == "360_day" and ds.time.attrs["units"].startswith("days since")
        assert ds.sst.attrs["units"] == "K"
    # consecutive: the second file starts one 5-day step after the first ends
    assert float(raw[1].time[0]) - float(raw[0].time[-1]) == 5.0 and float(raw[0].time[0]) == 2.5
    lat, lon = raw[0].lat.values, raw[0].lon.values
    assert (np.diff(lat) > 0).all() and np.ptp(np.diff(lat)) > 3 and np.ptp(np.diff(lon)) > 3  # uneven
    values = np.concatenate([ds.sst.values for ds in raw])
    land = np.isnan(values).all(0)
    assert (np.isnan(values).any(0) == land).all()  # NaN only where it is NaN in every frame
    assert 0.1 < land.mean() < 0.35
    np.testing.assert_array_equal(land, script.land_mask(lat, lon))
    sea = values[:, ~land]
    assert sea.min() > 270 and sea.max() < 310  # kelvin, sea-surface values
    decoded = xr.open_dataset(paths[0])
    assert type(decoded.time.values[0]).__name__ == "Datetime360Day"


def test_the_example_config_reads_them_with_mask_and_climatology(files, tmp_path):
    paths, _ = files
    cfg = load_config(str(EXAMPLES / "own_field.yaml"), {"data.path": str(paths[0].parent / "sst_*.nc")})
    assert cfg.model.encoder is None and cfg.data.resize is None  # default networks, no resize
    dataset = build_dataset(cfg.data)
    assert dataset.spec.frame_shape == (1, 37, 49) and dataset.default_encoder == "dcgan"
    assert len(dataset.description.files) == 2
    valid = dataset.valid_mask
    assert valid is not None and valid.shape == (1, 37, 49) and not valid.all()
    assert "training part" in dataset.climatology_reference
    # the climatology reference (each cell's training mean) scored by hand on the data's units
    windows = dataset.test_windows(6)
    result, _ = score_horizon(LinearOracle(), windows, 6, dataset=dataset,
                              options=EvalOptions(progress=False, ssim=False, swap=False))
    idx = np.arange(len(windows))
    target = dataset.physical(windows.take(idx)[:, 5:], windows, idx, 5)
    mean = dataset.normalization.shift
    expected = ((target - mean) ** 2)[..., valid].mean(-1).mean(0)
    np.testing.assert_allclose(result["climatology_mse_physical"], expected, rtol=1e-5)
