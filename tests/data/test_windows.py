"""Window sets over arrays: which windows share which frames."""

from __future__ import annotations

import numpy as np


def test_frame_ids_are_equal_exactly_where_the_windows_share_a_frame():
    from varsep.data.windows import ArrayWindows, ListWindows, SpanWindows

    rng = np.random.default_rng(0)
    array = rng.random((3, 20, 1, 4, 4), dtype=np.float32)
    sets = {"array": ArrayWindows(array, 6, sequences=[0, 2], stride=2),
            "list": ListWindows([array[0], array[1, :13], array[2]], 6),
            "span": SpanWindows.over_segments(array.reshape(60, 1, 4, 4), [(0, 20), (20, 33), (40, 60)], 6)}
    for name, windows in sets.items():
        idx = np.arange(len(windows))
        offsets = np.arange(6)
        ids = windows.frame_ids(idx, offsets).reshape(-1)
        frames = windows.take(idx).reshape(len(ids), -1)
        distinct = {frame.tobytes() for frame in frames}  # random frames: equal values only where shared
        assert len(np.unique(ids)) == len(distinct), name
        for i in np.unique(ids):
            same = frames[ids == i]
            assert (same == same[0]).all(), name
