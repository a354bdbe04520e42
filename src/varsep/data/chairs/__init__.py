"""3D Warehouse Chairs as rotation sequences (paper Appendix D.4, docs/data/chairs.md).

The archive, its file names and the preprocessing cache are handled in varsep.data.chairs_archive:
frames are RGB 3×64×64 (centre crop 400×400 of the 600×600 renders, Lanczos resize), 62 views per chair.

View order: by elevation, then azimuth, both ascending. Playing the views by increasing azimuth turns
the chair from right to left: it is the order of the authors' code (views sorted by file name, whose image
numbers follow the azimuth within each elevation), which the paper describes as a rotation "from right to
left". ``reverse_views: true`` plays every sequence backwards.

Sequences (``cycle``): every view starts one sequence (62 per chair), which runs cyclically
- ``chair`` (default, as the authors' code): through all 62 views in that order: a full turn at 20°
  elevation that goes on into a full turn at 30° (at the seam the azimuth keeps stepping while the
  elevation rises 10°), then back to the start view;
- ``ring``: through the 31 views of the start view's elevation only: a pure rotation back to the start.
A window is such a sequence cut to ``cond_frames + n`` views (no longer than one full cycle).

Windows: training 5 + 10 views from every start view of every training chair (an epoch is all of them:
62 per training chair); test 5 + 15 views from every start view of every test chair; validation 5 + 15
views from every ``val_stride``-th start view of the validation chairs.

Split (the authors' split): chairs sorted by folder name, permuted by ``np.random.RandomState(split_seed)``
(42), the first ⌊85 %⌋ train and the rest test. Validation: the last ``val_fraction`` (5 %, rounded) of the
training chairs in that permuted order — never test chairs — so 1393 chairs give 1125 / 59 / 209.

Content swap (docs/evaluation.md): :class:`ChairWindows` tells which chair (:meth:`ChairWindows.chairs`) and views
(:meth:`ChairWindows.views`) a window shows, and :meth:`ChairWindows.swap_truth` renders the chair of one
window at the views of another: the ground truth of a forecast with S from the first and T from the second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from varsep.config.datasets import ChairsConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet
from varsep.data.chairs.archive import load_frames
from varsep.errors import DataError
from varsep.spec import DataSpec


# ------------------------------------------------------------------------------------------ sequences
def sequence_views(elevations: Sequence[int], length: int, *, cycle: str = "chair",
                   reverse: bool = False) -> np.ndarray:
    """(V, length) table: row s holds the views of the sequence that starts at view s.

    Views are numbered in view order (chairs_archive.view_order) and ``elevations[v]`` is the elevation
    of view v. With cycle "chair" the sequence runs through all V views cyclically, with "ring" through
    the views of its own elevation; ``reverse`` plays the order backwards.
    """
    elevations = np.asarray(elevations)
    num = len(elevations)
    cycles = [np.arange(num)] if cycle == "chair" else [np.flatnonzero(elevations == e)
                                                         for e in dict.fromkeys(elevations.tolist())]
    table = np.empty((num, length), dtype=np.int64)
    for members in cycles:
        members = members[::-1] if reverse else members
        if length > len(members):
            raise DataError(f"windows of {length} frames are longer than a full turn of {len(members)} views "
                            f"(data.cycle: {cycle}); use fewer frames or data.cycle: chair")
        steps = (np.arange(len(members))[:, None] + np.arange(length)) % len(members)
        table[members] = members[steps]
    return table


# ------------------------------------------------------------------------------------------ windows
class ChairWindows(WindowSet):
    """Windows of the rotation sequences of some chairs: window ``i`` is chair ``i // starts``'s sequence
    from its ``i % starts``-th start view.

    For the content swap protocol: :meth:`chairs` and :meth:`views` say what a window shows, and
    :meth:`swap_truth` renders the content window's chair at the dynamic window's views (its ground truth).
    """

    def __init__(self, frames: np.ndarray, chairs: np.ndarray, table: np.ndarray, *, stride: int = 1,
                 names: Sequence[str] | None = None, view_labels: Sequence[str] | None = None) -> None:
        self.frames = frames  # uint8 (all chairs, V, 3, S, S)
        self.chair_ids = np.asarray(chairs, dtype=np.int64)
        self.starts = np.arange(0, table.shape[0], stride)
        self.table = table  # (V, length): the views of the sequence from each start view
        self.length = table.shape[1]
        self.names = list(names) if names is not None else [str(i) for i in range(len(frames))]
        self.view_labels = (list(view_labels) if view_labels is not None
                            else [f"view {v}" for v in range(len(table))])

    def __len__(self) -> int:
        return len(self.chair_ids) * len(self.starts)

    def chairs(self, indices: np.ndarray) -> np.ndarray:
        """The chair (row of the cache) shown by each window."""
        return self.chair_ids[np.asarray(indices, dtype=np.int64) // len(self.starts)]

    def views(self, indices: np.ndarray) -> np.ndarray:
        """(n, length) views shown by each window, in frame order."""
        return self.table[self.starts[np.asarray(indices, dtype=np.int64) % len(self.starts)]]

    def render(self, chairs: np.ndarray, views: np.ndarray) -> np.ndarray:
        """Frames float32 (n, length, 3, S, S) of chair ``chairs[k]`` at views ``views[k]``, in [0, 1]."""
        chairs, views = np.asarray(chairs, dtype=np.int64), np.asarray(views, dtype=np.int64)
        order = np.argsort(chairs, kind="stable")  # read the memory map front to back
        out = np.empty((len(chairs), views.shape[1], *self.frames.shape[2:]), dtype=np.float32)
        out[order] = self.frames[chairs[order][:, None], views[order]]
        out *= np.float32(1 / 255)
        return out

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.render(self.chairs(indices), self.views(indices))

    def swap_truth(self, content: np.ndarray, dynamic: np.ndarray) -> np.ndarray:
        """Content-swap ground truth: the chair of windows ``content`` at the views of windows ``dynamic``."""
        return self.render(self.chairs(content), self.views(dynamic))

    def sequence_ids(self, indices: np.ndarray) -> np.ndarray:
        return self.chairs(indices)

    def describe(self, index: int) -> str:
        chair, first = int(self.chairs(np.array([index]))[0]), int(self.views(np.array([index]))[0, 0])
        return f"chair {self.names[chair]}, {self.length} views from {self.view_labels[first]}"


# ------------------------------------------------------------------------------------------ data set
def split_chairs(num_chairs: int, *, train_fraction: float = 0.85, seed: int = 42,
                 val_fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) chair indices (into the chairs sorted by name); see the module docstring."""
    order = np.random.RandomState(seed).permutation(num_chairs)
    num_train = int(num_chairs * train_fraction)
    num_val = round(num_train * val_fraction)
    if num_train < 1 or num_train >= num_chairs or num_val >= num_train:
        raise DataError(f"cannot split {num_chairs} chairs into {num_train - num_val} training, {num_val} "
                        f"validation and {num_chairs - num_train} test chairs; every part needs a chair "
                        f"(data.train_fraction {train_fraction}, data.val_fraction {val_fraction})")
    return order[:num_train - num_val], order[num_train - num_val:num_train], order[num_train:]


