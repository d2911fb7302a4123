"""A batch's life: start, per-tier accounting, finish, and the contract's view of it.

Tier counters come from the per-input ledger, not from what tasks reported, so they hold even
when a task died: every selected input is succeeded, failed or skipped, and a tier whose inputs do
not balance is marked FAILED with the reason instead of passing for COMPLETED.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import batch_inputs, batches
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
        session.execute(
            update(batches).where(batches.c.batch_id == batch_id,
                                  (batches.c.current_tier.is_(None)) | (batches.c.current_tier < tier_num))
            .values(current_tier=tier_num, updated_at=now_text())
        )


def fail_inputs(*, batch_id: str, collection_id: str, input_ids: list[str], error: dict[str, Any]) -> None:
    """Mark inputs whose whole chunk failed (after retries) so nothing goes unaccounted."""
    with open_session(_url()) as session:
        session.execute(
            update(batch_inputs)
            .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id,
                   batch_inputs.c.input_id.in_(input_ids), batch_inputs.c.status == Status.PENDING.value)
            .values(status=Status.FAILED.value, error=error, updated_at=now_text())
        )


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


def response_for(batch: dict[str, Any]) -> TriggerCollectionResponse:
    """The TriggerCollectionResponse of a batch row."""
    counts = f"{batch.get('object_count') or 0} inputs"
    return TriggerCollectionResponse(
        batch_id=batch["batch_id"], task_id=batch["task_id"] or "",
        collection_id=batch["collection_id"], total_tiers=batch["total_tiers"],
        message=f"batch {batch['batch_id']} {batch['status']}: {counts} across {batch['total_tiers']} tier(s)",
        source_bucket_ids=batch["source_bucket_ids"] or None,
        source_collection_ids=batch["source_collection_ids"] or None,
        object_count=batch.get("object_count"), document_count=batch.get("document_count"),
    )


def batch_view(batch_id: str) -> dict[str, Any]:
    """The contract's batch object (`GET /v1/batches/{id}`)."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        tiers = catalog_batches.get_tiers(session, batch_id=batch_id)
        failures = catalog_batches.failed_inputs(session, batch_id=batch_id, collection_ids=batch["collection_ids"])
        names = resources.collection_names(session, collection_ids=batch["collection_ids"])
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
    } for t in tiers]
    return {
        "batch_id": batch["batch_id"], "namespace_id": batch["namespace_id"],
        "bucket_id": (batch["source_bucket_ids"] or [None])[0],
        "collection_ids": batch["collection_ids"], "collection_names": names, "status": batch["status"],
        "object_ids": batch["request"].get("object_ids"), "task_id": batch["task_id"],
        "current_tier": batch["current_tier"], "total_tiers": batch["total_tiers"],
        "dag_tiers": batch["dag_tiers"], "tier_tasks": tier_tasks,
        "error_summary": batch["error_summary"], "failed_object_count": batch["failed_object_count"],
        "failed_inputs": failures, "audit": _audit(tier_tasks),
        "object_count": batch["object_count"], "document_count": batch["document_count"],
        "created_at": batch["created_at"], "updated_at": batch["updated_at"],
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


def reads_files(batch: dict[str, Any], tier_num: int) -> bool:
    """Whether this tier's chunks read files from S3 (the root tier of a bucket-sourced batch)."""
    return tier_num == 0 and bool(batch["source_bucket_ids"])


def _chunk_size(batch: dict[str, Any], tier_num: int) -> int:
    settings = get_settings()
    return settings.chunk_size if reads_files(batch, tier_num) else settings.document_chunk_size


@dataclass(frozen=True)
class TierShape:
    """How a tier's inputs are cut and run."""

    chunk_size: int
    """Inputs per chunk: `chunk_size` for chunks that read files, `document_chunk_size` (larger,
    so Prefect's per-task cost stays small beside them) for chunks of upstream documents."""
    reads_files: bool
    """Whether its chunks read files from S3 (the root tier of a bucket-sourced batch)."""


def tier_shape(*, batch_id: str, tier_num: int) -> TierShape:
    """How this tier of the batch cuts and runs its inputs."""
    with open_session(_url()) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    return TierShape(chunk_size=_chunk_size(batch, tier_num), reads_files=reads_files(batch, tier_num))


def chunk_plan(*, batch_id: str, tier_num: int) -> Iterator[tuple[str, list[str]]]:
    """(collection id, input ids) for every chunk of a tier's pending inputs (see `TierShape`),
    read from the ledger a chunk at a time as the caller asks: a tier resumed with a million
    pending inputs holds one chunk's ids, not a million."""
    settings = get_settings()
    with open_session(settings.database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    size = _chunk_size(batch, tier_num)
    for collection_id in batch["dag_tiers"][tier_num]:
        for ids in catalog_batches.iter_input_chunks(
            settings.database_url, batch_id=batch_id, collection_id=collection_id, size=size
        ):
            yield collection_id, ids


class ChunkCutter:
    """Cuts inputs that arrive bit by bit (an upstream tier's chunks as they end) into chunks of
    `size`. It keeps only the inputs of chunks not yet full, so a tier of a million inputs costs
    no more memory than a tier of a thousand; that each input comes once is the manifest's work
    (`select_new_inputs` returns only what it added).

    A collection's first chunk is a tenth of `size` (for sizes of 20 and more): its documents
    commit after a few reads instead of after the reads of every chunk running beside it, which
    is what the first document waited for (bench/pipeline.py), at the cost of one more task run.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.first_size = size // 10 if size >= 20 else size
        self._open: dict[str, list[str]] = {}
        self._started: set[str] = set()

    def add(self, collection_id: str, input_ids: list[str]) -> list[tuple[str, list[str]]]:
        """Take these inputs; return the chunks they complete."""
        buffer = self._open.setdefault(collection_id, [])
        buffer.extend(input_ids)
        full: list[tuple[str, list[str]]] = []
        while True:
            size = self.size if collection_id in self._started else self.first_size
            if len(buffer) < size:
                return full
            full.append((collection_id, buffer[:size]))
            del buffer[:size]
            self._started.add(collection_id)

    def rest(self) -> list[tuple[str, list[str]]]:
        """The last, partial chunk of each collection (when no more inputs will come)."""
        rest = [(cid, ids) for cid, ids in self._open.items() if ids]
        self._open = {}
        self._started.update(cid for cid, _ in rest)
        return rest


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
