"""varsep import-weights: a run folder from a released checkpoint of a baseline (OpenSTL's, or the official
DDPAE code's), ready to evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("make a run folder from an OpenSTL checkpoint of a baseline, or the official DDPAE code's "
        "(then: varsep evaluate RUN_DIR)")
EPILOG = ("example: varsep import-weights --model convlstm --weights convlstm_mmnist.pth -c mmnist "
          "--run-dir runs/convlstm-openstl --data.cond_frames 10 --data.pred_frames 10 --data.test_horizons [10]")
TAKES_SETTINGS = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the baseline: convlstm, predrnn, predrnn_v2, predrnnpp, mim, "
                                                 "e3dlstm, phydnet, simvp, tau (OpenSTL), ddpae (its own code)")
    p.add_argument("--weights", required=True, type=Path, help="the OpenSTL checkpoint (.pth or .ckpt); "
                   "ddpae: the official checkpoint folder (newest complete epoch) or one of its net_*_<epoch>.pth")
    p.add_argument("-c", "--config", required=True, help="the data set's config (YAML file or packaged name)")
    p.add_argument("--run-dir", required=True, type=Path, help="the run folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import load_config, parse_override_args
    from varsep.eval.compare import model_config

    base = load_config(args.config, {})
    config = model_config(base, args.model)
    overrides = parse_override_args(settings)
    if overrides:
        from varsep.config import apply_overrides, config_from_dict

        config = config_from_dict(apply_overrides(config.to_dict(), overrides))
    from varsep.train.imports import import_weights

    run_dir = import_weights(config, args.weights, args.run_dir, overwrite=args.overwrite)
    print(f"wrote {run_dir}; score it with: varsep evaluate {run_dir}")
