"""`resume-crashed-batches`: finish batches whose run crashed, on a schedule.

When the process running a batch dies (killed, out of memory, machine lost), the runner or worker
that started it marks the Prefect run CRASHED. This flow, served on an interval next to the
trigger deployment, finds every unfinished batch whose latest run crashed and resumes it as a
subflow: the per-input ledger makes the resumed run process only what was not done.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.trigger import trigger_collection
from tasks.runs import read_run_states
from tierflow.batches import unfinished_batches


@flow(name="resume-crashed-batches")
async def resume_crashed_batches() -> list[str]:
    """Resume every unfinished batch whose latest run crashed; returns their batch ids."""
    logger = get_run_logger()
    candidates = unfinished_batches()
    states = await read_run_states([c["task_id"] for c in candidates])
    resumed = []
    for batch in (c for c in candidates if states.get(c["task_id"]) == "CRASHED"):
        logger.info("resuming batch %s (run %s crashed)", batch["batch_id"], batch["task_id"])
        try:
            await trigger_collection(batch["namespace_id"], batch["collection_id"], batch_id=batch["batch_id"])
        except Exception as error:  # one batch that cannot resume must not stop the others
            logger.error("batch %s could not be resumed: %s", batch["batch_id"], error)
            continue
        resumed.append(batch["batch_id"])
    return resumed
