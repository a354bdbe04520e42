"""3D Warehouse Chairs as rotation sequences (paper Appendix D.4, DESIGN §3).

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

Content swap (DESIGN §4): :class:`ChairWindows` tells which chair (:meth:`ChairWindows.chairs`) and views
(:meth:`ChairWindows.views`) a window shows, and :meth:`ChairWindows.swap_truth` renders the chair of one
window at the views of another: the ground truth of a forecast with S from the first and T from the second.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from varsep.config import DataConfig
from varsep.data.base import PREPARERS, Command, DataSpec, SequenceDataset, SetSource, WindowSet, register
from varsep.data.chairs_archive import load_frames
from varsep.errors import ConfigError, DataError


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


@dataclass
class ChairsConfig(DataConfig):
    """3D Warehouse Chairs settings (defaults: the paper's, Appendix D.4)."""

    name: str = "chairs"
    pred_frames: int = 10
    test_horizons: list[int] = field(default_factory=lambda: [15])
    cache_dir: str | None = None  # where the preprocessed frames go (default: the rendered_chairs folder)
    source_size: int = 600  # expected render size in pixels (square)
    crop_size: int = 400  # centre crop before resizing
    frame_size: int = 64  # frames are frame_size × frame_size
    views_per_chair: int | None = 62  # None: any number, the same for every chair
    cycle: Literal["chair", "ring"] = "chair"
    reverse_views: bool = False  # True: the chair turns left to right
    train_fraction: float = 0.85
    split_seed: int = 42
    val_fraction: float = 0.05  # of the training chairs, held out for validation
    val_stride: int = 2  # validation windows start at every 2nd view
    workers: int | None = None  # preprocessing threads (default: up to 8)

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.frame_size <= self.crop_size <= self.source_size:
            raise ConfigError(f"need 1 ≤ data.frame_size ≤ data.crop_size ≤ data.source_size, got "
                              f"{self.frame_size}, {self.crop_size}, {self.source_size}")
        if not 0 < self.train_fraction < 1 or not 0 <= self.val_fraction < 1:
            raise ConfigError(f"data.train_fraction must be in (0, 1) and data.val_fraction in [0, 1), got "
                              f"{self.train_fraction} and {self.val_fraction}")
        if self.val_stride < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError("data.val_stride and data.workers must be ≥ 1")
        if self.views_per_chair is not None and self.views_per_chair < 1:
            raise ConfigError(f"data.views_per_chair must be ≥ 1 or null, got {self.views_per_chair}")


@register("chairs")
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
def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="the rendered_chairs folder or its parent")
    parser.add_argument("--cache-dir", help="where to write the cache (default: the rendered_chairs folder)")
    parser.add_argument("--workers", type=int, help="preprocessing threads (default: up to 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_prepare(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    frames, meta = load_frames(args.root, cache_dir=args.cache_dir, workers=args.workers,
                               progress=not args.quiet)
    where = Path(frames.filename) if getattr(frames, "filename", None) else Path(meta["source"])
    print(f"{len(meta['chairs'])} chairs × {frames.shape[1]} views ({frames.shape[2]}×{frames.shape[3]}×"
          f"{frames.shape[4]}) cached in {where} ({frames.nbytes / 1e9:.2f} GB) in "
          f"{time.perf_counter() - start:.1f} s; train with: varsep fit -c chairs --data.root {args.root}"
          + (f" --data.cache_dir {args.cache_dir}" if args.cache_dir else ""))


PREPARERS.register("chairs")(Command("preprocess rendered_chairs/ once into a memory-mappable cache "
                                     "(DESIGN §3)", _add_prepare_arguments, _run_prepare))

__all__ = ["ChairWindows", "ChairsConfig", "ChairsDataset", "sequence_views", "split_chairs"]
