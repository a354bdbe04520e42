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
    from varsep.evaluation import evaluate, resolve_device, summary_lines
    from varsep.run import load, resume_config

    run = load(args.run_dir, args.checkpoint)
    overrides = parse_override_args(extra)
    data_config = resume_config(args.run_dir, overrides).data if overrides else run.config.data
    out = Path(args.out) if args.out else Path(args.run_dir) / "eval"
    precision = _precision(args.precision, resolve_device(args.device))
    report = evaluate(run, build_dataset(data_config), out_dir=out, batch_size=args.batch_size,
                      limit=args.limit, precision=precision, progress=not args.quiet,
                      figures=not args.no_figures, swap=not args.no_swap, device=args.device, ssim=not args.no_ssim,
                      label=Path(args.run_dir).name)
    for line in summary_lines(report):
        print(line)
    print(f"metrics.json, results.md and figures in {out}")


def _precision(requested: str, device):
    """The resolved precision of an evaluation or forecast, printed once."""
    from varsep.precision import resolve_precision

    choice = resolve_precision(requested, device)
    print(choice.summary())
    return choice


def _ablate(args: argparse.Namespace, extra: list[str]) -> None:
    from varsep.ablation import ablate, parse_variants
    from varsep.config import load_config, parse_override_args

    config = load_config(args.config, parse_override_args(extra))
    root = args.run_root or Path("runs") / f"ablation-{Path(args.config).stem}"
    print(f"ablation folder: {root}")
    summary = ablate(config, root, variants=parse_variants(args.variants), budget_steps=args.budget_steps,
                     batch_size=args.batch_size, limit=args.limit, precision=args.precision,
                     device=args.device, figures=not args.no_figures, progress=not args.quiet)
    print()
    print(summary["markdown"])
    print(f"table: {Path(root) / 'ablation.md'} and {Path(root) / 'ablation.json'}")


def _report(args: argparse.Namespace) -> None:
    import json

    from varsep import plots
    from varsep.reports import compare_runs, report_curves
    from varsep.scores import mse_label

    labels = [t.strip() for t in args.labels.split(",")] if args.labels else None
    text, summary = compare_runs(args.run_dirs, labels)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"written to {out} and {out.with_suffix('.json')}")
    for (data, horizon), (key, curves) in report_curves(args.run_dirs, labels).items():
        figure = plots.metric_curves(curves, out.with_name(f"{out.stem}_{data}_mse_t{horizon}.png"),
                                     ylabel=mse_label(key), log=True,
                                     title=f"{data}: MSE per forecast step")
        print(f"figure: {figure}")


def _predict(args: argparse.Namespace) -> None:
    from varsep.predict import predict

    try:
        times = [float(t) for t in args.times.split(",")] if args.times else None
        precision = _precision(args.precision, "cpu")
        out = predict(args.run_dir, args.input, args.out, horizon=args.horizon, times=times, method=args.method,
                      checkpoint=args.checkpoint, variable=args.variable, figure=not args.no_figure,
                      precision=precision)
    except ValueError as err:  # bad times, solver names, horizons: the user's input, not a bug
        raise VarsepError(str(err)) from None
    print(f"wrote {out}" + ("" if args.no_figure else f" and {out.with_suffix('.png')}"))


def _demo(args: argparse.Namespace) -> None:
    from varsep.demo import DEMO_STEPS, fresh_folder, run_demo

    # Without --out, a second demo goes to runs/demo-2 (and so on) rather than failing or overwriting.
    out = Path(args.out) if args.out is not None else fresh_folder(Path("runs/demo"))
    run_demo(out, steps=DEMO_STEPS if args.steps is None else args.steps, minutes=args.minutes, overwrite=args.overwrite, progress=not args.quiet,
             precision=args.precision)


