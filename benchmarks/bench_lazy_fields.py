"""Benchmark: peak memory and window throughput of lazily read NetCDF/Zarr fields as the data grow.

    python benchmarks/bench_lazy_fields.py [--sizes-mb 64 256 1024] [--kind zarr|netcdf] [--batches 50]

For each size, writes a store of float32 frames (time, 90, 180) of that many MiB in a temporary folder
(chunked along time), then — in a fresh process, so peak RSS is that run's alone — opens it as a custom
data set (mask/NaN pass and statistics pass included) and takes ``--batches`` random batches of 32
training windows. Reports per size: the store's MiB, peak RSS in MiB, the RSS growth over the process
before opening, seconds to open, and windows per second. Memory that does not grow with the store is the
claim (issue 19); the store is deleted afterwards.

This is the smaller benchmark of issue 19's item 5: it does not write a store of 1.5× the machine's
memory (which would take a long time and the machine's disk); pass larger ``--sizes-mb`` to do so.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware  # noqa: E402

H, W = 90, 180
CHUNK = 32  # frames per storage chunk along time


def write_store(path: Path, megabytes: int, kind: str) -> int:
    """A smooth field with a seasonal cycle, written chunk by chunk (never whole in memory)."""
    import xarray as xr

    frames = max(64, megabytes * 2**20 // (4 * H * W))
    lat = np.linspace(-89, 89, H)[:, None]
    lon = np.linspace(0, 360, W, endpoint=False)[None, :]
    base = (15 + 10 * np.cos(np.deg2rad(lat)) + 0 * lon).astype(np.float32)
    rng = np.random.default_rng(0)

    def block(lo: int, hi: int) -> np.ndarray:
        t = np.arange(lo, hi)[:, None, None]
        return (base + 3 * np.sin(2 * np.pi * t / 365) + 0.1 * rng.standard_normal((hi - lo, H, W))).astype(
            np.float32)

    if kind == "zarr":
        for lo in range(0, frames, CHUNK * 8):
            hi = min(frames, lo + CHUNK * 8)
            ds = xr.Dataset({"tas": (("time", "lat", "lon"), block(lo, hi))}, coords={"time": np.arange(lo, hi)})
            enc = {"tas": {"chunks": (CHUNK, H, W)}} if lo == 0 else None
            ds.to_zarr(path, mode="w" if lo == 0 else "a", append_dim=None if lo == 0 else "time",
                       encoding=enc, consolidated=False)
    else:
        import netCDF4

        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", None)
            nc.createDimension("lat", H)
            nc.createDimension("lon", W)
            nc.createVariable("time", "i8", ("time",))
            var = nc.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(CHUNK, H, W))
            for lo in range(0, frames, CHUNK * 8):
                hi = min(frames, lo + CHUNK * 8)
                var[lo:hi] = block(lo, hi)
                nc["time"][lo:hi] = np.arange(lo, hi)
    return frames


def measure(path: str, kind: str, batches: int) -> dict:
    """In this (fresh) process: open the store as a data set and draw batches; peak RSS included."""
    from varsep.config import config_from_dict
    from varsep.data import build_dataset

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    ds = build_dataset(config_from_dict({"data": {"kind": kind, "path": path, "cond_frames": 5,
                                                  "pred_frames": 10, "test_horizons": [10]}}).data)
    opened = time.perf_counter() - start
    windows = ds.train_source().windows
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(batches):
        windows.take(rng.integers(0, len(windows), 32))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": round(peak, 1), "rss_growth_mb": round(peak - before, 1),
            "open_seconds": round(opened, 2), "windows_per_second": round(batches * 32 / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--kind", choices=["zarr", "netcdf"], default="zarr")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.batches)))
        return
    rows = []
    for size in args.sizes_mb:
        folder = Path(tempfile.mkdtemp(prefix="varsep_lazy_"))
        try:
            store = folder / ("field.zarr" if args.kind == "zarr" else "field.nc")
            frames = write_store(store, size, args.kind)
            out = subprocess.run([sys.executable, __file__, "--measure", str(store), args.kind,
                                  "--batches", str(args.batches)], capture_output=True, text=True, check=True)
            rows.append({"store_mb": size, "frames": frames, **json.loads(out.stdout.strip().splitlines()[-1])})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"hardware": hardware(), "benchmark": "lazy_fields", "kind": args.kind,
                      "frame": [H, W], "chunk_frames": CHUNK, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
