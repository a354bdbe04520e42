"""varsep compare: the separable model and baselines trained at the same budget, one table and two figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_scoring_arguments, eval_options, positive_float, positive_int

HELP = "train and evaluate several models (varsep, baselines) at the same budget; one table and figures"
EPILOG = ("example: varsep compare -c waveeq --data.root data/waveeq --models varsep,phydnet,convlstm "
          "--budget-minutes 20; any setting can follow as --section.key value (applied to the data and trainer "
          "of every model)")
TAKES_SETTINGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True,
                   help="a data set's config (YAML file or packaged name: waveeq, mmnist, …): its data and trainer")
    p.add_argument("--models", required=True,
                   help="comma-separated: varsep and baselines (convlstm, predrnn, predrnn_v2, predrnnpp, mim, "
                        "e3dlstm, phydnet, simvp, tau, drnet, svg, pknl, ddpae)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-steps", type=positive_int, help="optimiser steps per model")
    budget.add_argument("--budget-minutes", type=positive_float, help="training minutes per model on this machine")
    p.add_argument("--run-root", type=Path, help="folder of the models' runs (default: runs/compare-<config>)")
    add_scoring_arguments(p)
    p.add_argument("--no-swap", action="store_true", help="skip the content-swap protocol")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM when MSE is enough")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import load_config, parse_override_args
    from varsep.eval.compare import compare, parse_models

    config = load_config(args.config, parse_override_args(settings))
    models = parse_models(args.models)
    root = args.run_root or Path("runs") / f"compare-{Path(args.config).stem}"
    print(f"comparison folder: {root}")
    summary = compare(config, root, models, budget_steps=args.budget_steps, budget_minutes=args.budget_minutes,
                      options=eval_options(args, swap=not args.no_swap, ssim=not args.no_ssim))
    print()
    print(summary["markdown"])
    print(f"table: {root / 'compare.md'} and {root / 'compare.json'}; figures: "
          + ", ".join(str(root / f) for f in summary["figures"]))
