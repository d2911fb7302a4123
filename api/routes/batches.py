"""`/v1/batches` and `/v1/tasks`: what a trigger did, cancelling and retrying it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, CallerDep, NamespaceDep, catalog, namespace_in
from api.models import Batch, BatchListRequest, ListResponse, RetryRequest, RetryResponse, Task
from deployments import operations
from deployments.runs import read_task
from tierflow.batch_view import batch_view, batch_view_in
from tierflow.browse import page_of
from tierflow.catalog import batches as catalog_batches
from tierflow.errors import NotFoundError

router = APIRouter(tags=["batches and tasks"])


def _batch_in(namespace: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """The batch's view, or 404 when it belongs to another namespace (nothing leaks across)."""
    return _owned(namespace, batch_view(batch_id))


def _owned(namespace: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    if view["namespace_id"] != namespace["namespace_id"]:
        raise NotFoundError("batch", view["batch_id"], scope=namespace["namespace_name"])
    return view


def _read_batch(who: Caller, batch_id: str) -> dict[str, Any]:
    """`who`'s key and namespace, and the batch, read in one catalog session."""
    with catalog() as session:
        namespace = namespace_in(session, who)
        return _owned(namespace, batch_view_in(session, batch_id))


@router.get("/v1/batches/{batch_id}", response_model=Batch)
async def get_batch(batch_id: str, who: CallerDep) -> dict:
    """Status, per-tier counters and task ids, failed-input summary."""
    # Clients poll this while their batch runs: the key, the namespace and the batch are read in
    # one trip to a worker thread and one catalog transaction.
    return await run_in_threadpool(_read_batch, who, batch_id)


@router.post("/v1/batches/list", response_model=ListResponse[Batch])
def list_batches(namespace: NamespaceDep, page: BatchListRequest | None = None) -> dict:
    page = page or BatchListRequest()
    with catalog() as session:
        ids, total = catalog_batches.list_batches(
            session, namespace_id=namespace["namespace_id"], status=page.status.value if page.status else None,
            limit=page.limit, offset=page.offset)
    return page_of([batch_view(i) for i in ids], total=total, limit=page.limit, offset=page.offset)


@router.post("/v1/batches/{batch_id}/cancel", response_model=Batch)
def cancel(batch_id: str, namespace: NamespaceDep) -> dict:
    """Cancel the batch's Prefect runs; the batch ends CANCELED (chunks already written stay whole)."""
    _batch_in(namespace, batch_id)
    return operations.cancel(batch_id)


@router.post("/v1/batches/{batch_id}/retry", status_code=202, response_model=RetryResponse)
def retry(batch_id: str, namespace: NamespaceDep, options: RetryRequest | None = None) -> dict:
    """Re-run only the failed inputs (all, or those that failed transiently) as a new flow run."""
    options = options or RetryRequest()
    _batch_in(namespace, batch_id)
    count, task_id = operations.retry(batch_id, transient_only=options.retry_mode == "transient_only",
                                      tier_nums=options.tier_nums, via=operations.Via.DEPLOYMENT)
    return {"batch_id": batch_id, "task_id": task_id, "retried_inputs": count,
            "message": f"retrying {count} failed input(s) of batch {batch_id}"}


@router.get("/v1/tasks/{task_id}", response_model=Task)
async def get_task(task_id: str, namespace: NamespaceDep) -> dict:
    """A trigger's or a tier's Prefect flow run, with its batch's progress."""
    task = await read_task(task_id)
    owner = task["additional_data"].get("namespace_id") or (task["inputs"] or {}).get("namespace")
    if owner not in (namespace["namespace_id"], namespace["namespace_name"]):
        raise NotFoundError("task", task_id, scope=namespace["namespace_name"])
    return task
