"""Running one chunk of a tier as a `process-chunk` task run, awaited from the tier's loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.futures import failure_of
from tasks.chunks import process_chunk


@dataclass(frozen=True)
class Chunk:
    """Inputs of one collection that one task run processes together (hundreds, never one)."""

    batch_id: str
    collection_id: str
    tier_num: int
    input_ids: list[str]
    generation: int
    """The lease generation of the batch's run: the chunk claims its inputs with it."""


ChunkRunner = Callable[[Chunk], Awaitable[BaseException | None]]
"""Runs a chunk to its end; returns why it failed after its retries, or None. A tier is given one
(the pipeline's seam: tests hand it a fake or a wrapped one)."""


async def run_chunk_task(chunk: Chunk) -> BaseException | None:
    """Submit `process-chunk` to the current flow's task runner and wait for it without holding a
    thread; its failure, if it failed for good."""
    future = process_chunk.submit(chunk.batch_id, chunk.collection_id, chunk.tier_num,
                                  _ids_parameter(chunk.input_ids), chunk.generation)
    return await failure_of(future)


def _ids_parameter(input_ids: list[str]) -> Any:
    """The ids, in `quote` on the thread runner: it keeps Prefect from walking the list twice per
    chunk looking for futures among the parameters (a tenth of the task engine's own processor time
    in a profile of bench/pipeline.py). prefect-dask rebuilds the parameters it ships and would
    hand the task the wrapper, so there they go plain."""
    context = FlowRunContext.get()
    if context is None or isinstance(context.task_runner, ThreadPoolTaskRunner):
        return quote(input_ids)
    return input_ids
