"""What the faces do to batches: start, cancel, retry and resume. One place, so the REST API and
the CLI compose the same steps.

Each operation first reserves the batch by compare-and-set (`tierflow.leases`), so of two retries
or resumes sent at once one starts a run and the other is answered 409. A batch's run then goes
one of two ways, and each operation takes the face's: `Via.DEPLOYMENT` starts a run of the
trigger deployment, which a runner or worker executes, and returns its task id at once; when that
run cannot be started the batch is marked FAILED with the reason, never left waiting for a run
that will not come. `Via.THIS_PROCESS` runs the trigger flow here and returns once the batch has
run (the CLI, whose temporary Prefect API would otherwise stop with it).
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

from deployments.runs import cancel_runs, start_trigger_run
from tierflow import planning
from tierflow.batch_view import batch_view, response_for
from tierflow.batches import cancel_batch, check_resumable, reset_failed_inputs
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.errors import public_message
from tierflow.leases import RESUMABLE, Reservation, give_back, let_run_out, reserve
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerRequest
from tierflow.settings import get_settings


class Via(Enum):
    """How a batch's run is executed."""

    DEPLOYMENT = "deployment"
    THIS_PROCESS = "this process"


def run_batch(parameters: dict[str, Any], *, reservation: Reservation, via: Via,
              fail_batch: bool = True) -> str | None:
    """Run the trigger flow with `parameters` (which name the reserved batch); the run's task id
    when it was started through the deployment, None when it ran here. When the run cannot be
    started, the batch is marked FAILED with the reason, or, unless `fail_batch`, its reservation
    is let run out for the sweep to try again."""
    if via is Via.THIS_PROCESS:
        from flows.trigger import trigger_collection  # the flows are loaded only where they run

        asyncio.run(trigger_collection(**parameters))
        return None
    try:
        task_id = start_trigger_run(parameters, idempotency_key=reservation.key)
    except Exception as error:
        if not fail_batch:
            let_run_out(reservation)
            raise
        message = f"its run could not be started: {public_message(error)}"
        if give_back(reservation, status=Status.FAILED.value, error_summary={"message": message}):
            raise
        return None  # the run did start (its creation's answer was lost) and has taken the batch
    with open_session(get_settings().database_url) as session:
        catalog_batches.add_run(session, batch_id=reservation.batch_id, task_id=task_id)
    return task_id


def prepare_batch(*, namespace: str, collection: str, request: TriggerRequest) -> tuple[dict[str, Any], Reservation]:
    """Plan a batch and reserve it for its run; (the trigger flow's parameters, the reservation).
    The batch id is known before the run starts, so the face can follow it."""
    plan = planning.plan_batch(namespace=namespace, collection=collection, request=request, task_id=None)
    reservation = reserve(plan.batch_id, statuses=[Status.DRAFT.value], busy=f"batch {plan.batch_id} has started")
    return ({"namespace": plan.namespace_id, "collection": plan.collection_id,
             "request": request.model_dump(mode="json", exclude_none=True), "batch_id": plan.batch_id}, reservation)


def start_batch(*, namespace_id: str, collection: str, request: TriggerRequest) -> dict[str, Any]:
    """Plan a batch and start its run through the deployment; the contract's trigger answer."""
    parameters, reservation = prepare_batch(namespace=namespace_id, collection=collection, request=request)
    task_id = run_batch(parameters, reservation=reservation, via=Via.DEPLOYMENT)
    batch_id = parameters["batch_id"]
    with open_session(get_settings().database_url) as session:
        if task_id is not None:
            # Only where the run has not set it: the run may already be moving the batch on.
            catalog_batches.set_task_id(session, batch_id=batch_id, task_id=task_id)
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    answer = response_for(batch).model_dump(mode="json")
    answer["message"] = f"batch {batch_id} submitted: {batch['total_tiers']} tier(s); poll the task or the batch"
    return answer


def cancel(batch_id: str) -> dict[str, Any]:
    """Cancel the batch and its Prefect runs; its view, now CANCELED."""
    cancel_runs(cancel_batch(batch_id))
    return batch_view(batch_id)


def retry(batch_id: str, *, transient_only: bool, tier_nums: list[int] | None, via: Via) -> tuple[int, str | None]:
    """Run a finished batch's failed inputs again (all, or those that failed transiently, of
    some tiers); (how many, the run's task id as `run_batch` gives it). 409 while a run of the
    batch is still going (another retry, or a cancelled run that has not stopped yet)."""
    view = batch_view(batch_id)
    count, reservation = reset_failed_inputs(batch_id, transient_only=transient_only, tier_nums=tier_nums)
    task_id = run_batch({"namespace": view["namespace_id"], "collection": view["collection_ids"][0],
                         "batch_id": batch_id}, reservation=reservation, via=via)
    return count, task_id


def resume(batch_id: str, *, force: bool, via: Via) -> str | None:
    """Finish a batch whose run died, or that FAILED with inputs pending: only what is not done
    yet runs. Refused (409) while a run holds the batch's lease, unless `force` (its process is
    known to be gone; the sweep would resume it once the lease runs out anyway)."""
    batch = check_resumable(batch_id)
    reservation = reserve(
        batch_id, statuses=RESUMABLE, force=force,
        busy=f"batch {batch_id}: a run holds it (its lease runs until {batch['lease_expires_at']}); if that "
             "process is gone, the batch is resumed by itself once the lease runs out, or now with --force")
    return run_batch({"namespace": batch["namespace_id"], "collection": batch["collection_id"],
                      "batch_id": batch_id}, reservation=reservation, via=via)
