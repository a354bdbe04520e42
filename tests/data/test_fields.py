"""Real fields as they come (issue 19): any grid, land masks, per-pixel and climatological normalisation,
many NetCDF files, CF calendars, lazy reading. Small files in the real formats, written here."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from varsep.config import ModelConfig, apply_overrides, config_from_dict
from varsep.config.schema import LossConfig
from varsep.data import build_dataset
from varsep.data.custom import CustomDataset, default_family
from varsep.data.custom import norm as norm_module
from varsep.data.custom.lazy import LazyRows
from varsep.errors import DataError
from varsep.eval import metrics
from varsep.eval.scoring import FrameScorer
from varsep.forecaster import load
from varsep.model import build_model
from varsep.model.losses import loss_terms
from varsep.nets.pad import CropFrames, PadFrames, centred_padding
from varsep.predict import predict
from varsep.spec import DataSpec
from varsep.train import fit

TINY = {
    "model.encoder_hidden": [16], "model.decoder_hidden": [16], "model.width": 8, "model.blocks": 1,
    "model.s_dim": 4, "model.t_dim": 4, "data.batch_size": 4, "trainer.max_steps": 2,
    "trainer.val_every_n_epochs": 1, "trainer.checkpoint_every_n_steps": 2, "trainer.log_every_n_steps": 1,
    "trainer.progress_bar": False,
}
SHORT = {"cond_frames": 2, "pred_frames": 3, "test_horizons": [4]}


def dataset(**data) -> CustomDataset:
    ds = build_dataset(config_from_dict({"data": data}).data)
    assert isinstance(ds, CustomDataset)
    return ds


def tiny_model(spec: DataSpec, family: str, **model) -> torch.nn.Module:
    cfg = ModelConfig(encoder=family, decoder=family, s_dim=4, t_dim=4, width=8, blocks=1,
                      encoder_hidden=[16], decoder_hidden=[16], final_activation="none", **model)
    torch.manual_seed(0)
    return build_model(cfg, spec)


# ------------------------------------------------------------------------------------------ any grid
def test_default_families_pad_any_grid():
    assert default_family((1, 32, 32)) == "vgg32" and default_family((1, 64, 64)) == "dcgan"
    assert default_family((1, 20, 30)) == "vgg32" and default_family((2, 37, 49)) == "dcgan"
    assert default_family((1, 90, 180)) == "vgg64_skip" and default_family((7,)) == "mlp"
    assert centred_padding((37, 49), (64, 64)) == (7, 8, 13, 14)


def test_padding_that_needs_none_changes_no_loss():
    spec = DataSpec((1, 64, 64), cond_frames=2, pred_frames=2)
    plain = tiny_model(spec, "dcgan")
    assert not isinstance(plain.dynamic_encoder, PadFrames)  # the size it serves: no wrapper
    frames = torch.randn(3, 4, 1, 64, 64)
    torch.manual_seed(1)
    before = loss_terms(plain, frames, 1, LossConfig())["loss"]
    plain.dynamic_encoder = PadFrames(plain.dynamic_encoder, (64, 64), (64, 64))
    plain.content_encoder = PadFrames(plain.content_encoder, (64, 64), (64, 64))
    plain.decoder = CropFrames(plain.decoder, (64, 64), (64, 64))
    torch.manual_seed(1)
    assert torch.equal(loss_terms(plain, frames, 1, LossConfig())["loss"], before)


def test_a_37_by_49_grid_is_the_64_by_64_network_on_padded_frames():
    small = DataSpec((1, 37, 49), cond_frames=2, pred_frames=2)
    padded = tiny_model(small, "dcgan")
    assert isinstance(padded.dynamic_encoder, PadFrames) and isinstance(padded.decoder, CropFrames)
    inner = tiny_model(DataSpec((1, 64, 64), cond_frames=2, pred_frames=2), "dcgan")
    inner.load_state_dict({re.sub(r"^(content_encoder|dynamic_encoder|decoder)\.net\.", r"\1.", k): v
                           for k, v in padded.state_dict().items()})
    padded.eval(), inner.eval()
    cond = torch.randn(2, 2, 1, 37, 49)
    big = F.pad(cond.flatten(0, 1), centred_padding((37, 49), (64, 64)), mode="replicate").view(2, 2, 1, 64, 64)
    with torch.no_grad():
        out = padded.forecast(cond, 3)
        ref = inner.forecast(big, 3)[..., 13:13 + 37, 7:7 + 49]
    assert out.shape == (2, 3, 1, 37, 49)
    torch.testing.assert_close(out, ref)


def test_fit_a_37_by_49_netcdf_with_the_default_family(tmp_path):
    rng = np.random.default_rng(0)
    field = rng.normal(size=(40, 37, 49)).astype(np.float32)
    xr.Dataset({"tas": (("time", "lat", "lon"), field)}, coords={"time": np.arange(40)}).to_netcdf(tmp_path / "t.nc")
    config = config_from_dict(apply_overrides({"data": {"kind": "netcdf", "path": str(tmp_path / "t.nc"), **SHORT}},
                                              TINY))
    fit(config, tmp_path / "run", progress=False)
    run = load(tmp_path / "run", "last")
    assert run.config.model.encoder == "dcgan" and run.step == 2
    assert run.forecast(field[:2, None], 3).shape == (3, 1, 37, 49)


# --------------------------------------------------------------------------------------------- masks
def land_field(tmp_path, t: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(t, 12, 12) temperatures with land (NaN in every frame) in one corner; returns (field, land)."""
    rng = np.random.default_rng(4)
    field = (rng.normal(size=(t, 12, 12)) + 280).astype(np.float32)
    land = np.zeros((12, 12), bool)
    land[:4, :5] = True
    field[:, land] = np.nan
    times = xr.date_range("2000-01-01", periods=t, freq="MS", calendar="360_day", use_cftime=True)
    xr.Dataset({"sst": (("time", "lat", "lon"), field, {"units": "K"})},
               coords={"time": times, "lat": np.arange(12.0), "lon": np.arange(12.0)}).to_netcdf(tmp_path / "s.nc")
    return field, land


