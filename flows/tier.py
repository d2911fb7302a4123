"""One tier of a batch, as a plain async function: given what the step above hands it, what it
hands the tier below, and a way to run a chunk.

The tier selects its inputs (tiers below the root read what their upstream wrote in this batch),
runs every collection's chunks at once, then closes from the ledger. It starts on each hand-off
from its inbox as it comes, so it works while the step above still does (docs/design/
tier-overlap.md); once the step above has closed, a last full selection catches anything not
heard of and sets its counters. A chunk that still fails after its retries has its inputs marked
failed, so nothing goes unaccounted.

A tier keeps about `limit` chunks running and takes from its inbox only when it has room, and a
chunk that ended holds its place until the tier below has taken what it made: so neither a tier's
memory nor what waits between tiers grows with the batch (docs/design/memory.md).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from flows.chunk_tasks import Chunk, ChunkRunner
from flows.links import Handoff, Link, StartLine
from flows.off_loop import off_loop
from tasks.batches import finish_tier, select_inputs
from tierflow.batches import fail_inputs, reach_tier, start_tier
from tierflow.catalog.engine import CatalogUnavailableError
from tierflow.chunking import ChunkCutter, chunk_plan
from tierflow.errors import is_transient, public_message
from tierflow.selection import select_new_inputs


@dataclass
class TierPorts:
    """What a tier is given by its batch's pipeline."""

    batch_id: str
    tier_num: int
    generation: int
    """The lease generation of the trigger run whose tier this is."""
    run_chunk: ChunkRunner
    line: StartLine
    inbox: Link | None = None
    """From the step above; None when the tier reads only the ledger (a root tier whose
    discovery has ended, as in a resumed batch)."""
    outbox: Link | None = None
    """To the tier below; None for the last tier."""


_handed: ContextVar[TierPorts] = ContextVar("tierflow_tier_ports")


def hand_over(ports: TierPorts) -> None:
    """Hand a tier's subflow, about to be called in the current asyncio task, its ports.

    Through a context variable, which only that task and what it calls see, and not as a
    parameter: Prefect sends a run's parameters to its API and, with each task, to Dask's workers.
    """
    _handed.set(ports)


def handed_ports(batch_id: str, tier_num: int) -> TierPorts:
    """The ports handed to the tier subflow running here (`hand_over`)."""
    ports = _handed.get(None)
    if ports is None or (ports.batch_id, ports.tier_num) != (batch_id, tier_num):
        raise RuntimeError("process-tier runs only as a subflow of trigger-collection: trigger the collection")
    return ports


@dataclass(frozen=True)
class FailedChunk:
    """A chunk that failed after its retries."""

    collection_id: str
    input_ids: list[str]
    error: BaseException


@dataclass
class TierChunks:
    """A tier's chunks: cut from the inputs it takes, run through `ports.run_chunk`, about
    `limit` at a time. Use it in the trigger's event loop."""

    ports: TierPorts
    chunk_size: int
    limit: int
    failures: list[FailedChunk] = field(default_factory=list)
    """Chunks that failed for good, since the last `finish`: the only ids the tier keeps of the
    chunks it ran, so a tier of a million inputs does not hold them all until it closes."""
    running: int = 0
    """Chunks started and not yet ended (with what they made handed to the tier below)."""
    reached: bool = False
    """Whether the batch's `current_tier` counts this tier yet (set as its first chunk starts)."""
    ahead: int = 0
    """Chunks it may start before the start line opens (the root tier's first: see `run_tier`)."""
    started: int = 0
    """Chunks started so far."""
    _cutter: ChunkCutter = field(init=False)
    _ended: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._cutter = ChunkCutter(self.chunk_size)

    async def room(self) -> None:
        """Return once fewer than `limit` chunks are running."""
        async with self._ended:
            await self._ended.wait_for(lambda: self.running < self.limit)

    async def add(self, collection_id: str, input_ids: list[str]) -> None:
        """Take these pending inputs; start every chunk they complete."""
        for chunk in self._cutter.add(collection_id, input_ids):
            await self._start(*chunk)

    async def flush_if_idle(self) -> None:
        """Start the partial chunks now if none of this tier's chunks is running: a document tier
        whose first inputs came from one small upstream chunk starts on them at once instead of
        idling until a chunk's worth has come."""
        if self.running == 0:
            for chunk in self._cutter.rest():
                await self._start(*chunk)

    async def finish(self) -> None:
        """Start the partial chunks, wait for every chunk, and mark the inputs of chunks that
        failed for good, except those that failed because the catalog could not be reached: they
        stay pending and the tier fails with that error."""
        for chunk in self._cutter.rest():
            await self._start(*chunk)
        async with self._ended:
            await self._ended.wait_for(lambda: self.running == 0)
        failures, self.failures = self.failures, []
        unreachable: CatalogUnavailableError | None = None
        for failed in failures:
            if isinstance(failed.error, CatalogUnavailableError):
                unreachable = failed.error  # nothing of the chunk was read: its inputs stay pending
                continue
            await off_loop(fail_inputs, batch_id=self.ports.batch_id, tier_num=self.ports.tier_num,
                           collection_id=failed.collection_id,
                           input_ids=failed.input_ids, error=chunk_error(failed.error, self.ports.tier_num),
                           generation=self.ports.generation)
        if unreachable is not None:
            raise unreachable  # the batch fails as transient, to be resumed

    def cancel(self) -> None:
        """Stop waiting for the chunks still running (the tier is being torn down)."""
        for task in self._tasks:
            task.cancel()

    async def _start(self, collection_id: str, input_ids: list[str]) -> None:
        ports = self.ports
        if self.started >= self.ahead:
            await ports.line.wait()  # no further chunk before every tier's run exists
        self.started += 1
        if not self.reached:
            await off_loop(reach_tier, batch_id=ports.batch_id, tier_num=ports.tier_num)
            self.reached = True
        self.running += 1
        chunk = Chunk(ports.batch_id, collection_id, ports.tier_num, input_ids, ports.generation)
        task = asyncio.create_task(self._run(chunk))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, chunk: Chunk) -> None:
        """Run the chunk, then hand what it made to the tier below (even if it failed: what it
        wrote before failing may be there), then free its place."""
        try:
            try:
                error = await self.ports.run_chunk(chunk)
            except Exception as raised:  # a runner that raises instead of returning
                error = raised
            if self.ports.outbox is not None:
                await self.ports.outbox.send(Handoff(chunk.collection_id, chunk.input_ids))
            if error is not None:
                self.failures.append(FailedChunk(chunk.collection_id, chunk.input_ids, error))
        finally:
            async with self._ended:
                self.running -= 1
                self._ended.notify_all()


