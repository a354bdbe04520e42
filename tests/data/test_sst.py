"""SST: zone files in the real NetCDF format → normalised windows, split, °C (prepare: test_sst_prepare)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from varsep.config import load_config
from varsep.config.datasets import SSTConfig
from varsep.data import build_dataset
from varsep.data.sst import paper_compatible_celsius
from varsep.data.sst.files import calendar_index, month_day
from varsep.errors import ConfigError, DataError

DAYS = 80  # 64 training days (44 fit, a 14-day gap, 20 validation), 16 test days
START = np.datetime64("2010-01-01")


def write_zone(path: Path, thetao: np.ndarray, mean: np.ndarray, std: np.ndarray, *,
               time: np.ndarray | None = None, clim_dims: tuple[str, ...] = ("time",)) -> Path:
    """A zone file as the loader expects: thetao (time, lat, lon) °C, daily_mean/daily_std climatology."""
    coords = {"time": time.astype("datetime64[ns]")} if time is not None else {}
    if clim_dims[0] == "dayofyear":
        coords["dayofyear"] = np.arange(1, 367)
    space = ("lat", "lon")[: thetao.ndim - 1]
    clim = (*clim_dims, *space[: mean.ndim - 1])
    xr.Dataset({"thetao": (("time", *space), thetao), "daily_mean": (clim, mean), "daily_std": (clim, std)},
               coords=coords).to_netcdf(path, engine="netcdf4")
    return path


def synthetic_zone(zone: int, days: int = DAYS, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(zone)
    t = np.arange(days)
    clim_mean = 15 + zone + 2 * np.sin(2 * np.pi * t / 365)
    clim_std = 0.8 + 0.2 * np.cos(t / 7)
    field = rng.normal(0, 1, (days, size, size)).cumsum(axis=0) * 0.1
    thetao = clim_mean[:, None, None] + clim_std[:, None, None] * (0.3 * zone + field)
    return thetao, clim_mean, clim_std


@pytest.fixture
def zones3(tmp_path):
    """Zones 1, 2, 3: 80 days of 64×64 from 2010-01-01, per-day scalar climatology aligned with time."""
    raw = {}
    for zone in (1, 2, 3):
        raw[zone] = synthetic_zone(zone)
        write_zone(tmp_path / f"data_{zone}.nc", *raw[zone], time=START + np.arange(DAYS))
    return tmp_path, raw


def config(root, **kw) -> SSTConfig:
    kw = {"test_zones": [2, 3], "val_days": 20, **kw}
    cfg = SSTConfig(root=str(root), **kw)
    cfg.validate()
    return cfg


def hand_normalised(thetao, mean, std, train_days):
    a = (thetao - mean[:, None, None]) / std[:, None, None]
    return (a - a[:train_days].mean()) / a[:train_days].std()


# ------------------------------------------------------------------------------------------ loading
def test_normalised_values_match_hand_computation(zones3):
    root, raw = zones3
    ds = build_dataset(config(root))
    assert ds.spec.frame_shape == (1, 64, 64) and ds.spec.cond_frames == 4 and ds.spec.pred_frames == 6
    for p, zone in enumerate(ds.zone_ids):
        expected = hand_normalised(*raw[zone], train_days=64)
        np.testing.assert_allclose(ds.frames[p, :, 0], expected, atol=2e-6)
    # Training days are standardised: mean 0, variance 1 over the zone's first 64 days.
    assert abs(ds.frames[0, :64].mean()) < 1e-5 and abs(ds.frames[0, :64].std() - 1) < 1e-5
    first = ds.train_source().windows.take(np.array([0]))
    assert first.dtype == np.float32 and first.shape == (1, 10, 1, 64, 64)
    np.testing.assert_allclose(first[0, :, 0], hand_normalised(*raw[1], train_days=64)[:10], atol=2e-6)


def test_zone_minmax_scales_each_zones_training_anomalies_to_the_unit_interval(zones3):
    # For the baselines whose frames come out of a sigmoid: y = (a − min) / (max − min) over the zone's 64
    # training days; test days may leave [0, 1]; °C, the climatology reference and the metrics as with "zone".
    root, raw = zones3
    ds = build_dataset(config(root, normalization="zone_minmax"))
    standard = build_dataset(config(root))
    assert ds.training_range == (0.0, 1.0) and standard.training_range is None and not ds.unit_interval
    for p, zone in enumerate(ds.zone_ids):
        thetao, mean, std = raw[zone]
        a = (thetao - mean[:, None, None]) / std[:, None, None]
        lo, hi = a[:64].min(), a[:64].max()
        np.testing.assert_allclose(ds.frames[p, :, 0], (a - lo) / (hi - lo), atol=2e-6)
        assert ds.frames[p, :64].min() == pytest.approx(0, abs=1e-6) and ds.frames[p, :64].max() == pytest.approx(1)
    w = ds.test_windows(6)
    idx = np.arange(len(w))
    frames = w.take(idx)
    np.testing.assert_allclose(ds.physical(frames, w, idx, 0),
                               standard.physical(standard.test_windows(6).take(idx), w, idx, 0), atol=1e-4)
    clim = ds.climatology_forecast(w, idx, 4, 6)
    mean, _ = ds.climatology(w, idx, 4, 6)
    np.testing.assert_allclose(ds.physical(clim, w, idx, 4), np.broadcast_to(mean, clim.shape), atol=1e-4)
    pred = frames[:, 4:] + 0.01
    for a, b in zip(ds.paper_compatible(pred, frames[:, 4:], w, idx, 4),
                    (ds.physical(pred, w, idx, 4), ds.physical(frames[:, 4:], w, idx, 4)), strict=True):
        np.testing.assert_allclose(a, b)


def test_split_validation_gap_and_window_counts(zones3):
    root, raw = zones3
    ds = build_dataset(config(root))
    assert ds.num_train_days == 64 and ds.test_range == (64, 80)
    assert ds.val_range == (44, 64) and ds.fit_range == (0, 30)  # gap of one 14-day validation window
    train = ds.train_source().windows
    assert len(train) == 3 * (30 - 10 + 1)
    assert train.days(np.arange(len(train))).max() + 10 <= 30
    val = ds.val_windows()
    assert len(val) == 2 * (20 - 14 + 1) and val.length == 14
    assert set(val.zone_positions(np.arange(len(val)))) == {1, 2}  # val zones default to the test zones
    assert val.days(np.arange(len(val))).min() == 44
    for horizon, count in ((6, 7), (10, 3)):
        test = ds.test_windows(horizon)
        assert len(test) == 2 * count and test.length == 4 + horizon
        idx = np.arange(len(test))
        assert test.days(idx).min() == 64 and (test.days(idx) + test.length).max() == 80
        # Windows come in order: zone 2 first, then zone 3, each day by day.
        assert list(test.zone_positions(idx)) == [1] * count + [2] * count
        np.testing.assert_array_equal(test.days(idx)[:count], 64 + np.arange(count))
        last = test.take(idx[-1:])[0, :, 0]
        expected = hand_normalised(*raw[3], train_days=64)[80 - test.length:]
        np.testing.assert_allclose(last, expected, atol=2e-6)
    assert ds.test_windows(10).describe(0) == "zone 2, 2010-03-06 – 2010-03-19"


def test_paper_day_counts_and_default_start_date(tmp_path):
    """3734 days without a time coordinate: 2987 train, 747 test (paper D.2), counted from 2006-12-28."""
    thetao, mean, std = synthetic_zone(17, days=3734, size=4)
    write_zone(tmp_path / "data_17.nc", thetao, mean, std)
    ds = build_dataset(config(tmp_path, test_zones=[17], val_days=0))
    assert ds.num_train_days == 2987 and ds.test_range == (2987, 3734)
    # The paper's range (to 2017-04-05) spans 3752 days: its 3734 acquisitions must miss 18 of them.
    assert ds.labels[0] == "2006-12-28" and ds.labels[-1] == "2017-03-18"
    assert len(ds.test_windows(6)) == 747 - 10 + 1 and len(ds.test_windows(10)) == 747 - 14 + 1
    assert len(ds.train_source().windows) == 2987 - 10 + 1 and len(ds.val_windows()) == 0


def test_zone_selection(zones3):
    root, _ = zones3
    ds = build_dataset(config(root, train_zones=[1, 3], test_zones=[2], val_zones=[1]))
    train = ds.train_source().windows
    assert {ds.zone_ids[p] for p in train.zone_positions(np.arange(len(train)))} == {1, 3}
    test = ds.test_windows(6)
    assert {ds.zone_ids[p] for p in test.zone_positions(np.arange(len(test)))} == {2}
    val = ds.val_windows()
    assert {ds.zone_ids[p] for p in val.zone_positions(np.arange(len(val)))} == {1}
    with pytest.raises(DataError, match=r"lacks data_7\.nc.*files found: data_1\.nc, data_2\.nc, data_3\.nc"):
        build_dataset(config(root, test_zones=[7]))


def test_day_of_year_climatology_follows_the_calendar(tmp_path):
    """A (dayofyear=366, H, W) climatology is read at each date's leap-year calendar day."""
    days = 30
    time = np.datetime64("2016-02-20") + np.arange(days)  # crosses 29 February
    rng = np.random.default_rng(0)
    thetao = rng.normal(20, 1, (days, 64, 64))
    clim_mean = 10 + 0.01 * np.arange(366)[:, None, None] + rng.normal(0, 0.1, (1, 64, 64))
    clim_std = np.full((366, 64, 64), 2.0)
    write_zone(tmp_path / "data_1.nc", thetao, clim_mean, clim_std, time=time, clim_dims=("dayofyear",))
    ds = build_dataset(config(tmp_path, test_zones=[1], val_days=0, cond_frames=2, pred_frames=1,
                              test_horizons=[2]))
    rows = calendar_index(*month_day(time))
    assert rows[9] == 59 and rows[10] == 60  # 29 February 2016, then 1 March
    a = (thetao - clim_mean[rows]) / 2.0
    np.testing.assert_allclose(ds.frames[0, :, 0], (a - a[:24].mean()) / a[:24].std(), atol=2e-6)
    assert calendar_index(np.array([3]), np.array([1]))[0] == 60  # 1 March is row 60 in every year


