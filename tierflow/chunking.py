"""Cutting a tier's inputs into chunks: how large, read from the ledger a chunk at a time, or cut
as they arrive from the tier above."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.catalog.rows import BatchRow
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings


def reads_files(batch: BatchRow, tier_num: int) -> bool:
    """Whether this tier's chunks read files from S3 (the root tier of a bucket-sourced batch)."""
    return tier_num == 0 and bool(batch["source_bucket_ids"])


def _chunk_size(batch: BatchRow, tier_num: int) -> int:
    settings = get_settings()
    return settings.chunk_size if reads_files(batch, tier_num) else settings.document_chunk_size


@dataclass(frozen=True)
class TierShape:
    """How a tier's inputs are cut and run."""

    chunk_size: int
    """Inputs per chunk: `chunk_size` for chunks that read files, `document_chunk_size` (larger,
    so Prefect's per-task cost stays small beside them) for chunks of upstream documents."""
    reads_files: bool
    """Whether its chunks read files from S3 (the root tier of a bucket-sourced batch)."""


@catalog_retries
def tier_shape(*, batch_id: str, tier_num: int) -> TierShape:
    """How this tier of the batch cuts and runs its inputs."""
    with open_session(get_settings().database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    return TierShape(chunk_size=_chunk_size(batch, tier_num), reads_files=reads_files(batch, tier_num))


def chunk_plan(*, batch_id: str, tier_num: int) -> Iterator[tuple[str, list[str]]]:
    """(collection id, input ids) for every chunk of a tier's pending inputs (see `TierShape`),
    read from the ledger a chunk at a time as the caller asks: a tier resumed with a million
    pending inputs holds one chunk's ids, not a million."""
    settings = get_settings()
    with open_session(settings.database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
    size = _chunk_size(batch, tier_num)
    for collection_id in batch["dag_tiers"][tier_num]:
        for ids in catalog_batches.iter_input_chunks(
            settings.database_url, batch_id=batch_id, collection_id=collection_id, size=size
        ):
            yield collection_id, ids


class ChunkCutter:
    """Cuts inputs that arrive bit by bit (an upstream tier's chunks as they end) into chunks of
    `size`. It keeps only the inputs of chunks not yet full, so a tier of a million inputs costs
    no more memory than a tier of a thousand; that each input comes once is the manifest's work
    (`select_new_inputs` returns only what it added).

    A collection's first chunk is a tenth of `size` (for sizes of 20 and more): its documents
    commit after a few reads instead of after the reads of every chunk running beside it, which
    is what the first document waited for (bench/pipeline.py), at the cost of one more task run.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.first_size = size // 10 if size >= 20 else size
        self._open: dict[str, list[str]] = {}
        self._started: set[str] = set()

    def add(self, collection_id: str, input_ids: list[str]) -> list[tuple[str, list[str]]]:
        """Take these inputs; return the chunks they complete."""
        buffer = self._open.setdefault(collection_id, [])
        buffer.extend(input_ids)
        full: list[tuple[str, list[str]]] = []
        while True:
            size = self.size if collection_id in self._started else self.first_size
            if len(buffer) < size:
                return full
            full.append((collection_id, buffer[:size]))
            del buffer[:size]
            self._started.add(collection_id)

    def rest(self) -> list[tuple[str, list[str]]]:
        """The last, partial chunk of each collection (when no more inputs will come)."""
        rest = [(cid, ids) for cid, ids in self._open.items() if ids]
        self._open = {}
        self._started.update(cid for cid, _ in rest)
        return rest
