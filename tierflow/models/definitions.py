"""What users define: namespaces, buckets (an S3 location + schema) and collections.

The same models serve `tierflow apply` (YAML) and the REST API (JSON), with the contract's field
names. Sources may name buckets and collections by id or by name; the catalog resolves them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tierflow.models.filters import checked_filter
from tierflow.models.nesting import JsonObject, extras_within_depth
from tierflow.urls import http_url

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NamespaceSpec(Strict):
    """A namespace: the scope of every other resource."""

    namespace_name: str = Field(pattern=_NAME, description="Unique name of the namespace.")
    description: str | None = None


class StorageBinding(Strict):
    """Where a bucket's objects live in S3 (tierflow's `storage` extension of the contract)."""

    s3_bucket: str = Field(min_length=3, max_length=63, description="The S3 bucket name.")
    prefix: str = Field(default="", max_length=1024, description="Only keys under this prefix belong here.")
    endpoint_url: str | None = Field(default=None, max_length=2048, description="S3-compatible endpoint.")
    region: str | None = Field(default=None, max_length=64)

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        # Checked here, not at the first listing: a bad one would fail every batch of the bucket.
        if value:
            http_url(value.strip())
        return value


class UniqueKey(Strict):
    """Fields that identify an object; re-processing then upserts its documents."""

    fields: list[str] = Field(min_length=1, max_length=16)
    default_policy: Literal["insert", "update", "upsert"] | None = Field(
        default=None,
        description="What registering an object whose key exists does when the request names no policy.",
    )


class PropertySchema(BaseModel):
    """One property of a bucket schema (`type` plus whatever else the user documents)."""

    model_config = ConfigDict(extra="allow")
    type: str

    @model_validator(mode="after")
    def _shallow(self) -> PropertySchema:
        extras_within_depth(self.model_extra)
        return self


class BucketSchema(Strict):
    properties: dict[str, PropertySchema] = Field(default_factory=dict)


class SyncSpec(Strict):
    """How often the bucket is listed to follow its S3 location, for stores that cannot send
    event notifications."""

    interval_seconds: int = Field(ge=10, le=31_536_000, description="Seconds between two listings (10 at least).")


class BucketSpec(Strict):
    """A bucket: a named source of objects bound to an S3 location."""

    bucket_name: str = Field(pattern=_NAME)
    description: str | None = None
    bucket_schema: BucketSchema = Field(default_factory=BucketSchema)
    unique_key: UniqueKey | None = None
    metadata: JsonObject = Field(default_factory=dict)
    storage: StorageBinding | None = None
    sync: SyncSpec | None = Field(default=None, description="List the bucket on this schedule and process what "
                                  "changed (new, changed and deleted objects) in every collection reading it.")


class SourceFilters(Strict):
    filters: dict[str, Any] = Field(description="A LogicalOperator.")

    @field_validator("filters")
    @classmethod
    def _check(cls, value: dict[str, Any]) -> dict[str, Any]:
        checked_filter(value)
        return value


class SourceSpec(Strict):
    """Where a collection reads from: buckets (tier 0) or upstream collections (tier N)."""

    type: Literal["bucket", "collection"]
    bucket_ids: list[str] | None = Field(default=None, max_length=100)
    collection_ids: list[str] | None = Field(default=None, max_length=100)
    collection_id: str | None = None
    source_filters: SourceFilters | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if self.collection_id:
            self.collection_ids = [*(self.collection_ids or []), self.collection_id]
            self.collection_id = None
        if self.type == "bucket":
            if not self.bucket_ids or self.collection_ids:
                raise ValueError("a source of type 'bucket' names bucket_ids (and no collections)")
        elif not self.collection_ids or self.bucket_ids:
            raise ValueError("a source of type 'collection' names collection_ids (and no buckets)")
        return self

    @property
    def ids(self) -> list[str]:
        return list(self.bucket_ids or self.collection_ids or [])


class FieldPassthrough(Strict):
    source_path: str
    target_path: str | None = None
    required: bool = False


class FeatureExtractorSpec(Strict):
    """The one extractor of a collection, with its parameters and mappings."""

    feature_extractor_name: str
    version: str = "v1"
    parameters: JsonObject = Field(default_factory=dict)
    input_mappings: dict[str, str] = Field(default_factory=dict)
    field_passthrough: list[FieldPassthrough] = Field(default_factory=list, max_length=256)
    include_all_source_fields: bool = False


class CollectionSpec(Strict):
    """A collection: one source and one feature extractor."""

    collection_name: str = Field(pattern=_NAME)
    description: str | None = None
    source: SourceSpec
    feature_extractor: FeatureExtractorSpec
    enabled: bool = True
    metadata: JsonObject = Field(default_factory=dict)
