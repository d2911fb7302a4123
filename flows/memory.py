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
of heap and held 100 to 145 MB more freed, and its peak grew with the number of objects.

One arena, set before the process's first thread. A cap set when the first batch started came
too late: by then Prefect's threads had made six arenas, which glibc's `mallopt` cannot take back,
so later threads shared those six (`malloc_info` counted six at the end of a trigger), and a cap
of one set then left the 30,000-object peak at 464 MB. Set at import of this package
(`flows/__init__.py`, which the command line imports first), with `MALLOC_ARENA_MAX` exported for
the processes this one starts (flow runs of `tierflow serve`, Dask workers): 30,000 objects
peaked at 352 MB against 445 MB, 10,000 at 329 MB against 409 MB, in as much time (154 s against
159 s, 38 s against 43 s), and 100,000 at 413 MB (535 MB before). Two arenas from the start:
376 MB at 30,000. Python's interpreter lock already serialises most allocations, so threads lose
nothing measurable by sharing one.

Returning freed pages with `malloc_trim` after each chunk did as well for memory but, in the one
run measured, cost 28% more processor time. A `MALLOC_ARENA_MAX` already in the environment is
left to rule; other C libraries are left alone.
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

MALLOC_ARENAS = 1
"""glibc arenas a batch process allocates from (its default: eight per core)."""

_M_ARENA_MAX = -8
"""glibc's `mallopt` parameter number for the arena cap (malloc.h)."""

_tuned = False
_lock = threading.Lock()


def tune_memory() -> None:
    """Set the collector for batch processing, once per process (later calls do nothing). The
    allocator's arenas are capped earlier, at import (`limit_malloc_arenas`)."""
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


def glibc_function(name: str) -> Any | None:
    """A function of the process's C library by name, or None where that library has none (not
    glibc, or an older one)."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas() -> bool:
    """Cap glibc's arenas at `MALLOC_ARENAS` for the threads still to come and, through
    `MALLOC_ARENA_MAX`, for the processes this one starts; whether it did.

    Only threads that have not allocated yet are held to the cap: call it before any starts."""
    mallopt = None if "MALLOC_ARENA_MAX" in os.environ else glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not mallopt(_M_ARENA_MAX, MALLOC_ARENAS):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)
    return True
