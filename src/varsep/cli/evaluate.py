"""varsep evaluate: score a run on its test set; writes RUN_DIR/eval."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_scoring_arguments, eval_options, non_negative_int

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
    p.add_argument("--samples", type=non_negative_int, default=0,
                   help="stochastic models (SVG-LP): also score the best of N samples per window (SVG's protocol: 100)")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import parse_override_args
    from varsep.data import build_dataset
    from varsep.errors import ConfigError
    from varsep.eval import evaluate, summary_lines
    from varsep.forecaster import load
    from varsep.guards import check_writable_folder
    from varsep.train import resume_config

    overrides = parse_override_args(settings)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is {'a file' if run_dir.exists() else 'missing'}: varsep evaluate takes a "
                          f"run folder (a checkpoint file goes in --checkpoint FILE, with its run folder)")
    if args.checkpoint not in ("best", "last") and args.out is None:
        # scores of another run's checkpoint must not land in this run's eval/ under this run's name
        ckpt = Path(args.checkpoint).resolve()
        if run_dir.resolve() not in ckpt.parents:
            raise ConfigError(f"checkpoint {args.checkpoint} is not in {run_dir}; evaluate it with its own run "
                              f"folder, or say where its scores go with --out")
    out = Path(args.out) if args.out else run_dir / "eval"
    check_writable_folder(out, "evaluation folder")
    trained = load(run_dir, args.checkpoint)
    data_config = resume_config(run_dir, overrides).data if overrides else trained.config.data
    options = eval_options(args, swap=not args.no_swap, ssim=not args.no_ssim, label=run_dir.name,
                           samples=args.samples)
    report = evaluate(trained, build_dataset(data_config), out_dir=out, options=options)
    for line in summary_lines(report):
        print(line)
    print(f"metrics.json, results.md and figures in {out}")
