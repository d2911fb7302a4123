"""`sync-buckets`: the scheduled listings of buckets with `sync`, on a schedule (for work pools).

Each due bucket's collections are triggered as subflows of this run (`tierflow.sync`).
`tierflow serve` does the same by itself in its sweep thread.
"""

from __future__ import annotations

import asyncio

from prefect import flow, get_run_logger

from flows.trigger import trigger_collection
from tierflow.sync import claim_due_buckets, sync_triggers


@flow(name="sync-buckets")
async def sync_buckets() -> list[str]:
    """Trigger every collection of each bucket whose listing is due; the batch ids."""
    logger = get_run_logger()
    batches = []
    for bucket in await asyncio.to_thread(claim_due_buckets):
        for namespace_id, collection_id, request in await asyncio.to_thread(sync_triggers, bucket):
            logger.info("scheduled listing of bucket %s for collection %s", bucket["bucket_id"], collection_id)
            try:
                answer = await trigger_collection(namespace_id, collection_id, request)
            except Exception as error:  # one collection that fails must not stop the others
                logger.error("collection %s: %s", collection_id, error)
                continue
            batches.append(answer["batch_id"])
    return batches
