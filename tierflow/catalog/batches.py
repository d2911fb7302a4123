"""Batches in the catalog: the batch row, its tier tasks, and the per-input manifest/ledger.

The manifest (which inputs a collection processes in a batch) is built with INSERT … SELECT, so
no input list ever passes through Python or through Prefect parameters; the same rows then record
each input's outcome, committed together with the documents of its chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.engine import open_session, rows_changed
from tierflow.catalog.grouped import update_grouped
from tierflow.catalog.rows import BatchRow, TierRow
from tierflow.catalog.schema import batch_inputs, batch_runs, batches, tier_tasks
from tierflow.errors import NotFoundError, TerminalError
from tierflow.models.status import Status
from tierflow.retrying import catalog_retries
from tierflow.timestamps import now_text


def create_batch(session: Session, *, batch: dict[str, Any], tiers: Sequence[dict[str, Any]]) -> None:
    """Insert a batch and one tier-task row per tier."""
    now = now_text()
    session.execute(insert(batches).values(**batch, created_at=now, updated_at=now))
    session.execute(insert(tier_tasks), [{**t, "batch_id": batch["batch_id"]} for t in tiers])


def update_batch(session: Session, *, batch_id: str, **values: Any) -> None:
    session.execute(update(batches).where(batches.c.batch_id == batch_id).values(**values, updated_at=now_text()))


def set_status_unless(session: Session, *, batch_id: str, status: str, unless: Collection[str]) -> bool:
    """Set the batch's status unless it is one of `unless` (compare-and-set); whether it was set."""
    return rows_changed(session,
        update(batches).where(batches.c.batch_id == batch_id, batches.c.status.not_in(list(unless)))
        .values(status=status, updated_at=now_text())
    ) == 1


def is_cancelled(session: Session, *, batch_id: str) -> bool:
    """Whether the batch has been cancelled (read in the caller's transaction)."""
    return session.execute(select(batches.c.status).where(batches.c.batch_id == batch_id)).scalar_one_or_none() \
        == Status.CANCELED.value


def set_task_id(session: Session, *, batch_id: str, task_id: str) -> None:
    """Record the batch's task id (its first run's) unless a run has recorded one already."""
    session.execute(update(batches).where(batches.c.batch_id == batch_id, batches.c.task_id.is_(None))
                    .values(task_id=task_id))


def add_counts(session: Session, *, batch_id: str, **counts: int) -> None:
    """Add to the batch's counts of what changed (`new`, `changed`, `unchanged`, `stale`, `deleted`
    objects, inputs `excluded` by a filter, `documents_deleted` in every tier)."""
    values = {f"{name}_count": batches.c[f"{name}_count"] + n for name, n in counts.items() if n}
    if values:
        session.execute(update(batches).where(batches.c.batch_id == batch_id).values(**values))


def update_tier(session: Session, *, batch_id: str, tier_num: int, **values: Any) -> None:
    session.execute(
        update(tier_tasks)
        .where(tier_tasks.c.batch_id == batch_id, tier_tasks.c.tier_num == tier_num)
        .values(**values)
    )


def count_done(session: Session, *, batch_id: str, tier_num: int, inputs: int) -> None:
    """Add `inputs` ended inputs to the tier's progress, in the transaction that ended them (a
    negative number takes back inputs put back to PENDING)."""
    if inputs == 0:
        return
    values: dict[str, Any] = {"inputs_done": tier_tasks.c.inputs_done + inputs}
    if inputs > 0:
        now = now_text()
        values.update(last_activity_at=now, first_done_at=func.coalesce(tier_tasks.c.first_done_at, now))
    session.execute(update(tier_tasks).where(tier_tasks.c.batch_id == batch_id, tier_tasks.c.tier_num == tier_num)
                    .values(**values))


def count_known(session: Session, *, batch_id: str, tier_num: int, added: int) -> None:
    """Add `added` inputs to those the tier knows of so far."""
    if added:
        session.execute(update(tier_tasks).where(tier_tasks.c.batch_id == batch_id, tier_tasks.c.tier_num == tier_num)
                        .values(inputs_known=tier_tasks.c.inputs_known + added))


