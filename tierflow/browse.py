"""Reading documents back: the listing behind `tierflow documents list` (and the API's)."""

from __future__ import annotations

from typing import Any

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.filters import parse_filter
from tierflow.settings import get_settings


def list_collection_documents(
    *, namespace: str, collection: str, filters: Any, limit: int, offset: int
) -> dict[str, Any]:
    """`{results, pagination: {total, limit, offset, has_more}}` for a collection's documents."""
    where = parse_filter(filters, where="filters")
    with open_session(get_settings().database_url) as session:
        ns = resources.get_namespace(session, identifier=namespace)
        row = resources.get_collection(session, namespace_id=ns["namespace_id"], identifier=collection)
        results, total = catalog_documents.list_documents(
            session, collection_id=row["collection_id"], where=where, limit=limit, offset=offset
        )
    return {
        "results": results,
        "pagination": {"total": total, "limit": limit, "offset": offset, "has_more": offset + len(results) < total},
    }
