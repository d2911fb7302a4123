"""Objects that are gone from their bucket take their documents with them, in every tier; so do
inputs that a collection's filters no longer keep.

A complete listing that no longer finds an object (`reconcile_missing`), or a DELETE of the
object through the API (`delete_objects`), removes the object and every document derived from
it through lineage, in one transaction with the batch's count of deletions. An input that
stops passing a collection's `source_filters` (its fields changed, or the filters did) is, for
that collection and every one below it, a deletion too (`delete_excluded`): what a rebuild would
not make is not kept.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import collection_inputs
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.derived import delete_derived
from tierflow.catalog.engine import open_session
from tierflow.catalog.excluded import documents_from, excluded_inputs
from tierflow.catalog.schema import documents
from tierflow.filters import Node
from tierflow.settings import get_settings


def delete_objects(*, bucket: dict[str, Any], object_ids: list[str], batch_id: str | None = None) -> int:
    """Delete these objects of the bucket and every document made from them, counting them on
    batch `batch_id` if given; how many documents went."""
    if not object_ids:
        return 0
    with open_session(get_settings().database_url, write=True) as session:
        gone = delete_derived(session, namespace_id=bucket["namespace_id"], source_id=bucket["bucket_id"],
                              input_ids=object_ids)
        catalog_objects.delete_objects(session, object_ids=object_ids)
        if batch_id is not None:
            catalog_batches.add_counts(session, batch_id=batch_id, deleted=len(object_ids), documents_deleted=gone)
    return gone


def delete_excluded(session: Session, *, collection: dict[str, Any], where: Node | None,
                    batch_id: str | None) -> tuple[int, int]:
    """Delete what the collection made from inputs its filters (`where`) no longer keep, with
    everything made from that below, and forget that it processed them, counting both on batch
    `batch_id`; (inputs left out, documents deleted)."""
    if where is None:
        return 0, 0
    left_out = excluded_inputs(session, collection=collection, where=where)
    if not left_out:
        return 0, 0
    collection_id = collection["collection_id"]
    made = documents_from(session, collection_id=collection_id, input_ids=left_out)
    for start in range(0, len(made), 5000):
        session.execute(delete(documents).where(documents.c.document_id.in_(made[start:start + 5000])))
    below = delete_derived(session, namespace_id=collection["namespace_id"], source_id=collection_id, input_ids=made)
    collection_inputs.forget(session, input_ids=left_out, collection_id=collection_id)
    if batch_id is not None:
        catalog_batches.add_counts(session, batch_id=batch_id, excluded=len(left_out),
                                   documents_deleted=len(made) + below)
    return len(left_out), len(made) + below


def listed_objects(bucket: dict[str, Any], object_id_for: Any) -> set[str]:
    """The ids of the bucket's objects that discovery registered (a key, and the id discovery
    derives from it): those a listing may find gone. Objects registered through the API are not."""
    with open_session(get_settings().database_url) as session:
        rows = catalog_objects.listed_keys(session, bucket_id=bucket["bucket_id"])
    return {object_id for object_id, key in rows if object_id == object_id_for(bucket["bucket_id"], key)}


def reconcile_missing(bucket: dict[str, Any], seen: set[str], object_id_for: Any, *,
                      batch_id: str | None) -> list[str]:
    """After a complete listing that found `seen`: delete the listed objects it did not find,
    with their documents; their ids."""
    missing = sorted(listed_objects(bucket, object_id_for) - seen)
    delete_objects(bucket=bucket, object_ids=missing, batch_id=batch_id)
    return missing
