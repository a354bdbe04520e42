"""varsep report: the evaluations of several runs side by side (Markdown table and per-step curves)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "put the evaluations of several runs side by side (Markdown)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, help="run folders (or eval folders, or metrics.json files)")
    p.add_argument("--labels", help="comma-separated row names (default: the folder names)")
    p.add_argument("--out", default="report.md",
                   help="Markdown file to write (default: report.md; the JSON summary goes beside it)")


def run(args: argparse.Namespace, settings: list[str]) -> None:
    from varsep.errors import ConfigError
    from varsep.eval import plots
    from varsep.eval.scoring import mse_label
    from varsep.eval.tables import compare_runs, find_metrics, report_curves
    from varsep.guards import check_not_an_input

    labels = [t.strip() for t in args.labels.split(",")] if args.labels else None
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the Markdown file, e.g. {out / 'report.md'}")
    if out.suffix.lower() == ".json":
        raise ConfigError(f"--out {out}: give the Markdown file (.md); its JSON summary is written beside it")
    inputs = [find_metrics(p) for p in args.run_dirs]  # the files read: none of them may be written over
    check_not_an_input([out, out.with_suffix(".json")], inputs, "--out")
    text, summary = compare_runs(args.run_dirs, labels)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"written to {out} and {out.with_suffix('.json')}")
    for (data, horizon), (key, curves) in report_curves(args.run_dirs, labels).items():
        figure = plots.metric_curves(curves, out.with_name(f"{out.stem}_{data}_mse_t{horizon}.png"),
                                     ylabel=mse_label(key), log=True, title=f"{data}: MSE per forecast step")
        print(f"figure: {figure}")