# The reads of a batch that clients poll while it runs are built once, with bound parameters:
# building a statement costs more CPU than running it, and a poll's CPU is taken from the batch.
_BATCH = select(batches).where(batches.c.batch_id == bindparam("batch_id"))
_TIERS = select(tier_tasks).where(tier_tasks.c.batch_id == bindparam("batch_id")).order_by(tier_tasks.c.tier_num)
_FAILED = (
    select(batch_inputs.c.input_id, batch_inputs.c.collection_id, batch_inputs.c.tier_num, batch_inputs.c.error,
           batch_inputs.c.attempts)
    .where(batch_inputs.c.batch_id == bindparam("batch_id"),
           batch_inputs.c.collection_id.in_(bindparam("collection_ids", expanding=True)),
           batch_inputs.c.status == Status.FAILED.value)
    .order_by(batch_inputs.c.tier_num, batch_inputs.c.input_id)
)
_FAILED_FIRST = _FAILED.limit(bindparam("limit"))


def get_batch(session: Session, *, batch_id: str) -> BatchRow:
    """The batch's row; NotFoundError if there is none."""
    row = session.execute(_BATCH, {"batch_id": batch_id}).mappings().first()
    if row is None:
        raise NotFoundError("batch", batch_id)
    return cast(BatchRow, dict(row))


def get_tiers(session: Session, *, batch_id: str) -> list[TierRow]:
    """The batch's tiers, in order."""
    return [cast(TierRow, dict(r)) for r in session.execute(_TIERS, {"batch_id": batch_id}).mappings()]


_MANIFEST_COLUMNS = ["input_id", "batch_id", "collection_id", "tier_num", "status", "documents_written", "updated_at"]


def _pending_rows(ids: Select[Any], batch_id: str, collection_id: str, tier_num: int) -> Select[Any]:
    """Each id of `ids` as a manifest row (`_MANIFEST_COLUMNS`): a PENDING input of the collection."""
    return ids.add_columns(
        bindparam("b", batch_id), bindparam("c", collection_id), bindparam("t", tier_num),
        bindparam("s", Status.PENDING.value), bindparam("w", 0), bindparam("u", now_text()),
    )


def add_inputs(
    session: Session, *, batch_id: str, collection_id: str, tier_num: int, ids: Select[Any]
) -> int:
    """Add to the manifest every id the `ids` query yields; return how many it holds for the
    collection.

    Ids already in the manifest stay as they are: a resumed or retried tier adds only new ones.
    Whether there are any is asked before anything is written. A lower tier's last selection,
    made once the tier above has closed, usually finds nothing new (every chunk above was heard
    of, flows/tier.py), and as one INSERT … SELECT it held SQLite's write lock for its whole scan
    of the batch's documents (0.1 s at 2,000 objects, 0.7 s at 30,000), while the tier's last
    chunks waited to commit. Read first, it takes the lock only when it has something to add.
    """
    listed = select(batch_inputs.c.input_id).where(
        batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id)
    missing = ids.where(ids.selected_columns[0].not_in(listed))
    if session.execute(select(missing.exists())).scalar():
        source = _pending_rows(missing, batch_id, collection_id, tier_num)
        session.execute(insert(batch_inputs).from_select(_MANIFEST_COLUMNS, source))
    # Counted, not taken from rowcount: drivers report -1 for INSERT … SELECT.
    return int(session.execute(
        select(func.count()).select_from(batch_inputs).where(
            batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id)
    ).scalar_one())


def add_new_inputs(
    session: Session, *, batch_id: str, collection_id: str, tier_num: int, ids: Select[Any]
) -> list[str]:
    """Add to the manifest the ids of `ids` it does not hold yet; return those ids.

    For small, frequent additions (the documents of one upstream chunk). One INSERT … SELECT …
    RETURNING: the ids come back for the caller to chunk, and never go back to the database as
    parameters (an INSERT of them, one SQLAlchemy parameter set per id, was most of this call's
    time in a profile of bench/pipeline.py).
    """
    held = select(batch_inputs.c.input_id).where(
        batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id,
        batch_inputs.c.input_id == ids.selected_columns[0])
    source = _pending_rows(ids.where(~held.exists()), batch_id, collection_id, tier_num)
    statement = insert(batch_inputs).from_select(_MANIFEST_COLUMNS, source).returning(batch_inputs.c.input_id)
    return list(session.execute(statement).scalars())


