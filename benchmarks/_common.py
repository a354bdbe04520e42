"""Shared by the benchmarks: what a figure was measured on.

Every benchmark's JSON starts with ``"hardware"``: the CPU model, its instruction class as oneDNN and ATen
use it (AMX, AVX512-BF16, AVX512, AVX2 …), whether bf16 runs natively, the intra-op threads, and the
environment variables that cap the instruction set (this project emulates the AVX2 class on bigger CPUs
with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``; ``MKL_CBWR=COMPATIBLE`` also takes MKL off its
vectorised paths, as on CPUs MKL does not recognise).
"""

from __future__ import annotations

import os
from typing import Any

CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OMP_NUM_THREADS")


def hardware() -> dict[str, Any]:
    from varsep.precision import describe_hardware

    out = describe_hardware("cpu")
    caps = {k: os.environ[k] for k in CAPS if k in os.environ}
    if caps:
        out["caps"] = caps
    out["cpu_count"] = os.cpu_count()
    return out
