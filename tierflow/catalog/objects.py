"""Objects in the catalog: registering what discovery found, reading, and status updates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tierflow.catalog.collection_inputs import current_condition, object_version
from tierflow.catalog.grouped import update_grouped
from tierflow.catalog.records import object_field, object_record
from tierflow.catalog.schema import object_events, objects
from tierflow.catalog.upsert import upsert_rows
from tierflow.filters import Node, compile_filter
from tierflow.timestamps import now_text

_REGISTER_UPDATE = (
    "key", "key_prefix", "size_bytes", "etag", "content_type", "last_modified",
    "metadata", "blobs", "status", "updated_at",
)


def register_objects(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new objects and overwrite changed ones (one statement per call)."""
    upsert_rows(session, objects, rows, keys=["object_id"], update=_REGISTER_UPDATE)


def get_objects(session: Session, *, object_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Object records by id (missing ids are simply absent)."""
    rows = session.execute(select(objects).where(objects.c.object_id.in_(list(object_ids)))).mappings()
    return {r["object_id"]: object_record(dict(r)) for r in rows}


def existing_objects(session: Session, *, object_ids: Sequence[str], lock: bool = False) -> set[str]:
    """Those of these objects the catalog has; with `lock`, kept from deletion (FOR SHARE, where
    the database has it) until the transaction ends."""
    statement = select(objects.c.object_id).where(objects.c.object_id.in_(list(object_ids)))
    return set(session.execute(statement.with_for_update(read=True, key_share=True) if lock else statement).scalars())


def set_object_status(session: Session, *, statuses: dict[str, str]) -> None:
    """Record how each object's latest processing went."""
    update_grouped(session, objects, objects.c.object_id, {oid: {"status": st} for oid, st in statuses.items()},
                   common={"updated_at": now_text()})


def record_facts(session: Session, *, facts: dict[str, dict[str, Any]]) -> None:
    """Save what reading the files taught about these objects (content type, metadata, and the
    etag and LastModified of the version read)."""
    update_grouped(session, objects, objects.c.object_id, {
        oid: {"content_type": f["content_type"], "metadata": f["metadata"], "etag": f["etag"],
              "last_modified": f["last_modified"]}
        for oid, f in facts.items()})


def list_objects(
    session: Session, *, bucket_id: str, where: Node, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of a bucket's objects matching `where` (filtered in SQL), and the total."""
    condition = (objects.c.bucket_id == bucket_id) & compile_filter(
        where, object_field, dialect=session.get_bind().dialect.name
    )
    total = session.execute(select(func.count()).select_from(objects).where(condition)).scalar_one()
    rows = session.execute(
        select(objects).where(condition).order_by(objects.c.key, objects.c.object_id).limit(limit).offset(offset)
    ).mappings()
    return [object_record(dict(r)) for r in rows], int(total)


def delete_objects(session: Session, *, object_ids: Sequence[str]) -> None:
    """Delete these objects' rows (their documents are `derived.delete_derived`'s to delete)."""
    ids = list(object_ids)
    for start in range(0, len(ids), 5000):  # bound the statement's parameters
        session.execute(objects.delete().where(objects.c.object_id.in_(ids[start:start + 5000])))


def listed_keys(session: Session, *, bucket_id: str) -> list[tuple[str, str]]:
    """(object id, key) of the bucket's objects that have a key (those a listing registered, or
    registered through the API with one)."""
    rows = session.execute(select(objects.c.object_id, objects.c.key)
                           .where(objects.c.bucket_id == bucket_id, objects.c.key.is_not(None)))
    return [(object_id, key) for object_id, key in rows]


ListingFacts = tuple[str | None, int | None, str | None]
"""An object's (etag, size, last modified) as stored."""


def listing_facts(session: Session, *, object_ids: Sequence[str]) -> dict[str, ListingFacts]:
    """(etag, size, last modified) as stored, of each of these objects the catalog has: what a
    listing tells of an object, to compare with it."""
    rows = session.execute(select(objects.c.object_id, objects.c.etag, objects.c.size_bytes, objects.c.last_modified)
                           .where(objects.c.object_id.in_(list(object_ids))))
    return {object_id: (etag, size, modified) for object_id, etag, size, modified in rows}


def not_current(session: Session, *, collection_id: str, fingerprint: str, object_ids: Sequence[str]) -> list[str]:
    """Those of these objects the collection has not processed at their version now with this
    fingerprint (sorted)."""
    made = current_condition(collection_id, fingerprint, version=object_version(), input_id=objects.c.object_id)
    return list(session.execute(select(objects.c.object_id)
                                .where(objects.c.object_id.in_(list(object_ids)), ~made)
                                .order_by(objects.c.object_id)).scalars())


def applied_sequencers(session: Session, *, object_ids: Sequence[str]) -> dict[str, str]:
    """The sequencer of the last S3 event applied to each of these objects that has one."""
    rows = session.execute(select(object_events.c.object_id, object_events.c.sequencer)
                           .where(object_events.c.object_id.in_(list(object_ids))))
    return {object_id: sequencer for object_id, sequencer in rows}


def record_events(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Remember the last event applied to each object (`object_id`, `sequencer`, `removed`,
    `updated_at`), so a replayed or older event is ignored."""
    upsert_rows(session, object_events, rows, keys=["object_id"], update=["sequencer", "removed", "updated_at"])
