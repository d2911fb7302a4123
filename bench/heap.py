"""Where a contender's memory is, sampled once a second: the C heap glibc's allocator holds (in use,
and freed but kept), and SQLite's own allocations.

Peak RSS alone does not say why it grows with the batch; these do (docs/design/memory.md): Python's and
SQLite's use stayed flat from 10,000 to 100,000 objects while the freed-but-kept heap grew. glibc
only (`mallinfo2`, glibc 2.33 and later); elsewhere the summary is empty.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

from tierflow.process import glibc_function

_MB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


class HeapSampler:
    """Samples in a daemon thread from `start()` until `summary()`."""

    def __init__(self, every_seconds: float = 1.0) -> None:
        self.every = every_seconds
        self.samples: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._probes = self._load()

    @staticmethod
    def _load() -> tuple[Any, Any] | None:
        mallinfo2 = glibc_function("mallinfo2")
        try:
            memory_used = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0").sqlite3_memory_used
        except (OSError, AttributeError):
            return None
        if mallinfo2 is None:
            return None
        mallinfo2.restype, memory_used.restype = _MallInfo2, ctypes.c_int64
        return mallinfo2, memory_used

    def start(self) -> HeapSampler:
        if self._probes is not None:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        assert self._probes is not None
        mallinfo2, memory_used = self._probes
        while not self._stop.wait(self.every):
            info = mallinfo2()
            self.samples.append((info.uordblks // _MB, info.fordblks // _MB, memory_used() // _MB))

    def summary(self) -> dict[str, list[int]]:
        """[min, max] MB of each figure over the run (empty where it could not be sampled)."""
        self._stop.set()
        if not self.samples:
            return {}
        used, freed, sqlite = zip(*self.samples, strict=True)
        return {"heap_in_use_mb": [min(used), max(used)], "heap_freed_held_mb": [min(freed), max(freed)],
                "sqlite_mb": [min(sqlite), max(sqlite)]}
