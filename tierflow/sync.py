"""Buckets listed on a schedule (`sync: {interval_seconds}`), for stores that cannot send event
notifications, and the batches S3 events call for: a batch starts only when there is something
to do, since each costs a Prefect run and a batch record.

Each time a bucket is due, its bound prefix is listed page by page (no GETs, no HEADs) and each
entry's etag, size and last-modified time compared with the catalog's; objects the catalog has
that the listing no longer finds count too. Anything new, changed or gone triggers every
collection reading the bucket with `dedup_strategy: skip` (the trigger's own listing registers
the changes and deletes what is gone); otherwise only the collections that are not current for
the bucket (an input never processed, or processed at another version or fingerprint, here or
in a tier below) are triggered, and when all are current nothing starts. Either way the check
is recorded on the bucket (`sync_checked_at`, and `sync_changed_at` when it found something).

A bucket is claimed by compare-and-set on `synced_at`, so of several servers looking at once,
one checks and triggers it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import collection_inputs, resources
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.engine import open_session
from tierflow.catalog.excluded import source_scope
from tierflow.dag import plan_tiers
from tierflow.deletions import listed_objects
from tierflow.discovery import check_listing_granted, entry_facts, object_id_for
from tierflow.fingerprints import fingerprint
from tierflow.models.trigger import MAX_OBJECT_IDS, TriggerRequest
from tierflow.selection import collection_filter
from tierflow.settings import get_settings
from tierflow.storage import is_derivative, iter_pages, s3_client, storage_location
from tierflow.timestamps import format_timestamp, now_text, utcnow

log = logging.getLogger(__name__)

Trigger = tuple[str, str, TriggerRequest]
"""(namespace id, collection id, request) of one batch to start."""


def claim_due_buckets() -> list[dict[str, Any]]:
    """The buckets whose next listing is due, each claimed for this caller (its `synced_at` set
    to now)."""
    now = utcnow()
    claimed = []
    with open_session(get_settings().database_url) as session:
        for row in resources.synced_buckets(session):
            interval = int((row["sync"] or {}).get("interval_seconds") or 0)
            if interval <= 0:
                continue
            before = format_timestamp(now - timedelta(seconds=interval))
            if resources.claim_sync(session, bucket_id=row["bucket_id"], last_before=before,
                                    now=format_timestamp(now)):
                claimed.append(row)
    return claimed


def due_triggers() -> list[Trigger]:
    """Claim the buckets that are due and check each (`sync_triggers`); the batches to start. A
    bucket whose check fails (S3 unreachable, its grant revoked) is logged and waits for its next
    turn; the others go on."""
    triggers = []
    for bucket in claim_due_buckets():
        try:
            triggers.extend(sync_triggers(bucket))
        except Exception:
            log.exception("the scheduled check of bucket %s failed", bucket["bucket_id"])
    return triggers


def sync_triggers(bucket: dict[str, Any]) -> list[Trigger]:
    """The batches a due bucket's check calls for (see the module's docstring): one per enabled
    collection reading it when the listing differs from the catalog, else one per such
    collection that is not current; none when nothing changed. Records the check on the bucket."""
    with open_session(get_settings().database_url) as session:
        readers = _readers(session, bucket)
    changed = bool(readers) and listing_differs(bucket)
    if not changed:
        with open_session(get_settings().database_url) as session:
            readers = [c for c in readers if not _current(session, c, bucket["bucket_id"])]
    with open_session(get_settings().database_url) as session:
        resources.record_sync_check(session, bucket_id=bucket["bucket_id"], checked_at=now_text(),
                                    changed=bool(readers))
    request = TriggerRequest(include_buckets=[bucket["bucket_id"]], dedup_strategy="skip")
    return [(bucket["namespace_id"], c["collection_id"], request) for c in readers]


def listing_differs(bucket: dict[str, Any]) -> bool:
    """Whether the bucket's bound prefix holds an object the catalog does not have, has at
    another etag, size or last-modified time, or lacks one the catalog has from a listing. Stops
    at the first difference; an unbound bucket has no listing to differ."""
    storage = bucket.get("storage")
    if not storage:
        return False
    check_listing_granted(bucket)
    settings = get_settings()
    client = s3_client(*storage_location(storage))
    matched = 0
    for page in iter_pages(client, bucket=storage["s3_bucket"], prefix=storage.get("prefix") or "",
                           page_size=settings.discovery_page_size):
        by_id = {object_id_for(bucket["bucket_id"], e["Key"]): e for e in page if not is_derivative(e["Key"])}
        with open_session(settings.database_url) as session:
            stored = catalog_objects.listing_facts(session, object_ids=list(by_id))
        if any(oid not in stored or not _same(entry, stored[oid]) for oid, entry in by_id.items()):
            return True
        matched += len(by_id)
    # Every entry matched an object of its own; fewer entries than listed objects means some are gone.
    return len(listed_objects(bucket, object_id_for)) != matched


def _same(entry: dict[str, Any], stored: catalog_objects.ListingFacts) -> bool:
    """Whether a listing entry shows the object as the catalog holds it. A size or time the
    catalog never learnt (an object an S3 event registered) is not a difference."""
    etag, size, modified = stored
    listed_etag, listed_size, listed_modified = entry_facts(entry)  # as discovery reads an entry
    return (etag == listed_etag and (size is None or size == listed_size)
            and (modified is None or listed_modified is None or modified == listed_modified))


def _readers(session: Session, bucket: dict[str, Any]) -> list[dict[str, Any]]:
    """The enabled collections reading the bucket."""
    return [c for c in resources.list_collections(session, namespace_id=bucket["namespace_id"])
            if c["enabled"] and c["source"]["type"] == "bucket"
            and bucket["bucket_id"] in (c["source"].get("bucket_ids") or [])]


def _current(session: Session, reader: dict[str, Any], bucket_id: str) -> bool:
    """Whether the collection has processed every object of the bucket at its version now and
    with its fingerprint now, and each collection below it every document it reads likewise."""
    everything = resources.list_collections(session, namespace_id=reader["namespace_id"])
    by_id = {c["collection_id"]: c for c in everything}
    known: dict[str, str] = {}
    for tier in plan_tiers(everything, reader["collection_id"]):
        for collection_id in tier:
            member = by_id[collection_id]
            _, scope, keeps = source_scope(session, member, collection_filter(member), bucket_ids=[bucket_id])
            counts = collection_inputs.staleness(
                session, collection_id=collection_id, fingerprint=fingerprint(session, member, known=known),
                of_objects=member["source"]["type"] == "bucket", scope=scope, keeps=keeps)
            if counts["stale"] or counts["missing"] or counts["left_over"]:
                return False
    return True


def window_triggers(*, namespace_id: str, bucket_id: str, object_ids: Iterable[str]) -> list[Trigger]:
    """The batches an event window's objects call for: per enabled collection reading the
    bucket, those of the objects that still exist and that it has not processed at their version
    now with its fingerprint (at most `MAX_OBJECT_IDS` a batch); none when that leaves nothing."""
    wanted = sorted(object_ids)
    triggers: list[Trigger] = []
    if not wanted:
        return triggers
    with open_session(get_settings().database_url) as session:
        for reader in _readers(session, {"namespace_id": namespace_id, "bucket_id": bucket_id}):
            todo = catalog_objects.not_current(session, collection_id=reader["collection_id"],
                                               fingerprint=fingerprint(session, reader), object_ids=wanted)
            for start in range(0, len(todo), MAX_OBJECT_IDS):
                request = TriggerRequest(object_ids=todo[start:start + MAX_OBJECT_IDS], dedup_strategy="skip")
                triggers.append((namespace_id, reader["collection_id"], request))
    return triggers
