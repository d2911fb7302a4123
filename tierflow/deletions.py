"""Objects that are gone from their bucket take their documents with them, in every tier.

A complete listing that no longer finds an object (`reconcile_missing`), or a DELETE of the
object through the API (`delete_objects`), removes the object and every document derived from
it through lineage, in one transaction with the batch's count of deletions.
"""

from __future__ import annotations

from typing import Any

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.derived import delete_derived
from tierflow.catalog.engine import open_session
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
            catalog_batches.count_deleted(session, batch_id=batch_id, objects=len(object_ids))
    return gone


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
