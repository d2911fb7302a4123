"""Listing a bucket's S3 prefix and registering its objects, as a Prefect task."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task

from tasks.feeds import feed_into
from tasks.retries import retry_if_transient
from tierflow.discovery import discover_bucket_by_id


@task(name="discover-bucket", task_run_name="discover-{bucket_id}", retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_if_transient)
def discover_bucket(bucket_id: str, batch_id: str | None = None) -> dict[str, int | str]:
    """List the bound prefix and register new or changed objects; tell the root tier of batch
    `batch_id`, when it is fed (`tasks/feeds.py`), of each page as it is registered."""
    feed = feed_into(batch_id, 0) if batch_id else None
    on_page = None if feed is None else (lambda object_ids: feed.ready(bucket_id, object_ids))
    return asdict(discover_bucket_by_id(bucket_id, on_page))
