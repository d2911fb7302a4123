"""A batch's life: start, per-tier accounting, finish, cancel, retry; its view is
`tierflow.batch_view`, the cutting of its inputs into chunks `tierflow.chunking`.

Tier counters come from the per-input ledger, not from what tasks reported, so they hold even
when a task died: every selected input is succeeded, failed or skipped, and a tier whose inputs do
not balance is marked FAILED with the reason instead of passing for COMPLETED.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from tierflow.batch_view import response_for
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.errors import BadRequestError
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerCollectionResponse
from tierflow.settings import get_settings
from tierflow.timestamps import now_text

_MAX_ERRORS_KEPT = 100
TERMINAL = {Status.COMPLETED.value, Status.COMPLETED_WITH_ERRORS.value, Status.FAILED.value, Status.CANCELED.value}


def _url() -> str:
    return get_settings().database_url


def mark_batch(batch_id: str, status: Status, **values: Any) -> None:
    with open_session(_url()) as session:
        catalog_batches.update_batch(session, batch_id=batch_id, status=status.value, **values)


def start_tier(*, batch_id: str, tier_num: int, task_id: str | None, parent_task_id: str | None) -> None:
    """Record that a tier began, with its flow run id and the run it follows."""
    with open_session(_url()) as session:
        catalog_batches.update_tier(
            session, batch_id=batch_id, tier_num=tier_num, status=Status.IN_PROGRESS.value,
            task_id=task_id, parent_task_id=parent_task_id, started_at=now_text(),
        )
        catalog_batches.update_batch(session, batch_id=batch_id, status=Status.IN_PROGRESS.value)


def reach_tier(*, batch_id: str, tier_num: int) -> None:
    """Record that the batch's work reached this tier (its `current_tier`): the deepest tier that
    has begun processing, since the tiers of a batch overlap."""
    with open_session(_url()) as session:
        catalog_batches.raise_current_tier(session, batch_id=batch_id, tier_num=tier_num)


def fail_inputs(*, batch_id: str, collection_id: str, input_ids: list[str], error: dict[str, Any]) -> None:
    """Mark inputs whose whole chunk failed (after retries) so nothing goes unaccounted."""
    with open_session(_url()) as session:
        catalog_batches.fail_pending_inputs(session, batch_id=batch_id, collection_id=collection_id,
                                            input_ids=input_ids, error=error)


def finish_tier(*, batch_id: str, tier_num: int) -> dict[str, Any]:
    """Close a tier: counters and status from the ledger; returns the tier's record."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        members = batch["dag_tiers"][tier_num]
        counts = catalog_batches.input_counts(session, batch_id=batch_id, collection_ids=members)
        tier = next(t for t in catalog_batches.get_tiers(session, batch_id=batch_id) if t["tier_num"] == tier_num)
        succeeded = counts.get(Status.COMPLETED.value, {}).get("inputs", 0)
        failed = counts.get(Status.FAILED.value, {}).get("inputs", 0)
        skipped = counts.get(Status.SKIPPED.value, {}).get("inputs", 0)
        total = sum(c["inputs"] for c in counts.values())
        failures = catalog_batches.failed_inputs(session, batch_id=batch_id, collection_ids=members,
                                                 limit=_MAX_ERRORS_KEPT)
        errors = [{**(f["error"] or {}), "input_id": f["input_id"]} for f in failures]
        summary = dict(Counter(e.get("category", "runtime") for e in errors))
        unaccounted = total - succeeded - failed - skipped
        cancelled = batch["status"] == Status.CANCELED.value
        if cancelled:
            status = Status.CANCELED  # inputs not reached stay PENDING: cancelled, not lost
        elif unaccounted:
            status = Status.FAILED
            summary["unaccounted"] = unaccounted
        elif failed and not succeeded and not skipped:
            status = Status.FAILED
        elif failed:
            status = Status.COMPLETED_WITH_ERRORS
        else:
            status = Status.COMPLETED
        now = now_text()
        started = tier["started_at"] or now
        values = {
            "status": status.value, "completed_at": now,
            "duration_ms": _milliseconds_between(started, now),
            "documents_submitted_to_engine": total,
            "documents_written": sum(c["documents"] for c in counts.values()),
            "inputs_succeeded": succeeded, "inputs_failed": failed, "inputs_skipped": skipped,
            "errors": errors, "error_summary": summary or None,
        }
        catalog_batches.update_tier(session, batch_id=batch_id, tier_num=tier_num, **values)
        return {**tier, **values}


