"""The catalog's tables (SQLAlchemy Core).

Timestamps are stored as canonical UTC text (see `tierflow.timestamps`) so that filters compare
them the same way in SQL and in Python. JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import false

JsonType = JSON().with_variant(JSONB(), "postgresql")
Stamp = String(40)

metadata = MetaData()


def _stamps() -> list[Column]:
    return [Column("created_at", Stamp, nullable=False), Column("updated_at", Stamp, nullable=False)]


namespaces = Table(
    "namespaces",
    metadata,
    Column("namespace_id", String(64), primary_key=True),
    Column("namespace_name", String(255), nullable=False, unique=True),
    Column("description", Text),
    *_stamps(),
)

buckets = Table(
    "buckets",
    metadata,
    Column("bucket_id", String(64), primary_key=True),
    Column("namespace_id", ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), nullable=False),
    Column("bucket_name", String(255), nullable=False),
    Column("description", Text),
    Column("bucket_schema", JsonType, nullable=False),
    Column("unique_key", JsonType),
    Column("metadata", JsonType, nullable=False),
    Column("storage", JsonType),
    # Defined with a tenant's key: its storage must stay inside a grant of its namespace.
    Column("tenant_defined", Boolean, nullable=False, server_default=false()),
    # Listed on a schedule (`{"interval_seconds": N}`), last claimed at `synced_at`; the last
    # check done at `sync_checked_at`, the last that found something to do at `sync_changed_at`.
    Column("sync", JsonType),
    Column("synced_at", Stamp),
    Column("sync_checked_at", Stamp),
    Column("sync_changed_at", Stamp),
    *_stamps(),
    UniqueConstraint("namespace_id", "bucket_name"),
)

objects = Table(
    "objects",
    metadata,
    Column("object_id", String(64), primary_key=True),
    Column("bucket_id", ForeignKey("buckets.bucket_id", ondelete="CASCADE"), nullable=False),
    Column("namespace_id", String(64), nullable=False),
    Column("key", Text),
    Column("key_prefix", Text),
    Column("size_bytes", BigInteger),
    Column("etag", String(128)),
    Column("content_type", String(255)),
    Column("last_modified", Stamp),
    Column("metadata", JsonType, nullable=False),
    Column("blobs", JsonType, nullable=False),
    Column("status", String(32), nullable=False),
    *_stamps(),
    Index("ix_objects_bucket_status", "bucket_id", "status"),
    Index("ix_objects_bucket_key", "bucket_id", "key"),
)

collections = Table(
    "collections",
    metadata,
    Column("collection_id", String(64), primary_key=True),
    Column("namespace_id", ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), nullable=False),
    Column("collection_name", String(255), nullable=False),
    Column("description", Text),
    Column("source", JsonType, nullable=False),
    Column("feature_extractor", JsonType, nullable=False),
    Column("output_schema", JsonType, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("metadata", JsonType, nullable=False),
    *_stamps(),
    UniqueConstraint("namespace_id", "collection_name"),
)

documents = Table(
    "documents",
    metadata,
    Column("document_id", String(64), primary_key=True),
    Column("collection_id", ForeignKey("collections.collection_id", ondelete="CASCADE"), nullable=False),
    Column("namespace_id", String(64), nullable=False),
    Column("batch_id", String(64)),
    Column("root_object_id", String(64)),
    Column("source_id", String(64), nullable=False),
    Column("fields", JsonType, nullable=False),
    Column("lineage", JsonType, nullable=False),
    *_stamps(),
    Index("ix_documents_collection_batch", "collection_id", "batch_id"),
    Index("ix_documents_source", "collection_id", "source_id"),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("namespace_id", String(64), nullable=False, index=True),
    Column("collection_id", String(64), nullable=False),
    Column("collection_ids", JsonType, nullable=False),
    Column("status", String(32), nullable=False),
    Column("task_id", String(64)),
    Column("request", JsonType, nullable=False),
    Column("source_bucket_ids", JsonType, nullable=False),
    Column("source_collection_ids", JsonType, nullable=False),
    Column("current_tier", Integer),
    Column("total_tiers", Integer, nullable=False),
    Column("dag_tiers", JsonType, nullable=False),
    Column("object_count", Integer),
    Column("document_count", Integer),
    Column("failed_object_count", Integer, nullable=False, default=0),
    Column("error_summary", JsonType),
    # The run working on the batch holds its lease (tierflow.leases): its flow run id, the process
    # that runs it, until when, and how many runs have held it (chunks claim inputs by that number).
    Column("lease_owner", String(64)),
    Column("lease_holder", String(255)),
    Column("lease_expires_at", Stamp),
    Column("lease_generation", Integer, nullable=False, server_default="0"),
    Column("auto_resumes", Integer, nullable=False, server_default="0"),
    # Objects the batch found gone from their bucket, whose documents it deleted in every tier.
    Column("deleted_count", Integer, nullable=False, server_default="0"),
    # What the batch's listings found (new, changed, unchanged objects) and the inputs it redid
    # because their collection's settings changed (stale).
    Column("new_count", Integer, nullable=False, server_default="0"),
    Column("changed_count", Integer, nullable=False, server_default="0"),
    Column("unchanged_count", Integer, nullable=False, server_default="0"),
    Column("stale_count", Integer, nullable=False, server_default="0"),
    # Inputs that left a collection's filters (what it made of them deleted, in every tier below),
    # and every document the batch deleted: of objects gone, of inputs left out, of inputs redone.
    Column("excluded_count", Integer, nullable=False, server_default="0"),
    Column("documents_deleted_count", Integer, nullable=False, server_default="0"),
    *_stamps(),
    Index("ix_batches_lease_expires_at", "lease_expires_at"),
)

tier_tasks = Table(
    "tier_tasks",
    metadata,
    Column("batch_id", ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True),
    Column("tier_num", Integer, primary_key=True),
    Column("task_id", String(64)),
    Column("parent_task_id", String(64)),
    Column("status", String(32), nullable=False),
    Column("collection_ids", JsonType, nullable=False),
    Column("source_type", String(16), nullable=False),
    Column("source_collection_ids", JsonType, nullable=False),
    Column("started_at", Stamp),
    Column("completed_at", Stamp),
    Column("duration_ms", Integer),
    Column("errors", JsonType, nullable=False),
    Column("error_summary", JsonType),
    Column("source_documents_fetched", Integer, nullable=False, default=0),
    Column("documents_after_source_filter", Integer, nullable=False, default=0),
    Column("documents_submitted_to_engine", Integer, nullable=False, default=0),
    Column("documents_written", Integer, nullable=False, default=0),
    Column("inputs_succeeded", Integer, nullable=False, default=0),
    Column("inputs_failed", Integer, nullable=False, default=0),
    Column("inputs_skipped", Integer, nullable=False, default=0),
    # Live progress, kept by the commits that change it (tierflow/progress.py): inputs in the
    # manifest so far, inputs ended, whether every input is known (the step above closed).
    Column("inputs_known", Integer, nullable=False, server_default="0"),
    Column("inputs_done", Integer, nullable=False, server_default="0"),
    Column("inputs_final", Boolean, nullable=False, server_default=false()),
    Column("first_done_at", Stamp),
    Column("last_activity_at", Stamp),
)

# The batch manifest and per-input ledger: one row per (batch, collection, input).
batch_inputs = Table(
    "batch_inputs",
    metadata,
    Column("batch_id", ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True),
    Column("collection_id", String(64), primary_key=True),
    Column("input_id", String(64), primary_key=True),
    Column("tier_num", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("documents_written", Integer, nullable=False, default=0),
    Column("error", JsonType),
    # The lease generation of the run whose chunk claimed the input; earlier failures of a retried input.
    Column("claim", Integer),
    Column("attempts", JsonType),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_batch_inputs_status", "batch_id", "collection_id", "status", "input_id", "documents_written"),
)

# What each collection made from each input: the input's version and the collection's
# fingerprint when it was processed, and how many documents it made. "Pending" for a collection
# means no row here, or one whose version or fingerprint is not the input's or collection's now.
collection_inputs = Table(
    "collection_inputs",
    metadata,
    Column("collection_id", ForeignKey("collections.collection_id", ondelete="CASCADE"), primary_key=True),
    Column("input_id", String(64), primary_key=True),
    Column("input_version", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("documents", Integer, nullable=False),
    Column("processed_at", Stamp, nullable=False),
)

# The newest S3 event applied to each object (created or removed), by its `sequencer`: an event
# repeated, or older than one applied, changes nothing.
object_events = Table(
    "object_events",
    metadata,
    Column("object_id", String(64), primary_key=True),
    Column("sequencer", String(64), nullable=False),
    Column("removed", Boolean, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)

# API keys: only a hash of the secret is stored; `namespaces` (ids) limits a key when not null.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("namespaces", JsonType),
    Column("created_at", Stamp, nullable=False),
    Column("revoked_at", Stamp),
)

# One row per Idempotency-Key of a namespace: the request's fingerprint and the first answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("namespace_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", JsonType),
    Column("created_at", Stamp, nullable=False),
)

# Every flow run that worked on a batch (the first trigger run, then retries and resumes), so
# the latest one can be found: a batch whose latest run crashed is resumed.
batch_runs = Table(
    "batch_runs",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("batch_id", ForeignKey("batches.batch_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Stamp, nullable=False),
)

# S3 locations the operator granted to a namespace: the only places a tenant's buckets and
# registered objects may name. `endpoint_url` null: the server's default endpoint.
storage_grants = Table(
    "storage_grants",
    metadata,
    Column("grant_id", String(64), primary_key=True),
    Column("namespace_id", ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("s3_bucket", String(63), nullable=False),
    Column("prefix", Text, nullable=False),
    Column("endpoint_url", Text),
    Column("region", String(64)),
    Column("created_at", Stamp, nullable=False),
)

# Searchable vectors of documents (an extractor's `vector_field`), float32 bytes, written in the
# transaction that writes their documents and deleted with them.
document_vectors = Table(
    "document_vectors",
    metadata,
    Column("document_id", ForeignKey("documents.document_id", ondelete="CASCADE"), primary_key=True),
    Column("collection_id", String(64), nullable=False, index=True),
    Column("vector", LargeBinary, nullable=False),
)

# One row per collection with vectors: `version` moves with every write, so a process that keeps
# the collection's vectors in memory knows when to read them again.
vector_sets = Table(
    "vector_sets",
    metadata,
    Column("collection_id", ForeignKey("collections.collection_id", ondelete="CASCADE"), primary_key=True),
    Column("field", String(128), nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
)

# Webhooks (tierflow/webhooks.py): where a namespace wants its batches' events POSTed.
webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    Column("namespace_id", ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    Column("events", JsonType, nullable=False),
    Column("secret", String(255), nullable=False),
    Column("created_at", Stamp, nullable=False),
)

# The outbox: one row per (event, webhook), written in the transaction that closes the batch or
# tier, so an event outlives a process that dies before delivering it.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("webhook_id", ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("next_attempt_at", Stamp, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("delivered_at", Stamp),
    Column("gave_up_at", Stamp),
)

# Every attempt at delivering an event (`GET /v1/webhooks/{id}/deliveries`).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("webhook_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", Stamp, nullable=False),
    Column("status_code", Integer),
    Column("error", String(500)),
    Column("duration_ms", Integer, nullable=False),
    ForeignKeyConstraint(["event_id", "webhook_id"], ["webhook_events.event_id", "webhook_events.webhook_id"],
                         ondelete="CASCADE"),
)
