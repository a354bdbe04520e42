"""Which arithmetic to compute in: chosen by the hardware, not by a default tuned on one machine.

``precision: auto`` (the default everywhere) means bf16 autocast only where the hardware runs bf16
natively *and* faster than fp32, and fp32 otherwise:

- **CPU**: bf16 needs bf16 instructions as oneDNN sees them — AMX tiles or AVX-512-BF16 — and then a
  short probe (a matrix product and a convolution, each timed in fp32 and in bf16, ≈ 0.2 s) must find bf16
  at least :data:`MIN_SPEEDUP` times faster. The probe's result is cached per machine (CPU model,
  instruction class, torch version, threads) in ``$VARSEP_CACHE_DIR`` (default ``~/.cache/varsep``). On a
  CPU with AVX2 only, bf16 is emulated and a matrix product runs hundreds of times slower, so no probe runs
  there: the answer is fp32.
- **GPU**: bf16 where ``torch.cuda.is_bf16_supported()``.

An explicit ``bf16`` is honoured everywhere; where the hardware is slow at it a :class:`PrecisionWarning`
states the slowdown measured by the probe.

The three classes of CPU this project is developed and used on, as :func:`describe_hardware` names them:
``AMX`` (Intel Sapphire Rapids and later), ``AVX512-BF16`` (AMD Zen 4 and later, Intel Cooper Lake),
``AVX2`` (most laptops and many cloud VMs); also ``AVX512`` (AVX-512 without bf16 instructions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from varsep.errors import ConfigError

PRECISIONS = ("auto", "32", "bf16")
MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this factor in the probe to be chosen automatically
CACHE_FILE = "precision-probe.json"
ENV_RESOLVED = "VARSEP_RESOLVED_PRECISION"  # set by the primary process so DDP workers agree with it


class PrecisionWarning(UserWarning):
    """bf16 was asked for on hardware that runs it slowly."""


# ------------------------------------------------------------------------------------------- hardware
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_instruction_class() -> str:
    """``AMX``, ``AVX512-BF16``, ``AVX512``, ``AVX2`` … as oneDNN and ATen will use them.

    The oneDNN bf16 check and ATen's capability honour ``ONEDNN_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY``,
    so a machine capped to AVX2 is described as AVX2 (how this project emulates that class)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if cpu_bf16_native():
        return "AMX" if _amx_usable() else "AVX512-BF16"
    return capability


