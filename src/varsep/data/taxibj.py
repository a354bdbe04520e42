"""TaxiBJ crowd flows (Zhang et al. 2017; paper Appendix D.5, docs/data/taxibj.md).

Files: ``BJ13_M32x32_T30_InOut.h5`` … ``BJ16_M32x32_T30_InOut.h5`` in ``data.root``, each with
``data`` (N, 2, 32, 32) — the in- and outflow of taxis on a 32×32 grid of Beijing, every 30 minutes — and
``date`` (N,) byte strings ``b"YYYYMMDDSS"``, SS = the half-hour slot 01…48 of the day.

Preprocessing (the paper follows Wang et al. 2018 / Le Guen & Thome 2020; the facts below match the
official code):

1. Days that do not hold exactly the 48 slots 01…48 once each are dropped (incomplete days).
2. Negative values are clipped to 0.
3. The frames of all files are put in time order; a *segment* is a run of frames 30 minutes apart. A gap
   left by a dropped day, or between files, ends a segment: no window ever crosses one.
4. The last ``test_days`` (28) retained days — the last 1344 frames — are the test part; everything before
   is the training part. Validation is carved from the *end* of the training part: its last ``val_days``
   retained days (default 7, one of each weekday); training windows lie before them, never across.
5. Min-max scaling with one minimum and one maximum over both channels, fitted on the whole training part
   (validation days included, exactly the official statistics, so the paper's reported MSE scale is
   reproduced whatever val_days is). Test values above the training maximum stay above 1.

Windows keep time order (frames oldest first): the official code stacked them newest-first and so
predicted backwards in time (docs/model.md, departures).

The test count. The paper's "1344 test windows of 4+4" counts, like the official code, one window per
slot i of the last four weeks, made of the 8 slots *before* i — so its first windows reach 8 slots back
into the training period, and the data's very last slot is never used. Our default (``test_split:
strict``) keeps only windows lying wholly inside the last four weeks: 1344 − 8 + 1 = 1337 windows when
those 28 days are contiguous. ``test_split: paper`` gives the official set instead: the windows whose next
slot lies in the test part (1344 of them when the last 28 days and the 8 slots before are contiguous).

Reported metric: the paper reports MSE on the [0, 1] scale multiplied by 100 × 32 × 32 × 2 (Table 3),
see :data:`PAPER_MSE_FACTOR` / :meth:`TaxiBJDataset.paper_mse`. :meth:`TaxiBJDataset.physical` gives
flows in the original units (number of taxis) by inverting the min-max scaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from varsep.config.datasets import TaxiBJConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.windows import SpanWindows
from varsep.errors import DataError
from varsep.spec import DataSpec

SLOTS_PER_DAY = 48
FRAME_SHAPE = (2, 32, 32)
FILE_PATTERN = "BJ{year:02d}_M32x32_T30_InOut.h5"
PAPER_MSE_FACTOR = 100 * 32 * 32 * 2  # Table 3: MSE on the [0, 1] scale × 100 × 32 × 32 × 2


@dataclass
class TaxiBJFlows:
    """All retained frames of the files, in time order, before scaling."""

    frames: np.ndarray  # (N, 2, 32, 32) float32, negatives clipped to 0
    slots: np.ndarray  # (N,) int64: half-hours since 1970-01-01 00:00
    files: list[Path]
    dropped_days: dict[str, list[str]]  # file name → the dates (YYYYMMDD) dropped as incomplete

    @property
    def segments(self) -> list[tuple[int, int]]:
        """Row ranges [lo, hi) of frames 30 minutes apart."""
        breaks = np.flatnonzero(np.diff(self.slots) != 1) + 1
        edges = [0, *breaks.tolist(), len(self.slots)]
        return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def parse_dates(raw: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(day number since 1970-01-01, slot 1…48) of b"YYYYMMDDSS" strings; a DataError naming ``path``."""
    text = np.array([d.decode("ascii", "replace") if isinstance(d, bytes) else str(d) for d in raw])
    bad = [t for t in text if len(t) != 10 or not t.isdigit()]
    if bad:
        raise DataError(f"{path}: dataset 'date' holds {bad[0]!r}; expected strings YYYYMMDDSS "
                        f"(SS = half-hour slot 01…48)")
    iso = [f"{t[:4]}-{t[4:6]}-{t[6:8]}" for t in text]
    try:
        days = np.array(iso, dtype="datetime64[D]").astype(np.int64)
    except ValueError as err:
        raise DataError(f"{path}: dataset 'date' holds an invalid calendar date ({err})") from None
    slots = np.array([int(t[8:]) for t in text], dtype=np.int64)
    return days, slots


