"""WaveEq data sets (varsep.data.waveeq): splits, windows, WaveEq-100's pixels, and bad folders."""

from __future__ import annotations

import numpy as np
import pytest

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.datagen.waveeq import (
    NUM_FRAMES,
)
from varsep.errors import DataError


def _waveeq_config(root, name="waveeq", **over):
    overrides = {"data.root": str(root), "data.val_sequences": 1, **over}
    return load_config(name, overrides)


def test_dataset_splits_and_windows(tiny_waveeq):
    ds = build_dataset(_waveeq_config(tiny_waveeq).data)
    assert list(ds.train_ids) == [0, 1, 2, 3, 4] and list(ds.val_ids) == [5] and list(ds.test_ids) == [6, 7]
    assert ds.spec.frame_shape == (1, 64, 64) and ds.spec.train_length == 25
    test = ds.test_windows(40)
    assert len(test) == 2 * (NUM_FRAMES - 45 + 1)  # every 45-frame chunk of every test sequence
    frames = np.load(tiny_waveeq / "frames.npy")
    np.testing.assert_array_equal(test.take(np.array([107]))[0, :, 0], frames[7, 1:46])
    train = ds.train_source().windows
    assert set(np.unique(train.seq)) == {0, 1, 2, 3, 4}


def test_waveeq100_observes_the_stored_pixels(tiny_waveeq):
    ds = build_dataset(_waveeq_config(tiny_waveeq, "waveeq100").data)
    sensors = np.load(tiny_waveeq / "sensors.npy")
    frames = np.load(tiny_waveeq / "frames.npy")
    window = ds.test_windows(40).take(np.array([0]))[0]
    assert window.shape == (45, 100)
    np.testing.assert_array_equal(window, frames[6, :45, sensors[:, 0], sensors[:, 1]].T)


def test_missing_folder_names_the_generate_command(tmp_path):
    with pytest.raises(DataError, match="varsep generate waveeq --out"):
        build_dataset(_waveeq_config(tmp_path / "nope").data)


def test_nan_in_data_names_file_and_sequence(tmp_path, tiny_waveeq):
    import shutil

    copy = tmp_path / "bad"
    shutil.copytree(tiny_waveeq, copy)
    frames = np.load(copy / "frames.npy", mmap_mode="r+")
    frames[3, 10, 5, 5] = np.nan
    frames.flush()
    del frames
    with pytest.raises(DataError, match=r"frames\.npy: sequence 3 holds NaN"):
        build_dataset(_waveeq_config(copy).data)


def test_truncated_frames_file_is_reported(tmp_path, tiny_waveeq):
    import shutil

    copy = tmp_path / "trunc"
    shutil.copytree(tiny_waveeq, copy)
    data = (copy / "frames.npy").read_bytes()
    (copy / "frames.npy").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        build_dataset(_waveeq_config(copy).data)


def test_windows_longer_than_sequences_are_refused(tiny_waveeq):
    with pytest.raises(DataError, match="do not fit"):
        build_dataset(_waveeq_config(tiny_waveeq, **{"data.test_horizons": "[200]"}).data)
