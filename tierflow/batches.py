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

from sqlalchemy.orm import Session

from tierflow import webhooks
from tierflow.batch_view import response_for
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import leases as catalog_leases
from tierflow.catalog.engine import open_session
from tierflow.catalog.rows import BatchRow
from tierflow.errors import BadRequestError
from tierflow.leases import RESUMABLE, BatchBusyError, LeaseHeldError, Reservation, reserve
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerCollectionResponse
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings
from tierflow.timestamps import now_text

_MAX_ERRORS_KEPT = 100
TERMINAL = {Status.COMPLETED.value, Status.COMPLETED_WITH_ERRORS.value, Status.FAILED.value, Status.CANCELED.value}


def _url() -> str:
    return get_settings().database_url


@catalog_retries
def mark_batch(batch_id: str, status: Status, **values: Any) -> None:
    with open_session(_url()) as session:
        catalog_batches.update_batch(session, batch_id=batch_id, status=status.value, **values)


@catalog_retries
def start_tier(*, batch_id: str, tier_num: int, task_id: str | None, parent_task_id: str | None) -> None:
    """Record that a tier began, with its flow run id and the run it follows."""
    with open_session(_url()) as session:
        catalog_batches.update_tier(
            session, batch_id=batch_id, tier_num=tier_num, status=Status.IN_PROGRESS.value,
            task_id=task_id, parent_task_id=parent_task_id, started_at=now_text(),
        )
        catalog_batches.update_batch(session, batch_id=batch_id, status=Status.IN_PROGRESS.value)


@catalog_retries
def reach_tier(*, batch_id: str, tier_num: int) -> None:
    """Record that the batch's work reached this tier (its `current_tier`): the deepest tier that
    has begun processing, since the tiers of a batch overlap."""
    with open_session(_url()) as session:
        catalog_batches.raise_current_tier(session, batch_id=batch_id, tier_num=tier_num)


@catalog_retries
def fail_inputs(*, batch_id: str, tier_num: int, collection_id: str, input_ids: list[str], error: dict[str, Any],
                generation: int) -> None:
    """Mark inputs whose whole chunk failed (after retries) so nothing goes unaccounted; those a
    newer run than `generation` has claimed are left to it."""
    with open_session(_url()) as session:
        failed = catalog_batches.fail_pending_inputs(session, batch_id=batch_id, collection_id=collection_id,
                                                     input_ids=input_ids, error=error, generation=generation)
        catalog_batches.count_done(session, batch_id=batch_id, tier_num=tier_num, inputs=failed)


@catalog_retries
def current_generation(batch_id: str) -> int:
    """The batch's lease generation now (what a tier run on its own claims inputs with)."""
    with open_session(_url()) as session:
        return int(catalog_batches.get_batch(session, batch_id=batch_id)["lease_generation"])


def _ledger_counters(session: Session, *, batch_id: str, members: list[str]) -> dict[str, Any]:
    """A tier's counters as its inputs' ledger has them (whatever any task reported)."""
    counts = catalog_batches.input_counts(session, batch_id=batch_id, collection_ids=members)
    done = {name: counts.get(status.value, {}).get("inputs", 0)
            for name, status in (("succeeded", Status.COMPLETED), ("failed", Status.FAILED),
                                 ("skipped", Status.SKIPPED))}
    total = sum(c["inputs"] for c in counts.values())
    failures = catalog_batches.failed_inputs(session, batch_id=batch_id, collection_ids=members,
                                             limit=_MAX_ERRORS_KEPT)
    errors = [{**(f["error"] or {}), "input_id": f["input_id"]} for f in failures]
    summary = dict(Counter(e.get("category", "runtime") for e in errors))
    return {
        "documents_submitted_to_engine": total,
        "documents_written": sum(c["documents"] for c in counts.values()),
        "inputs_succeeded": done["succeeded"], "inputs_failed": done["failed"], "inputs_skipped": done["skipped"],
        "errors": errors, "error_summary": summary or None,
        # progress from the ledger, which the running counts only followed
        "inputs_known": total, "inputs_done": sum(done.values()), "inputs_final": True,
    }


def settle_counters(session: Session, *, batch_id: str, unclosed: bool = False) -> None:
    """Set the counters of a cancelled batch's cancelled tiers (with `unclosed`, also of tiers
    no run closed: a failed run's), and its totals, from the ledger: what its runs wrote and ended
    before and after the cancel (a chunk under way then still commits). Tiers that had closed keep
    what they closed with."""
    tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
    batch = catalog_batches.get_batch(session, batch_id=batch_id)
    for tier in tiers:
        if tier["status"] == Status.CANCELED.value or (unclosed and tier["completed_at"] is None):
            values = _ledger_counters(session, batch_id=batch_id, members=batch["dag_tiers"][tier["tier_num"]])
            catalog_batches.update_tier(session, batch_id=batch_id, tier_num=tier["tier_num"], **values)
            tier.update(values)  # type: ignore[typeddict-item]
    catalog_batches.update_batch(session, batch_id=batch_id,
                                 document_count=sum(t["documents_written"] for t in tiers),
                                 failed_object_count=sum(t["inputs_failed"] for t in tiers))


