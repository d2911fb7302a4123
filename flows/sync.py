"""`sync-buckets`: the scheduled listings of buckets with `sync`, on a schedule (for work pools).

Each due bucket is checked, and the collections it calls for (none when nothing changed) are
triggered as subflows of this run (`tierflow.sync`).
`tierflow serve` does the same by itself in its sweep thread.
"""

from __future__ import annotations

import asyncio

from prefect import flow, get_run_logger

from flows.trigger import trigger_collection
from tierflow.sync import due_triggers


@flow(name="sync-buckets")
async def sync_buckets() -> list[str]:
    """Trigger the collections that the checks of the buckets due call for; the batch ids."""
    logger = get_run_logger()
    batches = []
    for namespace_id, collection_id, request in await asyncio.to_thread(due_triggers):
        logger.info("scheduled listing of bucket %s for collection %s", request.include_buckets, collection_id)
        try:
            answer = await trigger_collection(namespace_id, collection_id, request)
        except Exception as error:  # one collection that fails must not stop the others
            logger.error("collection %s: %s", collection_id, error)
            continue
        batches.append(answer["batch_id"])
    return batches
