"""How namespaces, buckets and collections look to users (the contract's objects).

Catalog rows carry bookkeeping (`namespace_id` on every row); these views pick the contract's
fields and add what is computed on read: a bucket's `object_count` and `sync_status`, a
collection's `tier` and `document_count`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import resources
from tierflow.dag import collection_tier

_NAMESPACE_FIELDS = ("namespace_id", "namespace_name", "description", "created_at", "updated_at")
_BUCKET_FIELDS = ("bucket_id", "bucket_name", "description", "bucket_schema", "unique_key", "metadata", "storage",
                  "sync", "created_at", "updated_at")
_COLLECTION_FIELDS = ("collection_id", "collection_name", "description", "source", "feature_extractor",
                      "output_schema", "enabled", "metadata", "created_at", "updated_at")


def namespace_views(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: r[k] for k in _NAMESPACE_FIELDS} for r in rows]


def bucket_views(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = resources.count_objects(session, bucket_ids=[r["bucket_id"] for r in rows])
    return [{**{k: r[k] for k in _BUCKET_FIELDS}, "object_count": counts.get(r["bucket_id"], 0),
             "sync_status": sync_status(r)} for r in rows]


def sync_status(row: dict[str, Any]) -> dict[str, Any] | None:
    """How a bucket's scheduled listing went: when it was last checked, when a check last found
    something to do, and whether the last one did; None before its first check."""
    checked, changed = row.get("sync_checked_at"), row.get("sync_changed_at")
    if checked is None:
        return None
    return {"last_checked_at": checked, "last_change_at": changed, "changed": changed == checked}


def collection_views(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = resources.count_documents(session, collection_ids=[r["collection_id"] for r in rows])
    graphs: dict[str, list[dict[str, Any]]] = {}
    views = []
    for r in rows:
        if r["namespace_id"] not in graphs:
            graphs[r["namespace_id"]] = resources.list_collections(session, namespace_id=r["namespace_id"])
        graph = graphs[r["namespace_id"]]
        views.append({**{k: r[k] for k in _COLLECTION_FIELDS},
                      "tier": collection_tier(graph, r["collection_id"]),
                      "document_count": counts.get(r["collection_id"], 0)})
    return views
