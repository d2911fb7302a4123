"""Prefect flows: the trigger (entry point) and one tier. Orchestration only; the work is in the core.

A process that imports these flows runs batches (or starts the processes that do): glibc's arenas
are capped here, before its first thread, and for the processes it starts (`flows/memory.py`).
"""

from flows.memory import limit_malloc_arenas

limit_malloc_arenas()
