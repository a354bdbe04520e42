"""SST: daily sea surface temperature of 64×64 Atlantic zones (paper Appendix D.2, docs/data/sst.md).

Files (a folder, see docs/data/sst.md): one NetCDF file ``data_{zone}.nc`` per zone (the paper: zones 1–29)
  thetao      (time, H, W) °C, one frame a day. A singleton depth axis (time, 1, H, W) is dropped.
  daily_mean, daily_std   the climatology, in one of two layouts (trailing axes () or (H, W)):
    - aligned: leading axis = thetao's time axis (same name, or any name but "dayofyear" with the same
      length): the climatology of each acquisition's calendar day. The files of de Bézenac et al. (2018)
      used by the paper hold one scalar per day: the official loader broadcasts them, reshaped to
      (days, 1, 1), against thetao. ``varsep prepare sst`` writes this layout by default.
    - by day of year: leading axis named "dayofyear", 366 entries; entry d is calendar day d of a leap
      year (1 = 1 Jan, 60 = 29 Feb, 366 = 31 Dec), so 1 March is 61 in every year.
  Days come from thetao's time coordinate when it holds dates (consecutive days, or with gaps if
  ``data.allow_gaps``), otherwise they are counted from ``data.start_date`` (default 2006-12-28, the
  paper's first acquisition). The paper's 3734 acquisitions "from 28 Dec 2006 to 5 Apr 2017" span 3752
  days, so its files probably miss 18 days; counted days then end on 18 Mar 2017. This only matters for a
  climatology by day of year and for labels: an aligned climatology needs no dates.

Normalisation (``data.normalization``):
  "zone" (default, the paper's text): a = (thetao − μ_clim(day)) / σ_clim(day), then y = (a − μ_z) / σ_z
    with μ_z, σ_z the mean and standard deviation of a over the zone's pixels on its TRAINING days only
    (the first 80 %, validation days included). The paper says "over all acquisitions"; using the test
    period would leak it into the inputs.
  "zone_minmax": the same anomaly a, scaled to [0, 1] instead: y = (a − min_z) / (max_z − min_z) with the
    minimum and maximum of a over the zone's training days (test days can fall slightly outside). For the
    baselines whose frames come out of a sigmoid (PhyDNet, SVG-LP, DrNet, DDPAE), which cannot forecast
    standardised values; scored in °C exactly as "zone" (the conversion is the same affine map per zone).
  "frame" (the official code): each day's anomaly is standardised by its own spatial mean and std. The
    forecasts then cannot be put back in °C without the target frames' statistics: :meth:`physical`
    returns None and only the paper-compatible number (:func:`paper_compatible_celsius`) exists.
Standardised values are not in [0, 1]: the SST config uses final_activation none.

Split: the first ``int(train_fraction · days)`` days train (paper: 2987 of 3734), the rest test (747).
Training windows: every chunk of cond_frames + pred_frames days of every training zone inside the fit
days. Validation: the last ``val_days`` training days of ``val_zones`` (default: the test zones), separated
from the fit days by a gap of ``val_gap`` days (default one validation window), so no validation window
shares a day with, or directly follows, a training window. Test: every chunk of cond_frames + h days in the
test days of ``test_zones`` (17–20).

NaN: the paper's zones are ocean only, so a NaN in thetao is an error naming the file and day, unless
``data.fill_nan`` gives a value (in normalised units, 0 = the zone mean) for those pixels; NaN climatology
pixels are then replaced by the mean of that day's other climatology pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from varsep.config.datasets import SSTConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.sst.files import ZONE_FILE, ZoneFile, zone_file_name
from varsep.data.windows import ArrayWindows
from varsep.errors import DataError
from varsep.spec import DataSpec


# --------------------------------------------------------------------------------------------- config
class ZoneWindows(ArrayWindows):
    """Windows of consecutive days [first_day, last_day) of some zones; knows each window's zone and days."""

    def __init__(self, frames: np.ndarray, length: int, *, zones: np.ndarray, first_day: int, last_day: int,
                 zone_ids: list[int], labels: list[str], stride: int = 1) -> None:
        if len(zones) == 0:  # an empty set (e.g. no validation) still needs an array long enough
            first_day, last_day = 0, frames.shape[1]
        super().__init__(frames[:, first_day:last_day], length, sequences=zones, stride=stride)
        self.first_day = first_day
        self.zone_ids = zone_ids
        self.labels = labels

    def days(self, indices: np.ndarray) -> np.ndarray:
        """Absolute day (in the zone files) of the first frame of windows ``indices``."""
        return self.start[np.asarray(indices)] + self.first_day

    def zone_positions(self, indices: np.ndarray) -> np.ndarray:
        return self.seq[np.asarray(indices)]

    def describe(self, index: int) -> str:
        first = self.first_day + int(self.start[index])
        return (f"zone {self.zone_ids[self.seq[index]]}, {self.labels[first]} – "
                f"{self.labels[first + self.length - 1]}")


