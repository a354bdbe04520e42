"""varsep evaluate: score a run on its test set; writes RUN_DIR/eval."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_scoring_arguments, eval_options

HELP = "score a run on its test set; writes RUN_DIR/eval"
EPILOG = "any data setting can follow, e.g. --data.test_file data/mmnist_test.npy"
TAKES_SETTINGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt path")
    add_scoring_arguments(p)
    p.add_argument("--no-swap", action="store_true", help="skip the content-swap protocol")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM when MSE is enough")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--samples", type=int, default=0,
                   help="stochastic models (SVG-LP): also score the best of N samples per window (SVG's protocol: 100)")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import parse_override_args
    from varsep.data import build_dataset
    from varsep.eval import evaluate, summary_lines
    from varsep.forecaster import load
    from varsep.train import resume_config

    overrides = parse_override_args(settings)
    trained = load(args.run_dir, args.checkpoint)
    data_config = resume_config(args.run_dir, overrides).data if overrides else trained.config.data
    out = Path(args.out) if args.out else Path(args.run_dir) / "eval"
    options = eval_options(args, swap=not args.no_swap, ssim=not args.no_ssim, label=Path(args.run_dir).name,
                           samples=args.samples)
    report = evaluate(trained, build_dataset(data_config), out_dir=out, options=options)
    for line in summary_lines(report):
        print(line)
    print(f"metrics.json, results.md and figures in {out}")
