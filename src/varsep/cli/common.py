"""Arguments and steps several commands share."""

from __future__ import annotations

import argparse

PRECISION_HELP = "auto (default): bf16 autocast where the hardware runs it natively and faster, else fp32"


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto", help=PRECISION_HELP)


def add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=64, help="windows per evaluation batch (default: 64)")
    p.add_argument("--limit", type=int, help="score only the first N test windows of each horizon")
    add_precision_argument(p)
    p.add_argument("--device", default="cpu", help="evaluation device: cpu (default), cuda, or auto")
    p.add_argument("--no-figures", action="store_true", help="metrics and tables only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def resolved_precision(requested: str, device):
    """The resolved precision of an evaluation or forecast, printed once."""
    from varsep.precision import resolve_precision

    choice = resolve_precision(requested, device)
    print(choice.summary())
    return choice


def eval_options(args: argparse.Namespace, **more):
    """EvalOptions from the scoring arguments (the precision resolved and printed once)."""
    from varsep.eval import EvalOptions
    from varsep.eval.evaluation import resolve_device

    precision = resolved_precision(args.precision, resolve_device(args.device))
    return EvalOptions(batch_size=args.batch_size, limit=args.limit, precision=precision, device=args.device,
                       figures=not args.no_figures, progress=not args.quiet, **more)
