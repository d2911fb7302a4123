"""Reading back what the catalog holds: filtered, paginated listings of documents and objects.

The filters are the caller's, so each listing runs under `TIERFLOW_QUERY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.engine import open_session, time_limit
from tierflow.filters import Node, parse_filter
from tierflow.settings import get_settings

Fetch = Callable[[Session, str, Node], tuple[list[dict[str, Any]], int]]
"""(session, namespace id, filter) -> (one page of records, total matching)."""


def list_collection_documents(
    *, namespace: str, collection: str, filters: Any, limit: int, offset: int
) -> dict[str, Any]:
    """`{results, pagination: {total, limit, offset, has_more}}` for a collection's documents."""

    def fetch(session: Session, namespace_id: str, where: Node) -> tuple[list[dict[str, Any]], int]:
        row = resources.get_collection(session, namespace_id=namespace_id, identifier=collection)
        found, total = catalog_documents.list_documents(
            session, collection_id=row["collection_id"], where=where, limit=limit, offset=offset
        )
        return catalog_vectors.attach_vectors(session, collection_id=row["collection_id"], records=found), total

    return _page(namespace, filters, limit, offset, fetch)


def list_bucket_objects(*, namespace: str, bucket: str, filters: Any, limit: int, offset: int) -> dict[str, Any]:
    """`{results, pagination}` for a bucket's objects (e.g. those still `PENDING`)."""

    def fetch(session: Session, namespace_id: str, where: Node) -> tuple[list[dict[str, Any]], int]:
        row = resources.get_bucket(session, namespace_id=namespace_id, identifier=bucket)
        return catalog_objects.list_objects(
            session, bucket_id=row["bucket_id"], where=where, limit=limit, offset=offset
        )

    return _page(namespace, filters, limit, offset, fetch)


def _page(namespace: str, filters: Any, limit: int, offset: int, fetch: Fetch) -> dict[str, Any]:
    """Parse the filter, resolve the namespace, fetch one page and describe it."""
    where = parse_filter(filters, where="filters")
    settings = get_settings()
    with open_session(settings.database_url) as session:
        ns = resources.get_namespace(session, identifier=namespace)
        with time_limit(session, settings.query_timeout_seconds):
            results, total = fetch(session, ns["namespace_id"], where)
    return page_of(results, total=total, limit=limit, offset=offset)


def page_of(results: list[dict[str, Any]], *, total: int, limit: int, offset: int) -> dict[str, Any]:
    """The contract's `{results, pagination: {total, limit, offset, has_more}}`."""
    return {
        "results": results,
        "pagination": {"total": total, "limit": limit, "offset": offset, "has_more": offset + len(results) < total},
    }