def test_start_date_when_no_time_coordinate(tmp_path):
    thetao, _, _ = synthetic_zone(1, days=40, size=8)
    clim_mean = np.arange(366, dtype=np.float64)  # per-day scalars by day of year
    write_zone(tmp_path / "data_1.nc", thetao, clim_mean, np.ones(366), clim_dims=("dayofyear",))
    for start, first_row in ((None, 362), ("2007-03-01", 60)):  # 28 December: row 362 (0-based)
        kw = {"start_date": start} if start else {}
        ds = build_dataset(config(tmp_path, test_zones=[1], val_days=0, test_horizons=[2], **kw))
        w = ds.test_windows(2)
        mean, _ = ds.climatology(w, np.array([0]), 0, 1)
        expected_row = (first_row + ds.test_range[0]) % 366 if start is None else first_row + ds.test_range[0]
        assert mean[0, 0, 0, 0, 0] == expected_row


# --------------------------------------------------------------------------------------- °C metrics
@pytest.mark.parametrize("per_pixel", [False, True])
def test_physical_round_trip_gives_back_celsius(tmp_path, per_pixel):
    raw = {}
    for zone in (1, 2):
        thetao, mean, std = synthetic_zone(zone)
        if per_pixel:  # (time, H, W) climatology aligned with the days
            mean = mean[:, None, None] + np.linspace(-1, 1, 64)[None, None, :] * np.ones((1, 64, 1))
            std = std[:, None, None] * np.ones((1, 64, 64))
        raw[zone] = thetao
        write_zone(tmp_path / f"data_{zone}.nc", thetao, mean, std, time=START + np.arange(DAYS))
    ds = build_dataset(config(tmp_path, test_zones=[1, 2], val_days=0))
    for horizon in (6, 10):
        w = ds.test_windows(horizon)
        idx = np.arange(len(w))
        frames = w.take(idx)
        target_c = ds.physical(frames[:, 4:], w, idx, 4)
        days = w.days(idx)[:, None] + 4 + np.arange(horizon)
        zones = np.array(ds.zone_ids)[w.zone_positions(idx)]
        expected = np.stack([raw[z][d] for z, d in zip(zones, days, strict=True)])[:, :, None]
        np.testing.assert_allclose(target_c, expected, atol=1e-4)
        whole = ds.physical(frames, w, idx, 0)  # offset 0: the conditioning frames too
        np.testing.assert_allclose(whole[:, 4:], target_c, atol=1e-9)
    # A forecast off by δ in normalised units is off by δ·σ_z·σ_clim °C: the metric scales as expected.
    w = ds.test_windows(6)
    first = np.array([0])
    target = w.take(first)[:, 4:].astype(np.float64)
    shifted = ds.physical(target + 0.5, w, first, 4) - ds.physical(target, w, first, 4)
    _, std = ds.climatology(w, first, 4, 6)
    expected = 0.5 * ds.files[0].zone_stats[1] * std * np.ones_like(shifted)
    np.testing.assert_allclose(shifted, expected, rtol=1e-9)


