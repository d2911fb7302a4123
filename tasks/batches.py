"""The batch's steps as Prefect tasks: plan, select a tier's inputs, close tiers and batch."""

from __future__ import annotations

from typing import Any

from prefect import task

from tierflow import batches, planning, selection
from tierflow.models.trigger import TriggerCollectionResponse, TriggerRequest


@task(name="plan-batch")
def plan_batch(namespace: str, collection: str, request: TriggerRequest, task_id: str) -> planning.BatchPlan:
    """Check the request against the collection, lay out the tiers, create the batch."""
    return planning.plan_batch(namespace=namespace, collection=collection, request=request, task_id=task_id)


@task(name="adopt-batch")
def adopt_batch(batch_id: str, task_id: str, namespace: str) -> planning.BatchPlan:
    """Take over a batch of `namespace` that the REST API planned before starting this run."""
    return planning.adopt_batch(batch_id=batch_id, task_id=task_id, namespace=namespace)


@task(name="select-inputs", task_run_name="select-inputs-tier-{tier_num}")
def select_inputs(batch_id: str, tier_num: int, final: bool = True) -> dict[str, dict[str, int]]:
    """Fill the tier's manifest with the inputs its filters select (in SQL); `final` once the
    step above has closed."""
    return selection.select_tier_inputs(batch_id=batch_id, tier_num=tier_num, final=final)


@task(name="finish-tier", task_run_name="finish-tier-{tier_num}")
def finish_tier(batch_id: str, tier_num: int) -> dict[str, Any]:
    """Close the tier: counters and status from the per-input ledger."""
    return batches.finish_tier(batch_id=batch_id, tier_num=tier_num)


@task(name="finish-batch")
def finish_batch(batch_id: str, failure: str | None = None, transient: bool = False,
                 run_id: str | None = None) -> TriggerCollectionResponse:
    """Close the batch: overall status, totals and error summary; give up run `run_id`'s lease."""
    return batches.finish_batch(batch_id=batch_id, failure=failure, transient=transient, run_id=run_id)
