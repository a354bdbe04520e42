"""Keep freed memory in the process, so that a training step does not fault in its tensors again each time.

Why: glibc's malloc serves every block above its *mmap threshold* with a fresh ``mmap`` and gives it back
with ``munmap`` on free. The threshold adapts to the blocks freed, but never above 32 MiB — and the large
tensors of a step are bigger than that (a WaveEq batch of 128 × 20 frames of 64 × 64 is 40 MiB in fp32, a
Moving MNIST decoder activation 32–512 MiB). Each of them is then a new mapping whose pages the kernel
faults in and zeroes again at every step: measured on 2 Zen 4 cores, 10–11 % of varsep's WaveEq and Moving
MNIST steps and 16–31 % of the authors' (docs/performance.md). PyTorch's CPU allocator does not cache, so the
fix is in malloc: :func:`keep_freed_memory` raises the mmap threshold and the trim threshold to 1 GiB
(``mallopt(M_MMAP_THRESHOLD)``, ``mallopt(M_TRIM_THRESHOLD)``); freed blocks then stay in the heap and the
next step reuses them. The cost: the process keeps its peak memory until it exits (measured +0.1 GB on a
WaveEq step of 1.7 GB, +0.3–0.5 GB on a Moving MNIST step of 4–5 GB).

It is applied once per process by the commands that compute (the ``varsep`` command line, ``varsep.fit``,
``varsep.evaluate``) and changes nothing where it does not apply: other C libraries than glibc (macOS,
musl, Windows), an allocator preloaded in its place (jemalloc, tcmalloc, mimalloc), malloc settings the
user chose (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
``glibc.malloc.*`` in ``GLIBC_TUNABLES``), or ``VARSEP_ALLOCATOR=system``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

THRESHOLD = 1 << 30  # bytes: blocks below it come from (and return to) the heap
OPT_OUT = "VARSEP_ALLOCATOR"  # =system: leave malloc as it is
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_state: str | None = None  # what keep_freed_memory did in this process (None: not called yet)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 — present in glibc only (not in musl)
    except (OSError, AttributeError):
        return None
    return libc


def _reason_to_leave_alone(environ: os._Environ | dict[str, str]) -> str | None:
    if environ.get(OPT_OUT, "").strip().lower() == "system":
        return f"left as it is ({OPT_OUT}=system)"
    chosen = [name for name in _USER_SETTINGS if name in environ]
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        return f"left as it is (set by the user: {', '.join(chosen)})"
    preloaded = environ.get("LD_PRELOAD", "")
    other = next((name for name in _OTHER_ALLOCATORS if name in preloaded), None)
    if other is not None:
        return f"left as it is ({other} preloaded)"
    return None


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD` (once per process) unless the user chose
    otherwise; return what was done, in words (also :func:`state`)."""
    global _state
    if _state is not None:
        return _state
    reason = _reason_to_leave_alone(os.environ)
    libc = None if reason else _glibc()
    if reason is None and libc is None:
        reason = "left as it is (not glibc)"
    if reason is None:
        applied = (libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD) == 1
                   and libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD) == 1)
        reason = (f"glibc keeps freed blocks below {THRESHOLD >> 20} MiB" if applied
                  else "left as it is (glibc refused the thresholds)")
    _state = reason
    return reason


def state() -> str:
    """What :func:`keep_freed_memory` did in this process, in words."""
    return _state if _state is not None else "left as it is (not applied in this process)"
