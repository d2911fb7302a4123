"""The shared I/O pool serves calls in the order they came, so a chunk started first ends first."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from tierflow.storage import _CallOrderPool

WAIT_SECONDS = 60


def test_requests_of_an_earlier_call_go_before_those_of_a_later_one():
    pool = _CallOrderPool(1)
    busy, release = threading.Event(), threading.Event()

    def hold(_: object) -> None:
        busy.set()
        assert release.wait(WAIT_SECONDS)

    holder = threading.Thread(target=pool.map, args=(hold, [None]))
    holder.start()
    assert busy.wait(WAIT_SECONDS)  # the only thread is taken: what follows queues up
    served: list[str] = []
    later = [Future() for _ in range(2)]
    earlier = [Future() for _ in range(2)]
    # A later call's requests queued before an earlier call's: the earlier call still goes first.
    for index, future in enumerate(later):
        pool._queue.put((7, index, served.append, f"later-{index}", future))
    for index, future in enumerate(earlier):
        pool._queue.put((3, index, served.append, f"earlier-{index}", future))
    release.set()
    for future in [*earlier, *later]:
        future.result(timeout=WAIT_SECONDS)
    holder.join(WAIT_SECONDS)
    assert served == ["earlier-0", "earlier-1", "later-0", "later-1"]


def test_results_come_back_in_the_order_of_the_items_and_errors_reach_the_caller():
    pool = _CallOrderPool(4)
    assert pool.map(lambda n: n * n, list(range(20))) == [n * n for n in range(20)]
    failed = Future()
    pool._queue.put((0, 0, lambda _: 1 / 0, None, failed))
    assert isinstance(failed.exception(timeout=WAIT_SECONDS), ZeroDivisionError)
