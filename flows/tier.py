"""`process-tier`: one tier of a batch, as an async subflow of the trigger.

Selects the tier's inputs (tiers below the root read what their upstream wrote in this batch),
runs one `process-chunk` task per chunk, all collections of the tier at once, then closes the
tier from the ledger. A chunk that still fails after its retries has its inputs marked failed,
so nothing goes unaccounted.

Under a trigger every tier runs at once: a tier hears from its feed (`tasks/feeds.py`) each page
discovery registered or each chunk the tier above finished, adds what that made to its manifest
and submits it as soon as it fills a chunk, so the document tier works while the file tier still
reads, and the file tier while discovery still lists. When the step above has closed, a last full
selection catches anything not heard of and sets the tier's counters.

A tier keeps about twice as many chunks submitted as its runner runs at once, and takes from its
feed only when it has room: what it has not taken stays in the feed as the step above's short
lists (a listing page's object ids, the inputs of a chunk that ended above) instead of becoming
queued task runs holding the ids of every document those made. Pending inputs in the ledger (a
resumed tier, the last selection) are read a chunk at a time, as room frees. Without this, a
document tier slower than the file tier above it held a backlog that grew with the batch: 38
queued chunks of 95,000 document ids in a trigger of 30,000 objects (bench/pipeline.py).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.clients import shared_prefect_client
from flows.runners import chunks_at_once
from tasks.batches import finish_tier, select_inputs
from tasks.chunks import process_chunk
from tasks.feeds import Doorbell, TierFeed, feed_into, start_line
from tierflow.batches import current_generation, fail_inputs, reach_tier, start_tier
from tierflow.catalog.engine import CatalogUnavailableError
from tierflow.chunking import ChunkCutter, chunk_plan, tier_shape
from tierflow.errors import is_transient, public_message
from tierflow.process import configure_process, tune_collector
from tierflow.selection import select_new_inputs
from tierflow.storage import io_ticket


def _chunk_error(error: BaseException, tier_num: int) -> dict[str, Any]:
    return {"category": "network" if is_transient(error) else "runtime", "message": public_message(error),
            "transient": is_transient(error), "tier": tier_num, "scope": "chunk"}


class _ChunkRuns:
    """The tier's `process-chunk` task runs: submitted as chunks fill, or as they are when the tier
    has nothing running (`flush_if_idle`); the tier below hears of each as it ends. Callers ask
    for `room` before they take more inputs, so at most about `limit` chunks are submitted and
    not ended."""

    def __init__(self, batch_id: str, tier_num: int, size: int, downstream: TierFeed | None, *, limit: int,
                 generation: int) -> None:
        self.batch_id, self.tier_num, self.downstream, self.limit = batch_id, tier_num, downstream, limit
        self.generation = generation
        """The lease generation of this tier's run: its chunks claim their inputs with it."""
        self.cutter = ChunkCutter(size)
        self.runs: dict[int, tuple[str, list[str], PrefectFuture[Any]]] = {}
        """Chunks not known to have succeeded: a tier of a million inputs keeps only these ids."""
        self.reached = False
        self._ended_bell = Doorbell()
        """Rung as each chunk ends, for a tier waiting for `room`."""
        self._lock = self._ended_bell.lock
        self._keys = itertools.count()
        self._running = 0
        context = FlowRunContext.get()
        self._quote_ids = context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)
        """Whether to pass each chunk's ids in `quote`, which keeps Prefect from walking the list
        twice per chunk looking for futures among the parameters (a tenth of the task engine's own
        processor time in a py-spy profile of bench/pipeline.py). The thread runner hands the task
        the plain list; prefect-dask rebuilds the parameters it ships and would hand it the wrapper."""

    async def room(self) -> None:
        """Return once fewer than `limit` chunks are submitted and not ended."""
        await self._ended_bell.until(lambda: self._running < self.limit)

    def add(self, collection_id: str, input_ids: list[str]) -> None:
        """Take these pending inputs; submit every chunk they complete."""
        for chunk in self.cutter.add(collection_id, input_ids):
            self._submit(*chunk)

    def flush_if_idle(self) -> None:
        """Submit the partial chunks now if none of this tier's chunks is running: a document tier
        whose first inputs came from one small upstream chunk starts on them at once instead of
        idling until a chunk's worth has come (bench/pipeline.py: tier overhead)."""
        with self._lock:
            idle = self._running == 0
        if idle:
            for chunk in self.cutter.rest():
                self._submit(*chunk)

    def _submit(self, collection_id: str, input_ids: list[str]) -> None:
        if not self.reached:
            reach_tier(batch_id=self.batch_id, tier_num=self.tier_num)
            self.reached = True
        ids: Any = quote(input_ids) if self._quote_ids else input_ids
        future = process_chunk.submit(self.batch_id, collection_id, self.tier_num, ids, self.generation, io_ticket())
        with self._lock:
            key = next(self._keys)
            self.runs[key] = (collection_id, input_ids, future)
            self._running += 1
        future.add_done_callback(lambda ended: self._ended(key, collection_id, input_ids, ended))

    def _ended(self, key: int, collection_id: str, input_ids: list[str], future: PrefectFuture[Any]) -> None:
        """A chunk ended (in a task runner thread): the tier below hears of it, and a chunk that
        succeeded is forgotten, its outcomes being all in the ledger."""
        with self._lock:
            self._running -= 1
        self._ended_bell.ring()
        if self.downstream is not None:
            self.downstream.ready(collection_id, input_ids)
        future.result(raise_on_failure=False)  # it has ended: this only settles its final state
        if future.state.is_completed():
            with self._lock:
                self.runs.pop(key, None)

    async def finish(self) -> None:
        """Submit the partial chunks, wait for every chunk, and mark the inputs of chunks that
        failed after their retries, except those that failed because the catalog could not be
        reached: they stay pending and the tier fails with that error."""
        for chunk in self.cutter.rest():
            self._submit(*chunk)
        with self._lock:
            pending = [future for _, _, future in self.runs.values()]
        await asyncio.to_thread(wait, pending)
        with self._lock:
            ended, self.runs = list(self.runs.values()), {}
        unreachable: CatalogUnavailableError | None = None
        for collection_id, input_ids, future in ended:
            if future.state.is_failed() or future.state.is_crashed():
                error = await future.state.aresult(raise_on_failure=False)  # in a loop: the async form
                if isinstance(error, CatalogUnavailableError):
                    unreachable = error  # nothing of the chunk was read: its inputs stay pending
                    continue
                if not isinstance(error, BaseException):
                    error = RuntimeError(str(error))
                fail_inputs(batch_id=self.batch_id, collection_id=collection_id, input_ids=input_ids,
                            error=_chunk_error(error, self.tier_num), generation=self.generation)
        if unreachable is not None:
            raise unreachable  # the batch fails as transient, to be resumed


