"""Your own data (data.kind: array | netcdf | zarr | frames): small files in the real formats, written here.

Each kind trains two steps through varsep.fit; values, normalisation, splits and windows are checked
against the arrays written; every documented error is triggered. The docs' example script and config are
run as written, so docs/data/custom.md cannot rot.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from PIL import Image

from varsep.cli import main
from varsep.config import apply_overrides, config_from_dict
from varsep.data import SequenceDataset, build_dataset
from varsep.data.custom import CustomDataset
from varsep.data.custom.split import share, split_sequences, split_time
from varsep.errors import ConfigError, DataError
from varsep.forecaster import load
from varsep.train import fit

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
TINY = {
    "model.encoder_hidden": [32], "model.decoder_hidden": [32], "model.width": 16, "model.blocks": 1,
    "model.s_dim": 8, "model.t_dim": 8, "data.batch_size": 4, "trainer.max_steps": 2,
    "trainer.val_every_n_epochs": 1, "trainer.checkpoint_every_n_steps": 2, "trainer.log_every_n_steps": 1,
    "trainer.progress_bar": False,
}
MLP = {"model.encoder": "mlp", "model.decoder": "mlp"}
SHORT = {"cond_frames": 2, "pred_frames": 3, "test_horizons": [4]}  # windows of 5 (training) and 6 frames


def dataset(**data) -> CustomDataset:
    ds = build_dataset(config_from_dict({"data": data}).data)
    assert isinstance(ds, CustomDataset)
    return ds


def train_two_steps(run_dir: Path, data: dict, **overrides) -> CustomDataset:
    config = config_from_dict(apply_overrides({"data": data}, {**TINY, **overrides}))
    fit(config, run_dir, progress=False)
    run = load(run_dir, "last")
    assert run.step == 2 and (run_dir / "checkpoints" / "last.ckpt").is_file()
    return build_dataset(config.data)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


# ------------------------------------------------------------------------------ each kind trains
def test_array_of_vectors_trains_memory_mapped(tmp_path):
    values = np.random.default_rng(0).normal(size=(10, 20, 6)).astype(np.float32)
    np.save(tmp_path / "runs.npy", values)
    ds = train_two_steps(tmp_path / "run", {"kind": "array", "path": str(tmp_path / "runs.npy")})
    assert isinstance(ds.data.rows, np.memmap)  # never read whole
    assert ds.spec.frame_shape == (6,) and ds.default_encoder == ds.default_decoder == "mlp"


def test_netcdf_series_trains(tmp_path):
    t = np.arange(120)
    field = np.sin(0.3 * t)[:, None, None] * np.ones((1, 8, 8)) + 280
    xr.Dataset({"sst": (("time", "lat", "lon"), field.astype(np.float32), {"units": "K"})},
               coords={"time": t}).to_netcdf(tmp_path / "sst.nc")
    ds = train_two_steps(tmp_path / "run", {"kind": "netcdf", "path": str(tmp_path / "sst.nc"),
                                            "variable": "sst"}, **MLP)
    assert ds.spec.frame_shape == (1, 8, 8) and ds.split_by == "time"


def test_zarr_ensemble_trains(tmp_path):
    pytest.importorskip("zarr")
    values = np.random.default_rng(1).normal(size=(6, 25, 5))
    xr.Dataset({"u": (("member", "time", "sensor"), values)}).to_zarr(tmp_path / "u.zarr", mode="w",
                                                                      consolidated=False)
    ds = train_two_steps(tmp_path / "run", {"kind": "zarr", "path": str(tmp_path / "u.zarr")})
    assert ds.description.sequence_dim == "member" and ds.split_by == "sequence"
    assert ds.spec.frame_shape == (5,)


def test_image_folders_train(tmp_path):
    rng = np.random.default_rng(2)
    for video in ("clip_a", "clip_b", "clip_c"):
        for k in range(18):
            write_png(tmp_path / "frames" / video / f"f{k}.png", rng.integers(0, 256, size=(8, 8)))
    ds = train_two_steps(tmp_path / "run", {"kind": "frames", "path": str(tmp_path / "frames")}, **MLP)
    assert ds.spec.frame_shape == (1, 8, 8)
    assert ds.description.sequence_names == ["clip_a", "clip_b", "clip_c"]


# ------------------------------------------------------------------------- values, splits, windows
@pytest.fixture
def frames_array(tmp_path) -> tuple[Path, np.ndarray]:
    """(10, 12, 2, 3, 4) frames whose two channels live on different scales."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(10, 12, 2, 3, 4)) * np.array([1.0, 50.0])[:, None, None] + np.array([0, 300.0])[
        :, None, None]
    path = tmp_path / "frames.npy"
    np.save(path, values.astype(np.float32))
    return path, np.load(path)