# -------------------------------------------------------------------------------------------- dataset
class SSTDataset(SequenceDataset):
    """Normalised SST zones, split in time: train on every zone, test on zones 17–20 (module docstring)."""

    config_class = SSTConfig
    default_encoder = "vgg64_skip2d"
    default_decoder = "vgg64_skip2d"
    default_batches_per_epoch = None  # an epoch: every training window of every zone once
    nominal_frame_shape = (1, 64, 64)
    unit_interval = False  # standardised values: PSNR/SSIM are computed on rescaled °C (varsep.eval.scoring)
    reports_paper_compatible = True  # paper_compatible: the official code's conversion to °C

    def __init__(self, config: SSTConfig) -> None:
        super().__init__(config)
        root = self._root(config)
        present = sorted(int(m.group(1)) for p in root.iterdir() if (m := ZONE_FILE.match(p.name)))
        self.train_zones = list(config.train_zones) if config.train_zones is not None else present
        self.test_zones = list(config.test_zones)
        self.val_zones = list(config.val_zones) if config.val_zones is not None else self.test_zones
        self.zone_ids = sorted(set(self.train_zones) | set(self.test_zones) | set(self.val_zones))
        missing = [zone_file_name(z) for z in self.zone_ids if z not in present]
        if missing:
            raise DataError(f"{root} lacks {', '.join(missing)} (zones of data.train_zones, data.test_zones "
                            f"and data.val_zones); files found: "
                            f"{', '.join(zone_file_name(z) for z in present) or 'none'}")
        self.files: list[ZoneFile] = []
        for i, zone in enumerate(self.zone_ids):  # one zone at a time: only its temperatures are in memory
            f = ZoneFile.read(root / zone_file_name(zone), zone, start_date=config.start_date,
                              allow_nan=config.fill_nan is not None, allow_gaps=config.allow_gaps)
            if i == 0:
                self.labels = f.labels
                self.frame_hw = tuple(f.thetao.shape[1:])
                self.num_train_days = int(config.train_fraction * f.days)
                self._split(f.days, root)
                self.frames = np.empty((len(self.zone_ids), f.days, 1, *self.frame_hw), dtype=np.float32)
            else:
                self._check_alike(f, self.files[0], self.frame_hw)
            self.frames[i, :, 0] = self._normalise(f)
            f.thetao = None
            self.files.append(f)

    # --- reading and normalisation
    @staticmethod
    def _root(config: SSTConfig) -> Path:
        hint = ("zone files data_{zone}.nc (zones 1–29) with variables thetao, daily_mean, daily_std; "
                "build them from raw Copernicus NetCDF with: varsep prepare sst --raw FILES "
                "--zones ZONES.yaml --out DIR (then set data.root: DIR)")
        if config.root is None:
            raise DataError(f"data.root is not set for SST; it must be a folder of {hint}")
        root = Path(config.root)
        if not root.is_dir():
            raise DataError(f"SST data folder {root} does not exist; expected a folder of {hint}")
        return root

    @staticmethod
    def _check_alike(f: ZoneFile, first: ZoneFile, hw: tuple[int, ...]) -> None:
        shape, expected = f.thetao.shape, (first.days, *hw)
        if shape != expected:
            raise DataError(f"{f.path}: thetao is {shape} but {first.path.name} holds {expected}; every "
                            f"zone file must cover the same days on the same grid size")
        if f.labels != first.labels:
            raise DataError(f"{f.path}: its days ({f.labels[0]} … {f.labels[-1]}) differ from those of "
                            f"{first.path.name} ({first.labels[0]} … {first.labels[-1]})")

    def _normalise(self, f: ZoneFile) -> np.ndarray:
        a = f.anomaly()
        fill = self.config.fill_nan
        if self.config.normalization in ("zone", "zone_minmax"):
            train = a[:self.num_train_days]
            if self.config.normalization == "zone":
                offset, scale = float(np.nanmean(train)), float(np.nanstd(train))
            else:
                offset, scale = float(np.nanmin(train)), float(np.nanmax(train) - np.nanmin(train))
            if not scale > 0:
                raise DataError(f"{f.path}: the temperature anomalies of the training days are constant")
            f.zone_stats = (offset, scale)  # y = (a − offset) / scale: mean/std, or min/(max − min)
            y = (a - offset) / scale
        else:
            mean, std = np.nanmean(a, axis=(1, 2), keepdims=True), np.nanstd(a, axis=(1, 2), keepdims=True)
            if not (std > 0).all():
                d = int(np.flatnonzero(~(std.ravel() > 0))[0])
                raise DataError(f"{f.path}: day {d} ({f.labels[d]}) is uniform; data.normalization "
                                f"'frame' divides each day by its spatial standard deviation")
            f.frame_stats = (mean[:, 0, 0], std[:, 0, 0])
            y = (a - mean) / std
        if fill is not None:
            y = np.where(np.isfinite(y), y, fill)
        return y.astype(np.float32)

    def _split(self, n: int, root: Path) -> None:
        """Day ranges [start, end): fit (training windows), validation, test."""
        cfg = self.config
        val_length = self.window_length(max(cfg.test_horizons))
        gap = (val_length if cfg.val_gap is None else cfg.val_gap) if cfg.val_days else 0
        self.val_range = (self.num_train_days - cfg.val_days, self.num_train_days)
        self.fit_range = (0, self.num_train_days - cfg.val_days - gap)
        self.test_range = (self.num_train_days, n)
        where = f"{root} ({n} days, {self.num_train_days} for training)"
        if self.fit_range[1] < self.spec.train_length:
            raise DataError(f"{where}: after holding out {cfg.val_days} validation days and a gap of {gap}, "
                            f"{max(self.fit_range[1], 0)} days remain to train on, fewer than one "
                            f"{self.spec.train_length}-day window; lower data.val_days or data.val_gap")
        if n - self.num_train_days < val_length:
            raise DataError(f"{where}: the {n - self.num_train_days} test days are fewer than one "
                            f"{val_length}-day test window")

    # --- windows
    def _positions(self, zones: list[int]) -> np.ndarray:
        return np.array([self.zone_ids.index(z) for z in zones], dtype=np.int64)

    def _windows(self, length: int, zones: list[int], days: tuple[int, int], stride: int = 1) -> ZoneWindows:
        return ZoneWindows(self.frames, length, zones=self._positions(zones), first_day=days[0],
                           last_day=days[1], zone_ids=self.zone_ids, labels=self.labels, stride=stride)

    @property
    def spec(self) -> DataSpec:
        return self.make_spec((1, *self.frame_hw))

    def train_source(self) -> WindowSource:
        return SetSource(self._windows(self.spec.train_length, self.train_zones, self.fit_range))

    def val_windows(self) -> WindowSet:
        length = self.window_length(max(self.config.test_horizons))
        zones = self.val_zones if self.config.val_days else []
        return self._windows(length, zones, self.val_range, self.config.val_stride)

    def test_windows(self, horizon: int) -> WindowSet:
        return self._windows(self.window_length(horizon), self.test_zones, self.test_range)

    # --- physical units
    def _lookup(self, windows: WindowSet, indices: np.ndarray, offset: int, k: int):
        if not isinstance(windows, ZoneWindows):
            raise TypeError("physical units need the windows of this SST data set (ZoneWindows)")
        pos = windows.zone_positions(indices)
        days = windows.days(indices)[:, None] + offset + np.arange(k)
        return pos, days

    def climatology(self, windows: WindowSet, indices: np.ndarray, offset: int, k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """μ_clim, σ_clim of frames offset … offset+k−1 of the windows, (n, k, 1, h, w): known in advance."""
        pos, days = self._lookup(windows, indices, offset, k)
        h, w = max((f.clim_mean.shape[1:] for f in self.files), key=lambda s: s[0] * s[1])
        mean, std = np.empty((len(pos), k, 1, h, w)), np.empty((len(pos), k, 1, h, w))
        for p in np.unique(pos):  # one vectorised lookup per zone present in the batch
            sel = pos == p
            rows = self.files[p].clim_rows[days[sel]]
            mean[sel] = self.files[p].clim_mean[rows][:, :, None]
            std[sel] = self.files[p].clim_std[rows][:, :, None]
        return mean, std

    @property
    def climatology_reference(self) -> str | None:  # type: ignore[override]
        """The files' daily climatology, with zone normalisation (frame normalisation maps it with each
        target frame's own statistics, unknown at forecast time: no reference)."""
        if self.config.normalization == "frame":
            return None
        return "each cell's daily climatology μ_clim for the target's calendar day (the files' daily_mean)"

    def climatology_forecast(self, windows: WindowSet, indices: np.ndarray, offset: int, k: int) -> np.ndarray:
        """μ_clim on the model's scale: a climatological anomaly of 0, zone-normalised: −offset/scale of the
        zone (−mean/std, or −min/(max − min))."""
        if self.climatology_reference is None:
            return super().climatology_forecast(windows, indices, offset, k)
        pos, _ = self._lookup(windows, indices, offset, k)
        stats = np.array([f.zone_stats for f in self.files])[pos]  # (n, 2): the zone's offset and scale
        level = (-stats[:, 0] / stats[:, 1]).astype(np.float32)
        return np.broadcast_to(level[:, None, None, None, None], (len(pos), k, *self.spec.frame_shape)).copy()

    @property
    def training_range(self) -> tuple[float, float] | None:  # type: ignore[override]
        """[0, 1] with zone_minmax (the training days' anomalies, per zone), unbounded otherwise."""
        return (0.0, 1.0) if self.config.normalization == "zone_minmax" else None

    def physical(self, frames: np.ndarray, windows: WindowSet, indices: np.ndarray, offset: int
                 ) -> np.ndarray | None:
        """°C, reverting both normalisations with the zone statistics (training days) and the climatology of
        the frames' calendar days — both known at forecast time. Exact for targets. None for "frame"."""
        if self.config.normalization == "frame":
            return None
        frames = np.asarray(frames, dtype=np.float64)
        pos, _ = self._lookup(windows, indices, offset, frames.shape[1])
        stats = np.array([f.zone_stats for f in self.files])[pos]  # (n, 2)
        anomaly = frames * stats[:, 1, None, None, None, None] + stats[:, 0, None, None, None, None]
        mean, std = self.climatology(windows, indices, offset, frames.shape[1])
        return anomaly * std + mean

    def paper_compatible(self, pred: np.ndarray, target: np.ndarray, windows: WindowSet, indices: np.ndarray,
                         offset: int) -> tuple[np.ndarray, np.ndarray]:
        """(forecast, target) in °C as the official evaluation computes them — NOT the default metric.

        With "frame" normalisation the forecast is de-normalised with the target frames' own spatial mean
        and std (:func:`paper_compatible_celsius`), which uses the answer. With zone normalisation no
        target statistic enters the conversion, so this equals :meth:`physical` for both.
        """
        if self.config.normalization != "frame":
            return (self.physical(pred, windows, indices, offset),
                    self.physical(target, windows, indices, offset))
        target = np.asarray(target, dtype=np.float64)
        pos, days = self._lookup(windows, indices, offset, target.shape[1])
        m = np.stack([f.frame_stats[0] for f in self.files])[pos[:, None], days][..., None, None, None]
        s = np.stack([f.frame_stats[1] for f in self.files])[pos[:, None], days][..., None, None, None]
        mean, std = self.climatology(windows, indices, offset, target.shape[1])
        target_c = (target * s + m) * std + mean
        return paper_compatible_celsius(pred, target_c, mean, std), target_c


def paper_compatible_celsius(pred: np.ndarray, target_celsius: np.ndarray, clim_mean: np.ndarray,
                             clim_std: np.ndarray) -> np.ndarray:
    """Forecasts in °C the way the official SST evaluation computes them (docs/model.md, departures). Not our default.

    ``pred`` is in the official per-frame standardised units; (m, s) are the spatial mean and std of each
    TARGET frame's climatological anomaly a = (target − μ_clim)/σ_clim, and the forecast becomes
    (pred·s + m)·σ_clim + μ_clim. The true mean and spread of the frame being predicted are thus handed to
    the forecast: information that does not exist at forecast time, which lowers the error. :meth:
    `SSTDataset.physical` uses only the calendar and training statistics instead. Arrays (..., H, W).
    """
    anomaly = (np.asarray(target_celsius, dtype=np.float64) - clim_mean) / clim_std
    m = anomaly.mean(axis=(-2, -1), keepdims=True)
    s = anomaly.std(axis=(-2, -1), keepdims=True)
    return (np.asarray(pred, dtype=np.float64) * s + m) * clim_std + clim_mean

