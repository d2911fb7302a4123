"""Tier-0 discovery: list a bucket's S3 prefix and register new or changed objects.

The listing is streamed page by page (1,000 keys at most in memory). Object ids are derived from
bucket and key, so an unchanged object keeps its id and status across runs; a changed one (new
etag) is refreshed and set back to PENDING.

A listing gives keys, sizes and etags, not content types or user metadata. Those take a HEAD per
object, as many requests as reading the files, so new and changed keys are HEAD-ed (concurrently)
only when the bucket needs them before its files are read: when its schema declares fields
besides the file itself (filters and unique keys read them), or when `discovery_head` is
`always`. Otherwise the content type is guessed from the key, and the GET that reads the file
records the real content type and metadata on the object (`processing`).
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.engine import open_session
from tierflow.catalog.grants import granted_locations
from tierflow.catalog.resources import get_buckets
from tierflow.deletions import reconcile_missing
from tierflow.errors import NotFoundError, TierflowError
from tierflow.grants import locate
from tierflow.ids import stable_id
from tierflow.models.status import Status
from tierflow.settings import get_settings
from tierflow.storage import head_object, is_derivative, iter_pages, run_concurrently, s3_client, storage_location
from tierflow.timestamps import format_timestamp, now_text

log = logging.getLogger(__name__)

_BLOB_TYPES = {"text", "image", "pdf", "file", "video", "audio", "document", "json"}


@dataclass
class DiscoveryStats:
    """What one bucket's listing found."""

    bucket_id: str
    listed: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0


def object_id_for(bucket_id: str, key: str) -> str:
    """The deterministic id of the object at `key` in a bucket."""
    return stable_id("obj", bucket_id, key)


def _blob_property(bucket: dict[str, Any]) -> tuple[str, str | None]:
    properties = (bucket.get("bucket_schema") or {}).get("properties") or {}
    blobs = [(name, spec.get("type")) for name, spec in properties.items() if spec.get("type") in _BLOB_TYPES]
    return blobs[0] if len(blobs) == 1 else ("content", None)


def needs_head(bucket: dict[str, Any]) -> bool:
    """Whether discovery must HEAD this bucket's new objects (see the module's docstring)."""
    if get_settings().discovery_head == "always":
        return True
    properties = (bucket.get("bucket_schema") or {}).get("properties") or {}
    blob, _ = _blob_property(bucket)
    unique = (bucket.get("unique_key") or {}).get("fields") or []
    return any(name != blob for name in properties) or any(name not in _OBJECT_COLUMNS for name in unique)


_OBJECT_COLUMNS = {"key", "object_id", "etag", "size_bytes", "key_prefix", "last_modified"}
"""Object fields a unique key can name that the listing itself provides."""


