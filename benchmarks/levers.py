"""Benchmark: what each performance lever is worth, measured by switching it off alone.

    python benchmarks/levers.py [--steps 4] [--only waveeq|mmnist]

Every variant runs in its own process (so thread settings and memory do not leak between them) and
reports its median seconds per training step (forward + backward + optimiser). Prints one JSON object.

WaveEq (paper config, batch 128): the default (bf16 autocast, 2 threads, batched encoder passes, all
frames decoded in one call, fused Adam) against: fp32; 1 thread; 4 threads (oversubscribed); separate
encoder calls; one decoder call per frame; foreach and plain for-loop Adam; torch.compile of the
sub-networks; glibc's allocator left at its defaults (varsep.allocator); and the cost of assembling a
batch from the memory-mapped data set.

Moving MNIST (DCGAN, batch 128): default (bf16 autocast, channels-last) against the NCHW layout, fp32 and
glibc's default allocator.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

WAVEEQ_VARIANTS = {
    "default (bf16, 2 threads, batched encoders, one decoder call, fused Adam)": {},
    "fp32": {"precision": "fp32"},
    "1 thread": {"threads": 1},
    "4 threads (oversubscribed)": {"threads": 4},
    "separate encoder calls": {"batch_encoders": False},
    "one decoder call per frame": {"decode_per_frame": True},
    "foreach Adam": {"adam": "foreach"},
    "for-loop Adam": {"adam": "loop"},
    "torch.compile sub-networks": {"compile": True},
    "glibc's default allocator (VARSEP_ALLOCATOR=system)": {"allocator": "system"},
}
MMNIST_VARIANTS = {
    "default (bf16, channels-last)": {},
    "NCHW layout": {"nchw": True},
    "fp32 (channels-last)": {"precision": "fp32"},
    "glibc's default allocator (VARSEP_ALLOCATOR=system)": {"allocator": "system"},
}


def run_variant(data: str, options: dict, steps: int) -> float:
    """Median seconds per step of one variant (in this process)."""
    from varsep.allocator import keep_freed_memory
    from varsep.config import load_config
    from varsep.model import build_model
    from varsep.model.losses import loss_terms
    from varsep.spec import DataSpec, ae_choices

    if options.get("allocator") != "system":
        keep_freed_memory()  # as every varsep command does
    torch.set_num_threads(options.get("threads", 2))
    config = load_config(data)
    frame = (1, 64, 64)
    spec = DataSpec(frame, config.data.cond_frames, config.data.pred_frames)
    families = {"default_encoder": "dcgan", "default_decoder": "dcgan"} if data == "mmnist" else {}
    torch.manual_seed(0)
    model = build_model(config.model, spec, **families)
    if options.get("nchw"):
        model = model.to(memory_format=torch.contiguous_format)
    if options.get("batch_encoders") is False:
        model.batch_encoders = False
    if options.get("decode_per_frame"):
        model.batch_decoder = False
        decode = model.decode
        model.decode = lambda content, codes: torch.cat(  # type: ignore[method-assign]
            [decode(content, codes[:, i:i + 1]) for i in range(codes.shape[1])], dim=1)
    if options.get("compile"):
        for net in (model.content_encoder, model.dynamic_encoder, model.decoder, *model.dynamics.blocks):
            net.compile()
    implementation = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas),
                           **implementation[options.get("adam", "fused")])
    frames = torch.rand(128, spec.train_length, *frame)
    choices = ae_choices(spec.train_length, spec.cond_frames, model.first_index)
    bf16 = options.get("precision", "bf16") == "bf16"
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_terms(model, frames, i % choices, config.loss)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def data_assembly_seconds() -> dict:
    """Seconds to assemble one WaveEq training batch (128 × 25 frames) from the memory-mapped files."""
    from varsep.config import load_config
    from varsep.data import build_dataset
    from varsep.datagen.waveeq import generate
    from varsep.train.stream import TrainStream

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "w", num_sequences=40, progress=False)
        config = load_config("waveeq", {"data.root": str(Path(tmp) / "w"), "data.val_sequences": 2})
        dataset = build_dataset(config.data)
        stream = TrainStream(dataset.train_source(), batch_size=128, batches_per_epoch=75, seed=0, ae_choices=21)
        stream.batch(0, 0)
        start = time.perf_counter()
        for i in range(1, 11):
            stream.batch(0, i)
        return {"s_per_batch": (time.perf_counter() - start) / 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--only", choices=["waveeq", "mmnist"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, options = json.loads(args.child)
        print(json.dumps(run_variant(data, options, args.steps)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import hardware

    out: dict = {"hardware": hardware()}
    for data, variants in (("waveeq", WAVEEQ_VARIANTS), ("mmnist", MMNIST_VARIANTS)):
        if args.only and args.only != data:
            continue
        steps = args.steps if data == "waveeq" else max(2, args.steps // 2)
        results = {}
        for name, options in variants.items():
            child = subprocess.run([sys.executable, __file__, "--steps", str(steps), "--child",
                                    json.dumps([data, options])], capture_output=True, text=True, check=True)
            results[name] = float(child.stdout.strip().splitlines()[-1])
        base = next(iter(results.values()))
        out[data] = {name: {"s_per_step": v, "relative_to_default": v / base} for name, v in results.items()}
    if not args.only or args.only == "waveeq":
        out["waveeq_data_assembly"] = data_assembly_seconds()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
