"""varsep prepare NAME: turn raw downloads into a data set's files (SST zones, the Chairs cache)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from varsep.cli.common import positive_int

HELP = "turn raw downloads into a data set's files (sst, chairs)"


# --------------------------------------------------------------------------------------------------- sst
def _sst_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", nargs="+", required=True, metavar="PATH",
                   help="raw GLOBAL_ANALYSIS_FORECAST_PHY_001_024 NetCDF files, folders of .nc files, or glob "
                        "patterns")
    p.add_argument("--zones", required=True, metavar="FILE",
                   help="YAML/JSON zone boxes: size: 64, zones: {17: {row: R, col: C}, 18: {lat: Y, lon: X}}")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the data_{zone}.nc files")
    p.add_argument("--climatology", choices=["zone", "pixel"], default="zone",
                   help="zone: per-day scalars over the whole zone (the paper's; default); pixel: per pixel")
    p.add_argument("--climatology-until", metavar="DATE",
                   help="only days up to DATE (YYYY-MM-DD) inform the climatology (default: all days)")
    p.add_argument("--variable", default="thetao", help="temperature variable of the raw files")
    p.add_argument("--overwrite", action="store_true", help="replace existing zone files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _sst(args: argparse.Namespace) -> None:
    from varsep.datagen.sst import prepare

    start = time.perf_counter()
    written = prepare(args.raw, args.zones, args.out, climatology_kind=args.climatology,
                      climatology_until=args.climatology_until, variable=args.variable,
                      overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {len(written)} zone files to {args.out} in {time.perf_counter() - start:.1f} s; "
          f"train with: varsep fit -c sst --data.root {args.out}")


# ------------------------------------------------------------------------------------------------ chairs
def _chairs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="the rendered_chairs folder or its parent")
    p.add_argument("--cache-dir", help="where to write the cache (default: the rendered_chairs folder)")
    p.add_argument("--workers", type=positive_int, help="preprocessing threads (default: up to 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _chairs(args: argparse.Namespace) -> None:
    from varsep.data.chairs.archive import load_frames

    start = time.perf_counter()
    frames, meta = load_frames(args.root, cache_dir=args.cache_dir, workers=args.workers,
                               progress=not args.quiet)
    where = Path(frames.filename) if getattr(frames, "filename", None) else Path(meta["source"])
    print(f"{len(meta['chairs'])} chairs × {frames.shape[1]} views ({frames.shape[2]}×{frames.shape[3]}×"
          f"{frames.shape[4]}) cached in {where} ({frames.nbytes / 1e9:.2f} GB) in "
          f"{time.perf_counter() - start:.1f} s; train with: varsep fit -c chairs --data.root {args.root}"
          + (f" --data.cache_dir {args.cache_dir}" if args.cache_dir else ""))


# name → (help, arguments, run); a new preparation command adds one entry
PREPARERS = {
    "sst": ("cut SST zone files from raw Copernicus NetCDF (docs/data/sst.md)", _sst_arguments, _sst),
    "chairs": ("preprocess rendered_chairs/ once into a memory-mappable cache (docs/data/chairs.md)",
               _chairs_arguments, _chairs),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_subparsers(dest="kind", metavar="NAME", required=True)
    for name, (text, arguments, action) in PREPARERS.items():
        k = kinds.add_parser(name, help=text, description=text)
        arguments(k)
        k.set_defaults(action=action)


def run(args: argparse.Namespace, settings: list[str]) -> None:
    args.action(args)
