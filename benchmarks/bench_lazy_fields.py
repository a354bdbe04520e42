"""Benchmark: peak memory and window throughput of lazily read NetCDF/Zarr fields as the data grow.

    python benchmarks/bench_lazy_fields.py [--sizes-mb 64 256 1024] [--kind zarr|netcdf] [--batches 50]
    python benchmarks/bench_lazy_fields.py --ram-multiple 1.5 --workers 0 2   # a store 1.5× this machine's RAM

For each size, writes a store of float32 frames (time, 90, 180) of that many MiB (uncompressed) in a
temporary folder (``--dir``; chunked along time, 32 frames a chunk, zarr's default compression), then —
in a fresh process, so peak RSS is that run's alone — opens it as a custom data set (mask/NaN pass and
statistics pass included; ``data.in_memory_mb: 0``, so even small stores take the window-by-window path)
and takes ``--batches`` random batches of 32 training windows. Reports per size: the store's MiB
(uncompressed and on disk), peak RSS in MiB, the RSS growth over the process before opening, seconds to
open, and windows per second. Memory that does not grow with the store is the claim (issue 19); the store
is deleted afterwards.

``--workers N …`` adds, per size, a training loop (random batches of 32 windows from the training
stream, each followed by forward + backward + Adam of a small MLP model on it) run with ``data.num_workers``
= N (threads reading the next batches during the step): steps per second for each N, i.e. whether reading
ahead overlaps compute on this machine.
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
    # Noise drawn once and shifted along longitude per block: a store of tens of GiB is written at disk
    # speed rather than at the random generator's.
    noise = (0.1 * np.random.default_rng(0).standard_normal((CHUNK * 8, H, W))).astype(np.float32)

    def block(lo: int, hi: int) -> np.ndarray:
        t = np.arange(lo, hi)[:, None, None]
        seasonal = (3 * np.sin(2 * np.pi * t / 365)).astype(np.float32)
        return base + seasonal + np.roll(noise[:hi - lo], lo // (CHUNK * 8), axis=2)

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


def measure(path: str, kind: str, batches: int, workers: list[int]) -> dict:
    """In this (fresh) process: open the store as a data set and draw batches; peak RSS included."""
    from varsep.config import config_from_dict
    from varsep.data import build_dataset

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    ds = build_dataset(config_from_dict({"data": {"kind": kind, "path": path, "cond_frames": 5,
                                                  "pred_frames": 10, "test_horizons": [10],
                                                  "in_memory_mb": 0}}).data)
    opened = time.perf_counter() - start
    windows = ds.train_source().windows
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(batches):
        windows.take(rng.integers(0, len(windows), 32))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"peak_rss_mb": round(peak, 1), "rss_growth_mb": round(peak - before, 1),
           "open_seconds": round(opened, 2), "windows_per_second": round(batches * 32 / seconds, 1)}
    for n in workers:
        out[f"train_steps_per_second_workers_{n}"] = round(train_steps_per_second(ds, n, batches), 2)
    out["peak_rss_mb_after_training"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def train_steps_per_second(ds, workers: int, steps: int) -> float:
    """Steps/s of: the next training batch (read ahead by ``workers`` threads) + a small MLP model's step."""
    import torch

    from varsep.config import ModelConfig
    from varsep.config.schema import LossConfig
    from varsep.model import build_model
    from varsep.model.losses import loss_terms
    from varsep.train.stream import TrainStream

    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="mlp", decoder="mlp", encoder_hidden=[64], decoder_hidden=[64],
                                    s_dim=8, t_dim=8, width=32, blocks=1), ds.spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    stream = TrainStream(ds.train_source(), batch_size=32, batches_per_epoch=steps + 2, seed=0, ae_choices=1,
                         workers=workers)
    batches = iter(stream)
    for _ in range(2):  # warm-up (first allocations, the first chunks)
        next(batches)
    start = time.perf_counter()
    for batch in batches:
        terms = loss_terms(model, batch["frames"], batch["ae_index"], LossConfig())
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def memory_bytes() -> int:
    """This machine's memory (MemTotal)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--kind", choices=["zarr", "netcdf"], default="zarr")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--ram-multiple", type=float, help="one store of this many times the machine's memory "
                        "(instead of --sizes-mb)")
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="also time a training loop with "
                        "each of these data.num_workers")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores are written (default: the "
                        "system's temporary folder)")
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.batches, args.workers)))
        return
    sizes = [int(args.ram_multiple * memory_bytes() / 2**20)] if args.ram_multiple else args.sizes_mb
    rows = []
    for size in sizes:
        folder = Path(tempfile.mkdtemp(prefix="varsep_lazy_", dir=args.dir))
        free = shutil.disk_usage(folder).free
        if size * 2**20 > 0.95 * free:
            shutil.rmtree(folder)
            raise SystemExit(f"a {size} MiB store does not fit in {folder.parent} ({free // 2**20} MiB free); "
                             f"pass --dir on a larger disk")
        try:
            store = folder / ("field.zarr" if args.kind == "zarr" else "field.nc")
            start = time.perf_counter()
            frames = write_store(store, size, args.kind)
            written = time.perf_counter() - start
            out = subprocess.run([sys.executable, __file__, "--measure", str(store), args.kind,
                                  "--batches", str(args.batches), "--workers", *map(str, args.workers)],
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"measuring the {size} MiB store failed:\n{out.stderr[-3000:]}")
            rows.append({"store_mb": size, "store_mb_on_disk": round(disk_bytes(store) / 2**20),
                         "frames": frames, "write_seconds": round(written, 1),
                         **json.loads(out.stdout.strip().splitlines()[-1])})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"hardware": hardware(), "memory_mb": memory_bytes() // 2**20, "benchmark": "lazy_fields",
                      "kind": args.kind, "frame": [H, W], "chunk_frames": CHUNK, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
