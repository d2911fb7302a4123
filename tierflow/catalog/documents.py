"""Documents in the catalog: bulk writes (upsert or create), reads and filtered listing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from tierflow.catalog.bulk import execute_many
from tierflow.catalog.records import document_field, document_record
from tierflow.catalog.schema import documents
from tierflow.catalog.upsert import upsert_rows
from tierflow.filters import Node, compile_filter

_UPSERT_UPDATE = ("fields", "lineage", "batch_id", "source_id", "root_object_id", "updated_at")


def write_documents(session: Session, *, rows: Sequence[dict[str, Any]], upsert: bool) -> None:
    """Write documents in bulk: upsert by id (deterministic ids) or plain insert (new ids)."""
    if not rows:
        return
    if upsert:
        # Two inputs with the same unique-key values make the same ids: the last one wins, as a
        # later run would (PostgreSQL refuses to update one row twice in a statement).
        unique = list({row["document_id"]: row for row in rows}.values())
        upsert_rows(session, documents, unique, keys=["document_id"], update=_UPSERT_UPDATE)
    else:
        execute_many(session, insert(documents), rows)


def get_document_rows(session: Session, *, document_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Raw document rows by id (lineage and fields as stored)."""
    rows = session.execute(select(documents).where(documents.c.document_id.in_(list(document_ids))))
    names = list(documents.c.keys())
    return {r[0]: dict(zip(names, r, strict=True)) for r in rows}


def existing_documents(session: Session, *, document_ids: Sequence[str], lock: bool = False) -> set[str]:
    """Those of these documents the catalog has; with `lock`, kept from deletion (FOR SHARE,
    where the database has it) until the transaction ends."""
    statement = select(documents.c.document_id).where(documents.c.document_id.in_(list(document_ids)))
    return set(session.execute(statement.with_for_update(read=True, key_share=True) if lock else statement).scalars())


def document_filter(session: Session, node: Node) -> Any:
    """The SQL form of a document filter for this session's database."""
    return compile_filter(node, document_field, dialect=session.get_bind().dialect.name)


def list_documents(
    session: Session, *, collection_id: str, where: Node, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of a collection's documents matching `where`, and the total that match."""
    condition = (documents.c.collection_id == collection_id) & document_filter(session, where)
    total = session.execute(select(func.count()).select_from(documents).where(condition)).scalar_one()
    rows = session.execute(
        select(documents).where(condition)
        .order_by(documents.c.created_at, documents.c.document_id).limit(limit).offset(offset)
    ).mappings()
    return [document_record(dict(r)) for r in rows], int(total)


def count_documents(session: Session, *, collection_id: str) -> int:
    return int(session.execute(
        select(func.count()).select_from(documents).where(documents.c.collection_id == collection_id)
    ).scalar_one())
