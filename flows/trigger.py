"""`trigger-collection`: the entry flow. Its flow run id is the batch's `task_id`.

Plans the batch (checking the request against the collection), discovers new or changed objects
in the root's buckets, selects the root's inputs, runs every tier of the DAG below the collection
as a `process-tier` subflow (all at once, each fed by the one above it), then closes the batch
and publishes a summary artifact.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run

from flows.clients import shared_prefect_client
from flows.runners import tier_task_runner
from flows.tier import process_tier
from tasks.batches import adopt_batch, finish_batch, plan_batch, select_inputs
from tasks.discovery import discover_bucket
from tasks.feeds import TierFeed, batch_feeds, feed_into, start_line
from tierflow.batch_view import batch_view
from tierflow.errors import is_transient, public_message
from tierflow.leases import Lease
from tierflow.models.trigger import TriggerRequest
from tierflow.planning import BatchPlan
from tierflow.process import configure_process, tune_collector
from tierflow.summary import batch_markdown


@flow(name="trigger-collection", flow_run_name="trigger-{collection}", validate_parameters=True)
async def trigger_collection(
    namespace: str,
    collection: str,
    request: TriggerRequest = TriggerRequest(),  # noqa: B008  never mutated; with it the UI form shows every field
    batch_id: str | None = None,
) -> dict[str, Any]:
    """Process a collection and every collection downstream of it.

    Discovers the objects (or upstream documents) the collection reads, applies the filters,
    creates a batch and runs each tier of the DAG as a subflow. Returns the
    TriggerCollectionResponse; the batch (`tierflow batch show`) holds per-tier counters.

    Args:
        namespace: The namespace, by id (ns_…) or name.
        collection: The collection to trigger, by id (col_…) or name.
        request: Which inputs to process; leave empty to process everything the collection reads.
        batch_id: Leave empty. Set by the REST API, which plans the batch before it starts the run
            so that it can answer with the batch id at once.
    """
    configure_process()
    tune_collector()
    with shared_prefect_client():
        return await _run_batch(namespace, collection, request, batch_id)


async def _run_tiers(plan: BatchPlan, generation: int, *, discover: bool) -> None:
    """Run every tier's subflow at once, each fed by the one above it and, when `discover`, the
    root by discovery (see `tasks/feeds.py`).

    A step that fails still closes its feed, so the tiers below it finish with what it made; the
    first failure is then raised, and the batch fails with it.
    """
    with batch_feeds(plan.batch_id, len(plan.tiers), from_discovery=discover) as root_feed:
        tiers = asyncio.gather(*(_tier_subflow(plan, tier_num, generation) for tier_num in range(len(plan.tiers))),
                               return_exceptions=True)
        outcomes: list[Any] = []
        if root_feed is not None:
            root_feed.started(flow_run.id)
            outcomes.append(await _discover(plan, root_feed))
        outcomes.extend(await tiers)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _tier_subflow(plan: BatchPlan, tier_num: int, generation: int) -> dict[str, Any]:
    """Run one tier's subflow, once the tier above has its run (`StartLine.wait_for`). A tier that
    fails before its body runs (say its run could not be created) closes the feed into the tier
    below here, failed, or that tier would wait for its start for ever and the trigger with it."""
    downstream = feed_into(plan.batch_id, tier_num + 1)
    line = start_line(plan.batch_id)
    try:
        if line is not None and tier_num > 0:
            await line.wait_for(tier_num - 1)
        return await process_tier.with_options(
            task_runner=tier_task_runner(reads_files=tier_num == 0 and plan.source_type == "bucket"),
        )(plan.batch_id, tier_num, flow_run.id if tier_num == 0 else None, generation)
    except BaseException:
        if line is not None:
            line.arrive(tier_num)  # no run will come: the others need not wait for it
        if downstream is not None:
            downstream.close(failed=True)
        raise


async def _discover(plan: BatchPlan, root_feed: TierFeed | None = None) -> BaseException | None:
    """List and register the root's buckets (each page fed to the root tier when it is fed);
    the first failure, returned."""
    discoveries = [discover_bucket.submit(b, plan.batch_id, root_feed is not None, plan.reconciles_deletes)
                   for b in plan.source_bucket_ids]
    failure = await asyncio.to_thread(_first_failure, discoveries)
    if root_feed is not None:
        root_feed.close(failed=failure is not None)
    return failure


def _first_failure(futures: list[PrefectFuture[Any]]) -> BaseException | None:
    """Wait for every future; the exception of the first that failed."""
    wait(futures)
    for future in futures:
        try:
            future.result()
        except BaseException as error:  # returned, to be raised once the tiers have closed
            return error
    return None


async def _run_batch(namespace: str, collection: str, request: TriggerRequest, batch_id: str | None) -> dict[str, Any]:
    """The trigger's body: plan, take the batch's lease, discover, run the tiers, close the batch.

    A run that finds another run holding the batch leaves it alone. A run interrupted (SIGTERM,
    cancelled by its runner's shutdown) lets its lease run out, for the sweep to resume the batch,
    instead of closing it as failed.
    """
    logger = get_run_logger()
    task_id = flow_run.id
    if batch_id is None:
        plan = plan_batch(namespace, collection, request, task_id)
    else:
        plan = adopt_batch(batch_id, task_id, namespace)
    lease = Lease.take(plan.batch_id, task_id)
    work = asyncio.ensure_future(_work(plan, lease))
    loop = asyncio.get_running_loop()
    lease.keep(lost=lambda: loop.call_soon_threadsafe(work.cancel))
    logger.info("batch %s: %s tier(s) %s", plan.batch_id, len(plan.tiers), plan.tiers)
    try:
        await work
    except Exception as error:
        lease.stop()
        finish_batch(plan.batch_id, failure=public_message(error), transient=is_transient(error),
                     run_id=task_id)  # the run's log has the whole error
        raise
    except BaseException:
        lease.abandon()
        raise
    lease.stop()
    response = finish_batch(plan.batch_id, run_id=task_id)
    await acreate_markdown_artifact(
        markdown=batch_markdown(batch_view(plan.batch_id)),
        key=f"batch-{plan.batch_id.replace('_', '-')}",
        description=f"Batch {plan.batch_id}",
    )
    logger.info(response.message)
    return response.model_dump(mode="json")


async def _work(plan: BatchPlan, lease: Lease) -> None:
    """Discover (unless resumed), select the root's inputs, and run every tier."""
    if not plan.resumed and not plan.streams_discovery:
        if plan.source_type == "bucket":
            failure = await _discover(plan)
            if failure is not None:
                raise failure
        select_inputs(plan.batch_id, 0)
    await _run_tiers(plan, lease.generation, discover=plan.streams_discovery)
