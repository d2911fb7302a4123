"""A run's watch for suspension requests, started beside the run's start instead of before it.

Prefect's engine, for a run of a deployment, starts a thread that subscribes to the API's events
and reads the run's state, and holds the run's start until both are done: two round trips to the
API (and a new client's) before the flow may begin, 50 to 80 ms of a small batch under
`tierflow serve`. Nothing in the run's start needs the watch: once it has read the run's state it
acts on a suspension requested before or after, so a request that came early is not lost, only
seen a moment later. `watch_suspension_beside_start()` has a warm-started run's engine begin the
same watch (Prefect's own) in a thread and go on; the watch ends as Prefect's does, with the run.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

_PATCHED = "_tierflow_beside_start"
log = logging.getLogger(__name__)

ENTRY_WAIT_SECONDS = 10.0
"""How long a run that has ended waits for its watch to finish starting (Prefect's keeps trying
an API that does not answer): the run's process does not wait for ever to end."""


def watch_suspension_beside_start() -> bool:
    """Have Prefect's flow engine, in this process, begin each run's suspension watch without
    waiting for it; whether it could (a Prefect whose engine no longer names
    `observe_flow_run_suspension` is left as it is: tests/deployments/test_suspension_watch.py
    fails then)."""
    import prefect.flow_engine as engine

    current = getattr(engine, "observe_flow_run_suspension", None)
    if current is None:
        return False
    if getattr(current, _PATCHED, False):
        return True
    wrapped = beside(current)
    setattr(wrapped, _PATCHED, True)
    engine.observe_flow_run_suspension = wrapped  # type: ignore[assignment]
    return True


def beside(watch: Callable[..., AbstractContextManager[None]]) -> Callable[..., AbstractContextManager[None]]:
    """`watch` (a context manager that blocks on entry until it is ready), entered in a thread of
    its own while the block runs; left after the block, once it has been entered (a watch still
    starting `ENTRY_WAIT_SECONDS` after the block is left to end with the process). An error on
    entry is logged when the block ends, never raised: it would replace the run's own outcome
    (its error, or a run already COMPLETED) with the watch's."""

    @contextmanager
    def started_beside(*args: Any, **kwargs: Any) -> Iterator[None]:
        manager = watch(*args, **kwargs)
        failure: list[BaseException] = []

        def enter() -> None:
            try:
                manager.__enter__()
            except BaseException as error:  # re-raised on the run's thread, at the end
                failure.append(error)

        # In the run's context (its settings, its clients), as if entered on the run's thread.
        entering = threading.Thread(target=contextvars.copy_context().run, args=(enter,),
                                    name="suspension-watch-start", daemon=True)
        entering.start()
        try:
            yield
        finally:
            entering.join(timeout=ENTRY_WAIT_SECONDS)
            if failure:  # the run's own outcome stands: it did not need the watch
                log.warning("the run's suspension watch did not start (%s: %s)",
                            type(failure[0]).__name__, failure[0])
            elif not entering.is_alive():  # else still starting: it ends with the process
                manager.__exit__(None, None, None)

    return started_beside