def chunk_error(error: BaseException, tier_num: int) -> dict[str, Any]:
    """The ledger's error record for the inputs of a chunk that failed for good."""
    return {"category": "network" if is_transient(error) else "runtime", "message": public_message(error),
            "transient": is_transient(error), "tier": tier_num, "scope": "chunk"}


async def run_tier(ports: TierPorts, *, task_id: str, parent_task_id: str | None,
                   chunk_size: int, chunks_at_once: int) -> dict[str, Any]:
    """Run the tier as flow run `task_id`: start it, select and chunk its inputs as they come, run
    the chunks, close it. Returns the tier as the ledger closed it.

    Its chunks wait at the start line, except the root tier's first, which is small: it runs while
    the tiers below are still being created, so a small batch's first document does not wait for
    them. Whatever happens, its outbox closes (failed unless the tier closed), so the tier below
    ends."""
    chunks = TierChunks(ports, chunk_size, limit=2 * chunks_at_once, ahead=1 if ports.tier_num == 0 else 0)
    closed = False
    try:
        if ports.inbox is not None:
            parent_task_id = await ports.inbox.parent()
        await off_loop(start_tier, batch_id=ports.batch_id, tier_num=ports.tier_num, task_id=task_id,
                       parent_task_id=parent_task_id)
        if ports.outbox is not None:
            ports.outbox.started(task_id)
        ports.line.arrive(ports.tier_num)
        if ports.tier_num > 0:
            await off_loop(select_inputs, ports.batch_id, ports.tier_num, final=False)  # written before it began
        await _start_pending(chunks)
        if ports.inbox is not None:
            await _follow(ports.inbox, chunks)
        await chunks.finish()
        tier: dict[str, Any] = await off_loop(finish_tier, ports.batch_id, ports.tier_num)
        closed = True
        return tier
    finally:
        chunks.cancel()
        if ports.inbox is not None:
            ports.inbox.stop_listening()
        if ports.outbox is not None:
            ports.outbox.close(failed=not closed)


async def _start_pending(chunks: TierChunks) -> None:
    """Start the tier's pending inputs in the ledger, reading each chunk of them once there is room."""
    plan = chunk_plan(batch_id=chunks.ports.batch_id, tier_num=chunks.ports.tier_num)
    while True:
        await chunks.room()
        chunk = await off_loop(next, plan, None)
        if chunk is None:
            return
        await chunks.add(*chunk)


async def _follow(inbox: Link, chunks: TierChunks) -> None:
    """Select and start what the step above hands off, as there is room, until it closes; then,
    unless it failed, select whatever was not heard of (and set the tier's counters) and, once
    every chunk started so far has ended, run what that left pending."""
    ports = chunks.ports
    async for handoff in inbox.handoffs():
        await chunks.room()
        added = await off_loop(select_new_inputs, batch_id=ports.batch_id, tier_num=ports.tier_num,
                               upstream_id=handoff.source_id, source_ids=handoff.input_ids)
        for collection_id, input_ids in added.items():
            await chunks.add(collection_id, input_ids)
        await chunks.flush_if_idle()
    if inbox.failed:
        return
    await off_loop(select_inputs, ports.batch_id, ports.tier_num)
    await chunks.finish()
    await _start_pending(chunks)
