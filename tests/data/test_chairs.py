"""3D Warehouse Chairs: archive layout, preprocessing, view order, windows, split, cache, errors, config.

The fixture archive has the real layout and file names: 4 chairs × 62 real 600×600 PNG renders whose
central 400×400 region is a uniform colour coding (chair, elevation, azimuth), a view-dependent pattern in
one corner, and a black border that the centre crop must remove.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from varsep.config.datasets import ChairsConfig
from varsep.data.chairs import ChairsDataset, sequence_views, split_chairs
from varsep.data.chairs import archive as chairs_archive
from varsep.data.chairs.archive import load_frames, parse_view, preprocess_image, view_order
from varsep.errors import ConfigError, DataError
from varsep.train.stream import TrainStream

AZIMUTHS = [int(k * 360 / 31) for k in range(31)]  # 0, 11, 23, 34, … 348
ELEVATIONS = [20, 30]


def view_files() -> list[tuple[str, int, int]]:
    """(file name, elevation index, azimuth index) in the archive's numbering: within each elevation the
    image numbers follow the azimuth but start one step after 0 (image_001 = p020 t011, image_031 = t000)."""
    files = []
    number = 1
    for e, elevation in enumerate(ELEVATIONS):
        for k in range(31):
            a = (k + 1) % 31 if e == 0 else k
            files.append((f"image_{number:03d}_p{elevation:03d}_t{AZIMUTHS[a]:03d}_r096.png", e, a))
            number += 1
    return files


def colour(chair: int, e: int, a: int) -> tuple[int, int, int]:
    return 40 * chair + 20, 8 * a + 4, 100 * e + 50


def render(chair: int, e: int, a: int, size: int = 600) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)  # black border, outside the centre crop
    lo, hi = size // 6, size - size // 6
    img[lo:hi, lo:hi] = colour(chair, e, a)
    side = size // 6  # a view-dependent pattern in the crop's top-left corner
    ramp = np.add.outer(np.arange(side), 3 * np.arange(side)) * (a + 1) + 50 * e
    img[lo:lo + side, lo:lo + side, 0] = ramp % 256
    return img


def write_archive(root: Path, num_chairs: int = 4, size: int = 600, views: list | None = None) -> Path:
    folder = root / "rendered_chairs"
    for c in range(num_chairs):
        renders = folder / f"chair{c:02d}_{'abcdef'[c % 6]}" / "renders"
        renders.mkdir(parents=True)
        for name, e, a in views or view_files():
            Image.fromarray(render(c, e, a, size)).save(renders / name, compress_level=1)
    (folder / "all_chair_names.mat").write_bytes(b"MATLAB 5.0")  # the archive's extra file: ignored
    return folder


SMALL_VIEWS = [(f"image_{i + 1:03d}_p{20 + 10 * e:03d}_t{a * 120:03d}_r096.png", e, a)
               for i, (e, a) in enumerate((e, a) for e in range(2) for a in range(3))]
SMALL = {"source_size": 48, "crop_size": 32, "frame_size": 8, "views_per_chair": None}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_archive(tmp_path_factory.mktemp("chairs"))
    Image.new("RGB", (64, 64)).save(folder / "chair00_a" / "renders" / "0.png")  # authors' preprocessed file
    return folder


@pytest.fixture(scope="module")
def cached(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict, Path]:
    cache = tmp_path_factory.mktemp("cache")
    frames, meta = load_frames(archive.parent, cache_dir=cache, progress=False)
    return frames, meta, cache


# ------------------------------------------------------------------------------------------- view order
def test_parse_view_and_order() -> None:
    assert parse_view("image_017_p030_t186_r096.png") == (17, 30, 186, 96)
    assert parse_view("0.png") is None and parse_view("image_017_p030_t186_r096.png.bak") is None
    names = ["image_031_p020_t360_r096.png", "image_002_p020_t023_r096.png", "image_032_p030_t000_r096.png",
             "image_001_p020_t011_r096.png", "image_033_p030_t011_r096.png"]
    views = [parse_view(n) for n in names]
    # elevation first, then azimuth mod 360 (t360 is t000): p020 t000, t011, t023, then p030 t000, t011
    assert [names[i][6:9] for i in view_order(views)] == ["031", "001", "002", "032", "033"]


def test_sequence_views_cycles() -> None:
    elevations = [20] * 31 + [30] * 31
    table = sequence_views(elevations, 20)
    assert table.shape == (62, 20)
    np.testing.assert_array_equal(table, (np.arange(62)[:, None] + np.arange(20)) % 62)
    assert table[50].tolist()[:14] == list(range(50, 62)) + [0, 1]  # back to the first ring
    ring = sequence_views(elevations, 20, cycle="ring")
    np.testing.assert_array_equal(ring[:31], (np.arange(31)[:, None] + np.arange(20)) % 31)
    np.testing.assert_array_equal(ring[31:], 31 + (np.arange(31)[:, None] + np.arange(20)) % 31)
    back = sequence_views(elevations, 3, reverse=True)
    assert back[5].tolist() == [5, 4, 3] and back[0].tolist() == [0, 61, 60]
    assert sequence_views(elevations, 62).shape == (62, 62)
    with pytest.raises(DataError, match="longer than a full turn of 31 views"):
        sequence_views(elevations, 32, cycle="ring")


def test_split_is_the_authors_and_disjoint() -> None:
    train, val, test = split_chairs(1393)
    assert (len(train), len(val), len(test)) == (1125, 59, 209)
    assert len(set(train) | set(val) | set(test)) == 1393
    names = [f"{i:04x}" for i in range(1393)]
    shuffled = list(names)
    np.random.RandomState(42).shuffle(shuffled)  # the authors' split: shuffled sorted names, first 85 %
    assert [names[i] for i in np.concatenate([train, val])] == shuffled[:1184]
    assert [names[i] for i in test] == shuffled[1184:]
    np.testing.assert_array_equal(split_chairs(1393)[2], test)
    assert set(split_chairs(1393, seed=1)[2]) != set(test)
    with pytest.raises(DataError, match="every part needs a chair"):
        split_chairs(1)


# -------------------------------------------------------------------------------------- preprocessing
def test_preprocessing_matches_pillow_and_view_order(archive: Path, cached) -> None:
    frames, meta, _ = cached
    assert frames.shape == (4, 62, 3, 64, 64) and frames.dtype == np.uint8
    assert meta["chairs"] == ["chair00_a", "chair01_b", "chair02_c", "chair03_d"]
    files = {(e, a): name for name, e, a in view_files()}
    for c, v in [(0, 0), (1, 17), (3, 30), (2, 31), (0, 61)]:
        e, a = divmod(v, 31)  # view v: elevation index, then azimuth index (ascending)
        assert (meta["views"][v]["elevation"], meta["views"][v]["azimuth"]) == (ELEVATIONS[e], AZIMUTHS[a])
        path = archive / meta["chairs"][c] / "renders" / files[e, a]
        direct = Image.open(path).convert("RGB").crop((100, 100, 500, 500)).resize((64, 64), Image.LANCZOS)
        np.testing.assert_array_equal(frames[c, v], np.asarray(direct).transpose(2, 0, 1))
        assert tuple(frames[c, v, :, 40, 40]) == colour(c, e, a)  # uniform region: exact colour
        # The black border is cropped away: the far corner is the uniform colour too.
        assert np.abs(frames[c, v, :, 63, 63].astype(int) - colour(c, e, a)).max() <= 1
    np.testing.assert_array_equal(frames[:, :, 1, 40, 40], np.tile(8 * (np.arange(62) % 31) + 4, (4, 1)))


def test_preprocess_composites_alpha_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[20:28, 20:28, 3] = 255  # an opaque red square on a transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = preprocess_image(tmp_path / "a.png", source_size=48, crop_size=32, frame_size=32)
    assert out.shape == (3, 32, 32)
    assert tuple(out[:, 0, 0]) == (255, 255, 255) and tuple(out[:, 15, 15]) == (255, 0, 0)


def test_root_may_be_the_folder_or_its_parent(archive: Path, cached) -> None:
    frames, _, cache = cached
    again, _ = load_frames(archive, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again, frames)


# -------------------------------------------------------------------------------------------- windows
def dataset(archive: Path, cache: Path, **settings) -> ChairsDataset:
    config = ChairsConfig(root=str(archive), cache_dir=str(cache), **settings)
    config.validate()
    return ChairsDataset(config, progress=False)


def test_windows_split_and_epoch(archive: Path, cached) -> None:
    frames, _, cache = cached
    data = dataset(archive, cache, val_fraction=0.34)  # 4 chairs: 2 train, 1 validation, 1 test
    assert data.spec.frame_shape == (3, 64, 64) and data.spec.train_length == 15
    split = [set(data.train_ids), set(data.val_ids), set(data.test_ids)]
    assert [len(s) for s in split] == [2, 1, 1] and set.union(*split) == {0, 1, 2, 3}
    order = np.random.RandomState(42).permutation(4)
    assert list(data.test_ids) == [order[3]] and list(data.val_ids) == [order[2]]

    train = data.train_source().windows
    assert len(train) == 62 * 2 and train.length == 15
    idx = np.array([0, 61, 62 + 50, 5])
    got = train.take(idx)
    assert got.dtype == np.float32 and got.shape == (4, 15, 3, 64, 64)
    for row, i in enumerate(idx):
        chair, start = data.train_ids[i // 62], i % 62
        want = frames[chair, (start + np.arange(15)) % 62] / np.float32(255)
        np.testing.assert_allclose(got[row], want, rtol=0, atol=1e-7)
    assert "views from p030 t" in train.describe(61)

    test = data.test_windows(15)
    assert len(test) == 62 and test.length == 20
    assert set(test.chairs(np.arange(62))) == {data.test_ids[0]}
    val = data.val_windows()
    assert len(val) == 31 and val.length == 20 and val.views(np.array([1]))[0, 0] == 2
    stream = TrainStream(data.train_source(), batch_size=8, batches_per_epoch=data.default_batches_per_epoch,
                         seed=0, ae_choices=1)
    assert len(stream) == 124 // 8  # an epoch: every training window once


def test_ring_and_reverse_windows(archive: Path, cached) -> None:
    frames, _, cache = cached
    ring = dataset(archive, cache, cycle="ring").test_windows(15)
    assert ring.views(np.array([25]))[0].tolist() == [25, 26, 27, 28, 29, 30] + list(range(14))
    back = dataset(archive, cache, reverse_views=True).test_windows(15)
    assert back.views(np.array([1]))[0, :3].tolist() == [1, 0, 61]


def test_swap_truth(archive: Path, cached) -> None:
    frames, _, cache = cached
    windows = dataset(archive, cache, train_fraction=0.5).test_windows(15)  # 2 test chairs
    content, dynamic = np.array([3, 70]), np.array([65, 10])
    truth = windows.swap_truth(content, dynamic)
    for row in range(2):
        chair = windows.chairs(content)[row]
        assert chair != windows.chairs(dynamic)[row]
        want = frames[chair, (dynamic[row] % 62 + np.arange(20)) % 62] / np.float32(255)
        np.testing.assert_allclose(truth[row], want, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(windows.swap_truth(content, content), windows.take(content))


# ---------------------------------------------------------------------------------------------- cache
def test_cache_is_reused_without_reading_pngs(archive: Path, cached, monkeypatch) -> None:
    frames, meta, cache = cached
    stem = "varsep-chairs-c400-64px"
    assert sorted(p.name for p in cache.iterdir()) == [f"{stem}.json", f"{stem}.npy"]
    stored = json.loads((cache / f"{stem}.json").read_text())
    assert stored["chairs"] == meta["chairs"] and len(stored["views"]) == 62

    def fail(*args, **kwargs):
        raise AssertionError("a PNG was read although the cache is valid")

    monkeypatch.setattr(chairs_archive, "preprocess_image", fail)
    written = (cache / f"{stem}.npy").stat().st_mtime_ns
    again, _ = load_frames(archive, cache_dir=cache, progress=False)
    assert isinstance(again, np.memmap) and (cache / f"{stem}.npy").stat().st_mtime_ns == written
    np.testing.assert_array_equal(again, frames)


def test_cache_next_to_the_data_and_invalidation(tmp_path: Path) -> None:
    folder = write_archive(tmp_path, num_chairs=2, size=48, views=SMALL_VIEWS)
    first, _ = load_frames(tmp_path, progress=False, **SMALL)
    npy = folder / "varsep-chairs-c32-8px.npy"
    assert npy.is_file() and (folder / "varsep-chairs-c32-8px.json").is_file()
    before = first[1, 4].copy()

    # A render changes: the cache is rebuilt from the new file.
    path = folder / "chair01_b" / "renders" / SMALL_VIEWS[4][0]
    Image.fromarray(np.full((48, 48, 3), 7, np.uint8)).save(path)
    os.utime(path, ns=(1, 1))
    second = np.array(load_frames(tmp_path, progress=False, **SMALL)[0])  # a copy: the file is damaged below
    assert not np.array_equal(second[1, 4], before) and (second[1, 4] == 7).all()
    np.testing.assert_array_equal(second[0], first[0])

    # Other settings: another cache file, this one kept.
    load_frames(tmp_path, progress=False, **{**SMALL, "frame_size": 4})
    assert (folder / "varsep-chairs-c32-4px.npy").is_file() and npy.is_file()

    # A truncated cache is detected and rebuilt.
    npy.write_bytes(npy.read_bytes()[:200])
    with pytest.warns(UserWarning, match="corrupt"):
        third, _ = load_frames(tmp_path, progress=False, **SMALL)
    np.testing.assert_array_equal(third, second)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_png_is_named_and_leaves_no_cache(tmp_path: Path) -> None:
    folder = write_archive(tmp_path, num_chairs=2, size=48, views=SMALL_VIEWS)
    bad = folder / "chair01_b" / "renders" / SMALL_VIEWS[2][0]
    good = bad.read_bytes()
    for broken in (b"\x89PNG\r\n\x1a\n broken", good[:len(good) // 2]):  # garbage, then a truncated PNG
        bad.write_bytes(broken)
        with pytest.raises(DataError, match=rf"chair01_b/renders/{bad.name} is not a readable PNG"):
            load_frames(tmp_path, progress=False, **SMALL)
        assert sorted(p.name for p in folder.iterdir()) == ["all_chair_names.mat", "chair00_a", "chair01_b"]


def test_prepare_command(archive: Path, tmp_path: Path, capsys) -> None:
    from varsep.cli import main

    assert main(["prepare", "chairs", "--root", str(archive.parent), "--cache-dir", str(tmp_path),
                 "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 chairs × 62 views (3×64×64) cached in" in out and "varsep fit -c chairs --data.root" in out
    assert (tmp_path / "varsep-chairs-c400-64px.npy").is_file()


# --------------------------------------------------------------------------------------------- errors
def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.root is not set"):
        load_frames(None)
    with pytest.raises(DataError, match=r"nowhere does not exist; download and unpack rendered_chairs\.tar"):
        load_frames(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no chair folders"):
        load_frames(tmp_path / "empty")
    folder = write_archive(tmp_path / "a", num_chairs=2, size=48, views=SMALL_VIEWS)
    (folder / "stray").mkdir()
    with pytest.raises(DataError, match="chair folder .*stray has no renders/ subfolder"):
        load_frames(folder, **SMALL)
    (folder / "stray" / "renders").mkdir()
    with pytest.raises(DataError, match=r"stray/renders holds no renders named image_NNN"):
        load_frames(folder, **SMALL)
    (folder / "stray" / "renders").rmdir()
    (folder / "stray").rmdir()
    with pytest.raises(DataError, match="holds 6 renders; expected 62"):
        load_frames(folder, **{**SMALL, "views_per_chair": 62})
    os.remove(folder / "chair01_b" / "renders" / SMALL_VIEWS[5][0])
    with pytest.raises(DataError, match="does not hold the same views as chair00_a"):
        load_frames(folder, **SMALL)


def test_wrong_image_size_names_file_and_size(tmp_path: Path) -> None:
    folder = write_archive(tmp_path, num_chairs=1, size=48, views=SMALL_VIEWS)
    bad = folder / "chair00_a" / "renders" / SMALL_VIEWS[1][0]
    Image.new("RGB", (50, 40)).save(bad)
    with pytest.raises(DataError, match=rf"{bad.name}: image of 50×40 pixels; expected 48×48"):
        load_frames(tmp_path, progress=False, **SMALL)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="frame_size ≤ data.crop_size"):
        ChairsConfig(crop_size=700).validate()
    with pytest.raises(ConfigError, match="train_fraction"):
        ChairsConfig(train_fraction=1.0).validate()


# --------------------------------------------------------------------------------------------- config
def test_packaged_config_holds_the_paper_settings() -> None:
    """(Two training steps of every packaged config run in tests/test_config.py.)"""
    from varsep.config import load_config

    config = load_config("chairs")
    d, m, loss, opt = config.data, config.model, config.loss, config.optim
    assert (d.name, d.cond_frames, d.pred_frames, d.test_horizons) == ("chairs", 5, 10, [15])
    assert (d.batch_size, d.batches_per_epoch, d.cycle, d.train_fraction) == (128, None, "chair", 0.85)
    assert (m.encoder, m.decoder, m.final_activation, m.s_dim, m.t_dim, m.combine) == \
        ("resnet18", "dcgan", "sigmoid", 128, 10, "concat")
    assert (m.blocks, m.width, m.gain, m.reconstruct_cond) == (1, 512, 0.71, True)
    assert (loss.lambda_pred, loss.lambda_ae, loss.lambda_s, loss.lambda_t) == (45, 1, 1, 1e-3)
    assert (opt.lr, opt.betas, config.trainer.max_epochs) == (4e-4, [0.9, 0.99], 120)