async def _submit_pending(runs: _ChunkRuns) -> None:
    """Submit the tier's pending inputs in the ledger, reading each chunk of them once there is room."""
    plan = chunk_plan(batch_id=runs.batch_id, tier_num=runs.tier_num)
    while True:
        await runs.room()
        chunk = await asyncio.to_thread(next, plan, None)
        if chunk is None:
            return
        runs.add(*chunk)


async def _follow(upstream: TierFeed, runs: _ChunkRuns) -> None:
    """Select and submit what the step above makes, as it makes it and as there is room, until it
    closes; then, unless it failed, select whatever was not heard of (and set the tier's
    counters) and, once every chunk submitted so far has ended, run what that left pending."""
    async for source_id, source_ids in upstream.batches():
        await runs.room()
        added = await asyncio.to_thread(select_new_inputs, batch_id=runs.batch_id, tier_num=runs.tier_num,
                                        upstream_id=source_id, source_ids=source_ids)
        for collection_id, input_ids in added.items():
            runs.add(collection_id, input_ids)
        runs.flush_if_idle()
    if upstream.failed:
        return
    select_inputs(runs.batch_id, runs.tier_num)
    await runs.finish()
    await _submit_pending(runs)


@flow(name="process-tier", flow_run_name="tier-{tier_num}", log_prints=False)
async def process_tier(batch_id: str, tier_num: int, parent_task_id: str | None = None,
                       lease_generation: int | None = None) -> dict[str, Any]:
    """Process one tier of a batch: every collection of the tier, chunk by chunk.

    `lease_generation`: that of the trigger run whose tier this is (left empty, the batch's
    current one, for a tier run on its own)."""
    configure_process()
    tune_collector()
    with shared_prefect_client():
        if lease_generation is None:
            lease_generation = current_generation(batch_id)
        return await _run_tier(batch_id, tier_num, parent_task_id, lease_generation)


async def _run_tier(batch_id: str, tier_num: int, parent_task_id: str | None, generation: int) -> dict[str, Any]:
    """The tier's body: start it, select and chunk its inputs as they come, run the chunks, close it."""
    logger = get_run_logger()
    upstream, downstream = feed_into(batch_id, tier_num), feed_into(batch_id, tier_num + 1)
    failed = True
    try:
        if upstream is not None:
            parent_task_id = await upstream.parent()
        start_tier(batch_id=batch_id, tier_num=tier_num, task_id=flow_run.id, parent_task_id=parent_task_id)
        if downstream is not None:
            downstream.started(flow_run.id)
        line = start_line(batch_id)
        if line is not None:
            line.arrive(tier_num)
            await line.wait()  # no chunk before every tier's run exists (tasks/feeds.py)
        shape = tier_shape(batch_id=batch_id, tier_num=tier_num)
        runs = _ChunkRuns(batch_id, tier_num, shape.chunk_size, downstream,
                          limit=2 * chunks_at_once(reads_files=shape.reads_files), generation=generation)
        if tier_num > 0:
            select_inputs(batch_id, tier_num)  # what the upstream wrote before this tier began
        await _submit_pending(runs)
        if upstream is not None:
            await _follow(upstream, runs)
        await runs.finish()
        tier = finish_tier(batch_id, tier_num)
        failed = False
    finally:
        if downstream is not None:
            downstream.close(failed=failed)
    logger.info(
        "tier %s %s: %s inputs, %s succeeded, %s failed, %s documents written",
        tier_num, tier["status"], tier["documents_submitted_to_engine"], tier["inputs_succeeded"],
        tier["inputs_failed"], tier["documents_written"],
    )
    return tier
