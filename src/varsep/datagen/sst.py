"""``varsep prepare sst``: cut SST zone files out of raw Copernicus NetCDF and compute their climatology.

Inputs: one or many raw NetCDF files of product GLOBAL_ANALYSIS_FORECAST_PHY_001_024 (files, folders of
``*.nc`` or glob patterns), possibly split by time. Each holds ``thetao`` (°C; kelvin is converted) with
dims (time, depth, latitude, longitude) — lat/lon may be named lat/lon, the depth axis may be absent; the
shallowest level is kept. All files share one horizontal grid; a day found in several files is kept once
(from the first file in time order); a missing day is an error, since the model steps one day at a time.

Zone boxes: a YAML (or JSON) file::

    size: 64                          # side of every box in grid points (default 64)
    zones:
      17: {row: 120, col: 300}        # grid indices of the box's first row and column, in file order
      18: {lat: 38.5, lon: -47.0}     # or the coordinates of that corner (the nearest grid point)

The box spans rows row … row+size−1 and columns col … col+size−1 as stored (Copernicus latitudes increase,
so the first row is the southern edge). The paper's 29 boxes (de Bézenac et al., 2018) are not published.

Output: ``OUT/data_{zone}.nc`` with thetao (time, latitude, longitude) float32 °C and the climatology:
  --climatology zone (default): daily_mean/daily_std (time,): the mean and std of the zone's temperatures
      over all its pixels and all days with the same calendar day (paper D.2; the layout of the files the
      paper used). --climatology pixel: (dayofyear=366, latitude, longitude), per pixel.
  --climatology-until DATE: only days up to DATE inform the climatology (e.g. the last training day, to
      keep the test period out of it); by default every day, as in the paper. A calendar day absent from
      that period (29 February, short periods) borrows the nearest calendar day present; with
      --climatology pixel, so does a calendar day seen in a single year (its per-pixel std would be 0),
      and per-pixel stds are floored at 0.001 °C (packed values of a pixel may coincide in two years).
Every file is written to a temporary name and renamed; existing files are kept unless --overwrite.
Memory: the crops of all zones are held in float32 (29 zones × 3734 days ≈ 1.8 GB).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from tqdm.auto import tqdm

from varsep.data.sst.files import DAY_OF_YEAR, calendar_index, month_day, zone_file_name
from varsep.errors import DataError

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
KELVIN = ("K", "kelvin", "Kelvin", "degK")
PRODUCT = "GLOBAL_ANALYSIS_FORECAST_PHY_001_024"
PIXEL_STD_FLOOR = 1e-3  # °C, about the product's int16 packing step: a per-pixel std never reaches 0


@dataclass(frozen=True)
class ZoneBox:
    zone: int
    row: int
    col: int


# ---------------------------------------------------------------------------------------------- inputs
def read_zone_boxes(path: str | Path) -> tuple[int, dict[int, dict[str, float]]]:
    """(size, {zone: {"row", "col"} or {"lat", "lon"}}) from a YAML/JSON zone-box file."""
    path = Path(path)
    example = "expected e.g.\nsize: 64\nzones:\n  17: {row: 120, col: 300}\n  18: {lat: 38.5, lon: -47.0}"
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(f"zone-box file {path} does not exist; {example}") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path} is not valid YAML/JSON ({err}); {example}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("zones"), dict) or not raw["zones"]:
        raise DataError(f"{path}: needs a non-empty 'zones' mapping; {example}")
    size = raw.get("size", 64)
    if not isinstance(size, int) or size < 1:
        raise DataError(f"{path}: size must be a positive integer, got {size!r}")
    zones: dict[int, dict[str, float]] = {}
    for key, spec in raw["zones"].items():
        try:
            zone = int(key)
        except (TypeError, ValueError):
            raise DataError(f"{path}: zone {key!r} is not a number; {example}") from None
        keys = set(spec) if isinstance(spec, dict) else set()
        if keys not in ({"row", "col"}, {"lat", "lon"}) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in spec.values()):
            raise DataError(f"{path}: zone {zone} must be {{row: R, col: C}} (grid indices) or "
                            f"{{lat: Y, lon: X}} (coordinates), got {spec!r}")
        if keys == {"row", "col"} and not all(isinstance(v, int) for v in spec.values()):
            raise DataError(f"{path}: zone {zone}: row and col are integer grid indices, got {spec!r}")
        zones[zone] = dict(spec)
    return size, zones


def locate_boxes(specs: dict[int, dict[str, float]], size: int, lat: np.ndarray, lon: np.ndarray,
                 where: str) -> list[ZoneBox]:
    """Grid indices of each box's first row/column, checked to fit in the grid."""
    boxes = []
    for zone, spec in sorted(specs.items()):
        if "row" in spec:
            row, col = int(spec["row"]), int(spec["col"])
        else:
            row = _nearest(lat, spec["lat"], "lat", zone, where)
            col = _nearest(lon, spec["lon"], "lon", zone, where)
        if not (0 <= row <= len(lat) - size and 0 <= col <= len(lon) - size):
            raise DataError(f"zone {zone}: a {size}×{size} box at row {row}, col {col} does not fit in the "
                            f"{len(lat)}×{len(lon)} grid of {where} (rows 0…{len(lat) - size}, "
                            f"cols 0…{len(lon) - size} allowed)")
        boxes.append(ZoneBox(zone, row, col))
    return boxes


