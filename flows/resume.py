"""`resume-crashed-batches`: resume batches whose run died, on a schedule (for work pools).

The lease sweep of `deployments/recovery.py`, as a flow: each batch whose lease ran out is
resumed as a subflow of this run; the per-input ledger makes it process only what was not done.
`tierflow serve` sweeps by itself in a thread; this deployment is for workers of a Prefect server.
"""

from __future__ import annotations

import asyncio

from prefect import flow, get_run_logger

from deployments.recovery import claim_expired
from flows.trigger import trigger_collection


@flow(name="resume-crashed-batches")
async def resume_crashed_batches() -> list[str]:
    """Resume every batch whose lease ran out; returns their batch ids."""
    logger = get_run_logger()
    resumed = []
    for parameters, reservation in await asyncio.to_thread(claim_expired):
        logger.info("resuming batch %s (its lease ran out)", reservation.batch_id)
        try:
            await trigger_collection(**parameters)
        except Exception as error:  # one batch that cannot resume must not stop the others
            logger.error("batch %s could not be resumed: %s", reservation.batch_id, error)
            continue
        resumed.append(reservation.batch_id)
    return resumed
