"""How a batch looks to users: the contract's batch object and the trigger's response."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.rows import BatchRow
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerCollectionResponse
from tierflow.progress import batch_activity, tier_progress
from tierflow.settings import get_settings
from tierflow.timestamps import utcnow


def response_for(batch: BatchRow) -> TriggerCollectionResponse:
    """The TriggerCollectionResponse of a batch row."""
    counts = f"{batch.get('object_count') or 0} inputs"
    return TriggerCollectionResponse(
        batch_id=batch["batch_id"], task_id=batch["task_id"] or "",
        collection_id=batch["collection_id"], total_tiers=batch["total_tiers"],
        message=f"batch {batch['batch_id']} {batch['status']}: {counts} across {batch['total_tiers']} tier(s)",
        source_bucket_ids=batch["source_bucket_ids"] or None,
        source_collection_ids=batch["source_collection_ids"] or None,
        object_count=batch.get("object_count"), document_count=batch.get("document_count"),
        deleted_count=batch.get("deleted_count"),
    )


def batch_view(batch_id: str) -> dict[str, Any]:
    """The contract's batch object (`GET /v1/batches/{id}`)."""
    with open_session(get_settings().database_url) as session:
        return batch_view_in(session, batch_id)


def batch_view_in(session: Session, batch_id: str) -> dict[str, Any]:
    """`batch_view`, read in this session (a webhook event's, in the transaction closing the batch)."""
    batch = catalog_batches.get_batch(session, batch_id=batch_id)
    tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
    failures = catalog_batches.failed_inputs(session, batch_id=batch_id, collection_ids=batch["collection_ids"])
    names = resources.collection_names(session, collection_ids=batch["collection_ids"])
    now = utcnow()
    tier_tasks = [{
        "tier_num": t["tier_num"], "task_id": t["task_id"], "status": t["status"],
        "collection_ids": t["collection_ids"], "source_type": t["source_type"],
        "source_collection_ids": t["source_collection_ids"], "parent_task_id": t["parent_task_id"],
        "started_at": t["started_at"], "completed_at": t["completed_at"], "duration_ms": t["duration_ms"],
        "errors": t["errors"], "error_summary": t["error_summary"],
        "source_documents_fetched": t["source_documents_fetched"],
        "documents_after_source_filter": t["documents_after_source_filter"],
        "documents_submitted_to_engine": t["documents_submitted_to_engine"],
        "documents_written": t["documents_written"],
        "inputs_succeeded": t["inputs_succeeded"], "inputs_failed": t["inputs_failed"],
        "inputs_skipped": t["inputs_skipped"],
        "progress": tier_progress(t, now),
    } for t in tiers]
    return {
        "batch_id": batch["batch_id"], "namespace_id": batch["namespace_id"],
        "bucket_id": batch["source_bucket_ids"][0] if batch["source_bucket_ids"] else None,
        "collection_ids": batch["collection_ids"], "collection_names": names, "status": batch["status"],
        "object_ids": batch["request"].get("object_ids"), "task_id": batch["task_id"],
        "current_tier": batch["current_tier"], "total_tiers": batch["total_tiers"],
        "dag_tiers": batch["dag_tiers"], "tier_tasks": tier_tasks,
        "error_summary": batch["error_summary"], "failed_object_count": batch["failed_object_count"],
        "failed_inputs": failures,
        "audit": {**_audit(tier_tasks), "deleted": batch["deleted_count"], "excluded": batch["excluded_count"],
                  "documents_deleted": batch["documents_deleted_count"]},
        "object_count": batch["object_count"], "document_count": batch["document_count"],
        "deleted_count": batch["deleted_count"],
        "changes": {"new": batch["new_count"], "changed": batch["changed_count"], "unchanged": batch["unchanged_count"],
                    "stale": batch["stale_count"], "deleted": batch["deleted_count"],
                    "excluded": batch["excluded_count"], "documents_deleted": batch["documents_deleted_count"]},
        "created_at": batch["created_at"], "updated_at": batch["updated_at"],
        **batch_activity(batch, tiers, now, get_settings().stall_seconds),
    }


def _audit(tier_tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch's balance: every selected input is succeeded, failed or skipped; `lost` must be 0.

    Inputs of a cancelled tier that were never reached count as `cancelled`, not as lost.
    """
    inputs = sum(t["documents_submitted_to_engine"] for t in tier_tasks)
    done = {k: sum(t[f"inputs_{k}"] for t in tier_tasks) for k in ("succeeded", "failed", "skipped")}
    open_inputs = {t["tier_num"]: t["documents_submitted_to_engine"] - t["inputs_succeeded"] - t["inputs_failed"]
                   - t["inputs_skipped"] for t in tier_tasks if t["completed_at"]}
    cancelled = sum(open_inputs.get(t["tier_num"], 0) for t in tier_tasks if t["status"] == Status.CANCELED.value)
    lost = sum(open_inputs.values()) - cancelled
    return {"inputs": inputs, **done, "cancelled": cancelled, "lost": lost, "balanced": lost == 0}