def test_land_becomes_a_mask_other_nan_keeps_the_rules(tmp_path):
    field, land = land_field(tmp_path)
    ds = dataset(kind="netcdf", path=str(tmp_path / "s.nc"), **SHORT)
    np.testing.assert_array_equal(ds.valid_mask, ~land[None])
    windows = ds.test_windows(4).take(np.array([0]))
    assert np.isfinite(windows).all() and (windows[..., 0, :4, :5] == 0).all()
    train = field[: ds.parts["train"][0][1]]
    np.testing.assert_allclose(ds.normalization.shift, [np.nanmean(train)], rtol=1e-6)  # land left out
    field[3, 8, 8] = np.nan  # NaN in some frames only: an error unless fill_nan
    xr.Dataset({"sst": (("time", "lat", "lon"), field)}).to_netcdf(tmp_path / "g.nc")
    with pytest.raises(DataError, match=r"NaN or Inf at time index 3.*fill_nan"):
        dataset(kind="netcdf", path=str(tmp_path / "g.nc"), **SHORT)
    filled = dataset(kind="netcdf", path=str(tmp_path / "g.nc"), fill_nan="mean", **SHORT)
    np.testing.assert_array_equal(filled.valid_mask, ~land[None])


def test_masked_cells_change_no_loss_gradient_or_metric():
    spec = DataSpec((1, 16, 16), cond_frames=2, pred_frames=2)
    model = tiny_model(spec, "vgg32")
    valid = torch.ones(1, 16, 16, dtype=torch.bool)
    valid[0, :5, :7] = False
    model.set_mask(valid)
    frames = torch.randn(3, 4, 1, 16, 16)
    noisy = frames.clone()
    noisy[..., ~valid] = torch.randn(3, 4, int((~valid).sum())) * 100

    def loss_and_grads(x):
        model.zero_grad()
        torch.manual_seed(0)
        terms = loss_terms(model, x, 1, LossConfig())
        terms["loss"].backward()
        return terms, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (a, ga), (b, gb) = loss_and_grads(frames), loss_and_grads(noisy)
    for key in ("pred", "ae", "loss"):
        assert torch.equal(a[key], b[key])
    assert all(torch.equal(x, y) for x, y in zip(ga, gb, strict=True))
    # Metrics: hand-computed over the valid cells, and blind to the masked ones.
    scorer = FrameScorer(None, None, spec, (1, 16, 16), valid=valid.numpy())
    window = torch.rand(2, 6, 1, 16, 16)
    guess = torch.rand(2, 4, 1, 16, 16)
    out = scorer.compare(np.arange(2), window, guess, window[:, 2:])
    err = (guess - window[:, 2:]).double().pow(2)[..., valid]
    torch.testing.assert_close(out["mse"], err.mean(-1))
    spoilt_window, spoilt_guess = window.clone(), guess.clone()
    spoilt_window[..., ~valid] = 5.0
    spoilt_guess[..., ~valid] = -3.0
    again = scorer.compare(np.arange(2), spoilt_window, spoilt_guess, spoilt_window[:, 2:])
    for key in ("mse", "psnr", "ssim"):
        torch.testing.assert_close(again[key], out[key])
    plain = metrics.ssim(guess, window[:, 2:])
    assert not torch.allclose(plain, out["ssim"])  # the mask counts


