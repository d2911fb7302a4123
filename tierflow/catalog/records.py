"""How catalog rows look to users and to filters.

`object_record` and `document_record` build the dicts the API returns and the Python evaluator
reads; `object_field` and `document_field` tell the SQL compiler where each dot path of those
dicts lives. Keeping both here is what makes Python and SQL filtering see the same record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierflow.catalog.schema import documents, objects
from tierflow.filters import ColumnField, JsonField
from tierflow.filters.sql import Field

_OBJECT_COLUMNS: dict[str, ColumnField] = {
    "object_id": ColumnField(objects.c.object_id, "string"),
    "bucket_id": ColumnField(objects.c.bucket_id, "string"),
    "key": ColumnField(objects.c.key, "string"),
    "key_prefix": ColumnField(objects.c.key_prefix, "string"),
    "size_bytes": ColumnField(objects.c.size_bytes, "number"),
    "etag": ColumnField(objects.c.etag, "string"),
    "content_type": ColumnField(objects.c.content_type, "string"),
    "last_modified": ColumnField(objects.c.last_modified, "string"),
    "status": ColumnField(objects.c.status, "string", upper_only=True),
    "created_at": ColumnField(objects.c.created_at, "string"),
    "updated_at": ColumnField(objects.c.updated_at, "string"),
}
_OBJECT_JSON = {"metadata": objects.c.metadata, "blobs": objects.c.blobs}


def object_field(path: str) -> Field | None:
    """Where an object's dot path lives in SQL (None: no object has it)."""
    head, _, rest = path.partition(".")
    if head in _OBJECT_COLUMNS:
        return None if rest else _OBJECT_COLUMNS[head]
    if head in _OBJECT_JSON:
        return JsonField(_OBJECT_JSON[head], tuple(rest.split(".")) if rest else ())
    return None


def object_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The user-facing dict of an object row (also what filters evaluate against)."""
    record = {name: row[name] for name in _OBJECT_COLUMNS}
    record["metadata"] = row["metadata"]
    record["blobs"] = row["blobs"]
    return record


_DOCUMENT_COLUMNS: dict[str, ColumnField] = {
    "document_id": ColumnField(documents.c.document_id, "string"),
    "collection_id": ColumnField(documents.c.collection_id, "string"),
}
_INTERNAL_COLUMNS: dict[str, ColumnField] = {
    "batch_id": ColumnField(documents.c.batch_id, "string"),
    "created_at": ColumnField(documents.c.created_at, "string"),
    "updated_at": ColumnField(documents.c.updated_at, "string"),
}


def document_field(path: str) -> Field | None:
    """Where a document's dot path lives in SQL (None: no document has it)."""
    head, _, rest = path.partition(".")
    if head in _DOCUMENT_COLUMNS:
        return None if rest else _DOCUMENT_COLUMNS[head]
    if head == "_internal":
        sub, _, tail = rest.partition(".")
        if sub in _INTERNAL_COLUMNS and not tail:
            return _INTERNAL_COLUMNS[sub]
        if sub == "lineage":
            return JsonField(documents.c.lineage, tuple(tail.split(".")) if tail else ())
        return None
    return JsonField(documents.c.fields, tuple(path.split(".")))


def document_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The user-facing dict of a document row: its fields at the top, bookkeeping in `_internal`."""
    fields = {k: v for k, v in row["fields"].items() if k not in ("document_id", "collection_id", "_internal")}
    return {
        "document_id": row["document_id"],
        "collection_id": row["collection_id"],
        **fields,
        "_internal": {
            "lineage": row["lineage"],
            "batch_id": row["batch_id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        },
    }
