"""Python's garbage collector, set for a process that runs batches.

A flow process holds a few hundred thousand long-lived objects (Prefect, pydantic and SQLAlchemy
build them at import), and a chunk allocates tens of thousands of short-lived dicts per thousand
documents. With the default thresholds (700, 10, 10) the collector ran so often, walking those
long-lived objects again at every full collection, that it took a quarter of a document tier's
processor time: the document tier's 20,000 documents of 2,000 objects took 2.06 s of CPU with
the defaults and 1.55 s with the setting below (best of three runs each; the collector showed up
in cProfile and py-spy of bench/pipeline.py as time spent in allocations).

Before the first batch of a process, the objects alive then (mostly modules, classes and
functions, which live as long as the process) are moved out of the collector's sight with
`gc.freeze()`, and the youngest generation is collected every 20,000 allocations instead of 700.
Garbage is still collected, only in larger rounds."""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between two collections of the youngest generation."""

_tuned = False
_lock = threading.Lock()


def tune_collector() -> None:
    """Set the collector for batch processing, once per process (later calls do nothing)."""
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