class ChairsDataset(SequenceDataset):
    """Rotating chairs: 5 conditioning views, 10 predicted in training, 15 in the content swap test."""

    config_class = ChairsConfig
    default_encoder = "resnet18"
    default_decoder = "dcgan"
    default_batches_per_epoch = None  # an epoch: every training window once, 62 per training chair
    nominal_frame_shape = (3, 64, 64)

    def __init__(self, config: ChairsConfig, *, progress: bool = True) -> None:
        super().__init__(config)
        self.frames, self.meta = load_frames(
            config.root, cache_dir=config.cache_dir, source_size=config.source_size,
            crop_size=config.crop_size, frame_size=config.frame_size, views_per_chair=config.views_per_chair,
            workers=config.workers, progress=progress)
        self.chair_names: list[str] = self.meta["chairs"]
        self.elevations = [v["elevation"] for v in self.meta["views"]]
        self.view_labels = [f"p{v['elevation']:03d} t{v['azimuth'] % 360:03d}" for v in self.meta["views"]]
        self.train_ids, self.val_ids, self.test_ids = split_chairs(
            len(self.chair_names), train_fraction=config.train_fraction, seed=config.split_seed,
            val_fraction=config.val_fraction)
        # Fail now, not mid-training, if a window is longer than a full turn.
        longest = max(self.spec.train_length, self.window_length(max(config.test_horizons)))
        sequence_views(self.elevations, longest, cycle=config.cycle)

    @property
    def spec(self) -> DataSpec:
        return self.make_spec(tuple(self.frames.shape[2:]))

    def windows(self, chairs: np.ndarray, length: int, stride: int = 1) -> ChairWindows:
        """Every sequence of ``length`` views of ``chairs`` (starting at every ``stride``-th view)."""
        table = sequence_views(self.elevations, length, cycle=self.config.cycle,
                               reverse=self.config.reverse_views)
        return ChairWindows(self.frames, chairs, table, stride=stride, names=self.chair_names,
                            view_labels=self.view_labels)

    def train_source(self) -> SetSource:
        return SetSource(self.windows(self.train_ids, self.spec.train_length))

    def val_windows(self) -> ChairWindows:
        length = self.window_length(max(self.config.test_horizons))
        return self.windows(self.val_ids, length, self.config.val_stride)

    def test_windows(self, horizon: int) -> ChairWindows:
        return self.windows(self.test_ids, self.window_length(horizon))


# ---------------------------------------------------------------------------------------------- CLI
__all__ = ["ChairWindows", "ChairsDataset", "sequence_views", "split_chairs"]
