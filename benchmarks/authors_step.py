"""Time the authors' training step on this machine, for side-by-side figures (never a constant from elsewhere).

    python benchmarks/authors_step.py --authors DIR [--data wave|wave_partial|mnist] [--steps 3] [--threads 2]

``DIR`` is a checkout of the authors' implementation (github.com/JeremDona/spatiotemporal_variable_separation,
HEAD 3f5e041 when these benchmarks were written), fetched by the user and kept outside this repository; none
of its code is part of varsep. This script imports its modules from ``DIR``, builds its networks with the
command-line options its README gives for the data set, and runs its own ``train`` function for one epoch of
synthetic batches of the paper's shape (random values in [0, 1]: the time of a step does not depend on the
values). Prints one JSON object: the median seconds per step over ``--steps`` steps after one warm-up step.
``--keep-freed-memory`` times their code with the malloc setting varsep's commands apply (varsep.allocator),
so that the two comparisons — their code as it runs, and on the same allocator — can be given side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

# The authors' README command lines (training options) for each data set, as given there.
README_OPTIONS = {
    "wave": "--data wave --nt_cond 5 --nt_pred 20 --epochs 250 --batch_size 128 --code_size_t 32 --code_size_s 32 "
            "--gain_resnet 0.71 --offset 5 --n_blocks 3 --mixing mul --architecture mlp --enc_hidden_size 1200 "
            "--dec_hidden_size 1200 --dec_n_layers 4 --lamb_ae 1",
    "wave_partial": "--data wave_partial --nt_cond 5 --nt_pred 20 --epochs 250 --batch_size 128 --code_size_t 32 "
                    "--code_size_s 32 --gain_resnet 0.71 --offset 5 --n_blocks 3 --mixing mul --architecture mlp "
                    "--enc_hidden_size 2400 --dec_hidden_size 150 --lamb_ae 1",
    "mnist": "--data mnist --epochs 800 --beta1 0.5 --scheduler",
}
SHAPES = {"wave": (1, 64, 64), "wave_partial": (1, 100), "mnist": (1, 64, 64)}
LAST_ACTIVATION = {"wave": "sigmoid", "wave_partial": "sigmoid", "mnist": "sigmoid"}


def build(authors: Path, data: str, xp_dir: Path):
    sys.path.insert(0, str(authors))
    from var_sep.networks.factory import get_decoder, get_encoder, get_resnet
    from var_sep.networks.model import SeparableNetwork
    from var_sep.options import parser

    args = parser.parse_args(README_OPTIONS[data].split() + ["--xp_dir", str(xp_dir), "--data_dir", str(xp_dir)])
    shape = list(SHAPES[data])
    if data == "wave_partial":
        shape = [1, args.n_wave_points]
    es = get_encoder(args.architecture, shape, args.code_size_s, args.enc_hidden_size, args.enc_n_layers,
                     args.nt_cond, args.init_encoder, args.gain_encoder)
    et = get_encoder(args.architecture, shape, args.code_size_t, args.enc_hidden_size, args.enc_n_layers,
                     args.nt_cond, args.init_encoder, args.gain_encoder)
    decoder = get_decoder(args.architecture if args.decoder_architecture is None else args.decoder_architecture,
                          shape, args.code_size_t, args.code_size_s, LAST_ACTIVATION[data], args.dec_hidden_size,
                          args.dec_n_layers, args.mixing, args.skipco, args.init_encoder, args.gain_encoder)
    resnet = get_resnet(args.code_size_t, args.n_blocks, args.res_hidden_size, args.init_resnet, args.gain_resnet,
                        args.architecture == "encoderSST")
    net = SeparableNetwork(es, et, resnet, decoder, args.nt_cond, args.skipco)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
    return args, net, optimizer, shape


def time_steps(authors: Path, data: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args, net, optimizer, shape = build(authors, data, Path(tmp))
        from var_sep.train import train  # importable once build() has put DIR on the path

        def batches(n: int):
            gen = torch.Generator().manual_seed(0)
            cond = torch.rand(args.batch_size, args.nt_cond, *shape, generator=gen)
            target = torch.rand(args.batch_size, args.nt_pred, *shape, generator=gen)
            return [(cond, target)] * n

        def run(n: int) -> float:
            start = time.perf_counter()
            train(tmp, batches(n), torch.device("cpu"), net, optimizer, None, False, False, 1, args.lamb_ae,
                  args.lamb_s, args.lamb_t, args.lamb_pred, args.offset, args.nt_cond, args.nt_pred, args.no_s,
                  args.skipco, None, args.architecture == "encoderSST")
            return time.perf_counter() - start

        run(1)  # warm-up
        per_step = [run(1) for _ in range(steps)]
    per_step.sort()
    return {"data": data, "batch": args.batch_size, "steps": steps, "s_per_step": per_step[len(per_step) // 2],
            "s_per_step_all": per_step, "options": README_OPTIONS[data]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="checkout of the authors' repository")
    parser.add_argument("--data", choices=sorted(README_OPTIONS), default="wave")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="with the allocator setting varsep's commands apply (varsep.allocator), to tell how "
                             "much of a difference in speed that setting makes")
    args = parser.parse_args()
    if not (args.authors / "var_sep" / "train.py").is_file():
        raise SystemExit(f"{args.authors} is not a checkout of the authors' repository (no var_sep/train.py)")
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = "glibc's defaults (as their code runs)"
    if args.keep_freed_memory:
        from varsep.allocator import keep_freed_memory

        allocator = keep_freed_memory()
    out = time_steps(args.authors, args.data, args.steps)
    out["threads"] = torch.get_num_threads()
    out["allocator"] = allocator
    print(json.dumps(out))


if __name__ == "__main__":
    main()
