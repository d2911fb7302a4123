"""Process set-up for a process that runs batches: Python's garbage collector, glibc's arenas,
and, under `tierflow serve`, dying with the server.

`configure_process()` is called by the entry points (the `tierflow` command first thing, and the
trigger and tier flows): one glibc arena for the threads still to come and, through
`MALLOC_ARENA_MAX`, for the processes this one starts. `tune_collector()` is called when a batch
starts, once the long-lived objects of the imports are there to be frozen. Importing tierflow
tunes nothing. The measurements behind both are in docs/design/memory.md.
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


def tune_collector() -> None:
    """Set the collector for batch processing, once per process (later calls do nothing): what is
    alive now is frozen out of its sight, and its youngest generation is collected less often."""
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


def configure_process() -> None:
    """Cap glibc's arenas for the threads this process has not started yet and for the processes
    it starts, and tie a flow run started by `tierflow serve` to that server's life. Call it from
    an entry point before any thread starts; again is harmless."""
    limit_malloc_arenas()
    die_with_server()


_PR_SET_PDEATHSIG = 1
"""Linux `prctl` option: the signal a process receives when the thread that started it ends."""

SERVER_PID_VARIABLE = "TIERFLOW_SERVER_PID"
"""Set by `tierflow serve` for the processes it starts, which die with it (`die_with_server`)."""


def die_with_parent(parent_pid: int) -> bool:
    """Have the kernel kill this process (SIGKILL) when its parent `parent_pid` dies, however it
    dies; exit at once if it already has. Whether the kernel took the request (Linux only)."""
    import signal

    prctl = glibc_function("prctl")
    if prctl is None:
        return False
    prctl.argtypes, prctl.restype = [ctypes.c_int, ctypes.c_ulong], ctypes.c_int
    if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent died before the request: nobody would send it
        os._exit(1)
    return True


def die_with_process(pid: int) -> bool:
    """Have this process killed (SIGKILL) when process `pid` ends, however it ends, though `pid` is
    not its parent; exit at once if it already has. Whether it can watch (Linux 5.3 and later: a
    daemon thread waits on the process's pidfd)."""
    import select
    import signal

    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        return False

    def watch() -> None:
        select.select([watched], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="tierflow-die-with-server", daemon=True).start()
    return True


_tied: list[int] = []
"""The server this process was tied to (`die_with_server`), once it is."""


def die_with_server() -> None:
    """In a process `tierflow serve` started (a flow run of its runner, forked by the server's
    fork server or started by the server itself), die with that server: a run whose server was
    killed must not go on writing to the catalog while the restarted server's sweep resumes its
    batch. Once per process; later calls do nothing."""
    server = os.environ.get(SERVER_PID_VARIABLE)
    if _tied or not server or not server.isdigit() or int(server) == os.getpid():
        return
    _tied.append(int(server))
    if os.getppid() == int(server):
        die_with_parent(int(server))
    else:
        die_with_process(int(server))
