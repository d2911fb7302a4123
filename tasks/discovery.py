"""Listing a bucket's S3 prefix and registering its objects, as a Prefect task."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task

from tasks.feeds import feed_into
from tasks.retries import retry_if_transient
from tierflow.discovery import discover_bucket_by_id


@task(name="discover-bucket", task_run_name="discover-{bucket_id}", retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_if_transient)
def discover_bucket(bucket_id: str, batch_id: str, feed: bool = False, reconcile: bool = False) -> dict[str, int | str]:
    """List the bound prefix and register new or changed objects; with `feed`, tell the root
    tier of batch `batch_id` (`tasks/feeds.py`) of each page as it is registered; with
    `reconcile`, delete what the listing no longer finds (counted on the batch)."""
    root = feed_into(batch_id, 0) if feed else None
    on_page = None if root is None else (lambda object_ids: root.ready(bucket_id, object_ids))
    return asdict(discover_bucket_by_id(bucket_id, on_page, reconcile=reconcile, batch_id=batch_id))
