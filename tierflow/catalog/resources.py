"""Namespaces, buckets and collections in the catalog: create, update, look up by id or name.

Look-ups accept an id (`ns_…`, `bkt_…`, `col_…`) or a name, as every identifier in the contract
does. `put_*` functions create or update and report whether anything changed, which is what
makes `tierflow apply` idempotent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.engine import rows_changed
from tierflow.catalog.schema import batches, buckets, collections, documents, namespaces, objects
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.ids import new_id
from tierflow.timestamps import now_text


def _find(session: Session, table: Table, id_col: str, name_col: str, identifier: str,
          namespace_id: str | None) -> dict[str, Any] | None:
    query = select(table).where(
        or_(table.c[id_col] == identifier, table.c[name_col] == identifier)
    )
    if namespace_id is not None:
        query = query.where(table.c.namespace_id == namespace_id)
    row = session.execute(query).mappings().first()
    return dict(row) if row else None


def _put(session: Session, table: Table, id_col: str, prefix: str, existing: dict[str, Any] | None,
         values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert `values`, or update the existing row where they differ; return (row, changed)."""
    now = now_text()
    if existing is None:
        row = {id_col: new_id(prefix), **values, "created_at": now, "updated_at": now}
        session.execute(insert(table).values(**row))
        return row, True
    changes = {k: v for k, v in values.items() if existing.get(k) != v}
    if not changes:
        return existing, False
    changes["updated_at"] = now
    session.execute(update(table).where(table.c[id_col] == existing[id_col]).values(**changes))
    return {**existing, **changes}, True


_NAMESPACE = select(namespaces).where(or_(namespaces.c.namespace_id == bindparam("identifier"),
                                          namespaces.c.namespace_name == bindparam("identifier")))
"""Built once: every request with a namespace reads it."""


def get_namespace(session: Session, *, identifier: str) -> dict[str, Any]:
    """The namespace with this id or name, or NotFoundError."""
    row = session.execute(_NAMESPACE, {"identifier": identifier}).mappings().first()
    if row is None:
        raise NotFoundError("namespace", identifier)
    return dict(row)


def put_namespace(session: Session, *, name: str, description: str | None) -> tuple[dict[str, Any], bool]:
    existing = _find(session, namespaces, "namespace_id", "namespace_name", name, None)
    return _put(session, namespaces, "namespace_id", "ns", existing,
                {"namespace_name": name, "description": description})


def get_bucket(session: Session, *, namespace_id: str, identifier: str) -> dict[str, Any]:
    """The bucket with this id or name in the namespace, or NotFoundError."""
    row = _find(session, buckets, "bucket_id", "bucket_name", identifier, namespace_id)
    if row is None:
        raise NotFoundError("bucket", identifier, scope=namespace_id)
    return row


