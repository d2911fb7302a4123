"""The channels of one batch run: a `Link` from each step (discovery, or a tier) to the tier
below it, and the `StartLine` where the tiers wait for each other's runs.

Both live in the trigger run's event loop and belong to its `BatchPipeline` (flows/pipeline.py);
nothing here is global. Why the tiers overlap and why they wait at a start line:
docs/design/tier-overlap.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

THREAD_WAIT_SECONDS = 0.5
"""How often a thread waiting to send looks whether the trigger's loop still runs."""


@dataclass(frozen=True)
class Handoff:
    """Inputs the step above has committed, with whatever they made: a listing page's objects, or
    the inputs of a chunk that ended in the tier above."""

    source_id: str
    """A bucket (from discovery), or a collection of the tier above."""
    input_ids: list[str]


class Link:
    """From one step to the tier below it: first the step's flow run id, then its hand-offs, then
    that it closed (and whether it failed).

    Bounded: a sender waits while `max_items` hand-offs are waiting, so a step cannot run further
    ahead of a slower tier below it than that. Create it, and use it, in the trigger's event loop;
    only `send_from_thread` may be called from another thread.
    """

    def __init__(self, max_items: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._parent: asyncio.Future[str | None] = self._loop.create_future()
        self._sender, self._receiver = anyio.create_memory_object_stream[Handoff](max_items)
        self.failed = False
        """Set when the step above closed by failing: what it handed off is all there will be."""
        self._unheard = threading.Event()
        """Set once the tier below has stopped listening (readable from any thread)."""

    def started(self, task_id: str | None) -> None:
        """The step above began, as flow run `task_id` (None: it ended without starting)."""
        if not self._parent.done():
            self._parent.set_result(task_id)

    async def parent(self) -> str | None:
        """The step above's flow run id, once it has started (None if it closed first)."""
        return await self._parent

    async def send(self, handoff: Handoff) -> None:
        """Hand these inputs to the tier below, waiting while the link is full. Dropped if that
        tier has stopped listening: it selects whatever it missed when it closes."""
        try:
            await self._sender.send(handoff)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def send_from_thread(self, handoff: Handoff) -> None:
        """`send` from a thread that is not the loop's (a task runner thread), blocking it while
        the link is full. Dropped if the loop stops running meanwhile (the trigger run is ending,
        say on SIGTERM): a thread waiting for ever would keep its process from exiting."""
        try:
            sent = asyncio.run_coroutine_threadsafe(self.send(handoff), self._loop)
        except RuntimeError:
            return  # the loop is closed
        while True:
            try:
                sent.result(timeout=THREAD_WAIT_SECONDS)
                return
            except concurrent.futures.TimeoutError:
                # The tier below stopped listening, or the loop stopped: on cancellation, the
                # loop waits (blocked) for this very thread to end, and would never send it.
                if self._unheard.is_set() or not self._loop.is_running():
                    sent.cancel()
                    return
            except concurrent.futures.CancelledError:
                return

    def close(self, *, failed: bool = False) -> None:
        """The step above ended (or failed): nothing more will come. Idempotent."""
        self.failed = self.failed or failed
        self.started(None)  # for a reader waiting for a start that never came
        self._sender.close()

    def stop_listening(self) -> None:
        """The tier below is gone: senders stop waiting for it."""
        self._unheard.set()
        self._receiver.close()

    async def handoffs(self) -> AsyncIterator[Handoff]:
        """Each hand-off, in order, until the link closes."""
        async for handoff in self._receiver:
            yield handoff


class StartLine:
    """Where a batch's tiers wait until every one of them has its subflow run (see
    docs/design/tier-overlap.md). Use it in the trigger's event loop."""

    def __init__(self, tier_count: int) -> None:
        self._arrived = [asyncio.Event() for _ in range(tier_count)]

    def arrive(self, tier_num: int) -> None:
        """Tier `tier_num`'s run exists (or will never exist: it failed before its body ran)."""
        self._arrived[tier_num].set()

    def has_arrived(self, tier_num: int) -> bool:
        """Whether tier `tier_num` has arrived."""
        return self._arrived[tier_num].is_set()

    def open(self) -> None:
        """Let everyone through (the batch is ending, however it ended)."""
        for arrived in self._arrived:
            arrived.set()

    async def wait(self) -> None:
        """Until every tier has arrived."""
        for arrived in self._arrived:
            await arrived.wait()

    async def wait_for(self, tier_num: int) -> None:
        """Until tier `tier_num` has arrived."""
        await self._arrived[tier_num].wait()
