"""`process-tier`: one tier of a batch, as an async subflow of the trigger.

Selects the tier's inputs (tiers below the root read what their upstream wrote in this batch),
runs one `process-chunk` task per chunk, all collections of the tier at once, then closes the
tier from the ledger. A chunk that still fails after its retries has its inputs marked failed,
so nothing goes unaccounted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.runtime import flow_run

from flows.clients import shared_prefect_client
from tasks.batches import finish_tier, plan_chunks, select_inputs
from tasks.chunks import process_chunk
from tierflow.batches import fail_inputs, start_tier
from tierflow.errors import TierflowError, is_transient


def _chunk_error(error: BaseException, tier_num: int) -> dict[str, Any]:
    message = error.message if isinstance(error, TierflowError) else str(error) or type(error).__name__
    return {"category": "network" if is_transient(error) else "runtime", "message": message,
            "transient": is_transient(error), "tier": tier_num, "scope": "chunk"}


@flow(name="process-tier", flow_run_name="tier-{tier_num}", log_prints=False)
async def process_tier(batch_id: str, tier_num: int, parent_task_id: str | None = None) -> dict[str, Any]:
    """Process one tier of a batch: every collection of the tier, chunk by chunk."""
    with shared_prefect_client():
        return await _run_tier(batch_id, tier_num, parent_task_id)


async def _run_tier(batch_id: str, tier_num: int, parent_task_id: str | None) -> dict[str, Any]:
    """The tier's body: start it, select and chunk its inputs, run the chunks, close it."""
    logger = get_run_logger()
    start_tier(batch_id=batch_id, tier_num=tier_num, task_id=flow_run.id, parent_task_id=parent_task_id)
    if tier_num > 0:
        select_inputs(batch_id, tier_num)
    chunks = plan_chunks(batch_id, tier_num)
    futures = [process_chunk.submit(batch_id, cid, tier_num, ids) for cid, ids in chunks]
    await asyncio.to_thread(wait, futures)
    for (collection_id, ids), future in zip(chunks, futures, strict=True):
        if future.state.is_failed() or future.state.is_crashed():
            error = future.state.result(raise_on_failure=False)
            if not isinstance(error, BaseException):
                error = RuntimeError(str(error))
            fail_inputs(batch_id=batch_id, collection_id=collection_id, input_ids=ids,
                        error=_chunk_error(error, tier_num))
    tier = finish_tier(batch_id, tier_num)
    logger.info(
        "tier %s %s: %s inputs, %s succeeded, %s failed, %s documents written",
        tier_num, tier["status"], tier["documents_submitted_to_engine"], tier["inputs_succeeded"],
        tier["inputs_failed"], tier["documents_written"],
    )
    return tier
