"""Benchmark: one WaveEq training step (paper config, batch 128) in fp32 and bf16, and the generator.

Prints one JSON object. Usage:
    python benchmarks/bench_waveeq.py [--steps 5] [--skip-generator] [--threads 2] [--authors DIR]

With ``--authors DIR`` (a checkout of the authors' implementation, kept outside this repository) their
training step on the same configuration is timed in the same run (benchmarks/authors_step.py), so the two
figures come from the same machine at the same time.

Reported: seconds per optimiser step (forward + backward + Adam), sequences per second, the achieved
GFLOP/s (FLOPs counted analytically from the matrix products), its share of the matrix-product peak
measured in the same run, the generator's time for 300 sequences (beside the authors' generator's rate on a
few sequences, with ``--authors``), and the peak resident memory of a
process that only trains (each precision runs in its own child process, so the figure is its own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware, time_authors  # noqa: E402

from varsep.config import LossConfig, load_config
from varsep.model import build_model
from varsep.model.losses import loss_terms
from varsep.spec import DataSpec, ae_choices


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def step_flops(model, batch: int, length: int, cond: int) -> float:
    """Matrix-product FLOPs of one training step: forward, plus backward (2× forward, except for the input
    gradient of each encoder's first layer, which is not needed)."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}

    def mlp_flops(prefix: str, rows: int) -> tuple[float, float]:
        layers = [m for n, m in linears.items() if n.startswith(prefix)]
        fwd = sum(2 * rows * m.in_features * m.out_features for m in layers)
        first = 2 * rows * layers[0].in_features * layers[0].out_features
        return fwd, first

    fwd = bwd = 0.0
    for prefix, rows, skip_first in (("content_encoder", 2 * batch, True), ("dynamic_encoder", 2 * batch, True),
                                     ("decoder", batch * (length + 1), False),
                                     ("dynamics", batch * (length - 1), False)):
        f, first = mlp_flops(prefix, rows)
        fwd += f
        bwd += 2 * f - (first if skip_first else 0)
    return fwd + bwd


def time_steps(precision: str, steps: int, batch: int) -> dict:
    config = load_config("waveeq")
    spec = DataSpec((1, 64, 64), config.data.cond_frames, config.data.pred_frames)
    torch.manual_seed(0)
    model = build_model(config.model, spec)
    opt = torch.optim.Adam(model.parameters(), lr=4e-4, betas=(0.9, 0.99), fused=True)
    frames = torch.rand(batch, spec.train_length, 1, 64, 64)
    weights: LossConfig = config.loss
    choices = ae_choices(spec.train_length, spec.cond_frames, model.first_index)
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_terms(model, frames, i % choices, weights)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    per_step = sorted(times[2:])[len(times[2:]) // 2]  # median after two warm-up steps
    flops = step_flops(model, batch, spec.train_length, spec.cond_frames)
    return {"s_per_step": per_step, "sequences_per_s": batch / per_step, "gflop_per_step": flops / 1e9,
            "achieved_gflops": flops / per_step / 1e9}


def time_generator(num_sequences: int) -> dict:
    from varsep.datagen.waveeq import generate

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate(Path(tmp) / "w", num_sequences=num_sequences, progress=False)
        seconds = time.perf_counter() - t
    return {"sequences": num_sequences, "seconds": seconds, "sequences_per_s": num_sequences / seconds}


def time_authors_generator(authors: Path, num_sequences: int, threads: int | None) -> dict:
    """The authors' generator (var_sep/preprocessing/wave/gen_wave.py, their README's command with ``--size``)
    on ``num_sequences`` sequences, in its own process: one sequence takes it seconds (a Python loop over
    the grid inside each of the 300 RK4 steps), so a few give its rate; the full 300 are extrapolated."""
    script = authors / "var_sep" / "preprocessing" / "wave" / "gen_wave.py"
    if not script.is_file():
        raise SystemExit(f"{script} not found: --authors must be a checkout of the authors' repository")
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(script), "--data_dir", tmp, "--size", str(num_sequences)],
                       capture_output=True, text=True, check=True, env=env)
        seconds = time.perf_counter() - t
    return {"sequences": num_sequences, "seconds": seconds, "sequences_per_s": num_sequences / seconds,
            "seconds_for_300_extrapolated": 300 * seconds / num_sequences,
            "includes": "process start and torch import (a few seconds), then the sequences"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-generator", action="store_true")
    parser.add_argument("--generator-sequences", type=int, default=300)
    parser.add_argument("--authors", type=Path, help="checkout of the authors' repository, timed side by side")
    parser.add_argument("--authors-generator-sequences", type=int, default=5,
                        help="sequences the authors' generator makes (its 300 are extrapolated from them)")
    parser.add_argument("--child", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:  # time one precision in this process alone and report its peak memory
        from varsep.allocator import keep_freed_memory

        keep_freed_memory()  # as the commands (and hardware() in the parent) do
        r = time_steps(args.child, args.steps, args.batch)
        r["peak_rss_gb"] = peak_rss_gb()
        json.dump(r, sys.stdout)
        return
    out: dict = {"hardware": hardware(), "batch": args.batch}
    out["matmul_peak_gflops"] = {"fp32": matmul_peak(torch.float32)}
    if out["hardware"]["bf16_native"]:  # an emulated bf16 product runs at a fraction of a GFLOP/s
        out["matmul_peak_gflops"]["bf16"] = matmul_peak(torch.bfloat16)
    precisions = ("fp32", "bf16") if out["hardware"]["bf16_native"] else ("fp32",)  # emulated bf16: hours
    for precision in precisions:
        command = [sys.executable, __file__, "--child", precision, "--steps", str(args.steps),
                   "--batch", str(args.batch)]
        command += ["--threads", str(args.threads)] if args.threads else []
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(child.stdout)
        r["share_of_peak"] = r["achieved_gflops"] / out["matmul_peak_gflops"][precision]
        out[f"train_step_{precision}"] = r
    if args.authors is not None:
        authors = time_authors(args.authors, "wave", max(3, args.steps), args.threads)
        out["authors_train_step_fp32"] = authors["as_shipped"]
        out["authors_train_step_fp32_same_allocator"] = authors["same_allocator"]
        for key, timed in (("speedup_vs_authors", "as_shipped"), ("speedup_vs_authors_same_allocator",
                                                                   "same_allocator")):
            out[key] = {p: authors[timed]["s_per_step"] / out[f"train_step_{p}"]["s_per_step"] for p in precisions}
    else:
        out["authors_train_step_fp32"] = "not measured: pass --authors DIR (a checkout of the authors' code)"
    if not args.skip_generator:
        out["generator"] = time_generator(args.generator_sequences)
        if args.authors is not None:
            out["authors_generator"] = time_authors_generator(args.authors, args.authors_generator_sequences,
                                                              args.threads)
            out["generator_speedup_vs_authors"] = (out["generator"]["sequences_per_s"]
                                                   / out["authors_generator"]["sequences_per_s"])
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
