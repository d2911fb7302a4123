"""Runtime settings, read from `TIERFLOW_*` environment variables.

Prefect's own settings stay Prefect's; AWS credentials stay where boto3 reads them (`AWS_*`).
`get_settings()` is cached so every layer sees one object; tests clear the cache to override.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    home = Path.home() / ".tierflow"
    return f"sqlite:///{home / 'tierflow.db'}"


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
        default=200, ge=1, le=10_000, description="Inputs per Prefect task run."
    )
    chunk_concurrency: int = Field(
        default=4, ge=1, le=256,
        description="Chunk tasks of one tier running at once (more only queue on the catalog's writes).",
    )
    s3_max_attempts: int = Field(
        default=5, ge=1, le=20,
        description="Attempts per S3 request (botocore's standard retry mode backs off between them).",
    )
    io_concurrency: int = Field(
        default=16, ge=1, le=256, description="Concurrent S3 requests inside one chunk."
    )
    trigger_deployment: str = Field(
        default="trigger-collection/trigger-collection",
        description="The Prefect deployment (flow/deployment) the REST API starts triggers through.",
    )
    discovery_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Keys per S3 listing page."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` to re-read)."""
    return Settings()