def test_paper_compatible_definition():
    rng = np.random.default_rng(1)
    target_c = rng.normal(18, 2, (3, 5, 1, 8, 8))
    clim_mean, clim_std = rng.normal(17, 1, (3, 5, 1, 1, 1)), rng.uniform(0.5, 1.5, (3, 5, 1, 1, 1))
    a = (target_c - clim_mean) / clim_std
    m, s = a.mean(axis=(-2, -1), keepdims=True), a.std(axis=(-2, -1), keepdims=True)
    standardised = (a - m) / s
    # A forecast equal to the target's per-frame standardised anomaly gets the target's °C back exactly…
    back = paper_compatible_celsius(standardised, target_c, clim_mean, clim_std)
    np.testing.assert_allclose(back, target_c)
    # …and any forecast is rescaled with the TARGET's spatial mean and spread.
    out = paper_compatible_celsius(np.zeros_like(a), target_c, clim_mean, clim_std)
    np.testing.assert_allclose(out, np.broadcast_to(m * clim_std + clim_mean, out.shape))


def test_frame_normalisation_is_the_official_one(zones3):
    root, raw = zones3
    ds = build_dataset(config(root, normalization="frame"))
    frames = ds.frames[:, :, 0]
    np.testing.assert_allclose(frames.mean(axis=(2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(frames.std(axis=(2, 3)), 1, atol=1e-5)
    w = ds.test_windows(6)
    idx = np.arange(len(w))
    windows = w.take(idx)
    assert ds.physical(windows[:, 4:], w, idx, 4) is None  # no honest °C without the targets' statistics
    pred_c, target_c = ds.paper_compatible(windows[:, 4:], windows[:, 4:], w, idx, 4)
    days = w.days(idx)[:, None] + 4 + np.arange(6)
    zones = np.array(ds.zone_ids)[w.zone_positions(idx)]
    expected = np.stack([raw[z][0][d] for z, d in zip(zones, days, strict=True)])[:, :, None]
    np.testing.assert_allclose(target_c, expected, atol=1e-4)
    np.testing.assert_allclose(pred_c, expected, atol=1e-4)
    # Zone normalisation: the paper-compatible conversion has no target statistic, so it is physical().
    dz = build_dataset(config(root))
    wz = dz.test_windows(6)
    fz = wz.take(idx)
    pz, tz = dz.paper_compatible(fz[:, 4:] + 0.1, fz[:, 4:], wz, idx, 4)
    np.testing.assert_allclose(pz, dz.physical(fz[:, 4:] + 0.1, wz, idx, 4))
    np.testing.assert_allclose(tz, expected, atol=1e-4)


# ------------------------------------------------------------------------------------------- errors
def test_missing_folder_and_root(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*data_\{zone\}\.nc.*varsep prepare sst"):
        build_dataset(config(tmp_path / "nope"))
    with pytest.raises(DataError, match="data.root is not set"):
        build_dataset(SSTConfig(root=None))


def test_missing_variable_and_shape_mismatch(tmp_path):
    thetao, mean, std = synthetic_zone(1, days=40, size=8)
    xr.Dataset({"thetao": (("time", "lat", "lon"), thetao), "daily_mean": (("time",), mean)}).to_netcdf(
        tmp_path / "data_1.nc")
    with pytest.raises(DataError, match=r"data_1\.nc: variable 'daily_std' missing; expected thetao, "
                                        r"daily_mean, daily_std"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))
    write_zone(tmp_path / "data_1.nc", thetao, mean[:39], std[:39], clim_dims=("day",))
    with pytest.raises(DataError, match=r"data_1\.nc: daily_mean has shape \(39,\) but thetao has 40 days"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))
    clim = (("time", "y", "x"), np.ones((40, 3, 3)))
    xr.Dataset({"thetao": (("time", "lat", "lon"), thetao), "daily_mean": clim, "daily_std": clim}).to_netcdf(
        tmp_path / "data_1.nc")
    with pytest.raises(DataError, match=r"daily_mean has shape \(40, 3, 3\)"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))


def test_nan_is_an_error_unless_fill_nan(tmp_path):
    thetao, mean, std = synthetic_zone(1, days=40, size=8)
    thetao[12, 0, :3] = np.nan
    write_zone(tmp_path / "data_1.nc", thetao, mean, std, time=START + np.arange(40))
    with pytest.raises(DataError, match=r"data_1\.nc: thetao holds NaN on day 12 \(2010-01-13\).*fill_nan"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))
    ds = build_dataset(config(tmp_path, test_zones=[1], val_days=0, test_horizons=[2], fill_nan=0.0))
    assert np.isfinite(ds.frames).all() and (ds.frames[0, 12, 0, 0, :3] == 0).all()