def put_bucket(session: Session, *, namespace_id: str, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    existing = _find(session, buckets, "bucket_id", "bucket_name", values["bucket_name"], namespace_id)
    return _put(session, buckets, "bucket_id", "bkt", existing, {"namespace_id": namespace_id, **values})


def get_collection(session: Session, *, namespace_id: str, identifier: str) -> dict[str, Any]:
    """The collection with this id or name in the namespace, or NotFoundError."""
    row = _find(session, collections, "collection_id", "collection_name", identifier, namespace_id)
    if row is None:
        raise NotFoundError("collection", identifier, scope=namespace_id)
    return row


def put_collection(session: Session, *, namespace_id: str, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    existing = _find(session, collections, "collection_id", "collection_name",
                     values["collection_name"], namespace_id)
    return _put(session, collections, "collection_id", "col", existing,
                {"namespace_id": namespace_id, **values})


def list_collections(session: Session, *, namespace_id: str) -> list[dict[str, Any]]:
    """Every collection of a namespace (a DAG is planned over all of them)."""
    rows = session.execute(
        select(collections).where(collections.c.namespace_id == namespace_id)
        .order_by(collections.c.created_at)
    ).mappings()
    return [dict(r) for r in rows]


def get_buckets(session: Session, *, bucket_ids: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(select(buckets).where(buckets.c.bucket_id.in_(bucket_ids))).mappings()
    by_id = {r["bucket_id"]: dict(r) for r in rows}
    return [by_id[b] for b in bucket_ids if b in by_id]


_COLLECTION_NAMES = (select(collections.c.collection_id, collections.c.collection_name)
                     .where(collections.c.collection_id.in_(bindparam("ids", expanding=True))))
"""Built once: batch views read it at every poll (see catalog/batches.py)."""


def collection_names(session: Session, *, collection_ids: list[str]) -> dict[str, str]:
    """Collection names by id (for showing batches to people)."""
    return dict(session.execute(_COLLECTION_NAMES, {"ids": list(collection_ids)}).all())


def list_page(session: Session, *, kind: str, namespace_id: str | None, namespace_ids: frozenset[str] | None = None,
              limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of namespaces, buckets or collections (oldest first) and the total.

    `namespace_ids` limits a listing of namespaces to those (a key limited to some namespaces).
    """
    table = {"namespace": namespaces, "bucket": buckets, "collection": collections}[kind]
    condition = table.c.namespace_id == namespace_id if namespace_id is not None else None
    if namespace_ids is not None:
        condition = table.c.namespace_id.in_(sorted(namespace_ids))
    count = select(func.count()).select_from(table)
    page = select(table).order_by(table.c.created_at, table.c[f"{kind}_id"]).limit(limit).offset(offset)
    if condition is not None:
        count, page = count.where(condition), page.where(condition)
    total = int(session.execute(count).scalar_one())
    return [dict(r) for r in session.execute(page).mappings()], total


def count_objects(session: Session, *, bucket_ids: list[str]) -> dict[str, int]:
    """How many objects each bucket holds."""
    rows = session.execute(
        select(objects.c.bucket_id, func.count()).where(objects.c.bucket_id.in_(bucket_ids))
        .group_by(objects.c.bucket_id)
    )
    return {bucket_id: int(n) for bucket_id, n in rows}


def count_documents(session: Session, *, collection_ids: list[str]) -> dict[str, int]:
    """How many documents each collection holds."""
    rows = session.execute(
        select(documents.c.collection_id, func.count()).where(documents.c.collection_id.in_(collection_ids))
        .group_by(documents.c.collection_id)
    )
    return {collection_id: int(n) for collection_id, n in rows}


def check_unread(session: Session, *, namespace_id: str, source_id: str, label: str) -> None:
    """BadRequestError when a collection reads this bucket or collection (deleting it would orphan it)."""
    readers = [c["collection_name"] for c in list_collections(session, namespace_id=namespace_id)
               if source_id in (c["source"].get("bucket_ids") or c["source"].get("collection_ids") or [])]
    if readers:
        raise BadRequestError(f"{label} is the source of collection(s) {', '.join(readers)}; delete those first",
                              details={"collections": readers})


def delete_namespace(session: Session, *, namespace_id: str) -> None:
    """Delete a namespace with everything in it (buckets, objects, collections, documents, batches)."""
    session.execute(delete(batches).where(batches.c.namespace_id == namespace_id))
    session.execute(delete(namespaces).where(namespaces.c.namespace_id == namespace_id))


def delete_bucket(session: Session, *, bucket_id: str) -> None:
    """Delete a bucket and its objects (from the catalog; files in S3 are left alone)."""
    session.execute(delete(buckets).where(buckets.c.bucket_id == bucket_id))


def delete_collection(session: Session, *, collection_id: str) -> None:
    """Delete a collection and its documents."""
    session.execute(delete(collections).where(collections.c.collection_id == collection_id))


def synced_buckets(session: Session) -> list[dict[str, Any]]:
    """Every bucket listed on a schedule (`sync` set), as stored."""
    return [dict(row) for row in session.execute(select(buckets).where(buckets.c.sync.is_not(None))).mappings()]


def claim_sync(session: Session, *, bucket_id: str, last_before: str, now: str) -> bool:
    """Set the bucket's `synced_at` to `now` if it was last listed before `last_before` (or never):
    whether this caller got it. A compare-and-set, so of several servers one gets it."""
    return bool(rows_changed(session, update(buckets).where(
        buckets.c.bucket_id == bucket_id,
        or_(buckets.c.synced_at.is_(None), buckets.c.synced_at <= last_before)).values(synced_at=now)))


def record_sync_check(session: Session, *, bucket_id: str, checked_at: str, changed: bool) -> None:
    """Note that the bucket's scheduled check ran at `checked_at` and whether it found something
    to do (then `sync_changed_at` moves too)."""
    values = {"sync_checked_at": checked_at, **({"sync_changed_at": checked_at} if changed else {})}
    session.execute(update(buckets).where(buckets.c.bucket_id == bucket_id).values(**values))