def _nearest(axis: np.ndarray, value: float, name: str, zone: int, where: str) -> int:
    i = int(np.abs(axis - value).argmin())
    step = float(np.abs(np.diff(axis)).max()) if len(axis) > 1 else 0.0
    if abs(axis[i] - value) > step:
        raise DataError(f"zone {zone}: {name} {value} lies outside the grid of {where} "
                        f"({axis.min():g} … {axis.max():g})")
    return i


def expand_inputs(items: list[str]) -> list[Path]:
    """Files from paths, folders (their *.nc) and glob patterns, sorted and without repeats."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.nc"))
        elif p.is_file():
            found = [p]
        else:
            found = sorted(Path(f) for f in glob.glob(item))
        if not found:
            raise DataError(f"no raw NetCDF file matches {item!r} (give files, folders of .nc files or "
                            f"glob patterns of {PRODUCT} downloads)")
        paths.extend(found)
    return list(dict.fromkeys(paths))


def surface(ds: xr.Dataset, variable: str, path: Path) -> xr.DataArray:
    """The variable as (time, lat, lon) at its shallowest level, in °C."""
    if variable not in ds.variables:
        raise DataError(f"{path}: variable {variable!r} missing (found {', '.join(map(str, ds.data_vars))}); "
                        f"expected {variable}(time, depth, latitude, longitude) of {PRODUCT}")
    var = ds[variable]
    lat = next((d for d in var.dims if d in LAT_NAMES), None)
    lon = next((d for d in var.dims if d in LON_NAMES), None)
    rest = [d for d in var.dims if d not in (lat, lon)]
    if lat is None or lon is None or not 1 <= len(rest) <= 2:
        raise DataError(f"{path}: {variable} has dims {var.dims}; "
                        f"expected (time, depth, latitude, longitude)")
    if len(rest) == 2:
        depth = next((d for d in rest if "depth" in str(d) or "lev" in str(d)), rest[1])
        level = int(np.abs(var[depth].values).argmin()) if depth in var.coords else 0
        var = var.isel({depth: level})
        rest.remove(depth)
    var = var.transpose(rest[0], lat, lon)
    if rest[0] not in var.coords or not np.issubdtype(var[rest[0]].dtype, np.datetime64):
        raise DataError(f"{path}: the time axis {rest[0]!r} has no coordinate decodable to dates")
    return var


# ---------------------------------------------------------------------------------------------- crops
def read_crops(paths: list[Path], specs: dict[int, dict[str, float]], size: int, variable: str = "thetao",
               progress: bool = True) -> tuple[np.ndarray, list[ZoneBox], np.ndarray, np.ndarray, dict]:
    """(days datetime64[D], boxes, lat, lon, {zone: (T, size, size) float32 °C}) over all raw files."""
    parts: dict[int, list[np.ndarray]] = {}
    days: list[np.ndarray] = []
    grid: tuple[np.ndarray, np.ndarray] | None = None
    boxes: list[ZoneBox] = []
    for path in tqdm(paths, desc="SST: reading raw files", unit="file", disable=not progress):
        try:
            ds = xr.open_dataset(path, engine="netcdf4")
        except (OSError, ValueError, RuntimeError) as err:
            raise DataError(f"{path} is not a readable NetCDF file ({err})") from None
        with ds:
            var = surface(ds, variable, path)
            lat, lon = var[var.dims[1]].values, var[var.dims[2]].values
            if grid is None:
                grid = (lat, lon)
                boxes = locate_boxes(specs, size, lat, lon, str(path))
            elif not (np.array_equal(lat, grid[0]) and np.array_equal(lon, grid[1])):
                raise DataError(f"{path}: its latitude/longitude grid differs from that of {paths[0]}; "
                                f"all raw files must share one grid")
            scale = -273.15 if var.attrs.get("units") in KELVIN else 0.0
            days.append(var[var.dims[0]].values.astype("datetime64[D]"))
            for b in boxes:  # each crop is one hyperslab read: the whole grid is never loaded
                crop = var.isel({var.dims[1]: slice(b.row, b.row + size),
                                 var.dims[2]: slice(b.col, b.col + size)}).values
                parts.setdefault(b.zone, []).append(np.asarray(crop, dtype=np.float32) + np.float32(scale))
    assert grid is not None
    all_days = np.concatenate(days)
    order = np.argsort(all_days, kind="stable")
    unique, first = np.unique(all_days[order], return_index=True)
    keep = order[first]
    gaps = np.flatnonzero(np.diff(unique).astype(np.int64) != 1)
    if len(gaps):
        i = int(gaps[0])
        missing = int((unique[1:] - unique[:-1]).astype(np.int64).sum() - (len(unique) - 1))
        raise DataError(f"the raw files miss {missing} day(s), first after {unique[i]} (next is "
                        f"{unique[i + 1]}); download the missing days: the model needs consecutive "
                        f"daily frames")
    crops = {zone: np.concatenate(p)[keep] for zone, p in parts.items()}
    return unique, boxes, grid[0], grid[1], crops


# ------------------------------------------------------------------------------------------ climatology
def _group_sum(values: np.ndarray, keys: np.ndarray, n: int = 366) -> np.ndarray:
    """Sums of ``values`` rows grouped by ``keys`` in 0…n−1 → (n, *values.shape[1:])."""
    out = np.zeros((n, *values.shape[1:]))
    if len(keys) == 0:
        return out
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    out[k[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def climatology(crop: np.ndarray, cal: np.ndarray, use: np.ndarray, kind: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof 0) of temperatures by calendar day, (366,) for "zone", (366, H, W) for "pixel".

    ``cal`` is each day's calendar index (0…365), ``use`` marks the days that inform the climatology.
    NaN (land) pixels are left out. A calendar day seen on too few used days — none, or for "pixel" a
    single one, whose std would be 0 — borrows the nearest calendar day seen often enough. Per-pixel
    stds are floored at PIXEL_STD_FLOOR: packed values of a pixel can coincide in two years.
    """
    keys = cal[use]
    needed = 1 if kind == "zone" else 2
    present = np.flatnonzero(np.bincount(keys, minlength=366) >= needed)
    if len(present) == 0:
        raise DataError(f"no calendar day is seen on {needed} or more days of the climatology period "
                        f"(see --climatology-until{', or use --climatology zone' if needed > 1 else ''})")
    x = crop[use].astype(np.float64)
    finite = np.isfinite(x)

    def pool(a: np.ndarray) -> np.ndarray:  # what one day contributes: its zone total, or each pixel
        return a.sum(axis=(1, 2)) if kind == "zone" else a

    with np.errstate(invalid="ignore", divide="ignore"):
        count = _group_sum(pool(finite.astype(np.float64)), keys)
        mean = _group_sum(pool(np.where(finite, x, 0.0)), keys) / count
        centre = mean[keys][:, None, None] if kind == "zone" else mean[keys]
        std = np.sqrt(_group_sum(pool(np.where(finite, x - centre, 0.0) ** 2), keys) / count)
    if kind == "pixel":
        std = np.where(std < PIXEL_STD_FLOOR, PIXEL_STD_FLOOR, std)  # NaN (land) stays NaN
    gap = np.abs(np.arange(366)[:, None] - present[None, :])
    nearest = present[np.minimum(gap, 366 - gap).argmin(axis=1)]
    return mean[nearest], std[nearest]


