"""The SST zone-file format: file names, calendar days and a checked reader (see varsep.data.sst).

A zone file ``data_{zone}.nc`` holds ``thetao`` (time, H, W) in °C and the climatology ``daily_mean``,
``daily_std``, either aligned with thetao's days — (days,) or (days, H, W) — or by day of year —
(dayofyear=366,) or (366, H, W), entry d being calendar day d of a leap year. Days are consecutive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from varsep.config.datasets import SST_START_DATE as DEFAULT_START_DATE
from varsep.errors import DataError

VARIABLES = ("thetao", "daily_mean", "daily_std")
DAY_OF_YEAR = "dayofyear"
_LEAP_CUMULATIVE = np.array([0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335])
ZONE_FILE = re.compile(r"^data_(\d+)\.nc$")


def zone_file_name(zone: int) -> str:
    return f"data_{zone}.nc"


def calendar_index(months: np.ndarray, days: np.ndarray) -> np.ndarray:
    """0-based day of year on a leap-year calendar (29 Feb = 59, 1 Mar = 60 in every year)."""
    return _LEAP_CUMULATIVE[np.asarray(months) - 1] + np.asarray(days) - 1


def consecutive_dates(start: str, n: int) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(n)


def month_day(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Month (1–12) and day of month of datetime64 dates."""
    d = dates.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    return month_start.astype(np.int64) % 12 + 1, (d - month_start).astype(np.int64) + 1


def time_axis(coord: xr.DataArray | None, n: int, start_date: str, where: str, *, allow_gaps: bool = False
              ) -> tuple[np.ndarray, list[str]]:
    """(calendar indices, date labels) of ``n`` days: from a date coordinate, else from ``start_date``.

    A coordinate with dates must hold consecutive days (the model's time step is one day), unless
    ``allow_gaps``: then a window may span a missing day, as in the official code, which ignores dates.
    """
    if coord is not None and (np.issubdtype(coord.dtype, np.datetime64) or coord.dtype == object):
        values = coord.values
        if np.issubdtype(values.dtype, np.datetime64):
            days = values.astype("datetime64[D]")
            ordinals = days.astype(np.int64)
            labels = [str(d) for d in days]
            months, mdays = month_day(days)
        else:  # cftime dates (non-standard calendars)
            try:
                ordinals = np.array([v.toordinal() for v in values])
                months = np.array([v.month for v in values])
                mdays = np.array([v.day for v in values])
                labels = [v.strftime("%Y-%m-%d") for v in values]
            except AttributeError:
                raise DataError(f"{where}: the time coordinate holds {values.dtype} values, "
                                f"not dates") from None
        steps = np.diff(ordinals)
        gaps = np.flatnonzero(steps != 1)
        if len(gaps) and (not allow_gaps or (steps < 1).any()):
            i = int(gaps[0]) if not allow_gaps else int(np.flatnonzero(steps < 1)[0])
            hint = "" if allow_gaps else " (set data.allow_gaps: true to accept missing days)"
            raise DataError(f"{where}: days must be consecutive, but {labels[i]} is followed by "
                            f"{labels[i + 1]}{hint}")
        return calendar_index(months, mdays), labels
    dates = consecutive_dates(start_date, n)
    months, mdays = month_day(dates)
    return calendar_index(months, mdays), [str(d) for d in dates]


