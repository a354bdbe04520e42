"""varsep predict: forecast from a file of observations, written like the input."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_precision_argument, positive_int, resolved_precision

HELP = "forecast from a file of observations (.npy/.npz/.nc/.zarr)"
EPILOG = "example: varsep predict runs/waveeq --input last_frames.npy --horizon 40 --out forecast.npy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run folder (or a .ckpt file)")
    p.add_argument("--input", required=True, help="observations before the forecast: (time, *frame) or "
                                                  "(sequence, time, *frame); the last τ+1 are used")
    p.add_argument("--out", required=True, help="forecast file: .npy, or .nc (NetCDF matching the input)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--horizon", type=positive_int, help="forecast the next N frames")
    when.add_argument("--times", help="forecast at these times after the last frame, e.g. 0.5,1,2.5")
    p.add_argument("--method", default="residual", help="ODE solver: residual (the paper's), euler, rk4, dopri5, …")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt path")
    p.add_argument("--variable", help="the array of an .npz, or the variable of a NetCDF/Zarr input")
    p.add_argument("--no-figure", action="store_true", help="do not draw the PNG next to the output")
    add_precision_argument(p)


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.errors import VarsepError
    from varsep.predict import predict

    try:
        times = [float(t) for t in args.times.split(",")] if args.times else None
        precision = resolved_precision(args.precision, "cpu")
        out = predict(args.run_dir, args.input, args.out, horizon=args.horizon, times=times, method=args.method,
                      checkpoint=args.checkpoint, variable=args.variable, figure=not args.no_figure,
                      precision=precision)
    except ValueError as err:  # bad times, solver names, horizons: the user's input, not a bug
        raise VarsepError(str(err)) from None
    print(f"wrote {out}" + ("" if args.no_figure else f" and {out.with_suffix('.png')}"))
