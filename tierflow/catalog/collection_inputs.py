"""What each collection made from each input (`collection_inputs`): the input's version and the
collection's fingerprint when it was processed, written in the chunk's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from tierflow.catalog.schema import collection_inputs, documents, objects
from tierflow.catalog.upsert import upsert_rows


def recorded(session: Session, *, collection_id: str, input_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(version, fingerprint) each of these inputs was last processed at by the collection."""
    rows = session.execute(
        select(collection_inputs.c.input_id, collection_inputs.c.input_version, collection_inputs.c.fingerprint)
        .where(collection_inputs.c.collection_id == collection_id,
               collection_inputs.c.input_id.in_(list(input_ids))))
    return {input_id: (version, fingerprint) for input_id, version, fingerprint in rows}


def record(session: Session, *, collection_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Record inputs processed (`input_id`, `input_version`, `fingerprint`, `documents`, `processed_at`)."""
    upsert_rows(session, collection_inputs, [{**r, "collection_id": collection_id} for r in rows],
                keys=["collection_id", "input_id"],
                update=["input_version", "fingerprint", "documents", "processed_at"])


def forget(session: Session, *, input_ids: Sequence[str], collection_id: str | None = None) -> None:
    """Forget inputs that no longer exist (deleted objects and documents), in every collection;
    or, with `collection_id`, inputs that this collection no longer reads (they left its filter)."""
    ids = list(input_ids)
    for start in range(0, len(ids), _PART):
        statement = collection_inputs.delete().where(collection_inputs.c.input_id.in_(ids[start:start + _PART]))
        if collection_id is not None:
            statement = statement.where(collection_inputs.c.collection_id == collection_id)
        session.execute(statement)


_PART = 5000
"""Ids per statement (well under the parameter limits of SQLite and PostgreSQL)."""


def object_version() -> ColumnElement[Any]:
    """An object's version in SQL, as `ObjectInputs.version` gives it: its etag and, when the
    listing gave one, its LastModified (`etag@last_modified`); for an object without an etag,
    when it changed."""
    stamped = objects.c.etag.concat(func.coalesce(literal("@").concat(objects.c.last_modified), ""))
    return case((func.coalesce(objects.c.etag, "") == "", objects.c.updated_at), else_=stamped)


def current_condition(collection_id: str, fingerprint: str, *, version: ColumnElement[Any],
                      input_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """True for an input the collection processed at its version now and with this fingerprint."""
    return select(collection_inputs.c.input_id).where(
        collection_inputs.c.collection_id == collection_id, collection_inputs.c.input_id == input_id,
        collection_inputs.c.input_version == version, collection_inputs.c.fingerprint == fingerprint,
    ).exists()


def staleness(session: Session, *, collection_id: str, fingerprint: str, of_objects: bool,
              scope: ColumnElement[bool], keeps: ColumnElement[bool]) -> dict[str, int]:
    """How many of the collection's inputs (the rows of `scope`: objects of its buckets when
    `of_objects`, else documents of its sources) its filters leave out (`excluded`: its filters'
    condition `keeps` is not true), and of the others how many it has made current, stale or
    not at all."""
    table, input_id, version = ((objects, objects.c.object_id, object_version()) if of_objects
                                else (documents, documents.c.document_id, documents.c.updated_at))
    made = and_(collection_inputs.c.collection_id == collection_id, collection_inputs.c.input_id == input_id)
    current = and_(collection_inputs.c.input_version == version, collection_inputs.c.fingerprint == fingerprint)
    kept = case((keeps, 1), else_=0)
    recorded = collection_inputs.c.input_id.is_not(None)
    everything, total, known, fresh, held = session.execute(
        select(func.count(), func.coalesce(func.sum(kept), 0),
               func.coalesce(func.sum(case((keeps & recorded, 1), else_=0)), 0),
               func.coalesce(func.sum(case((keeps & current, 1), else_=0)), 0),
               func.coalesce(func.sum(case((recorded, 1), else_=0)), 0))
        .select_from(table.outerjoin(collection_inputs, made)).where(scope)
    ).one()
    return {"inputs": int(total), "current": int(fresh), "stale": int(known) - int(fresh),
            "missing": int(total) - int(known), "excluded": int(everything) - int(total),
            "left_over": int(held) - int(known)}


def totals(session: Session, *, collection_id: str) -> tuple[int, int]:
    """(inputs the collection has processed, documents it made of them), as last recorded."""
    count, made = session.execute(
        select(func.count(), func.coalesce(func.sum(collection_inputs.c.documents), 0))
        .where(collection_inputs.c.collection_id == collection_id)).one()
    return int(count), int(made)