def test_corrupt_file_days_and_mismatched_zones(tmp_path):
    (tmp_path / "data_1.nc").write_bytes(b"not a netcdf file")
    with pytest.raises(DataError, match=r"data_1\.nc is not a readable NetCDF file"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))
    thetao, mean, std = synthetic_zone(1, days=40, size=8)
    time = START + np.r_[np.arange(20), np.arange(21, 41)]
    write_zone(tmp_path / "data_1.nc", thetao, mean, std, time=time)
    with pytest.raises(DataError, match="days must be consecutive, but 2010-01-20 is followed by 2010-01-22"):
        build_dataset(config(tmp_path, test_zones=[1], val_days=0))
    gappy = build_dataset(config(tmp_path, test_zones=[1], val_days=0, test_horizons=[2], allow_gaps=True))
    assert gappy.labels[20] == "2010-01-22"
    write_zone(tmp_path / "data_1.nc", thetao, mean, std)
    write_zone(tmp_path / "data_2.nc", *synthetic_zone(2, days=41, size=8))
    with pytest.raises(DataError, match=r"data_2\.nc: thetao is \(41, 8, 8\) but data_1\.nc holds"):
        build_dataset(config(tmp_path, test_zones=[1, 2], val_days=0, test_horizons=[2]))


def test_config_checks():
    with pytest.raises(ConfigError, match="val_days must be 0 or at least one validation window"):
        SSTConfig(val_days=5).validate()
    with pytest.raises(ConfigError, match="train_fraction"):
        SSTConfig(train_fraction=1.0).validate()
    with pytest.raises(ConfigError, match="start_date"):
        SSTConfig(start_date="yesterday").validate()


