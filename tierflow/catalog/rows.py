"""The catalog's rows as they cross modules: typed, so a reader sees the fields a batch or a tier
has without opening the schema (tierflow/catalog/schema.py, which they mirror)."""

from __future__ import annotations

from typing import Any, TypedDict


class BatchRow(TypedDict):
    """A row of `batches`: one trigger's work, over every tier of its DAG."""

    batch_id: str
    namespace_id: str
    collection_id: str
    """The collection triggered (the DAG's root)."""
    collection_ids: list[str]
    """Every collection of the batch, in tier order."""
    status: str
    task_id: str | None
    """The trigger run's flow run id."""
    request: dict[str, Any]
    """The trigger request, as JSON."""
    source_bucket_ids: list[str]
    source_collection_ids: list[str]
    current_tier: int | None
    total_tiers: int
    dag_tiers: list[list[str]]
    """The collection ids of each tier."""
    object_count: int | None
    document_count: int | None
    failed_object_count: int
    error_summary: dict[str, Any] | None
    lease_owner: str | None
    lease_holder: str | None
    lease_expires_at: str | None
    lease_generation: int
    auto_resumes: int
    deleted_count: int
    new_count: int
    changed_count: int
    unchanged_count: int
    stale_count: int
    excluded_count: int
    documents_deleted_count: int
    created_at: str
    updated_at: str


class TierRow(TypedDict):
    """A row of `tier_tasks`: one tier of a batch, with its counters."""

    batch_id: str
    tier_num: int
    task_id: str | None
    """The tier subflow's flow run id."""
    parent_task_id: str | None
    status: str
    collection_ids: list[str]
    source_type: str
    source_collection_ids: list[str]
    started_at: str | None
    completed_at: str | None
    duration_ms: int | None
    errors: list[dict[str, Any]]
    error_summary: dict[str, Any] | None
    source_documents_fetched: int
    documents_after_source_filter: int
    documents_submitted_to_engine: int
    documents_written: int
    inputs_succeeded: int
    inputs_failed: int
    inputs_skipped: int
    inputs_known: int
    """Inputs in the tier's manifest so far (live; the ledger's count once the tier closed)."""
    inputs_done: int
    """Inputs that ended so far: succeeded, failed or skipped."""
    inputs_final: bool
    """Whether `inputs_known` is every input the tier will have (the step above has closed)."""
    first_done_at: str | None
    last_activity_at: str | None
