"""Deleting what was made from inputs that are gone, in every tier: documents are found through
their lineage, collection by collection down the DAG, by the (collection, source) index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tierflow.catalog import collection_inputs
from tierflow.catalog.resources import list_collections
from tierflow.catalog.schema import documents

_PART = 5000
"""Ids per statement (well under the parameter limits of SQLite and PostgreSQL)."""


def _readers(collections: list[dict[str, Any]], source_id: str) -> list[str]:
    """The collections that read bucket or collection `source_id`."""
    return [c["collection_id"] for c in collections
            if source_id in (c["source"].get("bucket_ids") or c["source"].get("collection_ids") or [])]


def delete_derived(session: Session, *, namespace_id: str, source_id: str, input_ids: Sequence[str]) -> int:
    """Delete the documents made from these inputs of bucket or collection `source_id` by the
    collections reading it, and those made from them, down to the last tier; how many went.
    What each collection recorded of having processed them is forgotten with them."""
    collections = list_collections(session, namespace_id=namespace_id)
    total = 0
    frontier = [(source_id, list(input_ids))]
    collection_inputs.forget(session, input_ids=list(input_ids))
    while frontier:
        below = []
        for source, ids in frontier:
            for reader in _readers(collections, source):
                made: list[str] = []
                for start in range(0, len(ids), _PART):
                    made += session.execute(select(documents.c.document_id).where(
                        documents.c.collection_id == reader,
                        documents.c.source_id.in_(ids[start:start + _PART]))).scalars()
                for start in range(0, len(made), _PART):
                    session.execute(delete(documents).where(documents.c.document_id.in_(made[start:start + _PART])))
                collection_inputs.forget(session, input_ids=made)
                total += len(made)
                if made:
                    below.append((reader, made))
        frontier = below
    return total


def delete_all_but(session: Session, *, namespace_id: str, collection_id: str, kept: dict[str, list[str]]) -> int:
    """For each input of `kept`, delete the collection's documents made from it other than the
    ids kept, with everything made from them below; how many went."""
    rows = session.execute(select(documents.c.document_id).where(
        documents.c.collection_id == collection_id, documents.c.source_id.in_(list(kept)))).scalars()
    keep = {document_id for ids in kept.values() for document_id in ids}
    gone = [document_id for document_id in rows if document_id not in keep]
    if not gone:
        return 0
    session.execute(delete(documents).where(documents.c.document_id.in_(gone)))
    return len(gone) + delete_derived(session, namespace_id=namespace_id, source_id=collection_id, input_ids=gone)