def test_sequence_split_minmax_per_channel_and_windows(frames_array):
    path, raw = frames_array
    ds = dataset(kind="array", path=str(path), normalization="minmax", **SHORT)
    s = ds.sequence_split  # in order: the last sequence is the test, the one before validation
    assert s.train.tolist() == list(range(8)) and s.val.tolist() == [8] and s.test.tolist() == [9]
    train = raw[:8]
    lo, hi = train.min(axis=(0, 1, 3, 4)), train.max(axis=(0, 1, 3, 4))
    np.testing.assert_allclose(ds.normalization.shift, lo)
    np.testing.assert_allclose(ds.normalization.scale, hi - lo, rtol=1e-6)
    expected = (raw - lo[:, None, None]) / (hi - lo)[:, None, None]
    train_w = ds.train_source().windows
    assert len(train_w) == 8 * (12 - 5 + 1) and train_w.length == 5
    got = train_w.take(np.arange(len(train_w)))
    assert got.min() == pytest.approx(0, abs=1e-6) and got.max() == pytest.approx(1, abs=1e-6)
    test = ds.test_windows(4)
    assert len(test) == 12 - 6 + 1 and test.describe(2) == "sequence 9, frames 2–7"
    np.testing.assert_allclose(test.take(np.array([2, 0])), expected[9, [list(range(2, 8)), list(range(6))]],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(test.rows(np.array([2])), [[9 * 12 + 2 + k for k in range(6)]])
    ids = test.frame_ids(np.array([0, 2]), np.arange(6))  # frames shared by windows: one id per data row
    np.testing.assert_array_equal(ids, test.rows(np.array([0, 2])))
    assert ids[0, 2] == ids[1, 0]
    # physical() reverts the scaling: targets come back in the file's units.
    np.testing.assert_allclose(ds.physical(test.take(np.array([2]))[:, 2:], test, np.array([2]), 2),
                               raw[9, None, 4:8], rtol=1e-5, atol=1e-3)
    # value_transform describes the same map, for `varsep predict`.
    vt = ds.value_transform()
    assert vt["axis"] == -3
    model = (raw[9, 2:8] - np.array(vt["offset"])[:, None, None]) / np.array(vt["scale"])[:, None, None]
    np.testing.assert_allclose(test.take(np.array([2]))[0], model, rtol=1e-5, atol=1e-6)
    val = dataset(kind="array", path=str(path), val_stride=3, **SHORT).val_windows()
    assert [val.describe(i) for i in range(len(val))] == [f"sequence 8, frames {a}–{a + 5}"
                                                           for a in (0, 3, 6)]
    assert ds.unit_interval


def test_standard_none_and_overall_statistics(frames_array):
    path, raw = frames_array
    train = raw[:8].astype(np.float64)
    std = dataset(kind="array", path=str(path), normalization="standard", **SHORT)
    np.testing.assert_allclose(std.normalization.shift, train.mean(axis=(0, 1, 3, 4)), rtol=1e-9)
    np.testing.assert_allclose(std.normalization.scale, train.std(axis=(0, 1, 3, 4)), rtol=1e-9)
    assert not std.unit_interval
    overall = dataset(kind="array", path=str(path), normalization="standard", per_channel=False, **SHORT)
    np.testing.assert_allclose(overall.normalization.shift, [train.mean()], rtol=1e-9)
    np.testing.assert_allclose(overall.normalization.scale, [train.std()], rtol=1e-9)
    none = dataset(kind="array", path=str(path), normalization="none", **SHORT)
    np.testing.assert_array_equal(none.test_windows(4).take(np.array([0]))[0], raw[9, :6])


def test_four_dim_array_is_one_channel_and_npz_variables(tmp_path):
    values = np.random.default_rng(4).uniform(size=(5, 20, 32, 32)).astype(np.float32)
    np.save(tmp_path / "a.npy", values)
    ds = dataset(kind="array", path=str(tmp_path / "a.npy"))
    assert ds.spec.frame_shape == (1, 32, 32) and isinstance(ds.data.rows, np.memmap)
    assert ds.default_encoder == "vgg32" and ds.description.channel_added
    assert dataset(name="custom", path=str(tmp_path / "a.npy")).kind == "array"  # kind guessed from .npy
    np.testing.assert_array_equal(ds.data.rows[20 + 3, 0], values[1, 3])
    np.savez(tmp_path / "b.npz", other=np.zeros(3), waves=values)
    ds = dataset(kind="array", path=str(tmp_path / "b.npz"), variable="waves", normalization="none")
    np.testing.assert_array_equal(ds.test_windows(10).take(np.array([0]))[0, :, 0], values[4, :15])
    with pytest.raises(DataError, match=r"b\.npz holds the arrays other, waves; set data.variable"):
        dataset(kind="array", path=str(tmp_path / "b.npz"))
    with pytest.raises(DataError, match=r"array 'wave' missing; the file holds other, waves"):
        dataset(kind="array", path=str(tmp_path / "b.npz"), variable="wave")


def test_default_network_families(tmp_path):
    for size, family in ((64, "dcgan"), (32, "vgg32"), (48, "dcgan"), (24, "vgg32")):
        np.save(tmp_path / f"s{size}.npy", np.zeros((3, 16, 2, size, size), np.float32))
        ds = dataset(kind="array", path=str(tmp_path / f"s{size}.npy"))
        assert (ds.default_encoder, ds.default_decoder, ds.spec.channels) == (family, family, 2)
    # 48×48 frames are padded to the dcgan's 64×64 (tests/data/test_fields.py); data.resize stays an option.
    resized = dataset(kind="array", path=str(tmp_path / "s48.npy"), resize=[32, 32])
    assert resized.default_encoder == "vgg32" and resized.spec.frame_shape == (2, 32, 32)
    assert resized.test_windows(10).take(np.array([0])).shape == (1, 15, 2, 32, 32)


def test_own_fields_anchor_the_forecast_on_the_last_frame_unless_there_is_a_sigmoid(tmp_path):
    # model.anchor: auto → last_residual for your own data (last_frame without reconstruct_cond), none where the
    # decoder ends in a sigmoid (minmax data) and for the paper's data sets; impossible choices are errors.
    from varsep.train.runner import resolve_config

    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(3, 16, 1, 8, 8)).astype(np.float32))
    data = {"kind": "array", "path": str(tmp_path / "f.npy")}

    def resolved(**over):
        config = config_from_dict(apply_overrides({"data": data}, over))
        return resolve_config(config, build_dataset(config.data)).model

    assert (resolved().anchor, resolved().final_activation) == ("last_residual", "none")
    assert resolved(**{"model.reconstruct_cond": False}).anchor == "last_frame"
    assert resolved(**{"data.normalization": "minmax"}).anchor == "none"
    assert resolved(**{"model.anchor": "none"}).anchor == "none"
    assert resolved(**{"data.normalization": "minmax", "model.anchor": "last_residual"}).anchor == "last_residual"
    with pytest.raises(ConfigError, match="final sigmoid cannot"):
        resolved(**{"data.normalization": "minmax", "model.anchor": "last_frame"})
    with pytest.raises(ConfigError, match="reconstruct_cond: true"):
        resolved(**{"model.reconstruct_cond": False, "model.anchor": "last_residual"})
    with pytest.raises(ConfigError, match="model.anchor"):
        config_from_dict({"data": data, "model": {"anchor": "last"}})
    assert CustomDataset.default_anchor == "last_residual" and SequenceDataset.default_anchor == "none"


