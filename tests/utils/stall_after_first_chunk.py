"""Imported by a child process in the crash test: after its first chunk commits, every further
chunk waits, so the test can kill the process mid-tier at a point it knows."""

from __future__ import annotations

import threading
from typing import Any

from tierflow import processing

_real = processing.process_chunk
_first_done = threading.Event()
_never = threading.Event()


def _stalling(**kwargs: Any) -> Any:
    if _first_done.is_set():
        _never.wait()
    result = _real(**kwargs)
    _first_done.set()
    return result


processing.process_chunk = _stalling  # the process-chunk task calls the core through its module
