"""`varsep prepare sst`: a synthetic raw Copernicus product → zone files: crops and climatology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from varsep.cli import main
from varsep.config.datasets import SSTConfig
from varsep.data import build_dataset
from varsep.data.sst.files import month_day
from varsep.datagen.sst import prepare
from varsep.errors import DataError

RAW_DAYS = 400
RAW_START = np.datetime64("2015-12-20")


def write_raw(folder: Path, *, split: int = 200, skip_day: int | None = None
              ) -> tuple[list[Path], xr.Dataset]:
    """A raw Copernicus-like product: thetao (time, depth, latitude, longitude) packed as int16, two files."""
    rng = np.random.default_rng(3)
    lat, lon = np.linspace(30, 40.4, 66), np.linspace(-60, -48.5, 70)
    days = np.arange(RAW_DAYS)
    seasonal = 18 + 3 * np.sin(2 * np.pi * days / 365.25)
    surface = seasonal[:, None, None] + rng.normal(0, 1, (RAW_DAYS, 66, 70))
    values = np.stack([surface, surface - 5], axis=1)  # the deeper level is 5 °C colder
    time = (RAW_START + days).astype("datetime64[ns]") + np.timedelta64(12, "h")  # daily means at noon
    ds = xr.Dataset({"thetao": (("time", "depth", "latitude", "longitude"), values,
                                {"units": "degrees_C"})},
                    coords={"time": time, "depth": [0.494, 1.541], "latitude": lat, "longitude": lon})
    keep = np.ones(RAW_DAYS, bool)
    if skip_day is not None:
        keep[skip_day] = False
    enc = {"thetao": {"dtype": "int16", "scale_factor": 0.001, "add_offset": 20.0, "_FillValue": -32767}}
    paths = [folder / "raw_a.nc", folder / "raw_b.nc"]
    ds.isel(time=np.flatnonzero(keep[:split])).to_netcdf(paths[0], encoding=enc)
    ds.isel(time=split + np.flatnonzero(keep[split:])).to_netcdf(paths[1], encoding=enc)
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[1]) as b:
        decoded = xr.concat([a.load(), b.load()], dim="time")  # what the files really hold, after packing
    return paths, decoded


@pytest.fixture
def raw_product(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    paths, decoded = write_raw(folder)
    zones = tmp_path / "zones.yaml"
    zones.write_text(yaml.safe_dump({"size": 64, "zones": {4: {"row": 1, "col": 2},
                                                           9: {"lat": float(decoded.latitude[2]),
                                                               "lon": float(decoded.longitude[6]) + 0.01}}}))
    return paths, decoded, zones


def as_written(decoded: xr.Dataset) -> np.ndarray:
    """The surface level as the zone files store it (float32), in float64 for the hand computations."""
    return decoded.thetao.isel(depth=0).values.astype(np.float32).astype(np.float64)


def hand_climatology(values: np.ndarray, days: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-day (zone mean, zone std) over every used day of the same calendar day (a plain loop)."""
    months, mdays = month_day(days)
    mean, std = np.full(len(days), np.nan), np.full(len(days), np.nan)
    for t in range(len(days)):
        same = (months == months[t]) & (mdays == mdays[t]) & use
        if same.any():  # calendar days outside the period are left NaN here
            mean[t], std[t] = values[same].mean(), values[same].std()
    return mean, std


def test_prepare_writes_crops_and_climatology(raw_product, tmp_path):
    paths, decoded, zones = raw_product
    out = tmp_path / "sst"
    written = prepare([str(p) for p in paths], zones, out, progress=False)
    assert [p.name for p in written] == ["data_4.nc", "data_9.nc"]
    assert sorted(p.name for p in out.iterdir()) == ["data_4.nc", "data_9.nc"]  # no temporary files left
    surface = as_written(decoded)
    days = (RAW_START + np.arange(RAW_DAYS))
    for name, (row, col) in (("data_4.nc", (1, 2)), ("data_9.nc", (2, 6))):
        with xr.open_dataset(out / name) as z:
            crop = surface[:, row:row + 64, col:col + 64]
            np.testing.assert_allclose(z.thetao.values, crop, atol=1e-5)
            np.testing.assert_array_equal(z.time.values.astype("datetime64[D]"), days)
            np.testing.assert_allclose(z.latitude.values, decoded.latitude.values[row:row + 64])
            assert z.daily_mean.dims == ("time",) and z.attrs["box_row"] == row and z.attrs["box_col"] == col
            mean, std = hand_climatology(crop.astype(np.float64), days, np.ones(RAW_DAYS, bool))
            np.testing.assert_allclose(z.daily_mean.values, mean, rtol=1e-6)
            np.testing.assert_allclose(z.daily_std.values, std, rtol=1e-5)
    # Days seen twice (20 Dec – 23 Jan) pool both years; 29 February 2016 is its own calendar day.
    with xr.open_dataset(out / "data_4.nc") as z:
        assert z.daily_mean.values[0] == z.daily_mean.values[366]  # 2015-12-20 and 2016-12-20
        assert z.daily_mean.values[71] != z.daily_mean.values[70]
    # The written files are a data set: the loader gives back the raw °C through physical().
    ds = build_dataset(SSTConfig(root=str(out), test_zones=[4, 9], val_days=0))
    w = ds.test_windows(10)
    idx = np.arange(len(w))
    celsius = ds.physical(w.take(idx)[:, 4:], w, idx, 4)
    day = w.days(idx[-1:])[0] + 4
    np.testing.assert_allclose(celsius[-1, :, 0], surface[day:day + 10, 2:66, 6:70], atol=1e-4)


