"""Training batches: a pure function of (seed, epoch, index); resumable; sliced across processes."""

from __future__ import annotations

import numpy as np
import pytest

from varsep.data.base import SetSource, WindowSource
from varsep.data.windows import ArrayWindows, ListWindows
from varsep.errors import ConfigError
from varsep.train.stream import TrainStream, WindowBatches

ARRAY = np.arange(6 * 10 * 2, dtype=np.float32).reshape(6, 10, 2)  # 6 sequences, 10 frames, 2 values


def stream(**kw):
    args = {"batch_size": 4, "batches_per_epoch": 3, "seed": 7, "ae_choices": 5} | kw
    return TrainStream(SetSource(ArrayWindows(ARRAY, 4)), **args)


def keys(batches):
    return [tuple(b["key"].tolist()) for b in batches]


def test_batches_are_deterministic_and_differ_across_epochs():
    a, b = stream(), stream()
    e0a, e0b = list(a), list(b)
    e1a = list(a)
    for x, y in zip(e0a, e0b, strict=True):
        np.testing.assert_array_equal(x["frames"], y["frames"])
        assert x["ae_index"] == y["ae_index"]
    assert keys(e0a) == [(0, 0), (0, 1), (0, 2)] and keys(e1a) == [(1, 0), (1, 1), (1, 2)]
    assert not np.array_equal(e0a[0]["frames"], e1a[0]["frames"])
    assert all(0 <= x["ae_index"] < 5 for x in e0a + e1a)


def test_windows_are_consecutive_frames_of_one_sequence():
    batch = stream().batch(0, 0)["frames"].numpy()
    steps = np.diff(batch[..., 0], axis=1)
    assert np.all(steps == 2)  # consecutive frames of one sequence differ by one frame (2 values)


def test_resume_continues_with_the_same_batches():
    full = stream()
    reference = [b for _ in range(3) for b in full]
    run = stream()
    it = iter(run)
    consumed = [next(it) for _ in range(2)]
    run.mark_trained(consumed[-1]["key"])
    state = run.state_dict()
    assert state == {"epoch": 0, "start": 2}
    resumed = stream()
    resumed.load_state_dict(state)
    rest = list(resumed) + list(resumed) + list(resumed)
    assert keys(consumed + rest)[:9] == keys(reference)
    for x, y in zip(consumed + rest, reference, strict=False):
        np.testing.assert_array_equal(x["frames"], y["frames"])


def test_end_of_epoch_state_points_to_the_next_epoch():
    s = stream()
    last = list(s)[-1]
    s.mark_trained(last["key"])
    assert s.state_dict() == {"epoch": 1, "start": 0}


def test_processes_take_slices_of_the_same_global_batch():
    whole = stream().batch(2, 1)
    parts = [stream(rank=r, world_size=2).batch(2, 1) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["frames"] for p in parts]), whole["frames"])
    assert parts[0]["ae_index"] == parts[1]["ae_index"] == whole["ae_index"]
    with pytest.raises(ConfigError, match="not divisible by the 3 processes: set data.batch_size"):
        stream(world_size=3)


def test_pass_mode_visits_every_window_once_per_epoch():
    s = stream(batches_per_epoch=None, batch_size=5)
    windows = ArrayWindows(ARRAY, 4)
    assert len(s) == len(windows) // 5
    seen = np.concatenate([b["frames"][:, 0, 0].numpy() for b in s])
    starts = windows.take(np.arange(len(windows)))[:, 0, 0]
    assert len(np.unique(seen)) == len(seen) and set(seen) <= set(starts)


def test_generated_sources_need_an_epoch_length():
    class Noise(WindowSource):
        length = 3

        def draw(self, rng, n):
            return rng.random((n, 3, 2), dtype=np.float32)

    s = TrainStream(Noise(), batch_size=2, batches_per_epoch=2, seed=0, ae_choices=1)
    np.testing.assert_array_equal(s.batch(0, 1)["frames"], TrainStream(Noise(), batch_size=2, batches_per_epoch=2,
                                                                       seed=0, ae_choices=1).batch(0, 1)["frames"])
    with pytest.raises(ValueError, match="batches_per_epoch"):
        TrainStream(Noise(), batch_size=2, batches_per_epoch=None, seed=0, ae_choices=1)


def test_window_batches_cover_all_windows_across_ranks():
    windows = ArrayWindows(ARRAY, 4)
    seen = []
    for rank in range(3):
        seen += [i for b in WindowBatches(windows, 4, rank=rank, world_size=3) for i in b["index"].tolist()]
    assert sorted(seen) == list(range(len(windows)))


def test_array_and_list_windows_agree():
    a = ArrayWindows(ARRAY, 4, sequences=[1, 3], stride=2)
    lst = ListWindows([ARRAY[1], ARRAY[3]], 4, stride=2)
    idx = np.array([5, 0, 3])
    np.testing.assert_array_equal(a.take(idx), lst.take(idx))
    assert a.describe(0) == "sequence 1, frames 0–3"


def test_scaled_uint8_windows():
    raw = (np.arange(2 * 5 * 3) % 256).astype(np.uint8).reshape(2, 5, 3)
    w = ArrayWindows(raw, 2, scale=1 / 255)
    np.testing.assert_allclose(w.take(np.array([1]))[0], raw[0, 1:3] / 255, rtol=1e-6)


def test_kept_targets_are_drawn_per_sequence_and_reproducibly():
    s = stream(keep=(6, 0.5))
    batch = s.batch(0, 1)
    keep = batch["keep"].numpy()
    assert keep.shape == (4, 3) and batch["ae_index"] == 0
    assert np.all(np.diff(keep, axis=1) > 0) and keep.min() >= 0 and keep.max() < 6
    np.testing.assert_array_equal(keep, stream(keep=(6, 0.5)).batch(0, 1)["keep"])
    assert len({tuple(r) for r in keep}) > 1  # a different subset per sequence
    halves = [stream(keep=(6, 0.5), rank=r, world_size=2).batch(0, 1)["keep"] for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), keep)


@pytest.mark.parametrize("workers", [1, 3])
def test_reading_ahead_in_threads_gives_the_same_batches_in_order(workers):
    reference = stream(batches_per_epoch=5)
    plain = [b for _ in range(2) for b in reference]
    ahead = stream(batches_per_epoch=5, workers=workers)
    threaded = [b for _ in range(2) for b in ahead]
    assert keys(threaded) == keys(plain)
    for x, y in zip(threaded, plain, strict=True):
        np.testing.assert_array_equal(x["frames"], y["frames"])
        assert x["ae_index"] == y["ae_index"]


def test_reading_ahead_stops_cleanly_mid_epoch():
    import threading

    ahead = stream(batches_per_epoch=50, workers=2)
    it = iter(ahead)
    first = [next(it) for _ in range(3)]
    it.close()  # what happens when Lightning stops mid-epoch (max_steps) and drops the iterator
    assert keys(first) == [(0, 0), (0, 1), (0, 2)]
    assert not any(t.name.startswith("varsep-batches") for t in threading.enumerate())
