"""The ``varsep`` command: wiring only (parse, build, run). See ``varsep --help``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from varsep.errors import VarsepError


def _fit(args: argparse.Namespace, extra: list[str]) -> None:
    from varsep.config import load_config, parse_override_args
    from varsep.run import fit, resume_config

    overrides = parse_override_args(extra)
    if args.config is None and args.resume and args.run_dir is not None:
        config = resume_config(args.run_dir, overrides)
    elif args.config is None:
        raise VarsepError("give a config with -c CONFIG (a YAML file or a packaged name such as waveeq), "
                          "or --resume --run-dir RUN_DIR to continue a run")
    else:
        config = load_config(args.config, overrides)
    run_dir = args.run_dir or Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"run folder: {run_dir}")
    fit(config, run_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(f"done: checkpoints in {Path(run_dir) / 'checkpoints'}; evaluate with: varsep evaluate {run_dir}")


def _evaluate(args: argparse.Namespace, extra: list[str]) -> None:
    from varsep.config import parse_override_args
    from varsep.data import build_dataset
    from varsep.evaluation import evaluate, summary_lines
    from varsep.run import load, resume_config

    run = load(args.run_dir, args.checkpoint)
    overrides = parse_override_args(extra)
    data_config = resume_config(args.run_dir, overrides).data if overrides else run.config.data
    out = Path(args.out) if args.out else Path(args.run_dir) / "eval"
    report = evaluate(run, build_dataset(data_config), out_dir=out, batch_size=args.batch_size,
                      limit=args.limit, precision=args.precision, progress=not args.quiet)
    for line in summary_lines(report):
        print(line)
    print(f"metrics and figures in {out}")


def _demo(args: argparse.Namespace) -> None:
    from varsep.demo import run_demo

    run_demo(Path(args.out), minutes=args.minutes, overwrite=args.overwrite, progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    import varsep.data  # noqa: F401  (registers the data sets' generate/prepare commands)

    parser = argparse.ArgumentParser(prog="varsep", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from varsep.data.base import GENERATORS, PREPARERS

    for verb, table, what in (("generate", GENERATORS, "write a synthetic data set"),
                              ("prepare", PREPARERS, "turn raw downloads into a data set's files")):
        p = sub.add_parser(verb, help=f"{what} ({', '.join(table.names())})")
        kinds = p.add_subparsers(dest="kind", metavar="NAME", required=True)
        for name in table.names():
            command = table.get(name)
            k = kinds.add_parser(name, help=command.help)
            command.add_arguments(k)
            k.set_defaults(handler=command.run)

    p = sub.add_parser("fit", help="train a model; any setting can follow as --section.key value",
                       epilog="example: varsep fit -c configs/waveeq.yaml --data.root data/waveeq "
                              "--trainer.precision bf16")
    p.add_argument("-c", "--config", help="YAML file, or a packaged config name (waveeq, waveeq100, …)")
    p.add_argument("--run-dir", type=Path, help="run folder (default: runs/<config>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("evaluate", help="score a run on its test set; writes RUN_DIR/eval")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt path")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="score only the first N test windows of each horizon")
    p.add_argument("--precision", choices=["32", "bf16"], default="32")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="generate a small WaveEq set, train a few minutes, evaluate")
    p.add_argument("--out", default="runs/demo", help="folder for data and run (default: runs/demo)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default: 3)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.version:
        from varsep import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if extra and args.command not in ("fit", "evaluate"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command in ("generate", "prepare"):
            args.handler(args)
        elif args.command == "fit":
            _fit(args, extra)
        elif args.command == "evaluate":
            _evaluate(args, extra)
        elif args.command == "demo":
            _demo(args)
    except VarsepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