def _milliseconds_between(start: str, end: str) -> int:
    return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)


def finish_batch(*, batch_id: str, failure: str | None = None) -> TriggerCollectionResponse:
    """Close a batch: status from its tiers (or FAILED with `failure`), totals, summary."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
        statuses = {t["status"] for t in tiers}
        failed = sum(t["inputs_failed"] for t in tiers)
        summary: Counter[str] = Counter()
        for t in tiers:
            summary.update(t["error_summary"] or {})
        anything_done = any(t["inputs_succeeded"] for t in tiers)
        if batch["status"] == Status.CANCELED.value:
            status = Status.CANCELED  # cancelled from outside: the run's end does not undo that
        elif failure or (Status.FAILED.value in statuses and not anything_done):
            status = Status.FAILED
        elif statuses & {Status.FAILED.value, Status.COMPLETED_WITH_ERRORS.value}:
            status = Status.COMPLETED_WITH_ERRORS
        else:
            status = Status.COMPLETED
        if failure:
            summary["flow"] = summary.get("flow", 0) + 1
        documents = sum(t["documents_written"] for t in tiers)
        catalog_batches.update_batch(
            session, batch_id=batch_id, status=status.value, failed_object_count=failed,
            error_summary={**summary, **({"message": failure} if failure else {})} or None,
            document_count=documents,
        )
        batch.update(status=status.value, document_count=documents)
    return response_for(batch)


def unfinished_batches() -> list[dict[str, Any]]:
    """Batches not finished, with their latest run's task id (what a crash sweep looks at)."""
    with open_session(_url()) as session:
        return catalog_batches.unfinished_batches(session, terminal=TERMINAL)


def check_resumable(batch_id: str) -> dict[str, Any]:
    """The batch, if it has not finished (a finished one is retried, not resumed)."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    if batch["status"] in TERMINAL:
        raise BadRequestError(f"batch {batch_id} is already {batch['status']}; nothing to resume "
                              "(`tierflow batch retry` re-runs failed inputs)", details={"status": batch["status"]})
    return batch


def cancel_batch(batch_id: str) -> list[str]:
    """Mark a batch and its unfinished tiers CANCELED; the task ids of runs that may still run.

    Every chunk commits in one transaction, so whatever a cancelled run had written is whole.
    """
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        if batch["status"] in TERMINAL:
            raise BadRequestError(f"batch {batch_id} is already {batch['status']}", details={"status": batch["status"]})
        tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
        running = [t for t in tiers if t["status"] not in TERMINAL]
        for tier in running:
            catalog_batches.update_tier(session, batch_id=batch_id, tier_num=tier["tier_num"],
                                        status=Status.CANCELED.value, completed_at=now_text())
        catalog_batches.update_batch(session, batch_id=batch_id, status=Status.CANCELED.value)
    return [t for t in [batch["task_id"], *(t["task_id"] for t in running)] if t]


def reset_failed_inputs(batch_id: str, *, transient_only: bool, tier_nums: list[int] | None) -> int:
    """Put a finished batch's failed inputs back to PENDING for a retry run; how many."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        if batch["status"] not in TERMINAL:
            raise BadRequestError(f"batch {batch_id} is {batch['status']}; retry it once it has finished",
                                  details={"status": batch["status"]})
        bad = [n for n in tier_nums or [] if not 0 <= n < batch["total_tiers"]]
        if bad:
            raise BadRequestError(f"tier_nums: {bad} not in this batch's tiers 0..{batch['total_tiers'] - 1}",
                                  details={"field": "tier_nums"})
        members = batch["collection_ids"] if tier_nums is None else [
            collection_id for n in tier_nums for collection_id in batch["dag_tiers"][n]]
        failed = catalog_batches.failed_inputs(session, batch_id=batch_id, collection_ids=members, limit=None)
        chosen = [f for f in failed if not transient_only or (f["error"] or {}).get("transient")]
        if not chosen:
            raise BadRequestError(f"batch {batch_id} has no failed inputs to retry with these options")
        catalog_batches.reset_inputs(
            session, batch_id=batch_id, inputs=[(f["collection_id"], f["input_id"]) for f in chosen])
        catalog_batches.update_batch(session, batch_id=batch_id, status=Status.PENDING.value)
    return len(chosen)
