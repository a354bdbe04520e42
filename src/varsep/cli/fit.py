"""varsep fit: train a model from a config; any setting can follow as --section.key value."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

HELP = "train a model; any setting can follow as --section.key value"
EPILOG = ("example: varsep fit -c configs/waveeq.yaml --data.root data/waveeq --trainer.precision bf16; "
          "continue a run with: varsep fit --resume --run-dir RUN_DIR")
TAKES_SETTINGS = True
RUN_DIR_VARIABLE = "VARSEP_RUN_DIR"  # the run folder, for the extra processes of a data-parallel run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="YAML file, or a packaged config name (waveeq, waveeq100, …)")
    p.add_argument("--run-dir", type=Path, help="run folder (default: runs/<config>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.config import load_config, parse_override_args
    from varsep.errors import VarsepError

    overrides = parse_override_args(settings)
    if args.config is None and args.resume and args.run_dir is not None:
        from varsep.train import resume_config

        config = resume_config(args.run_dir, overrides)
    elif args.config is None:
        raise VarsepError("give a config with -c CONFIG (a YAML file or a packaged name such as waveeq), "
                          "or --resume --run-dir RUN_DIR to continue a run")
    else:
        config = load_config(args.config, overrides)  # config errors come before torch is imported
    from varsep.train import fit
    from varsep.train.rundir import is_primary_process

    primary = is_primary_process()
    run_dir = args.run_dir
    if run_dir is None and not primary:  # a DDP child Lightning started: the folder its parent chose
        run_dir = os.environ.get(RUN_DIR_VARIABLE)
        if run_dir is None:  # e.g. torchrun or srun, where every process starts at once
            raise VarsepError("a process of a multi-process run needs the run folder: pass --run-dir RUN_DIR "
                              "(the same folder) to every process")
    if run_dir is None:
        run_dir = Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if primary:
        print(f"run folder: {run_dir}")
    previous = os.environ.get(RUN_DIR_VARIABLE)
    os.environ[RUN_DIR_VARIABLE] = str(run_dir)  # inherited by the processes Lightning starts
    try:
        # --quiet and the extra processes: no bar; otherwise trainer.progress_bar decides
        fit(config, run_dir, resume=args.resume, overwrite=args.overwrite,
            progress=False if args.quiet or not primary else None)
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_VARIABLE, None)
        else:
            os.environ[RUN_DIR_VARIABLE] = previous
    if primary:
        print(f"done: checkpoints in {Path(run_dir) / 'checkpoints'}; evaluate with: varsep evaluate {run_dir}")
