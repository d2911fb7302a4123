"""Buckets listed on a schedule (`sync: {interval_seconds}`), for stores that cannot send event
notifications: each time a bucket is due, every collection reading it is triggered for that
bucket with `dedup_strategy: skip`, so new and changed objects are processed and deleted ones
take their documents with them (the listing is complete).

A bucket is claimed by compare-and-set on `synced_at`, so of several servers looking at once,
one triggers it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.models.trigger import TriggerRequest
from tierflow.settings import get_settings
from tierflow.timestamps import format_timestamp, utcnow


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


def sync_triggers(bucket: dict[str, Any]) -> list[tuple[str, str, TriggerRequest]]:
    """(namespace id, collection id, request) of each trigger a due bucket's listing makes: one
    per enabled collection reading it."""
    with open_session(get_settings().database_url) as session:
        readers = [c for c in resources.list_collections(session, namespace_id=bucket["namespace_id"])
                   if c["enabled"] and c["source"]["type"] == "bucket"
                   and bucket["bucket_id"] in (c["source"].get("bucket_ids") or [])]
    request = TriggerRequest(include_buckets=[bucket["bucket_id"]], dedup_strategy="skip")
    return [(bucket["namespace_id"], c["collection_id"], request) for c in readers]
