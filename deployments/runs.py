"""Reading a task (a Prefect flow run) together with its batch: the contract's task object.

Shared by the faces (CLI now, the REST API later): the Prefect run gives the state, the catalog
gives what the run did.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.errors import NotFoundError
from tierflow.settings import get_settings

_PREFECT_TO_STATUS = {
    "SCHEDULED": "PENDING", "PENDING": "PENDING", "PAUSED": "PENDING", "RUNNING": "PROCESSING",
    "COMPLETED": "COMPLETED", "FAILED": "FAILED", "CRASHED": "FAILED", "CANCELLED": "CANCELED",
    "CANCELLING": "CANCELED",
}


async def read_task(task_id: str) -> dict[str, Any]:
    """The task object of `GET /v1/tasks/{task_id}`; NotFoundError for unknown ids."""
    try:
        run_id = UUID(task_id)
    except ValueError:
        raise NotFoundError("task", task_id) from None
    try:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise NotFoundError("task", task_id) from None
    with open_session(get_settings().database_url) as session:
        found = catalog_batches.find_by_task(session, task_id=task_id)
        batch, tier_num = found if found else (None, None)
        tiers = catalog_batches.get_tiers(session, batch_id=batch["batch_id"]) if batch else []
    state = run.state.type.value if run.state else "PENDING"
    status = _PREFECT_TO_STATUS.get(state, "PENDING")
    if batch is not None and status == "COMPLETED":
        # A finished run may still have failed inputs: the batch (or tier) says how it went.
        status = batch["status"] if tier_num is None else tiers[tier_num]["status"]
    additional: dict[str, Any] = {}
    if batch is not None:
        additional = {
            "batch_id": batch["batch_id"], "namespace_id": batch["namespace_id"],
            "collection_ids": batch["collection_ids"], "current_tier": batch["current_tier"],
            "total_tiers": batch["total_tiers"], "object_count": batch["object_count"],
        }
        if tier_num is not None:
            additional["tier_num"] = tier_num
    error = None
    if status == "FAILED" and run.state is not None:
        error = {"message": run.state.message or "the run failed"}
    return {
        "task_id": task_id,
        "task_type": "engine_feature_extractor_run" if tier_num is not None else "api_collections_trigger",
        "status": status,
        "inputs": run.parameters,
        "outputs": batch and {"document_count": batch["document_count"], "status": batch["status"]},
        "additional_data": additional,
        "error": error,
        "flow_run_name": run.name,
    }
