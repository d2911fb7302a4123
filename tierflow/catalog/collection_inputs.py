"""What each collection made from each input (`collection_inputs`): the input's version and the
collection's fingerprint when it was processed, written in the chunk's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
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


def forget(session: Session, *, input_ids: Sequence[str]) -> None:
    """Forget inputs that no longer exist (deleted objects and documents), in every collection."""
    if input_ids:
        session.execute(collection_inputs.delete().where(collection_inputs.c.input_id.in_(list(input_ids))))


def object_version() -> ColumnElement[Any]:
    """An object's version in SQL, as `ObjectInputs.version` gives it: its etag, or when it changed."""
    return func.coalesce(func.nullif(objects.c.etag, ""), objects.c.updated_at)


def current_condition(collection_id: str, fingerprint: str, *, version: ColumnElement[Any],
                      input_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """True for an input the collection processed at its version now and with this fingerprint."""
    return select(collection_inputs.c.input_id).where(
        collection_inputs.c.collection_id == collection_id, collection_inputs.c.input_id == input_id,
        collection_inputs.c.input_version == version, collection_inputs.c.fingerprint == fingerprint,
    ).exists()


def staleness(session: Session, *, collection_id: str, fingerprint: str, bucket_ids: Sequence[str],
              source_collection_ids: Sequence[str]) -> dict[str, int]:
    """How many of the collection's inputs (the objects of `bucket_ids`, or the documents of
    `source_collection_ids`) it has made current, stale or not at all."""
    if bucket_ids:
        table, input_id, version = objects, objects.c.object_id, object_version()
        scope = objects.c.bucket_id.in_(list(bucket_ids))
    else:
        table, input_id, version = documents, documents.c.document_id, documents.c.updated_at
        scope = documents.c.collection_id.in_(list(source_collection_ids))
    made = and_(collection_inputs.c.collection_id == collection_id, collection_inputs.c.input_id == input_id)
    current = and_(collection_inputs.c.input_version == version, collection_inputs.c.fingerprint == fingerprint)
    total, known, fresh = session.execute(
        select(func.count(), func.count(collection_inputs.c.input_id),
               func.coalesce(func.sum(case((current, 1), else_=0)), 0))
        .select_from(table.outerjoin(collection_inputs, made)).where(scope)
    ).one()
    return {"inputs": int(total), "current": int(fresh), "stale": int(known) - int(fresh),
            "missing": int(total) - int(known)}


def totals(session: Session, *, collection_id: str) -> tuple[int, int]:
    """(inputs the collection has processed, documents it made of them), as last recorded."""
    count, made = session.execute(
        select(func.count(), func.coalesce(func.sum(collection_inputs.c.documents), 0))
        .where(collection_inputs.c.collection_id == collection_id)).one()
    return int(count), int(made)
