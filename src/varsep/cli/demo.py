"""varsep demo: the whole pipeline on a small simulated WaveEq set, in a few minutes on any CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_precision_argument, positive_float, positive_int

HELP = "generate a small WaveEq set, train a few minutes, evaluate (no download)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder for data and run (default: runs/demo, or runs/demo-2 … if it exists)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps (default: sized for 2 AVX2 cores)")
    p.add_argument("--minutes", type=positive_float, default=None,
                   help="cap on the training time, for machines slower than the demo was sized for (default: 4)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_precision_argument(p)


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.demo import DEMO_MINUTES, DEMO_STEPS, fresh_folder, run_demo

    # Without --out, a second demo goes to runs/demo-2 (and so on) rather than failing or overwriting.
    out = Path(args.out) if args.out is not None else fresh_folder(Path("runs/demo"))
    run_demo(out, steps=DEMO_STEPS if args.steps is None else args.steps,
             minutes=DEMO_MINUTES if args.minutes is None else args.minutes,
             overwrite=args.overwrite, progress=not args.quiet, precision=args.precision)
