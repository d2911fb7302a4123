"""Batch leases in the catalog: each change is one compare-and-set UPDATE, so two processes that
try the same change at once cannot both succeed, on SQLite or PostgreSQL.

A batch's lease is free (`lease_owner` null), reserved (`reserved:<generation>`: an operation is
starting a run for it) or held (the flow run id of the run working on it), each until
`lease_expires_at`. `lease_generation` grows with every reservation and every run that takes
the lease; chunks claim their inputs with their run's generation (`claim_inputs`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.engine import rows_changed
from tierflow.catalog.schema import batch_inputs, batches
from tierflow.models.status import Status

RESERVED = "reserved:"


def _free_or_expired(now: str) -> Any:
    return or_(batches.c.lease_owner.is_(None), batches.c.lease_expires_at < now)


def reserve(session: Session, *, batch_id: str, now: str, until: str, statuses: Collection[str],
            force: bool = False, count_resume: bool = False) -> int | None:
    """Reserve the batch for a run about to start, if its status is one of `statuses` and its lease
    is free or expired (or `force`); the reservation's generation, None when refused."""
    condition = [batches.c.batch_id == batch_id, batches.c.status.in_(list(statuses))]
    if not force:
        condition.append(_free_or_expired(now))
    values: dict[str, Any] = {"lease_generation": batches.c.lease_generation + 1, "lease_holder": None,
                              "lease_expires_at": until, "updated_at": now}
    if count_resume:
        values["auto_resumes"] = batches.c.auto_resumes + 1
    if rows_changed(session, update(batches).where(*condition).values(**values)) != 1:
        return None
    generation = int(session.execute(
        select(batches.c.lease_generation).where(batches.c.batch_id == batch_id)).scalar_one())
    session.execute(update(batches).where(batches.c.batch_id == batch_id)
                    .values(lease_owner=f"{RESERVED}{generation}"))
    return generation


def acquire(session: Session, *, batch_id: str, run_id: str, holder: str, now: str, until: str) -> int | None:
    """Take the batch's lease for run `run_id` if it is free, reserved, expired or already this
    run's; the run's generation, None when another run holds it."""
    taken = rows_changed(session,
        update(batches).where(
            batches.c.batch_id == batch_id,
            or_(batches.c.lease_owner.is_(None), batches.c.lease_owner.startswith(RESERVED),
                batches.c.lease_owner == run_id, batches.c.lease_expires_at < now))
        .values(lease_owner=run_id, lease_holder=holder, lease_expires_at=until,
                lease_generation=batches.c.lease_generation + 1, updated_at=now)
    )
    if taken != 1:
        return None
    return int(session.execute(
        select(batches.c.lease_generation).where(batches.c.batch_id == batch_id)).scalar_one())


def renew(session: Session, *, batch_id: str, run_id: str, until: str) -> bool:
    """Extend run `run_id`'s lease; False when the run no longer holds it."""
    return rows_changed(session,
        update(batches).where(batches.c.batch_id == batch_id, batches.c.lease_owner == run_id)
        .values(lease_expires_at=until)
    ) == 1


def release(session: Session, *, batch_id: str, owner: str) -> bool:
    """Free the lease `owner` (a run id or a reservation) holds; False when it holds none."""
    return rows_changed(session,
        update(batches).where(batches.c.batch_id == batch_id, batches.c.lease_owner == owner)
        .values(lease_owner=None, lease_holder=None, lease_expires_at=None)
    ) == 1


def expire(session: Session, *, batch_id: str, owner: str, at: str) -> bool:
    """Let `owner`'s lease run out at `at` (now: the sweep resumes the batch at its next look)."""
    return rows_changed(session,
        update(batches).where(batches.c.batch_id == batch_id, batches.c.lease_owner == owner)
        .values(lease_expires_at=at)
    ) == 1


def expired(session: Session, *, now: str, limit: int = 100) -> list[dict[str, Any]]:
    """Batches whose lease ran out (oldest first): their run died, or never came."""
    rows = session.execute(
        select(batches.c.batch_id, batches.c.namespace_id, batches.c.collection_id, batches.c.status,
               batches.c.lease_owner, batches.c.lease_expires_at, batches.c.auto_resumes, batches.c.task_id)
        .where(batches.c.lease_owner.is_not(None), batches.c.lease_expires_at < now)
        .order_by(batches.c.lease_expires_at).limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def claim_inputs(session: Session, *, batch_id: str, collection_id: str, input_ids: Sequence[str],
                 generation: int) -> list[str]:
    """Claim these PENDING inputs for a chunk of the run of `generation`; those it got.

    An input claimed by an earlier generation (a run that died) is taken over; one claimed by a
    later generation belongs to a newer run and is left alone.
    """
    statement = (
        update(batch_inputs)
        .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.collection_id == collection_id,
               batch_inputs.c.input_id.in_(list(input_ids)), batch_inputs.c.status == Status.PENDING.value,
               or_(batch_inputs.c.claim.is_(None), batch_inputs.c.claim <= generation))
        .values(claim=generation)
        .returning(batch_inputs.c.input_id)
    )
    return list(session.execute(statement).scalars())
