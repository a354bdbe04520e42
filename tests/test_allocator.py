"""varsep.allocator: where glibc's thresholds are raised, a large freed block is reused instead of unmapped.

Each check runs in a fresh interpreter: the setting is process-wide and the test process must keep its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from varsep import allocator

# Allocates and frees a 64 MiB block, then allocates it again, and reports what glibc's statistics saw.
PROBE = r"""
import ctypes, json, sys
from varsep import allocator
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
state = allocator.keep_freed_memory() if sys.argv[1] == "keep" else "not called"
size = 64 << 20
block = libc.malloc(size)
held = libc.mallinfo2()
libc.free(block)
freed = libc.mallinfo2()
print(json.dumps({"state": state, "mapped_while_held": held.hblkhd, "heap_after_free": freed.arena,
                  "again": allocator.keep_freed_memory()}))
"""


def probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != allocator.OPT_OUT and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**environ, **env}).stdout
    return json.loads(out)


glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="the thresholds are glibc's")


@glibc_only
def test_without_it_a_large_block_is_a_mapping_of_its_own():
    seen = probe("plain")
    assert seen["mapped_while_held"] >= 64 << 20  # glibc's default: above 32 MiB, mmap and munmap


@glibc_only
def test_with_it_a_large_block_comes_from_the_heap_and_stays_there_when_freed():
    seen = probe("keep")
    assert seen["state"] == f"glibc keeps freed blocks below {allocator.THRESHOLD >> 20} MiB"
    assert seen["mapped_while_held"] < 64 << 20
    assert seen["heap_after_free"] >= 64 << 20  # not trimmed: the next step's tensor reuses it
    assert seen["again"] == seen["state"]  # once per process


@glibc_only
@pytest.mark.parametrize(("env", "reason"), [
    ({"VARSEP_ALLOCATOR": "system"}, "VARSEP_ALLOCATOR=system"),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "set by the user: MALLOC_MMAP_THRESHOLD_"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}, "set by the user: GLIBC_TUNABLES"),
    ({"LD_PRELOAD": "/nonexistent/libjemalloc.so.2"}, "jemalloc preloaded"),
])
def test_the_users_choice_is_left_alone(env, reason):
    seen = probe("keep", **env)
    assert seen["state"] == f"left as it is ({reason})"
    if "LD_PRELOAD" not in env and "MALLOC_MMAP_THRESHOLD_" not in env:
        assert seen["mapped_while_held"] >= 64 << 20  # glibc's defaults still rule


def test_a_run_records_what_was_done(tmp_path):
    from varsep.train.rundir import environment

    assert environment()["allocator"] == allocator.state()
