"""Runtime settings, read from `TIERFLOW_*` environment variables.

Prefect's own settings stay Prefect's; AWS credentials stay where boto3 reads them (`AWS_*`).
`get_settings()` is cached so every layer sees one object; tests clear the cache to override.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def home() -> Path:
    """tierflow's own directory, `~/.tierflow`: where what it keeps on this machine lives by
    default (the catalog's SQLite file, embedding models, the database of `tierflow serve`'s local
    Prefect API), apart from Prefect's `~/.prefect`."""
    return Path.home() / ".tierflow"


def _default_database_url() -> str:
    return f"sqlite:///{home() / 'tierflow.db'}"


class Settings(BaseSettings):
    """Everything tierflow reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="TIERFLOW_", extra="ignore")

    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL of the catalog (SQLite file by default, PostgreSQL to share).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for buckets that name none (MinIO, a local S3, ...).",
    )
    s3_region: str | None = Field(default=None, description="Region for buckets that name none.")
    chunk_size: int = Field(
        default=200, ge=1, le=10_000, description="Inputs per Prefect task run, for tiers that read files."
    )
    document_chunk_size: int = Field(
        default=2500, ge=1, le=10_000,
        description="Inputs per Prefect task run, for tiers that read upstream documents (no I/O).",
    )
    chunk_concurrency: int = Field(
        default=4, ge=1, le=256,
        description="Chunk tasks of a tier that reads files running at once (they wait on S3).",
    )
    document_chunk_concurrency: int = Field(
        default=1, ge=1, le=256,
        description="Chunk tasks of a tier that reads upstream documents running at once (threads "
        "only add contention there; see flows/runners.py).",
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="What runs a tier's chunk tasks: threads of the flow's process, or a Dask cluster "
        "(needs the `dask` extra; see flows/runners.py).",
    )
    dask_address: str | None = Field(
        default=None, description="A running Dask scheduler (tcp://host:8786); none: a LocalCluster per tier."
    )
    dask_workers: int = Field(
        default=2, ge=1, le=256,
        description="Worker processes of the LocalCluster started without an address; with an address, "
        "how many of the scheduler's workers one tier keeps busy."
    )
    s3_max_attempts: int = Field(
        default=5, ge=1, le=20,
        description="Attempts per S3 request (botocore's standard retry mode backs off between them).",
    )
    s3_presigned_reads: bool = Field(
        default=True,
        description="GET objects through presigned URLs on a plain connection pool: about 35% less "
        "processor time per object than botocore's GetObject. Off: every GET goes through botocore, "
        "which also checks S3's checksums.",
    )
    io_concurrency: int = Field(
        default=16, ge=1, le=256,
        description="Concurrent S3 requests of one process, shared by every chunk running in it.",
    )
    trigger_deployment: str = Field(
        default="trigger-collection/trigger-collection",
        description="The Prefect deployment (flow/deployment) the REST API starts triggers through.",
    )
    runner_poll_seconds: int = Field(
        default=1, ge=1, le=600,
        description=(
            "How often `tierflow serve`'s runner asks the Prefect API for runs to start. Prefect's "
            "default, 10 s, is felt by every API trigger: the run waits up to that long to begin."
        ),
    )
    runner_start_seconds: float = Field(
        default=60, ge=0, le=600,
        description="How long a trigger sent while `tierflow serve`'s runner starts waits for it to register the "
        "deployments, before answering 503.",
    )
    discovery_head: Literal["auto", "always"] = Field(
        default="auto",
        description=(
            "HEAD each new object at discovery for its content type and user metadata: 'always', or "
            "'auto' (only for buckets whose schema declares fields besides the file; otherwise the "
            "GET that reads the file records them, which saves one request per object)."
        ),
    )
    discovery_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Keys per S3 listing page."
    )
    sqlite_memory_mb: int = Field(
        default=40, ge=1, le=65_536,
        description="Memory SQLite keeps in one process (page caches of every catalog connection): "
        "a soft limit, past which it reuses cache pages instead of growing with the catalog.",
    )

    max_request_bytes: int = Field(
        default=16 << 20, ge=1024, le=1 << 30,
        description="Largest REST request body accepted; a larger one is answered 413 before it is read.",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=128,
        description="Deepest nesting of objects and lists in a JSON field tierflow stores (metadata, extractor "
        "parameters, inline blobs, schema properties); deeper is answered 422, naming the field.",
    )
    max_object_bytes: int = Field(
        default=64 << 20, ge=1, le=1 << 40,
        description="Largest object a chunk reads; a larger one fails its input (category `resource`) unread.",
    )
    max_documents_per_input: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="Most documents one input may yield; more fails that input (category `resource`).",
    )
    max_image_pixels: int = Field(
        default=64_000_000, ge=1, le=1 << 34,
        description="Largest image (width × height) the image extractor decodes, at most Pillow's own bomb "
        "threshold (about 89 million); a larger one fails its input (category `resource`) before it is decoded.",
    )
    query_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="Time limit of a listing query (documents, objects); past it the request is answered 400.",
    )

    batch_lease_seconds: float = Field(
        default=60, ge=1, le=3600,
        description="How long a batch's run holds its lease without renewing it (it renews every third of "
        "this). A batch whose lease ran out is resumed by the next sweep.",
    )
    sweep_seconds: float = Field(
        default=15, ge=0.2, le=3600,
        description="How often `tierflow serve` and `tierflow deployments serve` look for batches whose "
        "lease ran out, to resume them.",
    )
    auto_resumes: int = Field(
        default=3, ge=0, le=100,
        description="How many times the sweep resumes a batch that ended FAILED from a transient cause "
        "(catalog, Prefect or S3 unreachable) with inputs still pending.",
    )
    shutdown_grace_seconds: float = Field(
        default=30, ge=0, le=3600,
        description="On SIGTERM, how long `tierflow serve` lets running batches finish before it stops "
        "them; what is left is resumed under the lease by the next server.",
    )

    event_debounce_seconds: float = Field(
        default=3, ge=0, le=3600,
        description="How long the REST API gathers the objects S3 events registered before it starts one batch "
        "per collection reading the bucket, for just those objects.",
    )

    stall_seconds: float = Field(
        default=300, ge=1, le=86400,
        description="A running batch in which no input ended for this long is shown as `stalled`.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks deliver to loopback, private and link-local addresses (off: a tenant's "
        "webhook could otherwise reach the operator's own network).",
    )
    webhook_max_age_seconds: float = Field(
        default=86400, ge=1, le=30 * 86400,
        description="How long a webhook event is retried (with backoff, up to a minute apart) before it is "
        "given up.",
    )
    webhook_poll_seconds: float = Field(
        default=0.5, ge=0.05, le=3600,
        description="How often `tierflow serve` looks for webhook events to deliver.",
    )

    models_dir: str = Field(
        default_factory=lambda: str(home() / "models"),
        description="Where embedding models on disk live; an embedding_extractor's model_path names a folder here.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` to re-read)."""
    return Settings()