# ---------------------------------------------------------------------------------------------- output
def write_zone(out: Path, box: ZoneBox, size: int, days: np.ndarray, lat: np.ndarray, lon: np.ndarray,
               crop: np.ndarray, mean: np.ndarray, std: np.ndarray, kind: str, attrs: dict) -> Path:
    """Write ``out/data_{zone}.nc`` atomically (temporary file, then rename)."""
    cal = calendar_index(*month_day(days))
    space = ("latitude", "longitude")
    coords = {"time": days.astype("datetime64[ns]"), "latitude": lat[box.row:box.row + size],
              "longitude": lon[box.col:box.col + size]}
    if kind == "zone":
        clim_dims, daily_mean, daily_std = ("time",), mean[cal], std[cal]
    else:
        coords[DAY_OF_YEAR] = np.arange(1, 367)
        clim_dims, daily_mean, daily_std = (DAY_OF_YEAR, *space), mean, std
    ds = xr.Dataset(
        {"thetao": (("time", *space), crop, {"units": "degrees_C", "long_name": "sea surface temperature"}),
         "daily_mean": (clim_dims, daily_mean, {"units": "degrees_C", "long_name": "climatological mean"}),
         "daily_std": (clim_dims, daily_std, {"units": "degrees_C", "long_name": "climatological std"})},
        coords=coords,
        attrs={**attrs, "zone": box.zone, "box_row": box.row, "box_col": box.col, "box_size": size,
               "climatology": kind},
    )
    target = out / zone_file_name(box.zone)
    tmp = out / f".{target.name}.{os.getpid()}.tmp"
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def prepare(raw: list[str], zones_file: str | Path, out: str | Path, *, climatology_kind: str = "zone",
            climatology_until: str | None = None, variable: str = "thetao", overwrite: bool = False,
            progress: bool = True) -> list[Path]:
    """Build the SST zone files (module docstring); returns the paths written."""
    if climatology_kind not in ("zone", "pixel"):
        raise DataError(f"--climatology must be 'zone' or 'pixel', got {climatology_kind!r}")
    out = Path(out)
    size, specs = read_zone_boxes(zones_file)
    existing = [zone_file_name(z) for z in sorted(specs) if (out / zone_file_name(z)).exists()]
    if existing and not overwrite:
        raise DataError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them")
    until = None
    if climatology_until is not None:
        try:
            until = np.datetime64(climatology_until, "D")
        except ValueError:
            raise DataError(f"--climatology-until must be a date YYYY-MM-DD, "
                            f"got {climatology_until!r}") from None
    paths = expand_inputs(raw)
    days, boxes, lat, lon, crops = read_crops(paths, specs, size, variable, progress)
    use = np.ones(len(days), bool) if until is None else days <= until
    cal = calendar_index(*month_day(days))
    names = [p.name for p in paths]
    listed = ", ".join(names) if len(names) <= 10 else f"{names[0]} … {names[-1]} ({len(names)} files)"
    attrs = {"source": f"E.U. Copernicus Marine Service, {PRODUCT}", "created_by": "varsep prepare sst",
             "raw_files": listed,
             "climatology_days": f"{days[use][0]} … {days[use][-1]}" if use.any() else "none"}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for box in tqdm(boxes, desc="SST: writing zones", unit="zone", disable=not progress):
        crop = crops.pop(box.zone)
        nan = int((~np.isfinite(crop)).any(axis=0).sum())
        if nan and progress:
            tqdm.write(f"zone {box.zone}: {nan} pixels hold NaN (land?); the loader refuses them unless "
                       f"data.fill_nan is set")
        mean, std = climatology(crop, cal, use, climatology_kind)
        zero = np.flatnonzero(std == 0) if climatology_kind == "zone" else []
        if len(zero):
            raise DataError(f"zone {box.zone}: temperatures are constant on calendar day {zero[0] + 1} (of a "
                            f"leap year) over the climatology period: its std is 0")
        floored = int((std == PIXEL_STD_FLOOR).sum()) if climatology_kind == "pixel" else 0
        if floored and progress:
            tqdm.write(f"zone {box.zone}: {floored} of the climatology's per-pixel std values raised to "
                       f"{PIXEL_STD_FLOOR} °C")
        written.append(write_zone(out, box, size, days, lat, lon, crop, mean, std, climatology_kind, attrs))
    return written


# ------------------------------------------------------------------------------------------------ CLI
