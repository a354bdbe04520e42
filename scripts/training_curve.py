"""Test MSE against training time: score every weights-only snapshot of one or more runs.

    python scripts/training_curve.py runs/table1/waveeq runs/table1/waveeq100 --out docs/results/curve

For each run folder, every ``checkpoints/snapshots/epoch-*.ckpt`` (see trainer.snapshot_every_n_epochs)
and the last checkpoint are evaluated on the test set (MSE only, no swap, no figures); the cumulative
training time each one took is read from the checkpoint. Writes ``<out>.csv`` and ``<out>.png``
(MSE at the longest test horizon, mean over its steps, against hours of training).

``--validation`` also draws each run's validation MSE (logged at every validation in ``logs/metrics.csv``,
nothing is scored) against the training time of its step; ``--no-test`` draws only that, at no cost.

Rows already in an existing ``<out>.csv`` (same run, checkpoint file, step, ``--limit`` and precision) are reused
rather than scored again, so the curve of a resumed run costs only its new snapshots; ``--rescore`` scores
everything. ``--precision`` (default auto: bf16 autocast where the CPU runs it natively and faster) is recorded
in each row; rows written before precision was recorded were scored in fp32.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from varsep.data import build_dataset  # noqa: E402
from varsep.eval import EvalOptions  # noqa: E402
from varsep.eval.evaluation import evaluate  # noqa: E402
from varsep.forecaster import load_checkpoint
from varsep.runs import find_checkpoint  # noqa: E402
from varsep.storage import safe_torch_load  # noqa: E402

Key = tuple[str, str, int, int | None, str]  # run, checkpoint file, step, --limit, precision


def read_scored(csv_path: Path) -> dict[Key, dict]:
    """Rows of an earlier run of this script, keyed by (run, checkpoint file, step, limit, precision)."""
    if not csv_path.exists():
        return {}
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    scored = {}
    for row in rows:
        parsed = {k: (v if k in ("run", "checkpoint", "precision") else float(v)) for k, v in row.items() if v != ""}
        parsed.setdefault("precision", "32")
        parsed["step"] = int(parsed["step"])
        if "limit" in parsed:
            parsed["limit"] = int(parsed["limit"])
        if "windows" in parsed:
            parsed["windows"] = int(parsed["windows"])
        scored[(parsed["run"], parsed["checkpoint"], parsed["step"], parsed.get("limit"), parsed["precision"])] = parsed
    return scored


def score_run(run_dir: Path, limit: int | None, batch_size: int,
              scored: dict[Key, dict] | None = None, precision: str = "auto") -> list[dict]:
    """One row per snapshot and the last checkpoint of ``run_dir``; rows found in ``scored`` are not re-run."""
    snapshots = sorted((run_dir / "checkpoints" / "snapshots").glob("epoch-*.ckpt"))
    paths = snapshots + [find_checkpoint(run_dir, "last")]
    rows, dataset = [], None
    for path in paths:
        step = int(safe_torch_load(path).get("global_step", -1))
        cached = (scored or {}).get((run_dir.name, path.name, step, limit, precision))
        if cached is not None:
            rows.append(cached)
            print(f"{run_dir.name}/{path.name} (step {step}): scored before, reused")
            continue
        loaded = load_checkpoint(path)
        dataset = dataset or build_dataset(loaded.config.data)
        horizon = str(max(loaded.config.data.test_horizons))
        options = EvalOptions(batch_size=batch_size, limit=limit, progress=False, figures=False, swap=False,
                              ssim=False, precision=precision)
        report = evaluate(loaded, dataset, options=options)
        seconds = float(safe_torch_load(path).get("varsep", {}).get("train_seconds", 0.0))
        rows.append({"run": run_dir.name, "checkpoint": path.name, "step": loaded.step, "train_hours": seconds / 3600,
                     f"mse_t{horizon}": report["horizons"][horizon]["mse_mean"],
                     "windows": report["horizons"][horizon]["windows"], "precision": report["precision"]})
        if limit is not None:
            rows[-1]["limit"] = limit
        print(rows[-1])
    return rows


def validation_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, training hours, validation MSE) of every validation in a run's log: free to draw, and on data
    that chose the checkpoints, not on the test set. The hours are those of the last training row logged
    at or before the validation's step."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{run_dir} has no logs/metrics.csv: is it a run folder?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    seconds: list[tuple[int, float]] = sorted((int(r["step"]), float(r["train/seconds"])) for r in rows
                                              if r.get("train/seconds"))
    points = []
    for row in rows:
        if row.get("val/mse"):
            step = int(row["step"])
            before = [sec for st, sec in seconds if st <= step]
            points.append((step, (before[-1] if before else 0.0) / 3600, float(row["val/mse"])))
    return points


def _resolved(precision: str) -> str:
    from varsep.precision import resolve_precision

    choice = resolve_precision(precision)
    print(choice.summary())
    return choice.value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path prefix of the .csv and .png")
    parser.add_argument("--limit", type=int, help="score only the first N test windows")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rescore", action="store_true", help="score every checkpoint, even those in <out>.csv")
    parser.add_argument("--validation", action="store_true", help="also draw the validation MSE of the logs")
    parser.add_argument("--no-test", action="store_true", help="score nothing: draw the validation MSE only")
    parser.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto",
                        help="scoring precision (default auto: bf16 where the CPU runs it natively and faster)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if not args.no_test:
        scored = {} if args.rescore else read_scored(args.out.with_suffix(".csv"))
        rows = [row for run in args.runs for row in score_run(run, args.limit, args.batch_size, scored,
                                                              _resolved(args.precision))]
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "run", k != "checkpoint", k))
        with open(args.out.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    colours = {}
    for run in dict.fromkeys(r["run"] for r in rows):
        pts = [r for r in rows if r["run"] == run]
        metric = next(k for k in pts[0] if k.startswith("mse_t"))
        line, = ax.plot([p["train_hours"] for p in pts], [p[metric] for p in pts], marker="o",
                        label=f"{run}, test ({metric})")
        colours[run] = line.get_color()
    if args.validation or args.no_test:
        for run in args.runs:
            pts = validation_curve(run)
            ax.plot([p[1] for p in pts], [p[2] for p in pts], linestyle="--", marker=".", color=colours.get(run.name),
                    label=f"{run.name}, validation")
    ax.set_xlabel("training time (hours, this machine)")
    ax.set_ylabel("test MSE (mean over the horizon)" if not args.no_test and not args.validation else
                  "MSE (mean over the horizon)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    written = [args.out.with_suffix(s) for s in ([".png"] if args.no_test else [".csv", ".png"])]
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    main()