def test_prepare_pixel_climatology(raw_product, tmp_path):
    paths, decoded, zones = raw_product
    out = tmp_path / "sst"
    prepare([str(paths[0].parent)], zones, out, climatology_kind="pixel", progress=False)
    surface = as_written(decoded)[:, 1:65, 2:66]
    with xr.open_dataset(out / "data_4.nc") as z:
        assert z.daily_mean.dims == ("dayofyear", "latitude", "longitude")
        mean, std = z.daily_mean.values, z.daily_std.values
    assert mean.shape == (366, 64, 64)
    # 20 December (row 354) is seen in two years (day 0 and day 366): per-pixel mean and std of the two.
    np.testing.assert_allclose(mean[354], surface[[0, 366]].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std[354], np.maximum(surface[[0, 366]].std(axis=0), 1e-3), atol=1e-9)
    # Calendar days seen once borrow the nearest day seen twice: 22 January (row 21) or 20 December.
    np.testing.assert_array_equal(mean[100], mean[21])
    np.testing.assert_array_equal(std[200], std[354])


def test_prepare_climatology_period(raw_product, tmp_path):
    paths, decoded, zones = raw_product
    out = tmp_path / "sst"
    prepare([str(p) for p in paths], zones, out, climatology_until="2016-06-30", progress=False)
    surface = as_written(decoded)[:, 1:65, 2:66]
    days = RAW_START + np.arange(RAW_DAYS)
    use = days <= np.datetime64("2016-06-30")
    with xr.open_dataset(out / "data_4.nc") as z:
        mean = z.daily_mean.values
        assert z.attrs["climatology_days"] == "2015-12-20 … 2016-06-30"
    # 20 December 2016 (day 366) is after the period: its climatology is 20 December 2015's alone.
    assert mean[366] == pytest.approx(surface[0].mean(), abs=1e-9)
    # 1 July is never in the period: it borrows 30 June's.
    july1 = int(np.flatnonzero(days == np.datetime64("2016-07-01"))[0])
    assert mean[july1] == mean[july1 - 1] == pytest.approx(surface[july1 - 1].mean(), abs=1e-9)
    expected, _ = hand_climatology(surface, days, use)
    np.testing.assert_allclose(mean[use], expected[use], rtol=1e-9)
    with pytest.raises(DataError, match="no calendar day is seen on 2 or more days"):
        prepare([str(p) for p in paths], zones, tmp_path / "pix", climatology_kind="pixel",
                climatology_until="2016-06-30", progress=False)


def test_prepare_refuses_to_overwrite_and_reports_gaps(raw_product, tmp_path):
    paths, _, zones = raw_product
    out = tmp_path / "sst"
    prepare([str(p) for p in paths], zones, out, progress=False)
    before = (out / "data_4.nc").stat().st_mtime_ns
    with pytest.raises(DataError, match=r"already holds data_4\.nc, data_9\.nc; pass --overwrite"):
        prepare([str(p) for p in paths], zones, out, progress=False)
    assert (out / "data_4.nc").stat().st_mtime_ns == before
    prepare([str(p) for p in paths], zones, out, overwrite=True, progress=False)
    gap_folder = tmp_path / "gap"
    gap_folder.mkdir()
    gap_paths, _ = write_raw(gap_folder, skip_day=250)
    with pytest.raises(DataError, match=r"miss 1 day\(s\), first after 2016-08-25"):
        prepare([str(p) for p in gap_paths], zones, tmp_path / "other", progress=False)


def test_prepare_zone_box_errors(raw_product, tmp_path):
    paths, _, zones = raw_product
    bad = tmp_path / "bad.yaml"
    for content, message in (
        ({"zones": {1: {"row": 10}}}, r"zone 1 must be \{row: R, col: C\}"),
        ({"zones": {1: {"row": 10, "col": 10}}}, r"zone 1: a 64×64 box at row 10, col 10 does not fit"),
        ({"zones": {1: {"lat": 80.0, "lon": -50.0}}}, r"zone 1: lat 80.0 lies outside the grid"),
        ({"size": 64}, "needs a non-empty 'zones' mapping"),
    ):
        bad.write_text(yaml.safe_dump(content))
        with pytest.raises(DataError, match=message):
            prepare([str(p) for p in paths], bad, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="no raw NetCDF file matches"):
        prepare([str(tmp_path / "nothing*.nc")], zones, tmp_path / "out", progress=False)


def test_prepare_command_line(raw_product, tmp_path, capsys):
    paths, _, zones = raw_product
    out = tmp_path / "sst"
    argv = ["prepare", "sst", "--raw", str(paths[0].parent / "raw_*.nc"), "--zones", str(zones),
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "wrote 2 zone files" in capsys.readouterr().out
    assert main(argv) == 2  # exists: refused without --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
