"""The FastAPI application: routers, error handlers, and the OpenAPI description."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.models import ErrorResponse
from api.routes import batches, buckets, collections, health, namespaces, webhooks

_ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 500)}


def create_app() -> FastAPI:
    """The REST API (the contract's endpoints under /v1; OpenAPI at /openapi.json, docs at /docs)."""
    app = FastAPI(
        title="tierflow",
        version="1",
        description="Turn objects in S3 buckets into documents through a DAG of collections, run by Prefect. "
                    "Every request needs `Authorization: Bearer <api key>`; resources live in the namespace "
                    "named by `X-Namespace` (or `?namespace=`).",
        responses=_ERRORS,
    )
    for module in (health, namespaces, buckets, collections, batches, webhooks):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    return app
