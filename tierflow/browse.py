"""Reading back what the catalog holds: filtered, paginated listings of documents and objects."""

from __future__ import annotations

from typing import Any

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import objects as catalog_objects
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
    return _page(results, total, limit, offset)


def list_bucket_objects(*, namespace: str, bucket: str, filters: Any, limit: int, offset: int) -> dict[str, Any]:
    """`{results, pagination}` for a bucket's objects (e.g. those still `PENDING`)."""
    where = parse_filter(filters, where="filters")
    with open_session(get_settings().database_url) as session:
        ns = resources.get_namespace(session, identifier=namespace)
        row = resources.get_bucket(session, namespace_id=ns["namespace_id"], identifier=bucket)
        results, total = catalog_objects.list_objects(
            session, bucket_id=row["bucket_id"], where=where, limit=limit, offset=offset
        )
    return _page(results, total, limit, offset)


def _page(results: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {
        "results": results,
        "pagination": {"total": total, "limit": limit, "offset": offset, "has_more": offset + len(results) < total},
    }
