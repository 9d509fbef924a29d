"""Reading a benchmark's process tree: what each process holds and has spent, and keeping Ray's in the tree.

Why shared: the exact-dedup, soak and datatrove benchmarks all count the peak memory and CPU
of everything a measured command starts, Ray's detached daemons included.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import psutil

PR_SET_CHILD_SUBREAPER = 36


class ProcessUsage(NamedTuple):
    rss: int
    pss: int
    """0 unless read ``with_pss`` (reading PSS walks the whole address space: slower)."""
    cpu_s: float


def process_usage(process: psutil.Process, with_pss: bool) -> ProcessUsage | None:
    """One process's resident memory and CPU seconds so far; None if it is gone or unreadable."""
    try:
        with process.oneshot():
            memory = process.memory_full_info() if with_pss else process.memory_info()
            times = process.cpu_times()
    except psutil.Error:
        return None
    return ProcessUsage(memory.rss, getattr(memory, "pss", 0), times.user + times.system)


def become_subreaper() -> None:
    """Orphaned descendants (daemonised Ray helpers) get re-parented here, so a sampler still sees them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed; this benchmark needs Linux")
