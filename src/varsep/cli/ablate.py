"""varsep ablate: train and evaluate the ablations of the paper's Table 4, one comparison table."""

from __future__ import annotations

import argparse
from pathlib import Path

from varsep.cli.common import add_scoring_arguments, eval_options, positive_int

HELP = "train and evaluate the ablations of Table 4; one comparison table"
EPILOG = ("example: varsep ablate -c configs/mmnist.yaml --budget-steps 20000; any setting can follow as "
          "--section.key value (applied to every variant)")
TAKES_SETTINGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="YAML file, or a packaged config name")
    p.add_argument("--budget-steps", type=positive_int,
                   help="optimiser steps per variant (default: the config's schedule)")
    p.add_argument("--run-root", type=Path, help="folder of the variants' runs (default: runs/ablation-<config>)")
    p.add_argument("--variants", help="comma-separated subset of: full, without_s, lambda_ae_0, lambda_s_0, "
                                      "lambda_t_0, gru (default: all)")
    add_scoring_arguments(p)


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import load_config, parse_override_args
    from varsep.eval.ablation import ablate, parse_variants

    config = load_config(args.config, parse_override_args(settings))
    variants = parse_variants(args.variants)
    root = args.run_root or Path("runs") / f"ablation-{Path(args.config).stem}"
    print(f"ablation folder: {root}")
    summary = ablate(config, root, variants=variants, budget_steps=args.budget_steps, options=eval_options(args))
    print()
    print(summary["markdown"])
    print(f"table: {Path(root) / 'ablation.md'} and {Path(root) / 'ablation.json'}")
