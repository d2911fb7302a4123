"""`/v1/namespaces`: create, read, list and delete namespaces (no X-Namespace needed)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentKey, catalog
from api.models import Deleted, ListResponse, Namespace, Page
from tierflow import definitions
from tierflow.browse import page_of
from tierflow.catalog import resources
from tierflow.errors import ForbiddenError
from tierflow.models.definitions import NamespaceSpec
from tierflow.views import namespace_views

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


@router.post("", response_model=Namespace)
def create_namespace(spec: NamespaceSpec, key: CurrentKey) -> dict:
    """Create a namespace (409 when the name is taken). Keys limited to namespaces cannot."""
    if key.is_tenant:
        raise ForbiddenError(f"API key '{key.name}' is limited to some namespaces and cannot create one")
    with catalog() as session:
        return namespace_views([definitions.create_namespace(session, spec=spec)])[0]


@router.post("/list", response_model=ListResponse[Namespace])
def list_namespaces(key: CurrentKey, page: Page | None = None) -> dict:
    """The namespaces this key may see."""
    page = page or Page()
    with catalog() as session:
        rows, total = resources.list_page(session, kind="namespace", namespace_id=None,
                                          namespace_ids=key.namespaces, limit=page.limit, offset=page.offset)
    return page_of(namespace_views(rows), total=total, limit=page.limit, offset=page.offset)


@router.get("/{identifier}", response_model=Namespace)
def get_namespace(identifier: str, key: CurrentKey) -> dict:
    with catalog() as session:
        row = resources.get_namespace(session, identifier=identifier)
    key.check_namespace(row["namespace_id"])
    return namespace_views([row])[0]


@router.delete("/{identifier}", response_model=Deleted)
def delete_namespace(identifier: str, key: CurrentKey) -> dict:
    """Delete a namespace and everything in it (files in S3 are left alone). Operators only: the
    namespace holds the grants a tenant's key works within."""
    if key.is_tenant:
        raise ForbiddenError(f"API key '{key.name}' is limited to some namespaces and cannot delete one")
    with catalog() as session:
        row = resources.get_namespace(session, identifier=identifier)
        key.check_namespace(row["namespace_id"])
        resources.delete_namespace(session, namespace_id=row["namespace_id"])
    return {"success": True, "message": f"namespace '{row['namespace_name']}' deleted"}