def _amx_usable() -> bool:
    """AMX tiles, unless oneDNN is capped below them (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` and the like)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return bool(torch.cpu._is_amx_tile_supported()) and (not cap or "AMX" in cap or cap == "ALL")


def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 instructions that oneDNN uses (AMX or AVX-512-BF16)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16", "AMX"):
        return False  # oneDNN may still accept bf16 but ATen's kernels would run without AVX-512
    return bool(_amx_usable() or torch.cpu._is_avx512_bf16_supported())


def describe_hardware(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What a figure was measured on: device, model, instruction class, bf16 support, threads."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return {"device": "cuda", "name": torch.cuda.get_device_name(index), "capability": f"sm_{major}{minor}",
                "bf16_native": bool(torch.cuda.is_bf16_supported()), "threads": torch.get_num_threads(),
                "torch": torch.__version__}
    return {"device": "cpu", "name": cpu_model(), "capability": cpu_instruction_class(),
            "bf16_native": cpu_bf16_native(), "threads": torch.get_num_threads(), "torch": torch.__version__}


# ---------------------------------------------------------------------------------------------- probe
def _ratio(fp32, bf16, repeats: int = 15) -> float:
    """Fastest fp32 time / fastest bf16 time, the two timed alternately. The fastest of several runs, not
    the median: other work on the machine only ever adds time, so the minimum is the figure a busy machine
    distorts least (a median taken while the test suite ran beside it once found bf16 convolutions slower
    than fp32 on AMX, where they are faster)."""
    for fn in (fp32, bf16, fp32, bf16):  # warm-up: oneDNN builds its kernels on the first calls
        fn()
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeats):
        for which, fn in enumerate((fp32, bf16)):
            start = time.perf_counter()
            fn()
            times[which].append(time.perf_counter() - start)
    return min(times[0]) / min(times[1])


def probe_bf16_speedup(*, size: int = 1024) -> dict[str, float]:
    """fp32 time / bf16 time of a matrix product and of a convolution (> 1: bf16 is faster).

    Sizes are those of this project's networks (a 1024-wide linear layer, a 3×3 convolution of 64 → 128
    channels on 32×32 maps, channels-last, under autocast as in training). Keep ``size`` small where bf16
    is emulated: it is slow there.
    """
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a16, b16 = a.bfloat16(), b.bfloat16()
    conv = torch.nn.Conv2d(64, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(max(1, size // 64), 64, 32, 32).to(memory_format=torch.channels_last)

    def conv_bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return conv(x)

    with torch.inference_mode():
        return {"matmul": _ratio(lambda: a @ b, lambda: a16 @ b16), "conv": _ratio(lambda: conv(x), conv_bf16)}


def _cache_dir() -> Path:
    if os.environ.get("VARSEP_CACHE_DIR"):
        return Path(os.environ["VARSEP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "varsep"


def _machine_key(hardware: dict[str, Any]) -> str:
    text = "|".join(str(hardware[k]) for k in ("name", "capability", "threads", "torch"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_bf16_speedup(hardware: dict[str, Any]) -> dict[str, float]:
    """The probe's result for this machine, measured once and then read from the cache."""
    path = _cache_dir() / CACHE_FILE
    key = _machine_key(hardware)
    try:
        cache = json.loads(path.read_text())
        entry = cache[key]
        return {"matmul": float(entry["matmul"]), "conv": float(entry["conv"])}
    except (OSError, ValueError, KeyError, TypeError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    result = probe_bf16_speedup()
    cache[key] = {**result, "machine": hardware["name"], "capability": hardware["capability"],
                  "threads": hardware["threads"], "torch": hardware["torch"],
                  "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    with contextlib.suppress(OSError):  # an unwritable cache only costs the probe next time
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_FILE}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(tmp, path)
    return result


# --------------------------------------------------------------------------------------------- choice
@dataclass(frozen=True)
class Precision:
    """A resolved precision: what was asked, what runs, and why."""

    requested: str  # auto, 32 or bf16
    value: str  # 32 or bf16
    reason: str
    hardware: dict[str, Any] = field(default_factory=dict)
    bf16_speedup: dict[str, float] | None = None  # the probe's fp32/bf16 time ratios, where it ran

    @property
    def lightning(self) -> str:
        return "bf16-mixed" if self.value == "bf16" else "32-true"

    @property
    def label(self) -> str:
        return "bf16 autocast" if self.value == "bf16" else "fp32"

    def summary(self) -> str:
        """One line for the user: ``precision: fp32 (auto: …)``."""
        how = "auto" if self.requested == "auto" else "asked for"
        return f"precision: {self.label} ({how}: {self.reason})"

    def autocast(self, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager:
        if self.value == "bf16":
            return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_precision(value: str) -> str:
    value = str(value)
    if value in ("fp32", "32-true", "float32"):
        value = "32"
    if value not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def _slowest(speedup: dict[str, float]) -> tuple[str, float]:
    name = min(speedup, key=speedup.get)
    return name, speedup[name]


def resolve_precision(requested: str = "auto", device: str | torch.device = "cpu", *,
                      warn: bool = True) -> Precision:
    """The precision to run in on ``device`` (see the module docstring for the rules)."""
    requested = check_precision(requested)
    device = torch.device(device)
    if requested == "auto" and os.environ.get(ENV_RESOLVED) in ("32", "bf16"):
        inherited = os.environ[ENV_RESOLVED]
        return Precision("auto", inherited, "decided by the primary process of this run")
    hardware = describe_hardware(device)
    where = f"{hardware['name']} ({hardware['capability']})"
    if requested == "32":
        return Precision(requested, "32", "fp32 everywhere", hardware)
    if device.type == "cuda":
        if hardware["bf16_native"]:
            return Precision(requested, "bf16", f"{where} supports bf16", hardware)
        reason = f"{where} does not support bf16"
        if requested == "auto":
            return Precision(requested, "32", reason, hardware)
        if warn:
            warnings.warn(PrecisionWarning(f"bf16 was asked for but {reason}; it will be emulated and slow. "
                                           "Use precision auto or 32"), stacklevel=2)
        return Precision(requested, "bf16", reason, hardware)
    if device.type != "cpu":
        if requested == "auto":
            return Precision(requested, "32", "bf16 is only chosen automatically on CPUs and CUDA GPUs", hardware)
        return Precision(requested, "bf16", "asked for", hardware)
    if not hardware["bf16_native"]:
        reason = f"{where} has no bf16 instructions (AMX or AVX-512-BF16), so bf16 would be emulated"
        if requested == "auto":
            return Precision(requested, "32", reason, hardware)
        speedup = probe_bf16_speedup(size=256)
        name, factor = _slowest(speedup)
        if warn and factor < 1:
            warnings.warn(PrecisionWarning(
                f"bf16 was asked for, but {reason}: a bf16 {name} ran {1 / factor:.0f}× slower than fp32 in a "
                f"probe on this machine, so this will be far slower than fp32. Use precision auto (or 32)"),
                stacklevel=2)
        return Precision(requested, "bf16", reason, hardware, speedup)
    speedup = cached_bf16_speedup(hardware)
    name, factor = _slowest(speedup)
    measured = f"bf16 {name} {factor:.1f}× {'faster' if factor >= 1 else 'slower'} than fp32 in a probe here"
    if requested == "auto":
        if factor >= MIN_SPEEDUP:
            return Precision(requested, "bf16", f"{where} runs bf16 natively; {measured}", hardware, speedup)
        return Precision(requested, "32", f"{where} has bf16 instructions, but {measured}", hardware, speedup)
    if warn and factor < 1:
        warnings.warn(PrecisionWarning(f"bf16 was asked for, but on {where} a {measured}; fp32 would be "
                                       f"faster. Use precision auto (or 32)"), stacklevel=2)
    return Precision(requested, "bf16", f"{where}; {measured}", hardware, speedup)


def accelerator_device(accelerator: str) -> torch.device:
    """The device a Lightning ``accelerator`` setting trains on (its first one)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")