def iter_input_chunks(
    database_url: str, *, batch_id: str, collection_id: str, size: int, status: str = Status.PENDING.value
) -> Iterator[list[str]]:
    """The manifest's input ids in chunks of `size`, read page by page (keyset pagination)."""
    after = ""
    while True:
        ids = _input_page(database_url, batch_id=batch_id, collection_id=collection_id, status=status,
                          after=after, size=size)
        if not ids:
            return
        yield ids
        after = ids[-1]


@catalog_retries
def _input_page(database_url: str, *, batch_id: str, collection_id: str, status: str, after: str,
                size: int) -> list[str]:
    with open_session(database_url) as session:
        return list(session.execute(
            select(batch_inputs.c.input_id).where(
                batch_inputs.c.batch_id == batch_id,
                batch_inputs.c.collection_id == collection_id,
                batch_inputs.c.status == status,
                batch_inputs.c.input_id > after,
            ).order_by(batch_inputs.c.input_id).limit(size)
        ).scalars())


def record_results(session: Session, *, batch_id: str, collection_id: str, results: Sequence[dict[str, Any]],
                   generation: int) -> None:
    """Write each input's outcome (`input_id`, `status`, `documents_written`, `error`), for inputs
    still PENDING and claimed by the run of `generation`; ClaimLostError (the transaction must
    roll back) when a newer run has claimed any of them meanwhile."""
    changed = update_grouped(
        session, batch_inputs, batch_inputs.c.input_id,
        {r["input_id"]: {"status": r["status"], "documents_written": r["documents_written"], "error": r.get("error")}
         for r in results},
        where=[batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id,
               batch_inputs.c.status == Status.PENDING.value, batch_inputs.c.claim == generation],
        common={"updated_at": now_text()},
    )
    if changed != len(results):
        raise ClaimLostError(batch_id, len(results) - changed)


class ClaimLostError(TerminalError):
    """Inputs a chunk processed were claimed by a newer run of the batch: its work is not kept."""

    def __init__(self, batch_id: str, lost: int) -> None:
        super().__init__(f"batch {batch_id}: {lost} input(s) of this chunk were taken over by a newer run; "
                         "its results are dropped", details={"batch_id": batch_id})