def object_metadata(bucket: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    """User metadata as S3 gives it (text), typed as the bucket's schema declares."""
    properties = (bucket.get("bucket_schema") or {}).get("properties") or {}
    return {k: _coerce(v, (properties.get(k) or {}).get("type")) for k, v in raw.items()}


def _coerce(value: str, kind: str | None) -> Any:
    """S3 metadata is text; give it the type the bucket schema declares when it parses."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _blob_type(content_type: str | None, declared: str | None) -> str:
    if declared:
        return declared
    major = (content_type or "").split("/")[0]
    if content_type == "application/pdf":
        return "pdf"
    return {"text": "text", "image": "image", "audio": "audio", "video": "video"}.get(major, "file")


_HEAD_FACTS = {"ETag": "ETag", "Size": "ContentLength", "LastModified": "LastModified"}
"""Listing entry fields and the HEAD answer's names for them."""


def object_row(bucket: dict[str, Any], entry: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    storage = bucket["storage"]
    key = entry["Key"]
    # A HEAD is newer than the listing (and an event's entry has no LastModified): its facts win.
    etag_size_stamp = entry_facts({**entry, **{name: head[given] for name, given in _HEAD_FACTS.items()
                                                 if head.get(given) is not None}})
    metadata = object_metadata(bucket, head.get("Metadata") or {})
    content_type = head.get("ContentType") or mimetypes.guess_type(key)[0]
    prop, declared = _blob_property(bucket)
    now = now_text()
    directory = posixpath.dirname(key)
    return {
        "object_id": object_id_for(bucket["bucket_id"], key),
        "bucket_id": bucket["bucket_id"],
        "namespace_id": bucket["namespace_id"],
        "key": key,
        "key_prefix": f"{directory}/" if directory else "",
        "size_bytes": etag_size_stamp[1],
        "etag": etag_size_stamp[0],
        "content_type": content_type,
        "last_modified": etag_size_stamp[2],
        "metadata": metadata,
        "blobs": [{
            "property": prop,
            "type": _blob_type(content_type, declared),
            "data": f"s3://{storage['s3_bucket']}/{key}",
            "content_type": content_type,
        }],
        "status": Status.PENDING.value,
        "created_at": now,
        "updated_at": now,
    }


def check_listing_granted(bucket: dict[str, Any]) -> None:
    """ForbiddenError when a tenant's bucket lies outside its namespace's grants now (a grant
    revoked since the bucket was made stops its listing)."""
    storage = bucket.get("storage")
    if storage and bucket.get("tenant_defined"):
        with open_session(get_settings().database_url) as session:
            grants = granted_locations(session, namespace_id=bucket["namespace_id"])
        locate(bucket, grants, f"s3://{storage['s3_bucket']}/{storage.get('prefix') or ''}")


def discover_bucket(bucket: dict[str, Any], on_page: Callable[[list[str]], None] | None = None, *,
                    reconcile: bool = False, batch_id: str | None = None) -> DiscoveryStats:
    """List the bucket's bound prefix and register what is new or changed.

    `on_page` hears the object ids of each listing page once the page is registered, so that
    processing can start on the first page while the listing goes on. With `reconcile`, once the
    listing is complete, objects it no longer finds are deleted with their documents in every
    tier, counted on batch `batch_id` (`tierflow.deletions`).
    """
    stats = DiscoveryStats(bucket_id=bucket["bucket_id"])
    storage = bucket.get("storage")
    if not storage:
        return stats  # objects of unbound buckets are registered through the API only
    settings = get_settings()
    check_listing_granted(bucket)
    client = s3_client(*storage_location(storage))
    head = needs_head(bucket)
    s3_bucket, prefix = storage["s3_bucket"], storage.get("prefix") or ""
    seen: set[str] = set()
    for page in iter_pages(client, bucket=s3_bucket, prefix=prefix, page_size=settings.discovery_page_size):
        page = [e for e in page if not is_derivative(e["Key"])]  # thumbnails and such tierflow wrote
        by_id = {object_id_for(bucket["bucket_id"], e["Key"]): e for e in page}
        if reconcile:
            seen.update(by_id)
        with open_session(settings.database_url) as session:
            known = catalog_objects.listing_facts(session, object_ids=list(by_id))
        fresh = {oid: e for oid, e in by_id.items() if known.get(oid) != entry_facts(e)}
        # The same bytes put again (same etag, new LastModified or size) may carry new metadata,
        # which only a HEAD tells, whatever the bucket's schema: re-read them.
        touched = {oid for oid, e in fresh.items() if oid in known and known[oid][0] == entry_facts(e)[0]}
        stats.listed += len(page)
        stats.changed += sum(1 for oid in fresh if oid in known)
        stats.new += sum(1 for oid in fresh if oid not in known)
        stats.unchanged += len(page) - len(fresh)
        if fresh:
            register_entries(client, bucket, fresh, head, also_head=touched)
        if on_page is not None:
            on_page(list(by_id))
    if reconcile:
        stats.deleted = len(reconcile_missing(bucket, seen, object_id_for, batch_id=batch_id))
    if batch_id is not None:
        with open_session(settings.database_url) as session:
            catalog_batches.add_counts(session, batch_id=batch_id, new=stats.new, changed=stats.changed,
                                       unchanged=stats.unchanged)
    log.info("discovered s3://%s/%s: %s", s3_bucket, prefix, stats)
    return stats


def entry_facts(entry: dict[str, Any]) -> tuple[str, int, str | None]:
    """(etag, size, last modified) of a listing entry, as the catalog stores them."""
    stamp = entry.get("LastModified")
    return (str(entry.get("ETag", "")).strip('"'), int(entry.get("Size", 0)),
            format_timestamp(stamp) if stamp else None)


def head_keys(client: Any, bucket: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """HEAD these keys of the bucket's S3 bucket concurrently: each key's answer, or its error."""
    s3_bucket = bucket["storage"]["s3_bucket"]
    return run_concurrently(lambda key: head_object(client, s3_bucket, key), keys) if keys else {}


def is_gone(found: Any) -> bool:
    """Whether a HEAD's answer says the key is not there (deleted since it was listed)."""
    return isinstance(found, TierflowError) and getattr(found, "code", None) in ("404", "NoSuchKey", "NotFound")


def register_entries(client: Any, bucket: dict[str, Any], fresh: dict[str, dict[str, Any]], head: bool, *,
                     also_head: set[str] | frozenset[str] = frozenset(),
                     heads: dict[str, Any] | None = None) -> None:
    """Register new or changed listing entries, HEAD-ed first when the bucket needs it (and
    those of `also_head` whatever it needs; `heads` holds answers already had, by key)."""
    heads = dict(heads or {})
    heads.update(head_keys(client, bucket, [e["Key"] for oid, e in fresh.items()
                                            if (head or oid in also_head) and e["Key"] not in heads]))
    rows = []
    for entry in fresh.values():
        found = heads.get(entry["Key"], {})
        if is_gone(found):
            continue  # deleted between LIST and HEAD: nothing to register
        if isinstance(found, Exception):
            raise found
        rows.append(object_row(bucket, entry, found))
    with open_session(get_settings().database_url) as session:
        catalog_objects.register_objects(session, rows=rows)


def discover_bucket_by_id(bucket_id: str, on_page: Callable[[list[str]], None] | None = None, *,
                          reconcile: bool = False, batch_id: str | None = None) -> DiscoveryStats:
    """Discovery for the bucket with this id (what the Prefect task calls)."""
    with open_session(get_settings().database_url) as session:
        found = get_buckets(session, bucket_ids=[bucket_id])
    if not found:
        raise NotFoundError("bucket", bucket_id)
    return discover_bucket(found[0], on_page, reconcile=reconcile, batch_id=batch_id)
