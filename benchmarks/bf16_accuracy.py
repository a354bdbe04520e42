"""Does bf16 autocast cost accuracy? Train the paper's WaveEq model for a fixed budget in fp32 and in
bf16 (same seed, same batches), evaluate both in fp32 on the same test windows, and print JSON.

Usage:
    python benchmarks/bf16_accuracy.py --data data/waveeq --steps 1000 --out runs/bf16-check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from varsep.config import load_config
from varsep.eval import EvalOptions  # noqa: E402
from varsep.eval.evaluation import evaluate
from varsep.forecaster import load
from varsep.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a WaveEq folder (varsep generate waveeq)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default="runs/bf16-check")
    parser.add_argument("--limit", type=int, default=2000, help="test windows scored (the same for both)")
    parser.add_argument("--config", default="waveeq")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", default="32,bf16", help="comma-separated, e.g. bf16 (spread across seeds)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import hardware, json_only_stdout

    results = {"hardware": hardware(), "steps": args.steps, "config": args.config, "seed": args.seed}
    precisions = args.precisions.split(",")
    for precision in precisions:
        config = load_config(args.config, {"data.root": args.data, "trainer.precision": precision,
                                           "trainer.max_steps": args.steps, "trainer.val_every_n_epochs": 1000,
                                           "trainer.threads": args.threads, "seed": args.seed})
        run_dir = Path(args.out) / f"precision-{precision}-seed{args.seed}"
        start = time.perf_counter()
        with json_only_stdout():
            fit(config, run_dir, overwrite=True, progress=False)
        seconds = time.perf_counter() - start
        scoring = EvalOptions(limit=args.limit, progress=False, figures=False, swap=False, ssim=False,
                              precision="32")  # both scored in fp32
        with json_only_stdout():
            report = evaluate(load(run_dir, "last"), out_dir=None, options=scoring)
        r = report["horizons"]["40"]
        results[precision] = {"train_seconds": seconds, "mse_mean": r["mse_mean"], "mse_at_40": r["mse"][-1]}
    if {"32", "bf16"} <= set(precisions):
        results["bf16_over_fp32_mse"] = results["bf16"]["mse_mean"] / results["32"]["mse_mean"]
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
