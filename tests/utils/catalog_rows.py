"""Inserting objects and documents straight into a catalog, for filter tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from tierflow.catalog.resources import put_bucket, put_collection, put_namespace
from tierflow.catalog.schema import documents, objects
from tierflow.timestamps import now_text


def make_scope(session: Session) -> tuple[str, str, str]:
    """A namespace, a bucket and a collection to hang rows on: their ids."""
    ns, _ = put_namespace(session, name="filters", description=None)
    bucket, _ = put_bucket(session, namespace_id=ns["namespace_id"], values={
        "bucket_name": "b", "description": None, "bucket_schema": {}, "unique_key": None,
        "metadata": {}, "storage": None,
    })
    collection, _ = put_collection(session, namespace_id=ns["namespace_id"], values={
        "collection_name": "c", "description": None,
        "source": {"type": "bucket", "bucket_ids": [bucket["bucket_id"]]},
        "feature_extractor": {"feature_extractor_name": "passthrough_extractor"},
        "output_schema": {}, "enabled": True, "metadata": {},
    })
    return ns["namespace_id"], bucket["bucket_id"], collection["collection_id"]


def object_row(bucket_id: str, index: int, **values: Any) -> dict[str, Any]:
    now = now_text()
    row = {
        "object_id": f"obj_{index:04d}", "bucket_id": bucket_id, "namespace_id": "ns",
        "key": f"k/{index}.txt", "key_prefix": "k/", "size_bytes": index, "etag": f"e{index}",
        "content_type": "text/plain", "last_modified": now, "metadata": {}, "blobs": [],
        "status": "PENDING", "created_at": now, "updated_at": now,
    }
    row.update(values)
    return row


def replace_objects(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(delete(objects))
    if rows:
        session.execute(insert(objects), rows)


def document_row(collection_id: str, index: int, fields: dict[str, Any], lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    now = now_text()
    return {
        "document_id": f"doc_{index:04d}", "collection_id": collection_id, "namespace_id": "ns",
        "batch_id": "btch_x", "root_object_id": "obj_1", "source_id": "obj_1", "fields": fields,
        "lineage": lineage or {"root_object_id": "obj_1", "path": "b/c"}, "created_at": now, "updated_at": now,
    }


def replace_documents(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(delete(documents))
    if rows:
        session.execute(insert(documents), rows)
