"""KTH: a tiny processed/<action>/personNN_<action>_dK/*.png tree written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from varsep.config import load_config
from varsep.data import build_dataset
from varsep.data.files import natural_key
from varsep.data.kth import KTHDataset
from varsep.errors import ConfigError, DataError
from varsep.spec import DataSpec

PERSONS = (1, 2, 16, 17, 18)
ACTIONS = ("boxing", "walking")


def frame_value(person: int, action: int, k: int) -> np.ndarray:
    """Frame k of a video: a base grey level naming (person, action, k), plus the row index."""
    base = (7 * person + 50 * action + 3 * k) % 200
    return (base + np.arange(64)[:, None] + np.zeros((1, 64), dtype=np.int64)).astype(np.uint8)


def write_video(folder: Path, person: int, action: int, frames: int, *, mode: str = "L") -> None:
    folder.mkdir(parents=True)
    for k in range(1, frames + 1):  # image-1 … image-12: lexicographic order would put 10 before 2
        img = Image.fromarray(frame_value(person, action, k))
        (img.convert("RGB") if mode == "RGB" else img).save(folder / f"image-{k}_64x64.png")


@pytest.fixture()
def kth_root(tmp_path) -> Path:
    """Persons 1, 2, 16 (training) and 17, 18 (test); boxing and walking, scenario d1; 12 frames each
    (person 2's walking video has 5 frames, too short for a training window of 6)."""
    processed = tmp_path / "KTH" / "processed"
    for a, action in enumerate(ACTIONS):
        for p in PERSONS:
            n = 5 if (p, action) == (2, "walking") else 12
            mode = "RGB" if p == 17 else "L"
            write_video(processed / action / f"person{p:02d}_{action}_d1", p, a, n, mode=mode)
        (processed / action / "train_meta64x64.t7").write_bytes(b"ignored index file")
    return tmp_path / "KTH"


def config(root: Path, **overrides):
    values = {"data.root": str(root), "data.cond_frames": 2, "data.pred_frames": 4, "data.test_horizons": [3],
              "data.train_persons": [1, 2, 16], "data.test_persons": [17, 18], "data.val_persons": [16],
              "data.val_stride": 1, "data.test_stride": 2}
    values.update(overrides)
    return load_config("kth", values)


def test_natural_sort():
    names = ["image-10_64x64.png", "image-2_64x64.png", "image-1_64x64.png"]
    assert sorted(names, key=natural_key) == ["image-1_64x64.png", "image-2_64x64.png", "image-10_64x64.png"]


def test_frames_values_order_and_person_split(kth_root):
    ds = build_dataset(config(kth_root).data)
    assert isinstance(ds, KTHDataset) and ds.root == kth_root / "processed"
    names = {part: sorted(ds.videos[i].name for i in ids) for part, ids in ds.split.items()}
    assert names["train"] == ["person01_boxing_d1", "person01_walking_d1", "person02_boxing_d1",
                              "person02_walking_d1"]
    assert names["val"] == ["person16_boxing_d1", "person16_walking_d1"]
    assert names["test"] == ["person17_boxing_d1", "person17_walking_d1", "person18_boxing_d1",
                             "person18_walking_d1"]
    assert ds.frames.dtype == np.uint8 and ds.frames.shape == (9 * 12 + 5, 1, 64, 64)
    # Training windows of 6 frames: 7 per 12-frame video, none in the 5-frame video.
    train = ds.train_source().windows
    assert len(train) == 3 * 7
    for i in range(len(train)):
        video = ds.videos[ds.split["train"][train.segment[i]]]
        first = train.start[i] - ds.bounds[ds.split["train"][train.segment[i]]][0] + 1
        action = ACTIONS.index(video.action)
        expected = np.stack([frame_value(video.person, action, first + j) for j in range(6)])
        np.testing.assert_allclose(train.take(np.array([i]))[0, :, 0], expected / 255, rtol=0, atol=1e-7)
    assert train.describe(1) == "person01_boxing_d1, frames 1–6"
    # Validation: every start (stride 1) of 5-frame windows in person 16's videos; test: every 2nd start.
    assert len(ds.val_windows()) == 2 * 8
    assert len(ds.test_windows(3)) == 4 * 4 and len(ds.test_windows(10)) == 4 * 1
    test = ds.test_windows(3)
    rgb = test.take(np.array([0]))[0, :, 0]  # person 17 was written as RGB: converted to one grey channel
    np.testing.assert_allclose(rgb, np.stack([frame_value(17, 0, k) for k in range(1, 6)]) / 255, atol=1e-7)
    assert ds.spec == DataSpec((1, 64, 64), 2, 4)


def test_root_may_be_the_processed_folder_itself(kth_root):
    a = build_dataset(config(kth_root).data)
    b = build_dataset(config(kth_root / "processed").data)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_actions_can_be_selected(kth_root):
    ds = build_dataset(config(kth_root, **{"data.actions": ["walking"]}).data)
    assert {v.action for v in ds.videos} == {"walking"}
    with pytest.raises(DataError, match="jogging missing; found boxing, walking"):
        build_dataset(config(kth_root, **{"data.actions": ["jogging"]}).data)


def test_frames_of_another_size_fail_or_are_resized(kth_root):
    video = kth_root / "processed" / "boxing" / "person01_boxing_d1"
    Image.fromarray(np.full((120, 160), 77, np.uint8)).save(video / "image-3_64x64.png")
    with pytest.raises(DataError, match=r"image-3_64x64.png is 160×120; KTH frames must be 64×64.*resize"):
        build_dataset(config(kth_root).data)
    ds = build_dataset(config(kth_root, **{"data.resize": True}).data)
    np.testing.assert_array_equal(ds.frames[2, 0], 77)


# ----------------------------------------------------------------------------------------------- errors
def test_missing_and_empty_folders(tmp_path, kth_root):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(config(tmp_path / "nowhere").data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no KTH data"):
        build_dataset(config(tmp_path / "empty").data)
    (tmp_path / "bare" / "processed").mkdir(parents=True)
    with pytest.raises(DataError, match="processed is empty"):
        build_dataset(config(tmp_path / "bare").data)
    (tmp_path / "bare" / "processed" / "boxing").mkdir()
    with pytest.raises(DataError, match="boxing holds no video folder"):
        build_dataset(config(tmp_path / "bare").data)
    (kth_root / "processed" / "walking" / "person03_walking_d2").mkdir()
    with pytest.raises(DataError, match="person03_walking_d2 holds no PNG frame"):
        build_dataset(config(kth_root).data)


def test_misnamed_folders(kth_root):
    (kth_root / "processed" / "boxing" / "person05_walking_d1").mkdir()
    with pytest.raises(DataError, match="a walking video inside the boxing folder"):
        build_dataset(config(kth_root).data)
    (kth_root / "processed" / "boxing" / "person05_walking_d1").rmdir()
    (kth_root / "processed" / "boxing" / "backup").mkdir()
    with pytest.raises(DataError, match="backup: folder name does not follow personNN_<action>_dK"):
        build_dataset(config(kth_root).data)


def test_corrupt_png_is_named(kth_root):
    bad = kth_root / "processed" / "walking" / "person18_walking_d1" / "image-7_64x64.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="person18_walking_d1/image-7_64x64.png is not a readable PNG"):
        build_dataset(config(kth_root).data)


def test_splits_are_checked(kth_root):
    with pytest.raises(ConfigError, match="not training persons"):
        config(kth_root, **{"data.val_persons": [17]})
    with pytest.raises(ConfigError, match=r"persons \[2\] are in both"):
        config(kth_root, **{"data.test_persons": [2, 17]})
    with pytest.raises(DataError, match=r"no video of the test persons \[20\]"):
        build_dataset(config(kth_root, **{"data.test_persons": [20]}).data)


# ------------------------------------------------------------------------------------------- the config
def test_config_holds_the_papers_settings():
    cfg = load_config("kth")
    d, m, loss = cfg.data, cfg.model, cfg.loss
    assert (d.cond_frames, d.pred_frames, d.test_horizons) == (10, 10, [30])
    assert d.batch_size == 100 and d.batches_per_epoch == 1000
    assert d.train_persons == list(range(1, 17)) and d.test_persons == list(range(17, 26))
    assert d.val_persons == [16]
    assert (m.encoder, m.decoder, m.s_dim, m.t_dim, m.skips, m.blocks, m.width) == (
        "vgg64_skip", "vgg64_skip", 128, 50, True, 1, 512)
    assert m.final_activation == "sigmoid" and m.combine == "concat"
    assert (loss.lambda_pred, loss.lambda_ae, loss.lambda_s, loss.lambda_t) == (45, 10, 10, 1e-3)
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == [0.9, 0.99] and cfg.trainer.max_epochs == 125


def test_videos_shorter_than_a_window_name_the_frames_needed(kth_root):
    """Every video has 12 frames (one 5): a window of 2 + 11 frames fits nowhere."""
    with pytest.raises(DataError, match=r"no training window of 13 frames fits in any training video"):
        build_dataset(config(kth_root, **{"data.pred_frames": 11}).data)
    with pytest.raises(DataError, match=r"no test window of 13 frames fits in any test video"):
        build_dataset(config(kth_root, **{"data.test_horizons": [11]}).data)
