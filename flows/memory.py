"""Memory management set for a process that runs batches: Python's garbage collector and the C
allocator's arenas.

The collector. A flow process holds a few hundred thousand long-lived objects (Prefect, pydantic
and SQLAlchemy build them at import), and a chunk allocates tens of thousands of short-lived dicts
per thousand documents. With the default thresholds (700, 10, 10) the collector ran so often,
walking those long-lived objects again at every full collection, that it took a quarter of a
document tier's processor time: the document tier's 20,000 documents of 2,000 objects took 2.06 s
of CPU with the defaults and 1.55 s with the setting below (best of three runs each; the collector
showed up in cProfile and py-spy of bench/pipeline.py as time spent in allocations). Before the
first batch of a process, the objects alive then (mostly modules, classes and functions, which
live as long as the process) are moved out of the collector's sight with `gc.freeze()`, and the
youngest generation is collected every 20,000 allocations instead of 700. Garbage is still
collected, only in larger rounds.

The arenas. glibc's allocator gives threads arenas of their own, up to eight per core, and keeps
what a thread frees in its arena for that arena's reuse. A trigger runs a few dozen threads (S3
reads, chunk tasks, Prefect's own) and the freed memory they held grew with the batch: in a
30,000-object trigger (bench/pipeline.py, sampled with `mallinfo2`) the process used about 110 MB
of heap and held 140 to 185 MB more freed, so its peak grew with the number of objects. Capped at
`MALLOC_ARENAS`, the freed part stayed at 55 to 90 MB, the peak went from 509 to 391 MB, and the
run took as long (137 s against 133 s). At 100,000 objects the freed part still grew, to 110 to
170 MB: the cap lowers the peak, it does not bound it (README, Benchmarks). Returning freed pages
with `malloc_trim` after each chunk did as well for memory but, in the one run measured, cost 28%
more processor time (162 s against 126 s; pages faulted back in). A `MALLOC_ARENA_MAX` in the
environment is left to rule; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from typing import Any

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between two collections of the youngest generation."""

MALLOC_ARENAS = 2
"""glibc arenas a batch process allocates from (its default: eight per core)."""

_M_ARENA_MAX = -8
"""glibc's `mallopt` parameter number for the arena cap (malloc.h)."""

_tuned = False
_lock = threading.Lock()


def tune_memory() -> None:
    """Set the collector and the allocator for batch processing, once per process (later calls do
    nothing)."""
    global _tuned
    with _lock:
        if _tuned:
            return
        _tuned = True
        # What is garbage now is freed, not frozen. The young and middle generations are enough:
        # a full collection walked the ~350,000 objects of a flow process for 180 ms, just before
        # the first batch's first document, and found nothing the two younger ones had not.
        gc.collect(1)
        gc.freeze()
        young, middle, oldest = gc.get_threshold()
        gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, oldest)
        limit_malloc_arenas()


def glibc_function(name: str) -> Any | None:
    """A function of the process's C library by name, or None where that library has none (not
    glibc, or an older one)."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas() -> bool:
    """Cap glibc's arenas at `MALLOC_ARENAS` for the threads still to come; whether it did."""
    mallopt = None if "MALLOC_ARENA_MAX" in os.environ else glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