def test_a_run_saved_before_model_anchor_existed_resumes_as_it_was_trained(tmp_path):
    # Runs written before model.anchor have no such key; they decoded whole frames, so they resume and load as
    # anchor "none" (not as today's default for their data), and the resumed run says nothing is different.
    import torch

    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(4, 16, 1, 8, 8)).astype(np.float32))
    data = {"kind": "array", "path": str(tmp_path / "f.npy")}
    run = tmp_path / "run"
    train_two_steps(run, data, **{"model.anchor": "none"})
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"].pop("anchor") == "none"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=False)
        del state["hyper_parameters"]["config"]["model"]["anchor"]
        torch.save(state, ckpt)
    assert main(["fit", "--resume", "--run-dir", str(run), "--quiet", "--trainer.max_steps", "3"]) == 0
    resumed = load(run, "last")
    assert resumed.step == 3 and resumed.config.model.anchor == "none" and resumed.model.anchor == "none"


def test_array_resize_averages_like_the_source(tmp_path):
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32), (4, 20, 16, 16))
    np.save(tmp_path / "ramp.npy", np.ascontiguousarray(ramp))
    ds = dataset(kind="array", path=str(tmp_path / "ramp.npy"), resize=[8, 8], normalization="none")
    window = ds.test_windows(10).take(np.array([0]))
    assert window.shape == (1, 15, 1, 8, 8)
    np.testing.assert_allclose(window[0, 0, 0].mean(axis=0), ramp[0, 0].reshape(16, 8, 2).mean(axis=(0, 2)),
                               atol=1e-4)  # halving the width averages pixel pairs


