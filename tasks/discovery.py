"""Listing a bucket's S3 prefix and registering its objects, as a Prefect task."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task

from tasks.retries import retry_if_transient
from tierflow.discovery import discover_bucket_by_id


@task(name="discover-bucket", task_run_name="discover-{bucket_id}", retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_if_transient)
def discover_bucket(bucket_id: str) -> dict[str, int | str]:
    """List the bucket's bound prefix and register new or changed objects."""
    return asdict(discover_bucket_by_id(bucket_id))
