"""The SQL of inputs a collection no longer reads: those of its sources that its own
`source_filters` now leave out, though it made something of them before (the choice of filter is
`tierflow.selection`'s, the deleting `tierflow.deletions`')."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, select, union
from sqlalchemy.orm import Session

from tierflow.catalog.documents import document_filter
from tierflow.catalog.records import object_field
from tierflow.catalog.schema import collection_inputs, documents, objects
from tierflow.dag import upstream_ids
from tierflow.filters import Node, compile_filter


def source_scope(session: Session, collection: dict[str, Any], where: Node | None, *,
                 bucket_ids: Sequence[str] | None = None
                 ) -> tuple[ColumnElement[Any], ColumnElement[bool], ColumnElement[bool]]:
    """(The id column of the collection's inputs, the condition of being one of them, the
    condition of being one that `where` keeps): objects of its buckets (of those of `bucket_ids`
    only, if given), or documents of the collections it reads."""
    dialect = session.get_bind().dialect.name
    if collection["source"]["type"] == "bucket":
        read = collection["source"].get("bucket_ids") or []
        scope = objects.c.bucket_id.in_([b for b in read if bucket_ids is None or b in bucket_ids])
        keeps = compile_filter(where, object_field, dialect=dialect) if where is not None else scope
        return objects.c.object_id, scope, keeps
    scope = documents.c.collection_id.in_(upstream_ids(collection))
    keeps = document_filter(session, where) if where is not None else scope
    return documents.c.document_id, scope, keeps


def _made_from(collection_id: str) -> CompoundSelect[Any]:
    """The ids of every input the collection has made something of: recorded as processed, or
    the source of one of its documents."""
    return union(
        select(collection_inputs.c.input_id.label("input_id"))
        .where(collection_inputs.c.collection_id == collection_id),
        select(documents.c.source_id.label("input_id")).where(documents.c.collection_id == collection_id),
    )


def excluded_inputs(session: Session, *, collection: dict[str, Any], where: Node) -> list[str]:
    """The inputs of the collection's sources that `where` does not keep and that the
    collection has made something of: what it must no longer hold anything of. An input for
    which `where` is unknown (a field it reads is missing) is not kept, as selection does."""
    id_column, scope, keeps = source_scope(session, collection, where)
    made = _made_from(collection["collection_id"]).subquery()
    rows = session.execute(
        select(made.c.input_id)
        .where(made.c.input_id.in_(select(id_column).where(scope)))
        .where(made.c.input_id.not_in(select(id_column).where(scope & keeps)))
    ).scalars()
    return sorted(rows)


def documents_from(session: Session, *, collection_id: str, input_ids: Sequence[str]) -> list[str]:
    """The ids of the documents the collection made from these inputs."""
    ids = list(input_ids)
    found: list[str] = []
    for start in range(0, len(ids), 5000):
        found += session.execute(select(documents.c.document_id).where(
            documents.c.collection_id == collection_id, documents.c.source_id.in_(ids[start:start + 5000]))).scalars()
    return found
