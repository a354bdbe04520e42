"""Calendar groups of dated frames, for climatologies: month of the year, or day of the year.

Dates come as NumPy datetime64 (the standard calendar) or as cftime dates (360_day, noleap, all_leap…,
as xarray decodes CF calendars other than the standard one); both give their month and day of the year in
their own calendar, so a 360-day year has 360 day groups and a noleap year 365.
"""

from __future__ import annotations

import numpy as np

from varsep.errors import DataError

DAYS_PER_MONTH = 28  # time steps of at least this many days (median) make "auto" group by month


def _fields(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(month 1–12, day of the year 1–366) of each date."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        days = times.astype("datetime64[D]")
        years = days.astype("datetime64[Y]")
        months = days.astype("datetime64[M]")
        month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
        day_of_year = (days - years.astype("datetime64[D]")).astype(np.int64) + 1
        return month, day_of_year
    try:
        return (np.array([t.month for t in times], dtype=np.int64),
                np.array([t.dayofyr for t in times], dtype=np.int64))
    except AttributeError:
        raise DataError("a climatology needs dates (datetime64 or cftime) in the time coordinate") from None


def median_step_days(times: np.ndarray) -> float:
    """The median time step in days (datetime64 or cftime dates)."""
    times = np.asarray(times)
    if len(times) < 2:
        return float("inf")
    if np.issubdtype(times.dtype, np.datetime64):
        steps = np.diff(times.astype("datetime64[s]")).astype(np.float64) / 86400
    else:
        steps = np.array([(b - a).total_seconds() / 86400 for a, b in zip(times[:-1], times[1:], strict=True)])
    return float(np.median(steps))


def calendar_groups(times: np.ndarray, period: str = "auto") -> tuple[np.ndarray, int, str]:
    """(group of each date, number of groups, the period used): months 0–11, or days of the year 0–365.

    ``auto`` groups by month when the median step is at least four weeks (monthly or annual data), else by
    day of the year."""
    if period == "auto":
        period = "month" if median_step_days(times) >= DAYS_PER_MONTH else "day"
    month, day_of_year = _fields(times)
    if period == "month":
        return month - 1, 12, period
    if period == "day":
        return day_of_year - 1, 366, period
    raise ValueError(f"unknown climatology period {period!r}")
