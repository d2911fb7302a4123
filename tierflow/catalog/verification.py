"""The SQL of checking a collection against its sources: which of its documents no input it
should read explains, which of those inputs it has not made current, and which inputs' recorded
document counts differ from the documents it holds (what `tierflow.verify` reports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tierflow.catalog import collection_inputs as catalog_collection_inputs
from tierflow.catalog.schema import collection_inputs, documents

SAMPLE = 20
"""Ids shown of each kind of difference (the counts are whole)."""


def _count_and_sample(session: Session, ids: Any) -> dict[str, Any]:
    subquery = ids.subquery()
    (count,) = session.execute(select(func.count()).select_from(subquery)).one()
    sample = session.execute(select(subquery.c[0]).order_by(subquery.c[0]).limit(SAMPLE)).scalars()
    return {"count": int(count), "sample": list(sample)}


def differences(session: Session, *, collection_id: str, fingerprint: str, of_objects: bool,
                input_id: ColumnElement[Any], scope: ColumnElement[bool],
                keeps: ColumnElement[bool]) -> dict[str, Any]:
    """How the collection differs from what its inputs (the rows of `scope` that `keeps`, whose
    id is `input_id`) call for: `unexpected_documents` (made from no such input: it is gone, or
    the filters leave it out), `unprocessed_inputs` (not made at their version now with this
    fingerprint), `miscounted_inputs` (the documents held of an input are not as many as its
    processing made); with `expected_inputs` and `documents` held."""
    expected = select(input_id).where(scope & keeps)
    version = catalog_collection_inputs.object_version() if of_objects else documents.c.updated_at
    current = catalog_collection_inputs.current_condition(collection_id, fingerprint, version=version,
                                                          input_id=input_id)
    held = (select(documents.c.source_id, func.count().label("held"))
            .where(documents.c.collection_id == collection_id).group_by(documents.c.source_id).subquery())
    miscounted = (select(collection_inputs.c.input_id)
                  .select_from(collection_inputs.outerjoin(held, held.c.source_id == collection_inputs.c.input_id))
                  .where(collection_inputs.c.collection_id == collection_id,
                         collection_inputs.c.documents != func.coalesce(held.c.held, 0)))
    (expected_count,) = session.execute(select(func.count()).select_from(expected.subquery())).one()
    (document_count,) = session.execute(select(func.count()).select_from(documents)
                                        .where(documents.c.collection_id == collection_id)).one()
    return {
        "expected_inputs": int(expected_count), "documents": int(document_count),
        "unexpected_documents": _count_and_sample(session, select(documents.c.document_id).where(
            documents.c.collection_id == collection_id, documents.c.source_id.not_in(expected))),
        "unprocessed_inputs": _count_and_sample(session, select(input_id).where(scope & keeps & ~current)),
        "miscounted_inputs": _count_and_sample(session, miscounted),
    }
