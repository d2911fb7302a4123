"""The SQL of selecting a tier's inputs into the batch manifest: conditions on objects or
documents, with the filters pushed down (the choice of filters is `tierflow.selection`'s)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.orm import Session

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import collection_inputs
from tierflow.catalog.documents import document_filter
from tierflow.catalog.records import object_field
from tierflow.catalog.rows import BatchRow
from tierflow.catalog.schema import documents, objects
from tierflow.errors import BadRequestError
from tierflow.filters import Node, compile_filter

_ID = {"objects": "object_id", "documents": "document_id"}


def _count(session: Session, condition: ColumnElement[bool], table: Table) -> int:
    return int(session.execute(select(func.count()).select_from(table).where(condition)).scalar_one())


def _check_object_ids(session: Session, base: ColumnElement[bool], wanted: list[str]) -> None:
    found = set(session.execute(
        select(objects.c.object_id).where(base, objects.c.object_id.in_(wanted))
    ).scalars())
    missing = [o for o in wanted if o not in found]
    if missing:
        raise BadRequestError(
            f"object_ids: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} "
            "not found in the collection's source buckets",
            details={"field": "object_ids", "missing": missing[:100]},
        )


def _off_index(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`column` as an expression no index answers (`column || ''`, the same value).

    For the queries that narrow to a page's or a chunk's ids: SQLite's planner, without
    statistics, takes two equalities on (collection, batch) for a narrower path than
    (collection, source IN …), and walked every document the batch had written to find one
    upstream chunk's (docs/benchmarks.md, "Selections that do not walk the batch"). Kept off the
    index, the batch or bucket test is checked on the few rows the ids find
    (tests/core/test_ledger_queries.py)."""
    return column.concat("")


def _root_condition(session: Session, batch: BatchRow, where: Node, *,
                    by_id: bool = False) -> tuple[Any, Any, Table]:
    """What the root tier reads: (its sources, those `where` keeps, the table they are in).
    `by_id`: the caller narrows to given ids, which the primary key finds (`_off_index`)."""
    if batch["source_bucket_ids"]:
        bucket = _off_index(objects.c.bucket_id) if by_id else objects.c.bucket_id
        base = bucket.in_(batch["source_bucket_ids"])
        wanted = batch["request"].get("object_ids")
        if wanted:
            _check_object_ids(session, base, wanted)
        return base, base & compile_filter(where, object_field, dialect=session.get_bind().dialect.name), objects
    source = _off_index(documents.c.collection_id) if by_id else documents.c.collection_id
    base = source.in_(batch["source_collection_ids"])
    return base, base & document_filter(session, where), documents


def _downstream_condition(session: Session, batch: BatchRow, collection_id: str, sources: list[str],
                          where: Node, *, not_current_for: str | None = None,
                          by_source: bool = False) -> tuple[Any, Any]:
    """What a lower tier's collection reads: (the documents `sources` wrote in this batch, those
    `where` keeps). `not_current_for`: a fingerprint; also read what the collection has not made
    at it. `by_source`: the caller narrows to given source ids, which the (collection, source)
    index finds (`_off_index`)."""
    in_batch = _off_index(documents.c.batch_id) if by_source else documents.c.batch_id
    made_now = in_batch == batch["batch_id"]
    if not_current_for is not None:
        current = collection_inputs.current_condition(collection_id, not_current_for,
                                                      version=documents.c.updated_at, input_id=documents.c.document_id)
        made_now = made_now | ~current
    base = documents.c.collection_id.in_(sources) & made_now
    return base, base & document_filter(session, where)


def select_root(session: Session, *, batch: BatchRow, collection_id: str, where: Node) -> dict[str, int]:
    """Add to the root collection's manifest its sources that `where` keeps (checking that the
    request's `object_ids` exist); {"fetched": sources, "selected": added}."""
    base, condition, table = _root_condition(session, batch, where)
    added = catalog_batches.add_inputs(session, batch_id=batch["batch_id"], collection_id=collection_id, tier_num=0,
                                       ids=select(table.c[_ID[table.name]]).where(condition))
    return {"fetched": _count(session, base, table), "selected": added}


def select_downstream(session: Session, *, batch: BatchRow, collection_id: str, tier_num: int,
                      sources: list[str], where: Node, not_current_for: str | None) -> dict[str, int]:
    """Add to a lower collection's manifest what `sources` wrote in this batch (and, with
    `not_current_for`, what it has not made current) that `where` keeps; counts as `select_root`."""
    base, condition = _downstream_condition(session, batch, collection_id, sources, where,
                                            not_current_for=not_current_for)
    added = catalog_batches.add_inputs(session, batch_id=batch["batch_id"], collection_id=collection_id,
                                       tier_num=tier_num, ids=select(documents.c.document_id).where(condition))
    return {"fetched": _count(session, base, documents), "selected": added}


def select_new_root(session: Session, *, batch: BatchRow, collection_id: str, where: Node,
                    object_ids: list[str]) -> list[str]:
    """Add to the root collection's manifest those of these objects (or documents) that `where`
    keeps and it does not hold yet; the ids added."""
    _, condition, table = _root_condition(session, batch, where, by_id=True)
    id_column = table.c[_ID[table.name]]
    ids = select(id_column).where(condition & id_column.in_(object_ids))
    added = catalog_batches.add_new_inputs(session, batch_id=batch["batch_id"], collection_id=collection_id,
                                           tier_num=0, ids=ids)
    catalog_batches.count_known(session, batch_id=batch["batch_id"], tier_num=0, added=len(added))
    return added


def select_new_downstream(session: Session, *, batch: BatchRow, collection_id: str, tier_num: int,
                          upstream_id: str, source_ids: list[str], where: Node) -> list[str]:
    """Add to a lower collection's manifest the documents upstream collection `upstream_id`
    wrote in this batch from its inputs `source_ids` that `where` keeps and it does not hold yet;
    the ids added."""
    _, condition = _downstream_condition(session, batch, collection_id, [upstream_id], where, by_source=True)
    added = catalog_batches.add_new_inputs(
        session, batch_id=batch["batch_id"], collection_id=collection_id, tier_num=tier_num,
        ids=select(documents.c.document_id).where(condition & documents.c.source_id.in_(source_ids)))
    catalog_batches.count_known(session, batch_id=batch["batch_id"], tier_num=tier_num, added=len(added))
    return added
