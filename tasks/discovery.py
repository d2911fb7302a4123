"""Listing a bucket's S3 prefix and registering its objects, as a Prefect task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retries import retry_if_transient
from tierflow.discovery import discover_bucket_by_id


@task(name="discover-bucket", task_run_name="discover-{bucket_id}", retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def discover_bucket(bucket_id: str, batch_id: str, on_page: Callable[[list[str]], None] | None = None,
                    reconcile: bool = False) -> dict[str, int | str]:
    """List the bound prefix and register new or changed objects for batch `batch_id`, calling
    `on_page` with each page's object ids once registered; with `reconcile`, delete what the
    listing no longer finds (counted on the batch). Not cached: its inputs include a callback."""
    return asdict(discover_bucket_by_id(bucket_id, on_page, reconcile=reconcile, batch_id=batch_id))