def test_shuffled_split_is_seeded_and_partitions():
    a = split_sequences(40, test_fraction=0.1, val_fraction=0.1, shuffle=True, seed=3)
    b = split_sequences(40, test_fraction=0.1, val_fraction=0.1, shuffle=True, seed=3)
    c = split_sequences(40, test_fraction=0.1, val_fraction=0.1, shuffle=True, seed=4)
    assert [x.tolist() for x in (a.train, a.val, a.test)] == [x.tolist() for x in (b.train, b.val, b.test)]
    assert a.test.tolist() != c.test.tolist()
    assert (len(a.train), len(a.val), len(a.test)) == (32, 4, 4)  # 10 % test, 10 % of the other 36
    assert sorted(np.concatenate([a.train, a.val, a.test]).tolist()) == list(range(40))
    perm = np.random.default_rng(3).permutation(40)
    assert a.test.tolist() == sorted(perm[36:].tolist()) and a.val.tolist() == sorted(perm[32:36].tolist())
    explicit = split_sequences(10, test_fraction=0.5, val_fraction=0.2, test_sequences=[0, 5])
    assert explicit.test.tolist() == [0, 5] and explicit.val.tolist() == [8, 9]
    assert (share(3, 0.1), share(1, 0.1), share(25, 0.1)) == (1, 0, 3)  # at least one; halves round up


def test_time_split_of_one_series_keeps_a_window_between_parts(tmp_path):
    series = np.arange(200 * 3, dtype=np.float32).reshape(1, 200, 3)
    np.save(tmp_path / "series.npy", series)
    ds = dataset(kind="array", path=str(tmp_path / "series.npy"), test_stride=5, normalization="none")
    assert ds.split_by == "time"
    cut = ds.time_splits[0]
    # 200 frames: test = last 20, gap 15 (= 5 + 10, a test window), val = 10 % of the 165 left (17), gap 15
    assert (cut.train, cut.val, cut.test, cut.gap) == ((0, 133), (148, 165), (180, 200), 15)
    train, val = ds.train_source().windows, ds.val_windows()
    test = ds.test_windows(10)
    last_train = train.rows(np.arange(len(train))).max()
    assert last_train == 132 and val.rows(np.arange(len(val))).min() - last_train > 15
    assert test.rows(np.arange(len(test))).min() - val.rows(np.arange(len(val))).max() > 15
    assert len(test) == 2 and test.describe(1) == "sequence 0, frames 185–199"  # starts 180, 185 (stride 5)
    np.testing.assert_array_equal(test.take(np.array([1]))[0], series[0, 185:200])
    with pytest.raises(DataError, match=r"after the test part \(20\), the validation part \(15\) and gaps "
                                        r"of 30 frames, 105 remain for training, fewer than a training "
                                        r"window of cond_frames \+ pred_frames = 5 \+ 120 = 125"):
        dataset(kind="array", path=str(tmp_path / "series.npy"), gap=30, pred_frames=120)
    assert split_time(50, test_fraction=0.1, val_fraction=0, gap=3, min_test=8, min_val=8).train == (0, 39)


