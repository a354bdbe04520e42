"""Arguments and steps several commands share."""

from __future__ import annotations

import argparse
import math


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (a clear one-line error otherwise)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0."""
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


PRECISION_HELP = "auto (default): bf16 autocast where the hardware runs it natively and faster, else fp32"


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto", help=PRECISION_HELP)


def add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per evaluation batch (default: 64)")
    p.add_argument("--limit", type=positive_int, help="score only the first N test windows of each horizon")
    add_precision_argument(p)
    p.add_argument("--device", default="cpu", type=device_name,
                   help="evaluation device: cpu (default), cuda, cuda:N, or auto")
    p.add_argument("--no-figures", action="store_true", help="metrics and tables only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def device_name(text: str) -> str:
    """An argparse type: cpu, auto, cuda or cuda:N (checked against the hardware when the command runs)."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "auto", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    return text


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
