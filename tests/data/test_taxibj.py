"""TaxiBJ: small h5 files in the real layout (byte-string dates, incomplete days, negative flows)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.data.taxibj import PAPER_MSE_FACTOR, TaxiBJDataset
from varsep.errors import DataError


def day_dates(first: date, days: int, *, skip_slots: dict[int, set[int]] | None = None) -> list[bytes]:
    """b"YYYYMMDDSS" for ``days`` days from ``first``; skip_slots[k] = slots missing from day k."""
    out = []
    for k in range(days):
        d = first + timedelta(days=k)
        for s in range(1, 49):
            if s not in (skip_slots or {}).get(k, set()):
                out.append(f"{d:%Y%m%d}{s:02d}".encode())
    return out


def write_bj(root: Path, year: int, dates: list[bytes], data: np.ndarray | None = None,
             **kwargs) -> np.ndarray:
    """One BJ{year} file as the real ones: float64 data (N, 2, 32, 32) and |S10 dates."""
    rng = np.random.default_rng(year)
    if data is None:
        data = rng.uniform(-5, 300, size=(len(dates), 2, 32, 32))
        # Pixel (0, 0) of channel 0 holds the row number in the file, to check the order of frames.
        data[:, 0, 0, 0] = np.arange(len(dates))
    with h5py.File(root / f"BJ{year}_M32x32_T30_InOut.h5", "w") as f:
        f.create_dataset("data", data=data, **kwargs)
        f.create_dataset("date", data=np.array(dates, dtype="S10"))
    return data


@pytest.fixture()
def taxibj_root(tmp_path) -> Path:
    """BJ13: 5 days, day 3 lacks a slot (dropped) and holds a huge value; BJ14: 4 days a year later."""
    d13 = day_dates(date(2013, 7, 1), 5, skip_slots={2: {17}})
    data13 = write_bj(tmp_path, 13, d13)
    data13[2 * 48 + 5, 1, 3, 3] = 1e6  # inside the incomplete day: must not set the maximum
    write_bj(tmp_path, 13, d13, data13)
    write_bj(tmp_path, 14, day_dates(date(2014, 3, 1), 4))
    return tmp_path


def small_config(root: Path, **overrides):
    values = {"data.root": str(root), "data.years": [13, 14], "data.test_days": 1, "data.val_days": 1}
    values.update(overrides)
    return load_config("taxibj", values)


def test_cleaning_scaling_and_splits(taxibj_root):
    ds = build_dataset(small_config(taxibj_root).data)
    assert isinstance(ds, TaxiBJDataset)
    assert ds.dropped_days == {"BJ13_M32x32_T30_InOut.h5": ["20130703"], "BJ14_M32x32_T30_InOut.h5": []}
    with h5py.File(taxibj_root / "BJ13_M32x32_T30_InOut.h5") as f:
        raw13 = f["data"][()]
    with h5py.File(taxibj_root / "BJ14_M32x32_T30_InOut.h5") as f:
        raw14 = f["data"][()]
    keep13 = np.r_[0:96, 143:239]  # days 1, 2, 4, 5 (day 3 has 47 rows: 96…142)
    clean = np.maximum(np.concatenate([raw13[keep13], raw14]), 0)
    assert len(ds.frames) == 8 * 48
    train_part = clean[:-48]  # everything but the last day; the validation day is included in the fit
    lo, hi = train_part.min(), train_part.max()
    assert lo == 0 and ds.minimum == 0 and ds.maximum == pytest.approx(hi, rel=1e-6) and hi < 1e6
    np.testing.assert_allclose(ds.frames, (clean - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    assert ds.frames.dtype == np.float32 and ds.frames[:-48].max() == pytest.approx(1.0)
    assert ds.test_start == 7 * 48 and ds.val_start == 6 * 48
    # Segments: BJ13 days 1–2, BJ13 days 4–5, BJ14 days 1–4; windows of 8 never cross them.
    assert ds.segments == [(0, 96), (96, 192), (192, 384)]
    assert len(ds.train_source().windows) == 3 * (96 - 8 + 1)
    assert len(ds.val_windows()) == 48 - 8 + 1 and len(ds.test_windows(4)) == 48 - 8 + 1
    assert len(ds.test_windows(2)) == 48 - 6 + 1


def test_windows_keep_time_order_and_stay_in_their_part(taxibj_root):
    ds = build_dataset(small_config(taxibj_root).data)
    train = ds.train_source().windows
    stamps = ds.physical(train.take(np.arange(len(train))), train, np.arange(len(train)), 0)[:, :, 0, 0, 0]
    # Oldest first, 30 minutes apart: the time stamps of pixel (0, 0) increase by one along each window.
    np.testing.assert_allclose(np.diff(stamps, axis=1), 1, atol=1e-3)
    starts = train.start
    assert starts.max() + 8 <= ds.val_start
    assert not np.any((starts < 96) & (starts + 8 > 96))  # no window crosses the dropped day
    test = ds.test_windows(4)
    assert test.start.min() == ds.test_start and test.start.max() + 8 == len(ds.frames)
    assert "2014-03-04 slot 01" in test.describe(0) and "slot 08" in test.describe(0)
    expected = ds.frames[None, ds.test_start + 3:ds.test_start + 11]
    np.testing.assert_array_equal(test.take(np.array([3])), expected)


def test_paper_test_split_counts_one_window_per_test_slot(taxibj_root):
    ds = build_dataset(small_config(taxibj_root, **{"data.test_split": "paper"}).data)
    test = ds.test_windows(4)
    assert len(test) == 48  # one per slot of the test day, as the official code's 1344 for four weeks
    assert test.start.min() == ds.test_start - 8 and test.start.max() + 8 == len(ds.frames) - 1


def test_four_test_weeks_give_1337_windows_or_the_papers_1344(tmp_path):
    dates = day_dates(date(2015, 3, 1), 30)
    data = np.random.default_rng(0).integers(0, 50, size=(len(dates), 2, 32, 32)).astype(np.uint8)
    write_bj(tmp_path, 15, dates, data)
    cfg = load_config("taxibj", {"data.root": str(tmp_path), "data.years": [15], "data.val_days": 1})
    ds = build_dataset(cfg.data)
    assert len(ds.test_windows(4)) == 28 * 48 - 8 + 1 == 1337
    cfg.data.test_split = "paper"
    assert len(build_dataset(cfg.data).test_windows(4)) == 1344


def test_rows_out_of_time_order_are_sorted(tmp_path):
    dates = day_dates(date(2016, 1, 1), 4)
    order = np.random.default_rng(1).permutation(len(dates))
    data = np.zeros((len(dates), 2, 32, 32))
    data[:, 0, 0, 0] = np.arange(len(dates))
    write_bj(tmp_path, 16, [dates[i] for i in order], data[order])
    ds = build_dataset(load_config("taxibj", {"data.root": str(tmp_path), "data.years": [16],
                                               "data.test_days": 1, "data.val_days": 1}).data)
    np.testing.assert_allclose(ds.frames[:, 0, 0, 0] * ds.maximum, np.arange(len(dates)), atol=1e-3)


def test_paper_metric_and_physical_units(taxibj_root):
    ds = build_dataset(small_config(taxibj_root).data)
    assert PAPER_MSE_FACTOR == TaxiBJDataset.paper_mse_factor == 204800
    assert TaxiBJDataset.paper_mse(1e-4) == pytest.approx(20.48)
    test = ds.test_windows(4)
    frames = test.take(np.arange(2))
    with h5py.File(taxibj_root / "BJ14_M32x32_T30_InOut.h5") as f:
        raw = np.maximum(f["data"][3 * 48:3 * 48 + 9], 0)
    np.testing.assert_allclose(ds.physical(frames, test, np.arange(2), 0), np.stack([raw[:8], raw[1:9]]),
                               rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------------------------- errors
def test_missing_files_are_listed(tmp_path):
    write_bj(tmp_path, 13, day_dates(date(2013, 7, 1), 2))
    with pytest.raises(DataError) as err:
        build_dataset(load_config("taxibj", {"data.root": str(tmp_path)}).data)
    msg = str(err.value)
    assert str(tmp_path) in msg and "BJ14_M32x32_T30_InOut.h5" in msg and "BJ16_M32x32_T30_InOut.h5" in msg
    assert "found BJ13_M32x32_T30_InOut.h5" in msg
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(load_config("taxibj", {"data.root": str(tmp_path / "nowhere")}).data)


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "BJ13_M32x32_T30_InOut.h5").write_bytes(b"\x89HDF not really" * 10)
    with pytest.raises(DataError, match="BJ13_M32x32_T30_InOut.h5 is not a readable HDF5 file"):
        build_dataset(load_config("taxibj", {"data.root": str(tmp_path), "data.years": [13]}).data)


def test_missing_datasets_and_wrong_shapes(tmp_path):
    path = tmp_path / "BJ13_M32x32_T30_InOut.h5"
    cfg = load_config("taxibj", {"data.root": str(tmp_path), "data.years": [13]})
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.zeros((48, 2, 32, 32)))
    with pytest.raises(DataError, match="'date' missing.*found data"):
        build_dataset(cfg.data)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.zeros((48, 2, 16, 16)))
        f.create_dataset("date", data=np.array(day_dates(date(2013, 7, 1), 1), dtype="S10"))
    with pytest.raises(DataError, match=r"'data' has shape \(48, 2, 16, 16\); expected \(N, 2, 32, 32\)"):
        build_dataset(cfg.data)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.zeros((48, 2, 32, 32)))
        f.create_dataset("date", data=np.array([b"2013-07-01"] * 48, dtype="S10"))
    with pytest.raises(DataError, match="BJ13.*'2013-07-01'.*YYYYMMDDSS"):
        build_dataset(cfg.data)


def test_too_few_days_for_the_splits(tmp_path):
    write_bj(tmp_path, 13, day_dates(date(2013, 7, 1), 2))
    with pytest.raises(DataError, match="2 complete days, too few"):
        build_dataset(load_config("taxibj", {"data.root": str(tmp_path), "data.years": [13]}).data)


# ------------------------------------------------------------------------------------------- the config
def test_config_holds_the_papers_settings():
    cfg = load_config("taxibj")
    assert (cfg.data.cond_frames, cfg.data.pred_frames, cfg.data.test_horizons) == (4, 4, [4])
    assert cfg.data.batch_size == 100 and cfg.data.batches_per_epoch is None
    m = cfg.model
    assert (m.encoder, m.decoder, m.s_dim, m.t_dim, m.combine, m.blocks, m.width, m.gain) == (
        "vgg32", "vgg32", 128, 20, "concat", 1, 512, 0.71)
    assert m.final_activation == "none" and m.reconstruct_cond and not m.skips
    loss = cfg.loss
    assert (loss.lambda_pred, loss.lambda_ae, loss.lambda_s, loss.lambda_t) == (45, 45, 1e-4, 1e-3)
    assert cfg.optim.lr == 4e-5 and cfg.optim.betas == [0.9, 0.99]
    assert cfg.optim.milestones == [250, 300, 350, 400, 450] and cfg.optim.gamma == 0.2
    assert cfg.trainer.max_epochs == 550
