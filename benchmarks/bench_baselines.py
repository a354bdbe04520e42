"""Benchmark: one training step of every model (varsep and the baselines) on each paper configuration, side by
side in one run on this machine.

    python benchmarks/bench_baselines.py [--data waveeq,mmnist] [--models varsep,phydnet,…] [--steps 3]
                                         [--precision 32|bf16] [--threads 2] [--batch N]

For each data set's preset (its frame shape and training window: WaveEq 5 + 20 frames of 1×64×64, Moving
MNIST 5 + 10, Chairs 5 + 10 of 3×64×64, TaxiBJ 4 + 4 of 2×32×32, SST 4 + 6, KTH 10 + 10) and each model at its
reference size and batch (varsep: the data set's preset; a baseline: configs/baselines/<name>.yaml), the median
seconds of forward + backward + Adam over ``--steps`` steps after one warm-up, on random frames, each model in
its own process. Prints one JSON object with the hardware, s/step, sequences/s and each child's peak resident
memory (``peak_rss_gb``, from ``getrusage``). ``--batch N`` replaces every model's reference batch (for models
whose reference batch does not fit this machine's memory: E3D-LSTM needs ~16 GB at batch 16 on WaveEq).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import hardware  # noqa: E402

DATA = ("waveeq", "mmnist", "chairs", "taxibj", "sst", "kth")
MODELS = ("varsep", "convlstm", "predrnn", "predrnn_v2", "predrnnpp", "mim", "e3dlstm", "phydnet", "simvp", "tau",
          "drnet", "svg", "pknl", "ddpae")


def time_model(data: str, model: str, steps: int, precision: str, batch: int | None = None) -> dict:
    """Median seconds per training step of ``model`` on ``data``'s configuration (in this process)."""
    import resource

    import torch

    from varsep.config import load_config
    from varsep.data import dataset_class
    from varsep.eval.compare import model_config
    from varsep.guards import check_fits_in_memory
    from varsep.model import build_model
    from varsep.model.losses import loss_terms
    from varsep.spec import DataSpec

    base = load_config(data)
    config = model_config(base, model)
    cls = dataset_class(base.data.name)
    spec = DataSpec(cls.nominal_frame_shape, config.data.cond_frames, config.data.pred_frames)
    torch.manual_seed(0)
    net = build_model(config.model, spec, default_encoder=cls.default_encoder, default_decoder=cls.default_decoder)
    batch = batch or config.data.batch_size
    activations = None if model == "varsep" else net.training_activation_bytes(batch)
    if activations:  # refuse clearly instead of being killed by the kernel half-way
        check_fits_in_memory(16 * sum(p.numel() for p in net.parameters()) + activations,
                             f"{model} at batch {batch}", "pass a smaller --batch")
    opt = torch.optim.Adam(net.parameters(), lr=config.optim.lr, fused=True)
    frames = torch.rand(batch, spec.train_length, *spec.frame_shape)
    choices = spec.ae_choices(net.first_index if model == "varsep" else 0)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            if model == "varsep":
                loss = loss_terms(net, frames, i % choices, config.loss)["loss"]
            else:
                loss = net.training_terms(frames, i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    per_step = statistics.median(times[1:])
    return {"data": data, "model": model, "batch": batch, "frames": spec.train_length,
            "parameters": sum(p.numel() for p in net.parameters()), "s_per_step": round(per_step, 4),
            "sequences_per_s": round(batch / per_step, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="waveeq,mmnist", help=f"comma-separated, of {', '.join(DATA)}")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="replace every model's reference batch size")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(time_model(args.child[0], args.child[1], args.steps, args.precision, args.batch)))
        return
    out: dict = {"hardware": hardware(), "precision": args.precision, "batch_override": args.batch, "results": []}
    for data in args.data.split(","):
        for model in args.models.split(","):
            command = [sys.executable, __file__, "--child", data, model, "--steps", str(args.steps), "--precision",
                       args.precision] + (["--threads", str(args.threads)] if args.threads else []) \
                + (["--batch", str(args.batch)] if args.batch else [])
            child = subprocess.run(command, capture_output=True, text=True)
            if child.returncode != 0:
                reason = (child.stderr.strip().splitlines() or
                          [f"killed by signal {-child.returncode} (SIGKILL: probably out of memory)"
                           if child.returncode < 0 else "failed"])[-1]
                out["results"].append({"data": data, "model": model, "unavailable": reason[:300]})
            else:
                out["results"].append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(json.dumps(out["results"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
