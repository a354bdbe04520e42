"""Test MSE against training time: score every weights-only snapshot of one or more runs.

    python scripts/training_curve.py runs/table1/waveeq runs/table1/waveeq100 --out docs/results/curve

For each run folder, every ``checkpoints/snapshots/epoch-*.ckpt`` (see trainer.snapshot_every_n_epochs)
and the last checkpoint are evaluated on the test set (MSE only, no swap, no figures); the cumulative
training time each one took is read from the checkpoint. Writes ``<out>.csv`` and ``<out>.png``
(MSE at the longest test horizon, mean over its steps, against hours of training).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from varsep.checkpoint import safe_torch_load  # noqa: E402
from varsep.data import build_dataset  # noqa: E402
from varsep.evaluation import evaluate  # noqa: E402
from varsep.run import find_checkpoint, load_checkpoint  # noqa: E402


def score_run(run_dir: Path, limit: int | None, batch_size: int) -> list[dict]:
    snapshots = sorted((run_dir / "checkpoints" / "snapshots").glob("epoch-*.ckpt"))
    paths = snapshots + [find_checkpoint(run_dir, "last")]
    rows, dataset = [], None
    for path in paths:
        loaded = load_checkpoint(path)
        dataset = dataset or build_dataset(loaded.config.data)
        horizon = str(max(loaded.config.data.test_horizons))
        report = evaluate(loaded, dataset, batch_size=batch_size, limit=limit, progress=False, figures=False,
                          swap=False, ssim=False)
        seconds = float(safe_torch_load(path).get("varsep", {}).get("train_seconds", 0.0))
        rows.append({"run": run_dir.name, "checkpoint": path.name, "step": loaded.step, "train_hours": seconds / 3600,
                     f"mse_t{horizon}": report["horizons"][horizon]["mse_mean"]})
        print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path prefix of the .csv and .png")
    parser.add_argument("--limit", type=int, help="score only the first N test windows")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    rows = [row for run in args.runs for row in score_run(run, args.limit, args.batch_size)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "run", k != "checkpoint", k))
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for run in dict.fromkeys(r["run"] for r in rows):
        pts = [r for r in rows if r["run"] == run]
        metric = next(k for k in pts[0] if k.startswith("mse_t"))
        ax.plot([p["train_hours"] for p in pts], [p[metric] for p in pts], marker="o", label=f"{run} ({metric})")
    ax.set_xlabel("training time (hours, this machine)")
    ax.set_ylabel("test MSE (mean over the horizon)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
