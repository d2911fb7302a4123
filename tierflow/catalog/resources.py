"""Namespaces, buckets and collections in the catalog: create, update, look up by id or name.

Look-ups accept an id (`ns_…`, `bkt_…`, `col_…`) or a name, as every identifier in the contract
does. `put_*` functions create or update and report whether anything changed, which is what
makes `tierflow apply` idempotent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.schema import buckets, collections, namespaces
from tierflow.errors import NotFoundError
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


def get_namespace(session: Session, *, identifier: str) -> dict[str, Any]:
    """The namespace with this id or name, or NotFoundError."""
    row = _find(session, namespaces, "namespace_id", "namespace_name", identifier, None)
    if row is None:
        raise NotFoundError("namespace", identifier)
    return row


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


def collection_names(session: Session, *, collection_ids: list[str]) -> dict[str, str]:
    """Collection names by id (for showing batches to people)."""
    rows = session.execute(
        select(collections.c.collection_id, collections.c.collection_name)
        .where(collections.c.collection_id.in_(collection_ids))
    )
    return dict(rows.tuples().all())