def complete_days(days: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """A mask of the rows whose day holds each of the slots 1…48 exactly once."""
    valid = (slots >= 1) & (slots <= SLOTS_PER_DAY)
    key = days * 100 + slots
    uniq_keys, key_counts = np.unique(key, return_counts=True)
    duplicated_days = np.unique(uniq_keys[key_counts > 1] // 100)
    good_days, day_counts = np.unique(days[valid], return_counts=True)
    good_days = good_days[day_counts == SLOTS_PER_DAY]
    good_days = np.setdiff1d(good_days, np.unique(days[~valid]))
    good_days = np.setdiff1d(good_days, duplicated_days)
    return np.isin(days, good_days)


def read_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames float32, days, slots) of one TaxiBJ file, checked."""
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("data", "date") if k not in f]
            if missing:
                raise DataError(f"{path}: dataset {' and '.join(repr(m) for m in missing)} missing; expected "
                                f"'data' (N, 2, 32, 32) and 'date' (N,) YYYYMMDDSS strings, found "
                                f"{', '.join(sorted(f.keys())) or 'nothing'}")
            data, date = f["data"], f["date"]
            if data.ndim != 4 or tuple(data.shape[1:]) != FRAME_SHAPE:
                raise DataError(f"{path}: dataset 'data' has shape {data.shape}; expected (N, 2, 32, 32)")
            if date.shape != (data.shape[0],):
                raise DataError(f"{path}: dataset 'date' has shape {date.shape}; expected "
                                f"({data.shape[0]},), one date per frame of 'data'")
            frames = np.asarray(data[()], dtype=np.float32)
            raw_dates = date[()]
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file ({err}); download it again") from None
    if not np.isfinite(frames).all():
        raise DataError(f"{path}: dataset 'data' holds NaN or Inf values")
    days, slots = parse_dates(raw_dates, path)
    return frames, days, slots


def load_flows(root: str | Path | None, years: list[int]) -> TaxiBJFlows:
    """Read, clean and order the frames of the TaxiBJ files of ``years`` in ``root``."""
    expected = [FILE_PATTERN.format(year=y) for y in years]
    if root is None:
        raise DataError(f"data.root is not set for TaxiBJ; point it at the folder holding "
                        f"{', '.join(expected)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"TaxiBJ folder {root} does not exist; expected it to hold {', '.join(expected)}")
    missing = [n for n in expected if not (root / n).is_file()]
    if missing:
        found = sorted(p.name for p in root.glob("*.h5"))
        raise DataError(f"TaxiBJ files missing in {root}: {', '.join(missing)} (expected "
                        f"{', '.join(expected)}; found {', '.join(found) or 'no .h5 file'}). Set data.years "
                        f"to use fewer files")
    frames, slot_index, owner, dropped = [], [], [], {}
    for i, name in enumerate(expected):
        path = root / name
        data, days, slots = read_file(path)
        keep = complete_days(days, slots)
        dropped[name] = sorted({str(np.datetime64(int(d), "D")).replace("-", "") for d in days[~keep]})
        kept = data[keep]
        frames.append(np.maximum(kept, 0, out=kept))
        slot_index.append(days[keep] * SLOTS_PER_DAY + slots[keep] - 1)
        owner.append(np.full(int(keep.sum()), i))
    all_slots = np.concatenate(slot_index)
    order = np.argsort(all_slots, kind="stable")
    all_slots, who = all_slots[order], np.concatenate(owner)[order]
    clash = np.flatnonzero(np.diff(all_slots) == 0)
    if len(clash):
        a, b = sorted({int(who[clash[0]]), int(who[clash[0] + 1])})
        when = np.datetime64(int(all_slots[clash[0]]) * 30, "m")
        raise DataError(f"{root}: {expected[a]} and {expected[b]} both hold the slot of {when}; each "
                        f"half-hour must appear in one file only")
    stacked = np.concatenate(frames)
    if not np.array_equal(order, np.arange(len(order))):
        stacked = stacked[order]
    if len(stacked) == 0:
        raise DataError(f"{root}: no complete day (48 half-hour slots) in {', '.join(expected)}")
    return TaxiBJFlows(frames=stacked, slots=all_slots, files=[root / n for n in expected],
                       dropped_days=dropped)


def clip_segments(segments: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """The parts of ``segments`` inside rows [lo, hi)."""
    parts = [(max(a, lo), min(b, hi)) for a, b in segments]
    return [(a, b) for a, b in parts if b > a]


class TaxiBJWindows(SpanWindows):
    """Windows of TaxiBJ frames that name their dates."""

    def __init__(self, base: SpanWindows, slots: np.ndarray) -> None:
        super().__init__(base.array, base.start, base.length)
        self._slots = slots

    def describe(self, index: int) -> str:
        first = int(self._slots[self.start[index]])
        return f"{_slot_name(first)} … {_slot_name(first + self.length - 1)}"


def _slot_name(slot: int) -> str:
    day, s = divmod(slot, SLOTS_PER_DAY)
    return f"{np.datetime64(day, 'D')} slot {s + 1:02d}"


class TaxiBJDataset(SequenceDataset):
    """In/out flows of taxis in Beijing, 2×32×32 frames every 30 minutes; the last four weeks are the test."""

    config_class = TaxiBJConfig
    default_encoder = "vgg32"
    default_decoder = "vgg32"
    default_batches_per_epoch = None  # an epoch is one pass over all training windows (official code)
    nominal_frame_shape = FRAME_SHAPE
    paper_mse_factor = PAPER_MSE_FACTOR

    def __init__(self, config: TaxiBJConfig) -> None:
        super().__init__(config)
        flows = load_flows(config.root, list(config.years))
        self.slots, self.files, self.dropped_days = flows.slots, flows.files, flows.dropped_days
        self.segments = flows.segments
        n = len(flows.frames)
        test_rows = config.test_days * SLOTS_PER_DAY
        val_rows = config.val_days * SLOTS_PER_DAY
        if test_rows + val_rows >= n:
            raise DataError(f"{config.root}: the files hold {n // SLOTS_PER_DAY} complete days, too few for "
                            f"{config.test_days} test days, {config.val_days} validation days and training")
        self.test_start = n - test_rows
        self.val_start = self.test_start - val_rows
        fit = flows.frames[:self.test_start]  # the whole training part, validation days included
        self.minimum, self.maximum = float(fit.min()), float(fit.max())
        if self.maximum <= self.minimum:
            raise DataError(f"{config.root}: the training part is constant ({self.minimum}); cannot scale it")
        self.frames = flows.frames  # scaled in place: the data set keeps one copy of the frames
        self.frames -= np.float32(self.minimum)
        self.frames /= np.float32(self.maximum - self.minimum)
        self.require_windows(str(config.root), train_part="the training part",
                             test_part=f"the last {config.test_days} days")

    @property
    def spec(self) -> DataSpec:
        return self.make_spec(FRAME_SHAPE)

    def _windows(self, bounds: list[tuple[int, int]], length: int) -> TaxiBJWindows:
        return TaxiBJWindows(SpanWindows.over_segments(self.frames, bounds, length), self.slots)

    def train_source(self) -> WindowSource:
        bounds = clip_segments(self.segments, 0, self.val_start)
        return SetSource(self._windows(bounds, self.spec.train_length))

    def val_windows(self) -> WindowSet:
        length = self.window_length(max(self.config.test_horizons))
        return self._windows(clip_segments(self.segments, self.val_start, self.test_start), length)

    def test_windows(self, horizon: int) -> WindowSet:
        length = self.window_length(horizon)
        if self.config.test_split == "strict":
            return self._windows(clip_segments(self.segments, self.test_start, len(self.frames)), length)
        # "paper": windows whose next slot lies in the test part, within one segment (official code).
        starts = []
        for lo, hi in self.segments:
            first = max(lo, self.test_start - length)
            starts.append(np.arange(first, hi - length, dtype=np.int64))
        base = SpanWindows(self.frames, np.concatenate(starts), length)
        return TaxiBJWindows(base, self.slots)

    def physical(self, frames: np.ndarray, windows: WindowSet, indices: np.ndarray,
                 offset: int) -> np.ndarray:
        """Flows in taxis per half-hour: the min-max scaling inverted with the training statistics."""
        return frames * (self.maximum - self.minimum) + self.minimum

    @staticmethod
    def paper_mse(mse: float | np.ndarray) -> float | np.ndarray:
        """The paper's TaxiBJ figure (Table 3): MSE on the [0, 1] scale × 100 × 32 × 32 × 2."""
        return mse * PAPER_MSE_FACTOR