def input_counts(session: Session, *, batch_id: str, collection_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per status: how many inputs and how many documents written, for these collections (a
    tier's: a collection is in one tier of a batch).

    By collection, not by tier number, so that the manifest's status index, which carries
    `documents_written`, answers alone instead of a walk of every input of the batch (3 s at the
    close of each tier of a 100,000-object batch, bench/pipeline.py; revision 0003).
    """
    rows = session.execute(
        select(batch_inputs.c.status, func.count(), func.coalesce(func.sum(batch_inputs.c.documents_written), 0))
        .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id.in_(collection_ids))
        .group_by(batch_inputs.c.status)
    )
    return {status: {"inputs": int(n), "documents": int(docs)} for status, n, docs in rows}


def failed_inputs(
    session: Session, *, batch_id: str, collection_ids: Sequence[str], limit: int | None = 100
) -> list[dict[str, Any]]:
    """The failed inputs of these collections of a batch (a tier's, or all the batch's) with
    their errors, by tier; found through the status index, without reading the others."""
    values: dict[str, Any] = {"batch_id": batch_id, "collection_ids": list(collection_ids)}
    if limit is not None:
        values["limit"] = limit
    return [dict(r) for r in session.execute(_FAILED if limit is None else _FAILED_FIRST, values).mappings()]


def reset_inputs(session: Session, *, batch_id: str, inputs: Sequence[dict[str, Any]]) -> None:
    """Put these failed entries of the manifest (`collection_id`, `input_id`, `error`, `attempts`)
    back to PENDING; each one's error joins its `attempts`, the history a retry keeps."""
    now = now_text()
    statement = (
        update(batch_inputs)
        .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == bindparam("r_c"),
               batch_inputs.c.input_id == bindparam("r_i"))
        .values(status=Status.PENDING.value, error=None, documents_written=0, attempts=bindparam("r_a"),
                updated_at=now)
    )
    session.connection().execute(statement, [
        {"r_c": f["collection_id"], "r_i": f["input_id"], "r_a": [*(f.get("attempts") or []), f["error"]]}
        for f in inputs])


def list_batches(session: Session, *, namespace_id: str, status: str | None, limit: int,
                 offset: int) -> tuple[list[str], int]:
    """One page of a namespace's batch ids, newest first, and the total."""
    condition = batches.c.namespace_id == namespace_id
    if status is not None:
        condition = condition & (batches.c.status == status)
    total = session.execute(select(func.count()).select_from(batches).where(condition)).scalar_one()
    ids = session.execute(
        select(batches.c.batch_id).where(condition)
        .order_by(batches.c.created_at.desc(), batches.c.batch_id).limit(limit).offset(offset)
    ).scalars()
    return list(ids), int(total)


def add_run(session: Session, *, batch_id: str, task_id: str) -> None:
    """Record that a flow run works on the batch (idempotent per run)."""
    known = session.execute(select(batch_runs.c.task_id).where(batch_runs.c.task_id == task_id)).first()
    if known is None:
        session.execute(insert(batch_runs).values(batch_id=batch_id, task_id=task_id, created_at=now_text()))


def run_ids(session: Session, *, batch_id: str) -> list[str]:
    """Every flow run recorded for the batch: its task's, its retries' and resumes', its tiers'."""
    batch = get_batch(session, batch_id=batch_id)
    runs = session.execute(select(batch_runs.c.task_id).where(batch_runs.c.batch_id == batch_id)
                           .order_by(batch_runs.c.created_at)).scalars()
    tiers = [t["task_id"] for t in get_tiers(session, batch_id=batch_id)]
    return list(dict.fromkeys(i for i in [batch["task_id"], *runs, *tiers] if i))


def find_by_task(session: Session, *, task_id: str) -> tuple[BatchRow, int | None] | None:
    """(batch, tier number) of a task id: a trigger, retry or resume run (tier None) or a tier's run."""
    batch = session.execute(select(batches).where(batches.c.task_id == task_id)).mappings().first()
    if batch is not None:
        return cast(BatchRow, dict(batch)), None
    run = session.execute(select(batch_runs.c.batch_id).where(batch_runs.c.task_id == task_id)).first()
    if run is not None:
        return get_batch(session, batch_id=run.batch_id), None
    tier = session.execute(select(tier_tasks).where(tier_tasks.c.task_id == task_id)).mappings().first()
    if tier is None:
        return None
    return get_batch(session, batch_id=tier["batch_id"]), int(tier["tier_num"])


def raise_current_tier(session: Session, *, batch_id: str, tier_num: int) -> None:
    """Set the batch's `current_tier` to `tier_num` unless a deeper tier is already recorded."""
    session.execute(
        update(batches).where(batches.c.batch_id == batch_id,
                              (batches.c.current_tier.is_(None)) | (batches.c.current_tier < tier_num))
        .values(current_tier=tier_num, updated_at=now_text())
    )


def fail_pending_inputs(session: Session, *, batch_id: str, collection_id: str, input_ids: Sequence[str],
                        error: dict[str, Any], generation: int) -> int:
    """Mark these inputs FAILED with `error`, those still PENDING and not claimed by a run newer
    than `generation`; how many."""
    return rows_changed(
        session,
        update(batch_inputs)
        .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id,
               batch_inputs.c.input_id.in_(list(input_ids)), batch_inputs.c.status == Status.PENDING.value,
               (batch_inputs.c.claim.is_(None)) | (batch_inputs.c.claim <= generation))
        .values(status=Status.FAILED.value, error=error, claim=generation, updated_at=now_text())
    )


def pending_count(session: Session, *, batch_id: str) -> int:
    """How many inputs of the batch are still PENDING (not processed by any run)."""
    return int(session.execute(
        select(func.count()).select_from(batch_inputs)
        .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.status == Status.PENDING.value)
    ).scalar_one())
