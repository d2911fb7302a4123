"""`trigger-collection`: the entry flow. Its flow run id is the batch's `task_id`.

Plans the batch (checking the request against the collection), discovers new or changed objects
in the root's buckets, selects the root's inputs, runs every tier of the DAG below the collection
as a `process-tier` subflow (all at once, each fed by the one above it), then closes the batch
and publishes a summary artifact.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.runtime import flow_run

from flows.chunk_tasks import ChunkRunner, run_chunk_task
from flows.clients import shared_prefect_client
from flows.off_loop import off_loop
from flows.pipeline import BatchPipeline, discover
from tasks.batches import adopt_batch, finish_batch, plan_batch, select_inputs
from tierflow.batch_view import batch_view
from tierflow.errors import is_transient, public_message
from tierflow.leases import Lease
from tierflow.models.trigger import TriggerRequest
from tierflow.planning import BatchPlan
from tierflow.process import configure_process, tune_collector
from tierflow.progress import batch_percent
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
        return await run_batch(namespace, collection, request, batch_id)


async def run_batch(namespace: str, collection: str, request: TriggerRequest, batch_id: str | None = None, *,
                    run_chunk: ChunkRunner = run_chunk_task) -> dict[str, Any]:
    """The trigger's body, in its flow run: plan, take the batch's lease, discover, run the tiers
    (each chunk through `run_chunk`), close the batch.

    A run that finds another run holding the batch leaves it alone. A run interrupted (SIGTERM,
    cancelled by its runner's shutdown) lets its lease run out, for the sweep to resume the batch,
    instead of closing it as failed.
    """
    logger = get_run_logger()
    task_id = flow_run.id
    if batch_id is None:
        plan = await off_loop(plan_batch, namespace, collection, request, task_id)
    else:
        plan = await off_loop(adopt_batch, batch_id, task_id, namespace)
    lease = await off_loop(Lease.take, plan.batch_id, task_id)
    finished, tiers_started = asyncio.Event(), asyncio.Event()
    work = asyncio.ensure_future(_work(plan, lease, task_id, run_chunk, tiers_started))
    loop = asyncio.get_running_loop()
    lease.keep(lost=lambda: loop.call_soon_threadsafe(work.cancel))
    logger.info("batch %s: %s tier(s) %s", plan.batch_id, len(plan.tiers), plan.tiers)
    reporter = asyncio.ensure_future(_report_progress(plan.batch_id, tiers_started, finished))
    try:
        await work
    except Exception as error:
        reporter.cancel()
        lease.stop()
        await off_loop(finish_batch, plan.batch_id, failure=public_message(error), transient=is_transient(error),
                       run_id=task_id)  # the run's log has the whole error
        raise
    except BaseException:
        reporter.cancel()
        lease.abandon()
        raise
    finished.set()
    await reporter  # one last update: the UI shows where the batch ended
    lease.stop()
    response = await off_loop(finish_batch, plan.batch_id, run_id=task_id)
    await acreate_markdown_artifact(
        markdown=batch_markdown(await off_loop(batch_view, plan.batch_id)),
        key=f"batch-{plan.batch_id.replace('_', '-')}",
        description=f"Batch {plan.batch_id}",
    )
    logger.info(response.message)
    return response.model_dump(mode="json")


PROGRESS_SECONDS = 1.0
"""How often the trigger run updates its progress artifact (the Prefect UI's percentage)."""


async def _report_progress(batch_id: str, tiers_started: asyncio.Event, finished: asyncio.Event) -> None:
    """Keep a Prefect progress artifact of the batch current until `finished`, then update it
    once more; none for a batch that ends within `PROGRESS_SECONDS` (two API calls it would not
    need). Made once every tier's run exists: a write to Prefect's API on SQLite while it creates
    the tiers' runs can have one refused (docs/design/tier-overlap.md), which delayed the first
    document by about a second. Best effort: the batch's own progress is in the catalog."""
    try:
        await _first(tiers_started, finished)
        artifact_id = None
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), PROGRESS_SECONDS)
            if artifact_id is None and finished.is_set():
                return
            percent = await off_loop(batch_percent, batch_id)
            if artifact_id is None:
                artifact_id = await acreate_progress_artifact(
                    progress=percent, key=f"progress-{batch_id.replace('_', '-')}",
                    description=f"Batch {batch_id}: inputs done")
            else:
                await aupdate_progress_artifact(artifact_id, percent)
    except Exception as error:  # an API or catalog hiccup costs the UI its percentage, not the batch
        get_run_logger().debug("progress artifact: %s", error)


async def _first(*events: asyncio.Event) -> None:
    """Until any of these events is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _work(plan: BatchPlan, lease: Lease, task_id: str, run_chunk: ChunkRunner,
                tiers_started: asyncio.Event) -> None:
    """Discover (unless resumed, or fed to the root tier as it lists), select the root's inputs,
    and run every tier."""
    if not plan.resumed and not plan.streams_discovery:
        if plan.source_type == "bucket":
            failure = await discover(plan)
            if failure is not None:
                raise failure
        await off_loop(select_inputs, plan.batch_id, 0)
    pipeline = BatchPipeline(plan, lease.generation, task_id=task_id, discover=plan.streams_discovery,
                             run_chunk=run_chunk)
    started = asyncio.ensure_future(pipeline.line.wait())
    started.add_done_callback(lambda done: done.cancelled() or tiers_started.set())
    try:
        await pipeline.run()
    finally:
        started.cancel()
