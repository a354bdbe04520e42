"""Shared by the benchmarks: what a figure was measured on.

Every benchmark's JSON starts with ``"hardware"``: the CPU model, its instruction class as oneDNN and ATen
use it (AMX, AVX512-BF16, AVX512, AVX2 …), whether bf16 runs natively, the intra-op threads, and the
environment variables that cap the instruction set (this project emulates the AVX2 class on bigger CPUs
with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``; ``MKL_CBWR=COMPATIBLE`` also takes MKL off its
vectorised paths, as on CPUs MKL does not recognise).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OMP_NUM_THREADS")
STANDIN = "VARSEP_CPU_STANDIN"  # set by cpu_standin.py: the caps and CPU-time throttle of a stand-in class


def hardware() -> dict[str, Any]:
    """What the figures run on; also applies the allocator setting every varsep command applies
    (varsep.allocator), so that a benchmark times what a command would, and records it."""
    from varsep.allocator import keep_freed_memory
    from varsep.precision import describe_hardware

    allocator = keep_freed_memory()
    out = describe_hardware("cpu")
    out["allocator"] = allocator
    caps = {k: os.environ[k] for k in CAPS if k in os.environ}
    if caps:
        out["caps"] = caps
    if STANDIN in os.environ:
        out["cpu_standin"] = json.loads(os.environ[STANDIN])
    out["cpu_count"] = os.cpu_count()
    return out


def time_authors(authors: Path, data: str, steps: int, threads: int | None = None) -> dict[str, dict]:
    """The authors' training step (benchmarks/authors_step.py) as their code runs, and with the allocator
    setting varsep's commands apply: ``{"as_shipped": …, "same_allocator": …}``."""
    out = {}
    for name, extra in (("as_shipped", []), ("same_allocator", ["--keep-freed-memory"])):
        command = [sys.executable, str(Path(__file__).parent / "authors_step.py"), "--authors", str(authors),
                   "--data", data, "--steps", str(steps), *extra]
        command += ["--threads", str(threads)] if threads else []
        out[name] = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return out


def json_only_stdout() -> contextlib.AbstractContextManager:
    """Inside it, what the measured commands print (their precision and model lines) goes to stderr, so that
    a benchmark's stdout is its JSON alone and can be redirected to a file."""
    return contextlib.redirect_stdout(sys.stderr)