def test_sst_config_file():
    cfg = load_config("sst")
    assert (cfg.data.cond_frames, cfg.data.pred_frames, cfg.data.test_horizons) == (4, 6, [6, 10])
    # The authors' SST run (docs/model.md, "Where we depart"): batch 128 (the paper says 100), their networks
    # (family sst), integrator width 512 (the paper's text: 128) with their BatchNorm, ½·mean L_reg^T.
    assert cfg.data.test_zones == [17, 18, 19, 20] and cfg.data.batch_size == 128
    m = cfg.model
    assert (m.encoder, m.decoder, m.s_dim, m.t_dim, m.skips, m.combine, m.blocks, m.width) == (
        "sst", "sst", 196, 64, True, "concat", 2, 512)
    assert m.conv_integrator == "authors" and m.batch_stats == "per_frame"
    assert m.final_activation == "none" and m.reconstruct_cond is False and m.gain == 0.71
    lo = cfg.loss
    assert (lo.lambda_pred, lo.lambda_ae, lo.lambda_s, lo.lambda_t, lo.t_reg, lo.s_reg) == (
        45, 1, 100, 5e-6, "half_mean", "concat")
    assert cfg.optim.lr == 4e-4 and cfg.optim.betas == [0.9, 0.99] and cfg.trainer.max_epochs == 30
    import torch

    from varsep.model.build import build_model
    from varsep.spec import DataSpec

    model = build_model(m, DataSpec((1, 64, 64), 4, 6))
    with torch.no_grad():
        out = model.forecast(torch.randn(2, 4, 1, 64, 64), 3)
    assert out.shape == (2, 3, 1, 64, 64) and torch.isfinite(out).all()


def test_the_climatology_forecast_is_the_daily_mean_in_celsius(zones3):
    root, raw = zones3
    ds = build_dataset(config(root))
    assert "daily climatology" in ds.climatology_reference
    w = ds.test_windows(6)
    idx = np.arange(len(w))
    clim = ds.climatology_forecast(w, idx, 4, 6)
    assert clim.shape == (len(idx), 6, 1, 64, 64)
    mean, _ = ds.climatology(w, idx, 4, 6)  # μ_clim of each target day: the forecast, once in °C
    np.testing.assert_allclose(ds.physical(clim, w, idx, 4), np.broadcast_to(mean, clim.shape), atol=1e-4)
    assert build_dataset(config(root, normalization="frame")).climatology_reference is None
