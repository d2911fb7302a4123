"""Building test worlds: objects in S3, definition files, and triggering."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from tierflow.definitions import apply_file


def put_text(s3: Any, key: str, text: str, metadata: dict[str, str] | None = None, bucket: str = "tierflow-test") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/plain", Metadata=metadata or {})


def apply_definitions(tmp_path: Path, definitions: dict[str, Any], name: str = "defs.yaml") -> Any:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(definitions, sort_keys=False))
    return apply_file(path)


def text_bucket(name: str = "notes", prefix: str = "notes/", unique_key: list[str] | None = None) -> dict[str, Any]:
    bucket: dict[str, Any] = {
        "bucket_name": name,
        "storage": {"s3_bucket": "tierflow-test", "prefix": prefix},
        "bucket_schema": {"properties": {"content": {"type": "text"}, "category": {"type": "string"}}},
    }
    if unique_key:
        bucket["unique_key"] = {"fields": unique_key}
    return bucket


def chunk_collection(name: str = "chunks", source: str = "notes", size: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "collection_name": name,
        "source": {"type": "bucket", "bucket_ids": [source]},
        "feature_extractor": {
            "feature_extractor_name": "text_extractor",
            "parameters": {"split_by": "words", "chunk_size": size},
        },
        **extra,
    }


def passthrough_collection(name: str, *sources: str, **extra: Any) -> dict[str, Any]:
    return {
        "collection_name": name,
        "source": {"type": "collection", "collection_ids": list(sources)},
        "feature_extractor": {"feature_extractor_name": "passthrough_extractor"},
        **extra,
    }


def trigger(namespace: str, collection: str, **request: Any) -> dict[str, Any]:
    """Run the trigger flow in this process and return its response."""
    from flows.trigger import trigger_collection
    from tierflow.models.trigger import TriggerRequest

    return asyncio.run(trigger_collection(namespace, collection, TriggerRequest(**request)))


def trigger_with(namespace: str, collection: str, run_chunk: Any, **request: Any) -> dict[str, Any]:
    """Run a trigger in this process whose chunks go through `run_chunk` (a `ChunkRunner`, say one
    that wraps `flows.chunk_tasks.run_chunk_task`); its response."""
    from prefect import flow

    from flows.clients import shared_prefect_client
    from flows.trigger import run_batch
    from tierflow.models.trigger import TriggerRequest

    @flow(name="trigger-collection", flow_run_name=f"trigger-{collection}")
    async def trigger_collection() -> dict[str, Any]:
        with shared_prefect_client():
            return await run_batch(namespace, collection, TriggerRequest(**request), run_chunk=run_chunk)

    return asyncio.run(trigger_collection())


def only_batch_view() -> dict[str, Any]:
    """The view of the catalog's one batch: for a trigger that raised instead of answering with
    its batch id."""
    from sqlalchemy import select

    from tierflow.batch_view import batch_view
    from tierflow.catalog.engine import open_session
    from tierflow.catalog.schema import batches
    from tierflow.settings import get_settings

    with open_session(get_settings().database_url) as session:
        batch_id = session.execute(select(batches.c.batch_id)).scalar_one()
    return batch_view(batch_id)