@dataclass
class ZoneFile:
    """One zone file, read and checked: temperatures and the climatology of each day."""

    zone: int
    path: Path
    thetao: np.ndarray | None  # (T, H, W) float64 °C; dropped once normalised
    labels: list[str]  # date of each day (YYYY-MM-DD)
    clim_mean: np.ndarray  # (R, h, w) with (h, w) = (1, 1) per-day scalars or (H, W) per pixel
    clim_std: np.ndarray
    clim_rows: np.ndarray  # (T,) row of the climatology for each day
    # offset, scale of the anomalies: μ_z, σ_z ("zone") or min_z, max_z − min_z ("zone_minmax")
    zone_stats: tuple[float, float] = (0.0, 1.0)
    frame_stats: tuple[np.ndarray, np.ndarray] | None = None  # per-day spatial μ, σ ("frame" normalisation)

    @classmethod
    def read(cls, path: Path, zone: int, *, start_date: str = DEFAULT_START_DATE,
             allow_nan: bool = False, allow_gaps: bool = False) -> ZoneFile:
        try:
            try:
                ds = xr.open_dataset(path, engine="netcdf4")
            except ValueError:  # a time coordinate that does not decode to dates: count days instead
                ds = xr.open_dataset(path, engine="netcdf4", decode_times=False)
        except (OSError, ValueError, RuntimeError) as err:
            raise DataError(f"{path} is not a readable NetCDF file ({err}); expected variables "
                            f"{', '.join(VARIABLES)}") from None
        with ds:
            missing = [v for v in VARIABLES if v not in ds.variables]
            if missing:
                raise DataError(f"{path}: variable{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(map(repr, missing))} missing; expected {', '.join(VARIABLES)}")
            theta = ds["thetao"]
            if theta.ndim == 4 and theta.shape[1] == 1:
                theta = theta.isel({theta.dims[1]: 0})
            if theta.ndim != 3:
                raise DataError(f"{path}: thetao must be (time, H, W), got dims {theta.dims} {theta.shape}")
            tdim = theta.dims[0]
            n = theta.shape[0]
            cal, labels = time_axis(ds.coords.get(tdim), n, start_date, str(path), allow_gaps=allow_gaps)
            thetao = np.asarray(theta.values, dtype=np.float64)
            mean, rows = _climatology(ds["daily_mean"], tdim, theta.shape, cal, path)
            std, _ = _climatology(ds["daily_std"], tdim, theta.shape, cal, path)
        file = cls(zone, path, thetao, labels, mean, std, rows)
        file._check(allow_nan)
        return file

    def _check(self, allow_nan: bool) -> None:
        bad_days = np.flatnonzero(~np.isfinite(self.thetao).all(axis=(1, 2)))
        if len(bad_days) and not allow_nan:
            d = int(bad_days[0])
            raise DataError(f"{self.path}: thetao holds NaN on day {d} ({self.labels[d]}) and on "
                            f"{len(bad_days) - 1} other days; SST zones are expected to be ocean only. "
                            f"Choose other zones, or set data.fill_nan (a value in normalised units, e.g. 0)")
        for name, clim in (("daily_mean", self.clim_mean), ("daily_std", self.clim_std)):
            finite = np.isfinite(clim)
            if not finite.all():
                if not allow_nan:
                    d = int(np.flatnonzero(~finite.reshape(len(clim), -1).all(1))[0])
                    raise DataError(f"{self.path}: {name} holds NaN (row {d}); set data.fill_nan to "
                                    f"accept land pixels")
                row_mean = np.nanmean(np.where(finite, clim, np.nan), axis=(1, 2), keepdims=True)
                clim[...] = np.where(finite, clim, row_mean)
        zero = np.flatnonzero((self.clim_std[self.clim_rows] <= 0).reshape(self.days, -1).any(axis=1))
        if len(zero):
            d = int(zero[0])
            raise DataError(f"{self.path}: daily_std is 0 on day {d} ({self.labels[d]}); a climatology needs "
                            f"several years per calendar day (or a per-day scalar over the zone)")

    @property
    def days(self) -> int:
        return len(self.labels)

    def anomaly(self) -> np.ndarray:
        """(thetao − μ_clim) / σ_clim for every day, (T, H, W) float64."""
        return (self.thetao - self.clim_mean[self.clim_rows]) / self.clim_std[self.clim_rows]


def _climatology(var: xr.DataArray, tdim: str, shape: tuple[int, ...], cal: np.ndarray,
                 path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A climatology variable as (R, h, w) and the row of each day (see the module docstring)."""
    n, h, w = shape
    values = np.asarray(var.values, dtype=np.float64)
    expected = (f"expected ({n},) or ({n}, {h}, {w}) aligned with thetao, or ({DAY_OF_YEAR}=366[, {h}, {w}])")
    if values.ndim == 0 or values.shape[1:] not in ((), (1,), (1, 1), (h, w)):
        raise DataError(f"{path}: {var.name} has shape {values.shape}; {expected}")
    lead = var.dims[0]
    if lead == DAY_OF_YEAR or (lead != tdim and values.shape[0] != n and values.shape[0] == 366):
        if values.shape[0] != 366:
            raise DataError(f"{path}: {var.name} along {DAY_OF_YEAR} has {values.shape[0]} rows; {expected}")
        rows = cal
    elif values.shape[0] == n:
        rows = np.arange(n)
    else:
        raise DataError(f"{path}: {var.name} has shape {values.shape} but thetao has {n} days; {expected}")
    if values.shape[1:] == (h, w):  # per pixel: float32 like thetao, so (days, H, W) costs what thetao does
        return values.astype(np.float32), rows
    return values.reshape(len(values), 1, 1).copy(), rows
