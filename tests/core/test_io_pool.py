"""The shared I/O pool serves calls in the order they came, so a chunk started first ends first."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from tierflow.storage import _CallOrderPool, io_ticket

WAIT_SECONDS = 60


@contextmanager
def _occupied(pool: _CallOrderPool) -> Iterator[None]:
    """The pool's only thread held for the block, so what the block asks for queues up; released,
    and its call finished, on leaving."""
    busy, release = threading.Event(), threading.Event()

    def hold(_: object) -> None:
        busy.set()
        assert release.wait(WAIT_SECONDS)

    holder = threading.Thread(target=pool.map, args=(hold, [None], io_ticket()))
    holder.start()
    assert busy.wait(WAIT_SECONDS)
    try:
        yield
    finally:
        release.set()
        holder.join(WAIT_SECONDS)


def _until_queued(pool: _CallOrderPool, count: int) -> None:
    """Return once `count` requests wait in the pool's queue (they are counted, not waited for)."""
    while pool._queue.qsize() < count:
        threading.Event().wait(0.001)


def test_requests_of_an_earlier_call_go_before_those_of_a_later_one():
    pool = _CallOrderPool(1)
    served: list[str] = []
    later = [Future() for _ in range(2)]
    earlier = [Future() for _ in range(2)]
    with _occupied(pool):
        # A later call's requests queued before an earlier call's: the earlier call still goes first.
        for index, future in enumerate(later):
            pool._queue.put((7, index, served.append, f"later-{index}", future))
        for index, future in enumerate(earlier):
            pool._queue.put((3, index, served.append, f"earlier-{index}", future))
    for future in [*earlier, *later]:
        future.result(timeout=WAIT_SECONDS)
    assert served == ["earlier-0", "earlier-1", "later-0", "later-1"]


def test_results_come_back_in_the_order_of_the_items_and_errors_reach_the_caller():
    pool = _CallOrderPool(4)
    assert pool.map(lambda n: n * n, list(range(20)), io_ticket()) == [n * n for n in range(20)]
    failed = Future()
    pool._queue.put((0, 0, lambda _: 1 / 0, None, failed))
    assert isinstance(failed.exception(timeout=WAIT_SECONDS), ZeroDivisionError)


def test_a_call_made_with_an_earlier_ticket_goes_before_calls_made_before_it():
    # A tier's first chunk takes its ticket when it begins; its thread may reach its reads after
    # those of chunks that began after it, and must still be served first.
    pool = _CallOrderPool(1)
    served: list[str] = []
    first = io_ticket()
    with _occupied(pool):
        late = threading.Thread(target=pool.map, args=(served.append, ["second-0", "second-1"], io_ticket()))
        late.start()  # takes its place now, after `first`
        _until_queued(pool, 2)
        early = threading.Thread(target=pool.map, args=(served.append, ["first-0", "first-1"]),
                                 kwargs={"ticket": first})
        early.start()
        _until_queued(pool, 4)
    for thread in (late, early):
        thread.join(WAIT_SECONDS)
    assert served == ["first-0", "first-1", "second-0", "second-1"]
