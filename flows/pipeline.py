"""One batch run's pipeline: discovery and every tier at once, each tier a `process-tier` subflow,
joined by bounded links (flows/links.py).

The trigger run creates one `BatchPipeline` and runs it; nothing about a batch run is kept in a
module. Discovery hands the root tier each listing page once registered; each tier hands the one
below it the inputs of each chunk that ended. The tiers' runs are created one after another, each
once the tier above has its own, and no tier runs a chunk before all of them exist, except the
root tier's first (docs/design/tier-overlap.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.chunk_tasks import ChunkRunner, run_chunk_task
from flows.clients import shared_prefect_client
from flows.futures import failure_of
from flows.links import Handoff, Link, StartLine
from flows.off_loop import off_loop
from flows.runners import chunks_at_once, tier_task_runner
from flows.tier import TierPorts, hand_over, handed_ports, run_tier
from tasks.discovery import discover_bucket
from tierflow.chunking import tier_shape
from tierflow.planning import BatchPlan

LINK_ITEMS = 8
"""Hand-offs a link holds before its sender waits: a listing page or an ended chunk's inputs each,
so what waits between two steps stays a few thousand ids whatever the batch's size."""


class BatchPipeline:
    """Discovery (when `discover`) and the tiers of one batch run, for trigger run `task_id`.

    `run_chunk` runs each chunk (by default as a `process-chunk` task run); tests pass their own.
    """

    def __init__(self, plan: BatchPlan, generation: int, *, task_id: str, discover: bool,
                 run_chunk: ChunkRunner = run_chunk_task) -> None:
        self.plan, self.generation, self.task_id, self.run_chunk = plan, generation, task_id, run_chunk
        count = len(plan.tiers)
        self.line = StartLine(count)
        self.links: list[Link | None] = [Link(LINK_ITEMS) if tier_num > 0 or discover else None
                                         for tier_num in range(count)]
        """`links[n]` feeds tier n; the root's is None when discovery has already ended."""

    def ports(self, tier_num: int) -> TierPorts:
        """What tier `tier_num` is given."""
        below = tier_num + 1
        return TierPorts(batch_id=self.plan.batch_id, tier_num=tier_num, generation=self.generation,
                         run_chunk=self.run_chunk, line=self.line, inbox=self.links[tier_num],
                         outbox=self.links[below] if below < len(self.links) else None)

    async def run(self) -> None:
        """Run discovery and every tier until all have closed; then raise the first failure.

        A step that fails still closes its link, so the tiers below it finish with what it made.
        """
        tiers = asyncio.gather(*(self._tier(tier_num) for tier_num in range(len(self.links))),
                               return_exceptions=True)
        outcomes: list[Any] = []
        root = self.links[0]
        try:
            if root is not None:
                root.started(self.task_id)
                outcomes.append(await discover(self.plan, root))
            outcomes.extend(await tiers)
        finally:
            self._tear_down()
            if not tiers.done():
                tiers.cancel()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _tear_down(self) -> None:
        """Leave no one waiting: normally every step has closed by now, but a cancelled run's
        have not."""
        self.line.open()
        for link in self.links:
            if link is not None:
                link.close(failed=True)
                link.stop_listening()

    async def _tier(self, tier_num: int) -> dict[str, Any]:
        """Run tier `tier_num`'s subflow, once the tier above has its run. A tier that fails
        before its body runs (its run could not be created) arrives and closes its outbox here,
        failed, or the tiers below would wait for it for ever."""
        ports = self.ports(tier_num)
        try:
            if tier_num > 0:
                await self.line.wait_for(tier_num - 1)
            return await self.tier_run(tier_num)
        except BaseException:
            self.line.arrive(tier_num)
            if ports.outbox is not None:
                ports.outbox.close(failed=True)
            raise

    async def tier_run(self, tier_num: int) -> dict[str, Any]:
        """Run tier `tier_num` as a `process-tier` subflow on its own task runner, handing it its
        ports; what it closed."""
        subflow = process_tier.with_options(
            task_runner=tier_task_runner(reads_files=tier_num == 0 and self.plan.source_type == "bucket"))
        hand_over(self.ports(tier_num))
        tier: dict[str, Any] = await subflow(self.plan.batch_id, tier_num, self.task_id if tier_num == 0 else None)
        return tier


@flow(name="process-tier", flow_run_name="tier-{tier_num}", log_prints=False)
async def process_tier(batch_id: str, tier_num: int, parent_task_id: str | None = None) -> dict[str, Any]:
    """Process one tier of batch `batch_id`: every collection of the tier, chunk by chunk.

    Runs only inside a `trigger-collection` run, whose pipeline hands it its ports.
    `parent_task_id`: the run this tier follows (the trigger's for the root; a lower tier learns
    its parent's from its inbox)."""
    ports = handed_ports(batch_id, tier_num)
    with shared_prefect_client():
        shape = await off_loop(tier_shape, batch_id=batch_id, tier_num=tier_num)
        tier = await run_tier(ports, task_id=flow_run.id, parent_task_id=parent_task_id,
                              chunk_size=shape.chunk_size, chunks_at_once=chunks_at_once(reads_files=shape.reads_files))
    get_run_logger().info(
        "tier %s %s: %s inputs, %s succeeded, %s failed, %s documents written",
        tier_num, tier["status"], tier["documents_submitted_to_engine"], tier["inputs_succeeded"],
        tier["inputs_failed"], tier["documents_written"],
    )
    return tier


async def discover(plan: BatchPlan, root: Link | None = None) -> BaseException | None:
    """List and register the root's buckets, handing each page to the root tier through `root`
    if given (and closing it at the end); the first failure, returned."""
    def hand_off(bucket_id: str) -> Any:
        return None if root is None else (lambda object_ids: root.send_from_thread(Handoff(bucket_id, object_ids)))

    discoveries = [discover_bucket.submit(bucket_id, plan.batch_id, hand_off(bucket_id), plan.reconciles_deletes)
                   for bucket_id in plan.source_bucket_ids]
    failures = [await failure_of(future) for future in discoveries]
    failure = next((f for f in failures if f is not None), None)
    if root is not None:
        root.close(failed=failure is not None)
    return failure
