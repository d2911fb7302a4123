"""Work a server does every few seconds in a thread of its own (the sweep, webhook delivery)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `work()` every `every()` seconds, in a daemon thread, from `start()` until `stop()`
    or until `work()` returns False. An exception is logged and the next round goes on: what
    failed (the catalog or Prefect unreachable) is looked at again next time."""

    def __init__(self, name: str, every: Callable[[], float], work: Callable[[], bool | None]) -> None:
        self._every, self._work = every, work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._every()):
            try:
                if self._work() is False:
                    return
            except Exception:
                log.warning("%s failed; it tries again in %s s", self._thread.name, self._every(), exc_info=True)
