"""Feeds between the steps of one batch, so that a tier starts on what the step above it made as
soon as it is made instead of waiting for the whole step to end.

The trigger runs discovery and every tier subflow at once, in its own process and event loop.
Discovery feeds the root tier: the object ids of each listing page once registered. Each tier but
the last feeds the tier below it: first its flow run id (the lower tier's `parent_task_id`), then
the inputs of each chunk that ended, as it ends, and last that it closed. Pages and chunks end in
task runner threads (or Dask callbacks), so a feed is thread-safe, and a tier waits on it without
holding a thread (`Doorbell`).

A tier subflow run on its own (no trigger around it) finds no feed and reads its whole upstream
at once, as a tier whose upstream has ended.

No tier runs a chunk until every tier's subflow run exists (`StartLine`). Prefect's API on SQLite
refuses (503) to create a subflow's run when its own writes collide with it, and the chunk task
runs of a working tier (their states, their events) keep it writing: the document tier's run was
refused again and again while the file tier worked, and in 6 of 28 timelines of a 2,000-object
trigger began 0.5 to 1.6 s after it could have (bench/pipeline.py's tier overhead: over 0.3 s in
10 of them). Held at the line, the largest of 32 was 0.31 s. Discovery, one task run, goes on
listing meanwhile, so the file tier finds pages waiting when the line opens: the first document
came at a median of 1.2 s (12 timelines) and 1.45 s (8 others), against 1.2 s without the line.

The tiers' runs are created one after another, each once the tier above has arrived at the line
(`StartLine.wait_for`): created at once, they collided in that API with each other. Over six
alternating 2,000-object triggers each way, the API refused 1 to 4 requests per trigger with the
runs created at once and 1 with them created in turn (the file tier's, created while discovery's
task run starts).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_CLOSED = object()
_feeds: dict[tuple[str, int], TierFeed] = {}
_start_lines: dict[str, StartLine] = {}


def wake_soon(waiter: asyncio.Future[None]) -> None:
    """Wake the coroutine awaiting `waiter`, from any thread."""
    def settle() -> None:
        if not waiter.done():
            waiter.set_result(None)
    try:
        waiter.get_loop().call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # its loop has closed: nobody waits


class Doorbell:
    """Lets coroutines wait for a condition that other threads make true, without a thread each.

    Waiting in `asyncio.to_thread` holds one of the event loop's default executor threads (six on
    two cores) for as long as it waits. A trigger's tiers wait on each other (for their parent's
    start, for its chunks, for the start line), and with eight tiers the waits held every thread,
    so a waiting tier could not get one to hear what it waited for: an eight-tier trigger of one
    object took about 30 s instead of a few, and never ended once the tiers also waited at the
    start line that way (tests/flows/test_pipelining.py).
    Change the state a condition reads under `lock`, then `ring`.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []

    def ring(self) -> None:
        """Wake every waiter, to look at its condition again. Any thread; not under `lock`."""
        with self.lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            wake_soon(waiter)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` (called under `lock`) is true."""
        while True:
            with self.lock:
                if condition():
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            await waiter


class StartLine:
    """Where a batch's tiers wait until every one of them has its subflow run. Thread-safe."""

    def __init__(self, tier_count: int) -> None:
        self._missing = set(range(tier_count))
        self._bell = Doorbell()

    def arrive(self, tier_num: int) -> None:
        """Tier `tier_num`'s run exists (or will never exist: it failed before its body ran)."""
        with self._bell.lock:
            self._missing.discard(tier_num)
        self._bell.ring()

    def open(self) -> None:
        """Let everyone through (the batch is ending, however it ended)."""
        with self._bell.lock:
            self._missing.clear()
        self._bell.ring()

    async def wait(self) -> None:
        """Until every tier has arrived."""
        await self._bell.until(lambda: not self._missing)

    async def wait_for(self, tier_num: int) -> None:
        """Until tier `tier_num` has arrived."""
        await self._bell.until(lambda: tier_num not in self._missing)


@dataclass
class TierFeed:
    """What a tier hears from the step above it (discovery, or the tier above) while both run."""

    failed: bool = False
    """Set when the step above closed by failing: what it made is all there will be."""
    _bell: Doorbell = field(default_factory=Doorbell)
    _parent: list[str | None] = field(default_factory=list)
    """The step above's flow run id, once it has started (None: it ended without starting)."""
    _ready: deque[Any] = field(default_factory=deque)

    def started(self, task_id: str | None) -> None:
        """The step above began, as flow run `task_id`."""
        with self._bell.lock:
            self._parent.append(task_id)
        self._bell.ring()

    def ready(self, source_id: str, input_ids: list[str]) -> None:
        """These inputs of `source_id` (a bucket, or a collection of the tier above) are committed,
        with whatever they made. Any thread."""
        with self._bell.lock:
            self._ready.append((source_id, input_ids))
        self._bell.ring()

    def close(self, *, failed: bool = False) -> None:
        """The step above ended (or failed): nothing more will come."""
        with self._bell.lock:
            self.failed = failed
            self._parent.append(None)  # for a reader waiting for a start that never came
            self._ready.append(_CLOSED)
        self._bell.ring()

    async def parent(self) -> str | None:
        """The step above's flow run id, once it has started (None if it ended first)."""
        await self._bell.until(lambda: bool(self._parent))
        return self._parent[0]

    async def batches(self) -> AsyncIterator[tuple[str, list[str]]]:
        """(source id, input ids) of each ended page or chunk above, until the feed closes."""
        while True:
            await self._bell.until(lambda: bool(self._ready))
            with self._bell.lock:
                item = self._ready.popleft()
            if item is _CLOSED:
                return
            yield item


@contextmanager
def batch_feeds(batch_id: str, tier_count: int, *, from_discovery: bool) -> Iterator[TierFeed | None]:
    """Feeds into the tiers of a batch below the root (and into the root, from discovery, when
    `from_discovery`), for the time its steps run together; yields the root's feed."""
    first = 0 if from_discovery else 1
    keys = [(batch_id, n) for n in range(first, tier_count)]
    _feeds.update({key: TierFeed() for key in keys})
    _start_lines[batch_id] = StartLine(tier_count)
    try:
        yield _feeds.get((batch_id, 0))
    finally:
        _start_lines.pop(batch_id).open()
        for key in keys:
            # Normally every reader is done by now; if the run was cancelled, this wakes a reader
            # still waiting, which would otherwise never end.
            _feeds.pop(key).close(failed=True)


def start_line(batch_id: str) -> StartLine | None:
    """Where this batch's tiers wait for each other's runs, or None for a tier run on its own."""
    return _start_lines.get(batch_id)


def feed_into(batch_id: str, tier_num: int) -> TierFeed | None:
    """The feed tier `tier_num` reads from the step above it, or None when it runs on its own."""
    return _feeds.get((batch_id, tier_num))