# ------------------------------------------------------------------------------------- normalisation
def test_per_pixel_statistics_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    values = (rng.normal(size=(1, 40, 3, 4)) * np.arange(1, 13).reshape(3, 4) + np.arange(12).reshape(3, 4) * 10)
    np.save(tmp_path / "p.npy", values.astype(np.float32))
    ds = dataset(kind="array", path=str(tmp_path / "p.npy"), normalization="per_pixel", **SHORT)
    lo, hi = ds.parts["train"][0]
    train = np.load(tmp_path / "p.npy")[0, lo:hi].astype(np.float64)
    np.testing.assert_allclose(ds.normalization.shift[0], train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ds.normalization.scale[0], train.std(0), rtol=1e-6)
    w = ds.test_windows(4)
    x = w.take(np.array([0]))
    raw = np.load(tmp_path / "p.npy")[0, w.rows(np.array([0]))[0]][:, None]
    np.testing.assert_allclose(x[0], (raw - train.mean(0)) / train.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ds.physical(x, w, np.array([0]), 0)[0], raw, rtol=1e-5)
    transform = ds.value_transform()
    assert transform["axis"] == "frame" and transform["offset"].shape == (1, 3, 4)


def test_climatology_statistics_by_hand(tmp_path):
    t = 72  # six years of months, 360-day calendar
    months = np.arange(t) % 12
    rng = np.random.default_rng(6)
    field = (10 * np.sin(months)[:, None, None] + rng.normal(size=(t, 2, 3))).astype(np.float32)
    times = xr.date_range("2000-01-01", periods=t, freq="MS", calendar="360_day", use_cftime=True)
    xr.Dataset({"v": (("time", "y", "x"), field)}, coords={"time": times}).to_netcdf(tmp_path / "c.nc")
    ds = dataset(kind="netcdf", path=str(tmp_path / "c.nc"), normalization="climatology", **SHORT)
    assert ds.climatology_period == "month"
    lo, hi = ds.parts["train"][0]
    train, train_months = field[lo:hi].astype(np.float64), months[lo:hi]
    means = np.stack([train[train_months == m].mean(0) for m in range(12)])
    np.testing.assert_allclose(ds.normalization.climatology[:, 0], means, rtol=1e-6, atol=1e-9)
    anomalies = train - means[train_months]
    np.testing.assert_allclose(ds.normalization.scale[0], np.sqrt((anomalies**2).mean(0)), rtol=1e-6)
    w = ds.test_windows(4)
    rows = w.rows(np.array([1]))[0]
    x = w.take(np.array([1]))
    expected = (field[rows] - means[months[rows]]) / np.sqrt((anomalies**2).mean(0))
    np.testing.assert_allclose(x[0, :, 0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ds.physical(x[:, 1:], w, np.array([1]), 1)[0, :, 0], field[rows[1:]], rtol=1e-5,
                               atol=1e-4)


# ---------------------------------------------------------------------------------------- many files
def write_series(path, field, times, **attrs):
    xr.Dataset({"tas": (("time", "lat", "lon"), field, {"units": "K"})},
               coords={"time": times, "lat": np.arange(field.shape[1]) * 1.0,
                       "lon": np.arange(field.shape[2]) * 1.0}, attrs=attrs).to_netcdf(path)


def test_many_files_equal_one_and_mismatches_are_errors(tmp_path):
    rng = np.random.default_rng(7)
    field = rng.normal(size=(50, 4, 5)).astype(np.float32)
    times = xr.date_range("2000-01-01", periods=50, freq="D", calendar="noleap", use_cftime=True)
    write_series(tmp_path / "all.nc", field, times)
    (tmp_path / "parts").mkdir()
    write_series(tmp_path / "parts" / "a_late.nc", field[30:], times[30:])  # name order ≠ time order
    write_series(tmp_path / "parts" / "b_early.nc", field[:30], times[:30])
    one = dataset(kind="netcdf", path=str(tmp_path / "all.nc"), **SHORT)
    for path in (str(tmp_path / "parts"), str(tmp_path / "parts" / "*.nc"),
                 [str(tmp_path / "parts" / "a_late.nc"), str(tmp_path / "parts" / "b_early.nc")]):
        many = dataset(name="custom", path=path, **SHORT)
        assert len(many.description.files) == 2 and many.description.files[0].name == "b_early.nc"
        idx = np.arange(len(one.test_windows(4)))
        np.testing.assert_array_equal(many.test_windows(4).take(idx), one.test_windows(4).take(idx))
        np.testing.assert_array_equal(many.description.coords["time"], one.description.coords["time"])
    write_series(tmp_path / "parts" / "c_overlap.nc", field[25:35], times[25:35])
    with pytest.raises(DataError, match=r"overlaps .* in time"):
        dataset(name="custom", path=str(tmp_path / "parts"), **SHORT)
    (tmp_path / "parts" / "c_overlap.nc").unlink()
    write_series(tmp_path / "parts" / "c_other_grid.nc", field[:10, :3], times[:10])
    with pytest.raises(DataError, match=r"does not match .*lat has 3 entries against 4"):
        dataset(name="custom", path=str(tmp_path / "parts"), **SHORT)


def test_calendar_and_land_round_trip_through_predict(tmp_path):
    field, land = land_field(tmp_path, t=40)
    config = config_from_dict(apply_overrides(
        {"data": {"kind": "netcdf", "path": str(tmp_path / "s.nc"), "normalization": "per_pixel", **SHORT}},
        {**TINY, "model.encoder": "mlp", "model.decoder": "mlp"}))
    fit(config, tmp_path / "run", progress=False)
    run = load(tmp_path / "run", "last")
    np.testing.assert_array_equal(run.valid_mask, ~land[None])
    out = predict(run, tmp_path / "s.nc", tmp_path / "f.nc", horizon=3, figure=False)
    with xr.open_dataset(out) as written, xr.open_dataset(tmp_path / "s.nc") as src:
        assert written["time"].encoding["calendar"] == "360_day"
        assert [str(t) for t in written["time"].values] == ["2003-05-01 00:00:00", "2003-06-01 00:00:00",
                                                            "2003-07-01 00:00:00"]
        assert str(src["time"].values[-1]) == "2003-04-01 00:00:00"
        values = written["sst"].values
        assert np.isnan(values[:, land]).all() and np.isfinite(values[:, ~land]).all()
        assert written["sst"].attrs["units"] == "K"


# ---------------------------------------------------------------------------------------------- lazy
def test_lazy_reading_equals_eager_and_never_reads_everything(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    field = rng.normal(size=(200, 6, 7)).astype(np.float32)
    write_series(tmp_path / "big.nc", field, np.arange(200))
    monkeypatch.setattr(norm_module, "CHUNK_BYTES", 6 * 7 * 8 * 16)  # statistics: 16 rows a block
    ds = dataset(kind="netcdf", path=str(tmp_path / "big.nc"), in_memory_mb=0, **SHORT)
    rows = ds.data.rows
    assert isinstance(rows, LazyRows)
    assert rows.reads == len(rows)  # opening read every row once: one pass finds the mask and the statistics
    np.testing.assert_array_equal(rows[np.array([[3, 4], [150, 151]])], field[[[3, 4], [150, 151]]][:, :, None])
    assert 0 < rows.largest_read < len(rows)  # opening (mask, statistics) read block by block
    rows.reads = 0
    w = ds.train_source().windows
    batch = w.take(np.array([0, 5, 90]))
    raw = field[w.rows(np.array([0, 5, 90]))][:, :, None]
    np.testing.assert_allclose(batch, ds.normalization.apply(raw.copy(), 3), rtol=1e-6)
    assert rows.reads <= 3 * w.length


@pytest.mark.parametrize("settings", [
    {"normalization": "standard"},
    {"normalization": "per_pixel", "resize": [4, 5]},
    {"normalization": "climatology", "climatology_period": "month"},
    {"normalization": "minmax", "fill_nan": "mean"},
])
def test_small_data_kept_normalised_in_memory_give_the_windows_read_one_by_one(tmp_path, settings):
    rng = np.random.default_rng(9)
    field = (20 + rng.normal(size=(60, 6, 7))).astype(np.float32)
    field[:, 0, :2] = np.nan  # land
    if "fill_nan" in settings:
        field[7, 3, 3] = np.nan  # a cell missing once: filled
    times = xr.date_range("2000-01-01", periods=60, freq="MS", calendar="360_day", use_cftime=True)
    write_series(tmp_path / "s.nc", field, times)
    kept = dataset(kind="netcdf", path=str(tmp_path / "s.nc"), **SHORT, **settings)
    read = dataset(kind="netcdf", path=str(tmp_path / "s.nc"), in_memory_mb=0, **SHORT, **settings)
    assert isinstance(read.data.rows, LazyRows) and not isinstance(kept.data.rows, LazyRows)
    assert kept._ready is not None and read._ready is None
    for name in ("train", "val", "test"):
        a = kept.train_source().windows if name == "train" else kept.val_windows() if name == "val" \
            else kept.test_windows(4)
        b = read.train_source().windows if name == "train" else read.val_windows() if name == "val" \
            else read.test_windows(4)
        idx = np.arange(len(a))
        np.testing.assert_allclose(a.take(idx), b.take(idx), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(a.rows(idx), b.rows(idx))
