"""Feeds between the steps of one batch, so that a tier starts on what the step above it made as
soon as it is made instead of waiting for the whole step to end.

The trigger runs discovery and every tier subflow at once, in its own process and event loop.
Discovery feeds the root tier: the object ids of each listing page once registered. Each tier but
the last feeds the tier below it: first its flow run id (the lower tier's `parent_task_id`), then
the inputs of each chunk that ended, as it ends, and last that it closed. Pages and chunks end in
task runner threads (or Dask callbacks), so a feed is a thread-safe queue.

A tier subflow run on its own (no trigger around it) finds no feed and reads its whole upstream
at once, as a tier whose upstream has ended.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_CLOSED = object()
_feeds: dict[tuple[str, int], TierFeed] = {}


@dataclass
class TierFeed:
    """What a tier hears from the step above it (discovery, or the tier above) while both run."""

    failed: bool = False
    """Set when the step above closed by failing: what it made is all there will be."""
    _parent: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _ready: queue.Queue[Any] = field(default_factory=queue.Queue)

    def started(self, task_id: str | None) -> None:
        """The step above began, as flow run `task_id`."""
        self._parent.put(task_id)

    def ready(self, source_id: str, input_ids: list[str]) -> None:
        """These inputs of `source_id` (a bucket, or a collection of the tier above) are committed,
        with whatever they made. Any thread."""
        self._ready.put((source_id, input_ids))

    def close(self, *, failed: bool = False) -> None:
        """The step above ended (or failed): nothing more will come."""
        self.failed = failed
        self._parent.put(None)  # unblocks a reader waiting for a start that never came
        self._ready.put(_CLOSED)

    async def parent(self) -> str | None:
        """The step above's flow run id, once it has started (None if it ended first)."""
        return await asyncio.to_thread(self._parent.get)

    async def batches(self) -> AsyncIterator[tuple[str, list[str]]]:
        """(source id, input ids) of each ended page or chunk above, until the feed closes.

        Whatever is already queued is taken without a thread hop, so a fast upstream costs a
        thread wait per pause, not per chunk.
        """
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                item = await asyncio.to_thread(self._ready.get)
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
    try:
        yield _feeds.get((batch_id, 0))
    finally:
        for key in keys:
            # Normally every reader is done by now; if the run was cancelled, this wakes a reader
            # still waiting in a thread, which would otherwise keep the process from exiting.
            _feeds.pop(key).close(failed=True)


def feed_into(batch_id: str, tier_num: int) -> TierFeed | None:
    """The feed tier `tier_num` reads from the step above it, or None when it runs on its own."""
    return _feeds.get((batch_id, tier_num))