def test_netcdf_dims_coordinates_and_attributes(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.normal(size=(4, 30, 3, 5)).astype(np.float32)  # (ensemble, step, y, x)
    coords = {"ensemble": [10, 11, 12, 13], "step": np.arange(30) * 6, "y": [1.0, 2.0, 3.0],
              "x": np.arange(5.0)}
    xr.Dataset({"h": (("ensemble", "step", "y", "x"), values, {"units": "m", "long_name": "height"}),
                "mask": (("y", "x"), np.ones((3, 5)))}, coords=coords,
               attrs={"title": "test"}).to_netcdf(tmp_path / "h.nc")
    with pytest.raises(DataError, match=r"holds the variables h, mask; set data.variable"):
        dataset(kind="netcdf", path=str(tmp_path / "h.nc"))
    ds = dataset(name="custom", path=str(tmp_path / "h.nc"), variable="h", time_dim="step",
                 normalization="standard")  # kind netcdf, guessed from .nc
    d = ds.description
    assert (d.sequence_dim, d.time_dim, d.frame_dims) == ("ensemble", "step", ("y", "x"))
    assert d.attrs == {"units": "m", "long_name": "height"} and d.file_attrs["title"] == "test"
    assert ds.sequence_split.test.tolist() == [3] and d.sequence_names[3] == "ensemble 13"
    test = ds.test_windows(10)
    assert test.describe(0) == "ensemble 13, frames 0–14 (0 … 84)"
    seq, t0 = ds.description.locate(test.rows(np.array([4]))[0, 5])
    out = d.to_dataarray(ds.physical(test.take(np.array([4]))[:, 5:], test, np.array([4]), 5)[0], int(seq),
                         t0 + np.arange(10))
    with xr.open_dataset(tmp_path / "h.nc") as f:
        xr.testing.assert_allclose(out, f["h"].isel(ensemble=3, step=slice(9, 19)), rtol=1e-5)
        assert out.attrs == f["h"].attrs
    with pytest.raises(DataError, match=r"data.time_dim 'time' is not one of its dims ensemble, step, y, x"):
        dataset(kind="netcdf", path=str(tmp_path / "h.nc"), variable="h", time_dim="time")


def test_image_frames_natural_order_colour_and_resize(tmp_path):
    folder = tmp_path / "clip"
    for k in (1, 2, 10, 11, 3, 20, 12):  # natural order 1, 2, 3, 10, 11, 12, 20 — not 1, 10, 11, 12, 2, …
        rgb = np.zeros((6, 8, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10 * k, 255 - 10 * k, 7
        write_png(folder / f"frame_{k}.png", rgb)
    (folder / "notes.txt").write_text("ignored")
    ds = dataset(kind="frames", path=str(folder), cond_frames=2, pred_frames=1, test_horizons=[1],
                 normalization="none", test_fraction=0.01, val_fraction=0, gap=0)
    assert ds.spec.frame_shape == (3, 6, 8) and ds.split_by == "time"
    names = [f.name for f in ds.description.frame_files]
    assert names == [f"frame_{k}.png" for k in (1, 2, 3, 10, 11, 12, 20)]
    first = ds.train_source().windows.take(np.array([0]))[0]
    np.testing.assert_allclose(first[:, :, 0, 0], np.array([[10, 245, 7], [20, 235, 7], [30, 225, 7]]) / 255,
                               rtol=1e-6)
    assert ds.test_windows(1).describe(0) == "clip, frames 4–6 (frame_11.png … frame_20.png)"
    vt = ds.value_transform()
    np.testing.assert_allclose(vt["scale"], [255, 255, 255])  # files hold 0–255, the model sees [0, 1]
    grey = dataset(kind="frames", path=str(folder), channels=1, resize=[4, 4], cond_frames=2, pred_frames=1,
                   test_horizons=[1], test_fraction=0.01, val_fraction=0, gap=0)
    assert grey.spec.frame_shape == (1, 4, 4)
    with pytest.raises(ConfigError, match="data.channels applies to kind frames"):
        dataset(kind="array", path=str(tmp_path / "x.npy"), channels=3)
    write_png(folder / "frame_12.png", np.zeros((5, 8), np.uint8))
    with pytest.raises(DataError, match=r"frame_12.png is 8×5 but .*frame_1.png is 8×6.*data.resize"):
        dataset(kind="frames", path=str(folder))


def test_nan_is_an_error_naming_the_index_unless_filled(tmp_path):
    values = np.random.default_rng(6).uniform(size=(6, 20, 4)).astype(np.float32)
    values[3, 7, 2] = np.nan
    values[5, 1, 0] = np.inf
    np.save(tmp_path / "gaps.npy", values)
    with pytest.raises(DataError, match=r"gaps.npy holds NaN or Inf at sequence 3, time index 7; .*fill_nan"):
        dataset(kind="array", path=str(tmp_path / "gaps.npy"))
    filled = dataset(kind="array", path=str(tmp_path / "gaps.npy"), fill_nan=0.5, normalization="none")
    np.testing.assert_allclose(filled.test_windows(10).take(np.array([1]))[0, 0], [0.5, *values[5, 1, 1:]])
    mean = dataset(kind="array", path=str(tmp_path / "gaps.npy"), fill_nan="mean", normalization="none")
    train = values[:4].copy()
    train[3, 7, 2] = np.nan
    assert mean.test_windows(10).take(np.array([1]))[0, 0, 0] == pytest.approx(np.nanmean(train[..., 0]))
    np.testing.assert_allclose(mean.normalization.mean, np.nanmean(train.reshape(-1, 4), axis=0), rtol=1e-6)
    series = np.zeros((120, 4))  # long enough to split (the split is checked before the data are read)
    series[7, 1] = np.nan
    xr.Dataset({"v": (("time", "x"), series)},
               coords={"time": np.datetime64("2020-01-01") + np.arange(120)}).to_netcdf(tmp_path / "v.nc")
    with pytest.raises(DataError, match=r"v.nc \(variable 'v'\) holds NaN or Inf at time index 7 "
                                        r"\(2020-01-08\)"):
        dataset(kind="netcdf", path=str(tmp_path / "v.nc"))


# --------------------------------------------------------------------------------------------- errors
def test_errors_name_the_file_and_what_was_expected(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="data.path is not set"):
        dataset(kind="array")
    with pytest.raises(DataError, match=r"data.path .*nothere.nc does not exist; expected a NetCDF file"):
        dataset(kind="netcdf", path=str(tmp_path / "nothere.nc"))
    with pytest.raises(ConfigError, match=r"data.kind 'tiff' is unknown; kinds: array .*netcdf .*zarr "
                                          r".*frames"):
        config_from_dict({"data": {"kind": "tiff", "path": "x"}})
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"bad.npy is not a readable .npy file"):
        dataset(kind="array", path=str(tmp_path / "bad.npy"))
    (tmp_path / "bad.nc").write_bytes(b"CDF\x01 truncated")
    with pytest.raises(DataError, match=r"bad.nc is not a readable NetCDF file"):
        dataset(kind="netcdf", path=str(tmp_path / "bad.nc"))
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"0.png is not a readable image"):
        dataset(kind="frames", path=str(tmp_path / "imgs"))
    np.save(tmp_path / "flat.npy", np.zeros((4, 30)))
    with pytest.raises(DataError, match=r"flat.npy has shape \(4, 30\) \(2 dimensions\); expected "
                                        r"\(N, T, C, H, W\) frames, \(N, T, H, W\) one-channel frames or "
                                        r"\(N, T, m\) vectors"):
        dataset(kind="array", path=str(tmp_path / "flat.npy"))
    xr.Dataset({"q": (("time", "a", "b", "c", "d"), np.zeros((20, 1, 1, 1, 1)))}).to_netcdf(tmp_path / "q.nc")
    with pytest.raises(DataError, match=r"'q' has dims \('time', 'a', 'b', 'c', 'd'\) and shape "
                                        r"\(20, 1, 1, 1, 1\); expected .*found 4 dims besides time"):
        dataset(kind="netcdf", path=str(tmp_path / "q.nc"))
    with pytest.raises(DataError, match=r"variable 'temp' missing; the file holds q"):
        dataset(kind="netcdf", path=str(tmp_path / "q.nc"), variable="temp")
    np.save(tmp_path / "short.npy", np.zeros((5, 12, 3), np.float32))
    with pytest.raises(DataError, match=r"holds 12 frames, fewer than a test window needs: cond_frames \+ "
                                        r"max\(test_horizons\) = 5 \+ 10 = 15"):
        dataset(kind="array", path=str(tmp_path / "short.npy"))
    with pytest.raises(DataError, match=r"fewer than a training window needs: cond_frames \+ pred_frames = "
                                        r"5 \+ 10 = 15"):
        dataset(kind="array", path=str(tmp_path / "short.npy"), test_horizons=[5])
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if zarr were not installed
    (tmp_path / "s.zarr").mkdir()
    with pytest.raises(DataError, match=r"needs the zarr package: pip install varsep\[zarr\]"):
        dataset(kind="zarr", path=str(tmp_path / "s.zarr"))


# ------------------------------------------------------------------------------------ the docs' example
def _docs_yaml_blocks() -> list[str]:
    text = (REPO / "docs" / "data" / "custom.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_docs_example_writes_data_that_trains_and_evaluates(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("make_example_array", EXAMPLES / "make_example_array.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(tmp_path)  # the config reads example.npy from the current folder, as in the docs
    script.main(["--sequences", "12", "--frames", "30"])
    waves = np.load(tmp_path / "example.npy")
    assert waves.shape == (12, 30, 32, 32) and waves.dtype == np.float32 and np.isfinite(waves).all()
    np.testing.assert_array_equal(waves, script.damped_waves(12, 30, 32))  # seeded
    config_text = (EXAMPLES / "custom_example.yaml").read_text()
    assert yaml.safe_load(config_text) in [yaml.safe_load(b) for b in _docs_yaml_blocks()]
    cfg = config_from_dict(yaml.safe_load(config_text))
    assert build_dataset(cfg.data).default_encoder == "vgg32"  # what the config's comment says
    # The docs' commands, on a tiny model (the example's vgg32 is too slow for a unit test).
    over = [x for k, v in {**TINY, **MLP}.items() for x in (f"--{k}", json.dumps(v))]
    assert main(["fit", "-c", str(EXAMPLES / "custom_example.yaml"), "--run-dir", "runs/example", "--quiet",
                 *over]) == 0
    assert main(["evaluate", "runs/example", "--quiet", "--no-figures", "--no-swap", "--limit", "4"]) == 0
    assert "t+20: MSE" in capsys.readouterr().out
    assert (tmp_path / "runs" / "example" / "eval" / "metrics.json").is_file()


def test_readme_section_points_at_the_example_and_its_config_is_valid():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Your own data"):]
    assert "docs/examples/make_example_array.py" in section and "docs/data/custom.md" in section
    block, field = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)  # "Your own field" second
    data = config_from_dict(yaml.safe_load(block)).data
    assert (data.name, data.kind, data.variable) == ("custom", "netcdf", "temperature")
    data = config_from_dict(yaml.safe_load(field)).data
    assert (data.kind, data.path, data.normalization) == ("netcdf", "sst_*.nc", "per_pixel")
    config = (REPO / "docs" / "examples" / "own_field.yaml").read_text()
    assert yaml.safe_load(config) == yaml.safe_load(field)  # the section shows the example's config
    assert "docs/examples/make_own_field.py" in section and "docs/results/own-field/map_t12.png" in section
