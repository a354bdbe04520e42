"""Benchmark: evaluation and prediction throughput on the full WaveEq test set (paper model).

    python benchmarks/bench_evaluate.py [--data DIR] [--precision 32] [--limit N]

Builds the paper's WaveEq model (a one-step run: the weights do not change the cost), then times

- ``evaluate``: every test window (60 sequences × 106 = 6360 windows of 5 + 40 frames), MSE, PSNR and SSIM
  for the model and for "repeat the last frame", the content swap, and the figures — what
  ``varsep evaluate RUN`` does;
- the model's own work on the same windows: encoders, integration and decoding of the forecast and of the
  swap (the minimum any evaluation must spend), so the JSON shows what share of ``evaluate`` is not the model;
- ``predict`` on a file of 16 sequences (load the run, read, forecast 40 steps, write .npy and the figure).

Prints one JSON object with the hardware (windows/s, seconds, the non-model share). Target (issue 15): the
full test set in ≤ 3 minutes in fp32 on 2 AVX2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware, json_only_stdout  # noqa: E402


def model_only_seconds(run, dataset, precision: str, limit: int | None, batch: int = 64, swap: bool = True) -> float:
    """Forecast and swap decoding of every test window, with nothing else (no metrics, no copies out)."""
    from varsep.eval.evaluation import autocast
    from varsep.eval.swap import partners

    model = run.model.eval()
    windows = dataset.test_windows(40)
    n = len(windows) if limit is None else min(limit, len(windows))
    partner = partners(len(windows))
    frames_all = windows.take(np.arange(n))  # read once, outside the timing
    content_all = windows.take(partner[:n])
    start = time.perf_counter()
    with torch.inference_mode(), autocast(precision):
        for lo in range(0, n, batch):
            frames = torch.from_numpy(frames_all[lo:lo + batch])
            content = torch.from_numpy(content_all[lo:lo + batch])
            cond = model.split_window(frames)[0]
            own, codes = model.trajectory(cond, 40)
            model.decode(own, codes)
            if swap:
                model.decode(model.encode_content(model.split_window(content)[0]), codes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a generated WaveEq folder (default: generate 300 sequences)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "auto"])
    parser.add_argument("--limit", type=int, help="score only the first N windows (for a quick check)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-swap", action="store_true", help="MSE/PSNR/SSIM only (the content swap doubles "
                                                                 "the decoding)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from varsep.config import load_config
    from varsep.data import build_dataset
    from varsep.datagen.waveeq import generate
    from varsep.eval.evaluation import EvalOptions, evaluate
    from varsep.forecaster import load
    from varsep.predict import predict
    from varsep.train import fit

    out: dict = {"benchmark": "evaluate and predict, WaveEq paper model, full test set", "hardware": hardware()}
    with tempfile.TemporaryDirectory() as tmp, json_only_stdout():
        tmp = Path(tmp)
        data = args.data or generate(tmp / "waveeq", progress=False)
        config = load_config("waveeq", {"data.root": str(data), "trainer.max_steps": 1, "trainer.precision": "32",
                                        "trainer.progress_bar": False, "data.val_sequences": 24})
        run_dir = fit(config, tmp / "run", progress=False)
        run = load(run_dir, "last")
        dataset = build_dataset(config.data)
        windows = len(dataset.test_windows(40)) if args.limit is None else args.limit
        start = time.perf_counter()
        report = evaluate(run, dataset, out_dir=tmp / "eval",
                          options=EvalOptions(precision=args.precision, progress=False, limit=args.limit,
                                              swap=not args.no_swap))
        seconds = time.perf_counter() - start
        model_seconds = model_only_seconds(run, dataset, report["precision"], args.limit, swap=not args.no_swap)
        out["evaluate"] = {"windows": windows, "horizon": 40, "metrics": ["mse", "psnr", "ssim"],
                           "swap": not args.no_swap,
                           "figures": True, "precision": report["precision"], "seconds": round(seconds, 2),
                           "windows_per_s": round(windows / seconds, 1),
                           "model_only_seconds": round(model_seconds, 2),
                           "not_model_share": round(1 - model_seconds / seconds, 3)}
        obs = dataset.test_windows(40).take(np.arange(0, 16 * 106, 106))[:, :5]  # 16 sequences, 5 frames each
        np.save(tmp / "obs.npy", obs[:, :, 0])
        start = time.perf_counter()
        predict(run_dir, tmp / "obs.npy", tmp / "forecast.npy", horizon=40, checkpoint="last",
                precision=args.precision)
        out["predict"] = {"sequences": 16, "horizon": 40, "seconds": round(time.perf_counter() - start, 2),
                          "includes": "load checkpoint, read input, forecast, write .npy and PNG"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