@catalog_retries
def finish_tier(*, batch_id: str, tier_num: int) -> dict[str, Any]:
    """Close a tier: counters and status from the ledger; returns the tier's record."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        values = _ledger_counters(session, batch_id=batch_id, members=batch["dag_tiers"][tier_num])
        tier = next(t for t in catalog_batches.get_tiers(session, batch_id=batch_id) if t["tier_num"] == tier_num)
        succeeded, failed, skipped = values["inputs_succeeded"], values["inputs_failed"], values["inputs_skipped"]
        summary = dict(values["error_summary"] or {})
        unaccounted = values["documents_submitted_to_engine"] - succeeded - failed - skipped
        if batch["status"] == Status.CANCELED.value:
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
        values.update(status=status.value, completed_at=tier["completed_at"] if status == Status.CANCELED and
                      tier["completed_at"] else now, duration_ms=_milliseconds_between(started, now),
                      error_summary=summary or None)
        catalog_batches.update_tier(session, batch_id=batch_id, tier_num=tier_num, **values)
        webhooks.enqueue(session, batch_id=batch_id, event_type="tier.completed", tier_num=tier_num)
        return {**tier, **values}


def _milliseconds_between(start: str, end: str) -> int:
    return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)


@catalog_retries
def finish_batch(*, batch_id: str, failure: str | None = None, transient: bool = False,
                 run_id: str | None = None) -> TriggerCollectionResponse:
    """Close a batch: status from its tiers (or FAILED with `failure`), totals, summary.

    With `run_id`, only while that run holds the batch's lease (LeaseHeldError otherwise), which
    it then gives up: freed, or, when the batch FAILED of a `transient` cause with inputs still
    pending, left to run out so that the sweep resumes it (`TIERFLOW_AUTO_RESUMES` times).
    """
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        if run_id is not None and batch["lease_owner"] != run_id:
            raise LeaseHeldError(f"batch {batch_id} is no longer this run's: it is not closed by it",
                                 details={"batch_id": batch_id})
        if failure or batch["status"] == Status.CANCELED.value:  # tiers its run did not close count too
            settle_counters(session, batch_id=batch_id, unclosed=True)
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
        pending = catalog_batches.pending_count(session, batch_id=batch_id) if failure else 0
        resumable = bool(failure and transient and pending)
        details = {"message": failure, "pending_inputs": pending, "resumable": resumable} if failure else {}
        documents = sum(t["documents_written"] for t in tiers)
        catalog_batches.update_batch(
            session, batch_id=batch_id, status=status.value, failed_object_count=failed,
            error_summary={**summary, **details} or None, document_count=documents,
        )
        if run_id is not None:
            if resumable:
                catalog_leases.expire(session, batch_id=batch_id, owner=run_id, at=now_text())
            else:
                catalog_leases.release(session, batch_id=batch_id, owner=run_id)
        if status != Status.CANCELED:  # a cancel's event was written when it was cancelled
            webhooks.enqueue(session, batch_id=batch_id, event_type=webhooks.BATCH_EVENTS[status.value])
        batch["status"], batch["document_count"] = status.value, documents
    return response_for(batch)


def check_resumable(batch_id: str) -> BatchRow:
    """The batch, if it can be resumed: not finished, or FAILED with inputs still pending (a
    finished one is retried, not resumed)."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        pending = catalog_batches.pending_count(session, batch_id=batch_id)
    if batch["status"] not in RESUMABLE or (batch["status"] == Status.FAILED.value and not pending):
        raise BadRequestError(f"batch {batch_id} is already {batch['status']}; nothing to resume "
                              "(`tierflow batch retry` re-runs failed inputs)", details={"status": batch["status"]})
    return batch


def cancel_batch(batch_id: str) -> list[str]:
    """Mark a batch and its unfinished tiers CANCELED; the task ids of runs that may still run.

    Every chunk commits in one transaction, so whatever a cancelled run had written is whole.
    """
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        if not catalog_batches.set_status_unless(session, batch_id=batch_id, status=Status.CANCELED.value,
                                                 unless=TERMINAL):
            raise BadRequestError(f"batch {batch_id} is already {batch['status']}", details={"status": batch["status"]})
        tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
        running = [t for t in tiers if t["status"] not in TERMINAL]
        for tier in running:
            catalog_batches.update_tier(session, batch_id=batch_id, tier_num=tier["tier_num"],
                                        status=Status.CANCELED.value, completed_at=now_text())
        settle_counters(session, batch_id=batch_id)
        owner = batch["lease_owner"]
        if owner is not None and owner.startswith(catalog_leases.RESERVED):
            catalog_leases.release(session, batch_id=batch_id, owner=owner)
        webhooks.enqueue(session, batch_id=batch_id, event_type="batch.canceled")  # no run to wait for
    return [t for t in [batch["task_id"], *(t["task_id"] for t in running)] if t]


def reset_failed_inputs(batch_id: str, *, transient_only: bool, tier_nums: list[int] | None) -> tuple[int, Reservation]:
    """Reserve a finished batch for a retry run and put its failed inputs back to PENDING; how
    many, and the reservation. BatchBusyError (409) while a run still holds the batch."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        if batch["status"] not in TERMINAL:
            raise BatchBusyError(f"batch {batch_id} is {batch['status']}; retry it once it has finished",
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
    reservation = reserve(batch_id, statuses=sorted(TERMINAL),
                          busy=f"batch {batch_id} is being retried or its run has not stopped yet; try again shortly")
    with open_session(_url()) as session:
        catalog_batches.reset_inputs(session, batch_id=batch_id, inputs=chosen)
        for tier_num, count in Counter(f["tier_num"] for f in chosen).items():
            catalog_batches.count_done(session, batch_id=batch_id, tier_num=tier_num, inputs=-count)
        catalog_batches.update_batch(session, batch_id=batch_id, status=Status.PENDING.value)
    return len(chosen), reservation