def _add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="score only the first N test windows of each horizon")
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto",
                   help="auto (default): bf16 autocast where the hardware runs it natively and faster, else fp32")
    p.add_argument("--device", default="cpu", help="evaluation device: cpu (default), cuda, or auto")
    p.add_argument("--no-figures", action="store_true", help="metrics and tables only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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

    p = sub.add_parser("evaluate", help="score a run on its test set; writes RUN_DIR/eval",
                       epilog="any data setting can follow, e.g. --data.test_file data/mmnist_test.npy")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt path")
    _add_scoring_arguments(p)
    p.add_argument("--no-swap", action="store_true", help="skip the content-swap protocol")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM (about 0.5 ms per frame) when MSE is enough")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval)")

    p = sub.add_parser("ablate", help="train and evaluate the ablations of Table 4; one comparison table",
                       epilog="example: varsep ablate -c configs/mmnist.yaml --budget-steps 20000; any "
                              "setting can follow as --section.key value (applied to every variant)")
    p.add_argument("-c", "--config", required=True, help="YAML file, or a packaged config name")
    p.add_argument("--budget-steps", type=int,
                   help="optimiser steps per variant (default: the config's schedule)")
    p.add_argument("--run-root", type=Path,
                   help="folder of the variants' runs (default: runs/ablation-<config>)")
    p.add_argument("--variants", help="comma-separated subset of: full, without_s, lambda_ae_0, lambda_s_0, "
                                      "lambda_t_0, gru (default: all)")
    _add_scoring_arguments(p)

    p = sub.add_parser("report", help="put the evaluations of several runs side by side (Markdown)")
    p.add_argument("run_dirs", nargs="+", type=Path,
                   help="run folders (or eval folders, or metrics.json files)")
    p.add_argument("--labels", help="comma-separated row names (default: the folder names)")
    p.add_argument("--out", default="report.md", help="Markdown file to write (default: report.md; the JSON "
                                                     "summary goes beside it)")

    p = sub.add_parser("predict", help="forecast from a file of observations (.npy/.npz/.nc/.zarr)",
                       epilog="example: varsep predict runs/waveeq --input last_frames.npy --horizon 40 "
                              "--out forecast.npy")
    p.add_argument("run_dir", type=Path, help="a run folder (or a .ckpt file)")
    p.add_argument("--input", required=True, help="observations before the forecast: (time, *frame) or "
                                                  "(sequence, time, *frame); the last τ+1 are used")
    p.add_argument("--out", required=True, help="forecast file: .npy, or .nc (NetCDF matching the input)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--horizon", type=int, help="forecast the next N frames")
    when.add_argument("--times", help="forecast at these times after the last frame, e.g. 0.5,1,2.5")
    p.add_argument("--method", default="residual", help="ODE solver: residual (the paper's), euler, rk4, dopri5, …")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt path")
    p.add_argument("--variable", help="the array of an .npz, or the variable of a NetCDF/Zarr input")
    p.add_argument("--no-figure", action="store_true", help="do not draw the PNG next to the output")
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto",
                   help="auto (default): bf16 autocast where the hardware runs it natively and faster, else fp32")

    p = sub.add_parser("demo", help="generate a small WaveEq set, train a few minutes, evaluate")
    p.add_argument("--out", help="folder for data and run (default: runs/demo, or runs/demo-2 … if it exists)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 500, sized for 2 AVX2 cores)")
    p.add_argument("--minutes", type=float, default=4.0,
                   help="cap on the training time, for machines slower than the demo was sized for (default: 4)")
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto",
                   help="auto (default): bf16 autocast where the hardware runs it natively and faster, else fp32")
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
    if extra and args.command not in ("fit", "evaluate", "ablate"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command in ("generate", "prepare"):
            args.handler(args)
        elif args.command == "fit":
            _fit(args, extra)
        elif args.command == "evaluate":
            _evaluate(args, extra)
        elif args.command == "ablate":
            _ablate(args, extra)
        elif args.command == "report":
            _report(args)
        elif args.command == "predict":
            _predict(args)
        elif args.command == "demo":
            _demo(args)
    except VarsepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
