"""Processing a chunk of inputs (hundreds, never one) as a Prefect task."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task

from tasks.retries import retry_if_transient
from tierflow import processing


@task(name="process-chunk", retries=3, retry_delay_seconds=[1, 4, 10], retry_condition_fn=retry_if_transient)
def process_chunk(batch_id: str, collection_id: str, tier_num: int, input_ids: list[str],
                  generation: int | None = None) -> dict[str, Any]:
    """Extract documents from these inputs and write them with their results, in one transaction.
    `generation`: the lease generation of the batch's run, which claims the inputs."""
    return asdict(processing.process_chunk(batch_id=batch_id, collection_id=collection_id, tier_num=tier_num,
                                           input_ids=input_ids, generation=generation))
