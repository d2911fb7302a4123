"""The contract's request and response bodies that are not already core models.

Definitions (`NamespaceSpec`, `BucketSpec`, `CollectionSpec`), the trigger request and response
and `ObjectSpec` live in the core, where `tierflow apply`, the flows and the API share them;
these models describe the rest, so `/openapi.json` and `/docs` show every field by its name.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tierflow.models.definitions import FeatureExtractorSpec, StorageBinding, UniqueKey
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerRequest

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Strict):
    limit: int = Field(default=20, ge=1, le=1000, description="Results per page.")
    offset: int = Field(default=0, ge=0, le=1_000_000_000, description="Results to skip.")


class FilteredPage(Page):
    filters: dict[str, Any] | None = Field(default=None, description="A LogicalOperator.")
    sort: dict[str, Any] | list[Any] | None = Field(
        default=None, description="Accepted for compatibility; results come in a stable order (key, then id).")


class SearchRequest(Strict):
    query_text: str | None = Field(default=None, min_length=1, max_length=4096,
                                   description="Text to embed with the collection's own model.")
    query_vector: list[float] | None = Field(default=None, min_length=1, max_length=4096,
                                             description="A vector of the collection's dimension.")
    limit: int = Field(default=10, ge=1, le=1000, description="Results to return, nearest first.")
    filters: dict[str, Any] | None = Field(default=None,
                                           description="A LogicalOperator applied before ranking (pre-filter).")


class SearchResponse(BaseModel):
    results: list[dict[str, Any]] = Field(description="Documents, each with its `score` (cosine similarity).")
    mode: str = Field(description="How the search was answered: `exact` (every candidate compared).")


class BatchListRequest(Page):
    status: Status | None = Field(default=None, description="Only batches in this status.")


class RetryRequest(Strict):
    retry_mode: Literal["transient_only", "all"] = Field(
        default="all", description="Retry every failed input, or only those that failed transiently.")
    tier_nums: list[int] | None = Field(default=None, max_length=64,
                                        description="Only these tiers (default: every tier).")


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool


class ListResponse(BaseModel, Generic[T]):
    results: list[T]
    pagination: Pagination


class Namespace(BaseModel):
    namespace_id: str
    namespace_name: str
    description: str | None
    created_at: str
    updated_at: str


class SyncStatus(BaseModel):
    last_checked_at: str = Field(description="When the scheduled listing last checked the bucket.")
    last_change_at: str | None = Field(description="When a check last found something to do (and started batches).")
    changed: bool = Field(description="Whether the last check found something to do.")


class Bucket(BaseModel):
    bucket_id: str
    bucket_name: str
    description: str | None
    bucket_schema: dict[str, Any]
    unique_key: UniqueKey | None
    metadata: dict[str, Any]
    storage: StorageBinding | None
    sync: dict[str, Any] | None = None
    sync_status: SyncStatus | None = None
    object_count: int
    created_at: str
    updated_at: str


class StoredObject(BaseModel):
    object_id: str
    bucket_id: str
    key_prefix: str | None
    blobs: list[dict[str, Any]]
    metadata: dict[str, Any]
    status: str
    key: str | None = None
    size_bytes: int | None = None
    etag: str | None = None
    content_type: str | None = None
    last_modified: str | None = None
    created_at: str
    updated_at: str


class Collection(BaseModel):
    collection_id: str
    collection_name: str
    description: str | None
    source: dict[str, Any]
    feature_extractor: FeatureExtractorSpec
    output_schema: dict[str, Any]
    tier: int
    document_count: int
    enabled: bool
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Document(BaseModel):
    """A document: its id, its collection, its own fields, and `_internal` bookkeeping."""

    model_config = ConfigDict(extra="allow")
    document_id: str
    collection_id: str


class TierProgress(BaseModel):
    """How far a tier is, from counters its commits keep (a few row reads, never a count)."""

    processed: int = Field(description="Inputs ended so far: succeeded, failed or skipped.")
    total: int = Field(description="Inputs known so far.")
    total_final: bool = Field(description="Whether `total` is final: discovery or the tier above has closed.")
    rate_per_second: float = Field(description="Inputs ended per second since the tier began.")
    eta_seconds: float | None = Field(description="Seconds left at that rate; null until it can be estimated.")


class TierTask(BaseModel):
    tier_num: int
    task_id: str | None
    status: str
    collection_ids: list[str]
    source_type: str
    source_collection_ids: list[str]
    parent_task_id: str | None
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
    progress: TierProgress | None = Field(default=None, description="Live progress (tierflow's addition).")


class Batch(BaseModel):
    batch_id: str
    namespace_id: str
    bucket_id: str | None
    collection_ids: list[str]
    status: str
    object_ids: list[str] | None
    task_id: str | None
    current_tier: int | None
    total_tiers: int
    dag_tiers: list[list[str]]
    tier_tasks: list[TierTask]
    error_summary: dict[str, Any] | None
    failed_object_count: int
    object_count: int | None
    document_count: int | None
    created_at: str
    updated_at: str
    # tierflow's additions (optional in the contract's sense):
    collection_names: dict[str, str] = Field(default_factory=dict, description="Names of collection_ids.")
    failed_inputs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The failed inputs (first 100): input_id, collection_id, tier_num, error, and "
        "attempts (the errors of earlier tries, when the input was retried).")
    audit: dict[str, Any] = Field(
        default_factory=dict, description="inputs = succeeded + failed + skipped (+ cancelled); lost must be 0; "
        "deleted: objects found gone from their bucket, deleted with their documents; excluded: inputs that "
        "left a collection's filters, whose documents went in every tier below; documents_deleted: all "
        "documents the batch deleted.")
    changes: dict[str, int] = Field(
        default_factory=dict, description="What the batch found: new, changed and unchanged objects listed, inputs "
        "redone because their collection's settings changed (stale), objects deleted, inputs excluded by a "
        "filter since, documents deleted.")
    deleted_count: int = Field(default=0,
                               description="Objects this batch found gone and deleted, with their documents.")
    last_activity_at: str | None = Field(default=None, description="When an input last ended, or the batch changed.")
    stalled: bool = Field(default=False, description="Running, with nothing ended for TIERFLOW_STALL_SECONDS.")


class Task(BaseModel):
    task_id: str
    task_type: str
    status: str
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    additional_data: dict[str, Any]
    error: dict[str, Any] | None


class RetryResponse(BaseModel):
    batch_id: str
    task_id: str = Field(description="The Prefect flow run that re-runs the failed inputs.")
    retried_inputs: int
    message: str


class ExtractorInfo(BaseModel):
    feature_extractor_name: str
    version: str
    description: str
    input_types: list[str]
    inputs: dict[str, str]
    position_fields: list[str]
    parameters_schema: dict[str, Any]
    output_schema: dict[str, Any]


class Deleted(BaseModel):
    success: bool = True
    message: str


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    success: Literal[False] = False
    status: int
    error: ErrorDetail


class WebhookRequest(Strict):
    url: str = Field(max_length=2048, description="Where to POST events: http(s), public addresses only.")
    events: list[Literal["batch.completed", "batch.completed_with_errors", "batch.failed", "batch.canceled",
                         "tier.completed"]] = Field(min_length=1, max_length=5, description="Which events to send.")
    secret: str | None = Field(default=None, min_length=16, max_length=255,
                               description="The HMAC-SHA256 key of X-Tierflow-Signature; made up when absent.")


class Webhook(BaseModel):
    webhook_id: str
    namespace_id: str
    url: str
    events: list[str]
    created_at: str
    secret: str | None = Field(default=None, description="Shown once, in the answer that created the webhook.")


class WebhookDelivery(BaseModel):
    event_id: str
    type: str
    attempt: int
    attempted_at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered_at: str | None
    gave_up_at: str | None


class TriggerBody(TriggerRequest):
    """The trigger request, and whether to only say what it would do."""

    dry_run: bool = Field(default=False, description="Answer 200 with what the trigger would do; do none of it.")


class DryRun(BaseModel):
    dry_run: bool = True
    complete: bool = Field(description="False when the listing was cut at 100,000 objects: counts cover those.")
    collection_id: str
    tiers: list[dict[str, Any]] = Field(description="Each tier's number, collection ids, expected_documents and "
                                                  "expected_documents_exact.")
    objects: dict[str, int] = Field(description="The listing, classed as discovery would: listed, new, changed, "
                                              "unchanged, and deleted (found gone, where deletions are reconciled).")
    selected: dict[str, int] = Field(description="Objects the filters select, by action: new, changed and unchanged "
                                               "(processed), skipped (`dedup_strategy: skip`, already current).")
    inputs_to_process: int
    bytes_to_read: int
    expected_documents: list[int | None] = Field(
        description="Documents each tier would write, from each collection's history (null: no history).")
    expected_documents_exact: list[bool] | None = Field(
        default=None, description="Per tier: false when its figure is an upper bound (a filter below the root "
                                  "reads fields only extraction makes; see `collections[].reason`).")
    collections: list[dict[str, Any]] | None = Field(
        default=None, description="Per collection: collection_id, collection_name, reads (the upstream collection "
                                  "ids it reads), expected_inputs, expected_documents, expected_documents_exact, "
                                  "reason (why an upper bound, else null).")
