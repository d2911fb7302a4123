"""The trigger request and response (the contract's TriggerCollectionResponse).

These models are also the parameters of the `trigger-collection` flow, so their titles and
descriptions are what the Prefect UI's run form shows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tierflow.models.filters import checked_filter

MAX_SOURCES = 100
"""Buckets or collections one trigger may name."""
MAX_OBJECT_IDS = 10_000
"""Objects one trigger may name: the request travels as the flow run's parameters (512 KB at most)."""
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TriggerRequest(BaseModel):
    """Which inputs of the collection to process. Every field is optional."""

    model_config = ConfigDict(extra="forbid", title="Trigger request")

    include_buckets: list[Identifier] | None = Field(
        default=None, max_length=MAX_SOURCES,
        title="Include buckets",
        description="Only these source buckets (ids or names); bucket-sourced collections only.",
    )
    include_collections: list[Identifier] | None = Field(
        default=None, max_length=MAX_SOURCES,
        title="Include collections",
        description="Only these source collections (ids or names); collection-sourced collections only.",
    )
    object_ids: list[Identifier] | None = Field(
        default=None, max_length=MAX_OBJECT_IDS,
        title="Object ids",
        description="Only these objects (shorthand for object_id in [...]); bucket-sourced collections only.",
    )
    source_filters: dict[str, Any] | None = Field(
        default=None,
        title="Source filters",
        description=(
            'A LogicalOperator, e.g. {"AND": [{"field": "status", "operator": "eq", "value": "PENDING"}]}; '
            "combined with the collection's own filters by AND."
        ),
    )
    dedup_strategy: Literal["skip", "replace", "force"] | None = Field(
        default=None,
        title="Dedup strategy",
        description=(
            "Absent: upsert with a unique_key, create without. 'skip': leave out inputs this collection "
            "already processed at the same content (etag) and settings (its fingerprint), in every tier. "
            "'replace': delete the documents of "
            "each re-processed input and write its new ones, in one transaction per chunk. "
            "'force': process every selected input."
        ),
    )

    reconcile_deletes: bool | None = Field(
        default=None,
        title="Reconcile deletes",
        description=(
            "Objects the listing no longer finds are deleted with every document made from them, in "
            "every tier (the default, when the whole bucket is listed). false: leave them."
        ),
    )

    @field_validator("source_filters")
    @classmethod
    def _valid_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_filter(value)


class TriggerCollectionResponse(BaseModel):
    """What a trigger answers: the batch and the Prefect flow run (task) that runs it."""

    batch_id: str
    task_id: str
    collection_id: str
    total_tiers: int
    message: str
    source_bucket_ids: list[str] | None = None
    source_collection_ids: list[str] | None = None
    object_count: int | None = None
    document_count: int | None = None
    deleted_count: int | None = None
    """Objects found gone from their bucket, deleted with their documents in every tier."""
