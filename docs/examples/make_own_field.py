"""Write two NetCDF files of a sea-surface-temperature-like field, to try "Your own field" (README) on.

The field is what climate and ocean data look like as they come, made up but with the parts real ones
have, so that every feature of ``kind: netcdf`` is used:

- an **irregular grid**: 37 latitudes from 35°S to 50°N, closer together near the equator, and 49
  longitudes from 120°E to 280°E, 1.7° apart at the edges and 5° in the middle;
- **land as NaN** in every frame: a continent along the eastern edge and an island in the west;
- a **360_day calendar**: one frame every 5 days (72 a year), ``time`` in "days since 2001-01-01" with
  ``calendar: 360_day``; two files of ``years`` years each, consecutive in time
  (``sst_2001-2004.nc``, ``sst_2005-2008.nc`` by default);
- values in kelvin: a fixed pattern (warm tropics, a warm pool in the west) + a seasonal cycle whose
  amplitude grows with latitude (opposite phases in the two hemispheres) + anomalies + noise.

The anomalies are what can be forecast: warm and cold eddies (amplitude ~1 K, radius 5–11°) that appear
and fade over 20–50 steps and drift with a current — westward in the tropics, eastward further north,
about a third of a grid cell a step — over the grid's real coordinates (so the drift is uneven in grid
cells). Their births are random, and every value gets independent measurement noise (0.15 K): neither
can be forecast, so no model is exact.

    python docs/examples/make_own_field.py                     # two files of 4 years: 2 × 288 frames
    python docs/examples/make_own_field.py --out-dir data --years 1 --seed 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

STEP_DAYS = 5  # one frame every 5 days of a 360-day year: 72 frames a year
DAYS_PER_YEAR = 360
NOISE_K = 0.15  # measurement noise (kelvin), independent in every cell and frame


def irregular_grid(n_lat: int = 37, n_lon: int = 49) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (35°S–50°N, denser near the equator) and longitudes (120°E–280°E, uneven), degrees."""
    u = np.linspace(0, 1, n_lat)
    lat = -35 + 85 * (u + 0.12 * np.sin(2 * np.pi * u))  # 0.6° apart near 8°N, 4.1° at the edges
    v = np.linspace(0, 1, n_lon)
    lon = 120 + 160 * (v - 0.08 * np.sin(2 * np.pi * v))  # 1.7° apart at the edges, 5° in the middle
    return lat, lon


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(lat, lon) True over land: a continent on the eastern edge (wider in the north) and an island."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    coast = 262 - 0.25 * np.clip(la, 0, None) - 6 * np.sin(la / 9)  # the continent's western coast
    continent = (lo > coast) & (la > -20)
    island = ((lo - 146) / 9) ** 2 + ((la + 4) / 5) ** 2 < 1
    return continent | island


def mean_state(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The fixed pattern in kelvin: warm tropics, cold high latitudes, a warm pool in the west."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return 301.0 - 0.0075 * la**2 + 1.5 * np.exp(-(((lo - 150) / 30) ** 2) - (la / 15) ** 2)


def seasonal_cycle(lat: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """(time, lat) kelvin: amplitude 0.08 K per degree of latitude, warmest in late summer of each hemisphere."""
    phase = 2 * np.pi * (np.asarray(day_of_year)[:, None] - 225) / DAYS_PER_YEAR
    return 0.08 * np.abs(lat)[None] * np.sign(lat)[None] * np.cos(phase)


def eddies(lat: np.ndarray, lon: np.ndarray, frames: int, rng: np.random.Generator,
           births_per_step: float = 1.5) -> np.ndarray:
    """(time, lat, lon) kelvin: eddies born at random, drifting with the current, fading in and out."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    out = np.zeros((frames, len(lat), len(lon)))
    warmup = 50  # start earlier so that the first frames hold eddies of every age
    for born in range(-warmup, frames):
        for _ in range(rng.poisson(births_per_step)):
            life = rng.uniform(20, 50)
            amp, radius = rng.normal(0, 1.0), rng.uniform(5, 11)
            y0, x0 = rng.uniform(lat[0], lat[-1]), rng.uniform(lon[0], lon[-1])
            ages = np.arange(max(0, born), min(frames, born + int(life) + 1)) - born
            if len(ages) == 0:
                continue
            y = y0 + 0.05 * ages * rng.normal()  # a small meridional drift
            u = 1.2 * np.cos(np.radians(3.0 * y0)) * np.where(y0 < 15, -1.0, 1.0)  # degrees of longitude / step
            x = x0 + u * ages
            envelope = np.sin(np.pi * ages / life)
            d2 = (la[None] - y[:, None, None]) ** 2 + ((lo[None] - x[:, None, None]) * np.cos(np.radians(la))) ** 2
            out[born + ages] += (amp * envelope)[:, None, None] * np.exp(-d2 / (2 * radius**2))
    return out


def own_field(years: int = 4, files: int = 2, seed: int = 0) -> list:
    """``files`` xarray Datasets of ``years`` years each, consecutive in time (see the module docstring)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    lat, lon = irregular_grid()
    per_file = years * DAYS_PER_YEAR // STEP_DAYS
    frames = files * per_file
    days = STEP_DAYS * np.arange(frames) + STEP_DAYS / 2  # the middle of each 5-day period
    field = (mean_state(lat, lon)[None] + seasonal_cycle(lat, days % DAYS_PER_YEAR)[:, :, None]
             + eddies(lat, lon, frames, rng) + rng.normal(0, NOISE_K, (frames, len(lat), len(lon))))
    field[:, land_mask(lat, lon)] = np.nan
    out = []
    for f in range(files):
        part = slice(f * per_file, (f + 1) * per_file)
        ds = xr.Dataset(
            {"sst": (("time", "lat", "lon"), field[part].astype(np.float32),
                     {"units": "K", "long_name": "sea surface temperature (synthetic)"})},
            coords={"time": ("time", days[part], {"units": "days since 2001-01-01 00:00:00",
                                                  "calendar": "360_day", "standard_name": "time"}),
                    "lat": ("lat", lat, {"units": "degrees_north"}),
                    "lon": ("lon", lon, {"units": "degrees_east"})},
            attrs={"title": "synthetic SST-like field for varsep's worked example",
                   "source": "docs/examples/make_own_field.py"})
        out.append(ds)
    return out


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=".", help="folder to write the files in (default: here)")
    parser.add_argument("--years", type=int, default=4, help="years per file (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, ds in enumerate(own_field(args.years, seed=args.seed)):
        first, last = 2001 + f * args.years, 2001 + (f + 1) * args.years - 1
        path = folder / f"sst_{first}-{last}.nc"
        ds.to_netcdf(path)
        paths.append(path)
        print(f"wrote {path}: sst {tuple(ds.sst.shape)} (time, lat, lon), 360_day calendar")
    return paths


if __name__ == "__main__":
    main()
