"""The operator's commands on storage grants (`tierflow storage grant|revoke|list`), each one
transaction on the catalog; what a grant allows is `tierflow.grants`."""

from __future__ import annotations

from typing import Any

from tierflow.catalog import grants as catalog_grants
from tierflow.catalog.engine import open_session
from tierflow.catalog.resources import get_namespace
from tierflow.grants import Location, grant_location
from tierflow.settings import get_settings


def grant_storage(*, namespace: str, location: str, endpoint_url: str | None = None,
                  region: str | None = None) -> tuple[Location, str, bool]:
    """Grant `s3://BUCKET[/PREFIX]` to the namespace (id or name): (the location as granted, the
    namespace's name, whether the grant is new)."""
    granted = grant_location(location, endpoint_url=endpoint_url, region=region)
    with open_session(get_settings().database_url) as session:
        ns = get_namespace(session, identifier=namespace)
        _, new = catalog_grants.add_grant(session, namespace_id=ns["namespace_id"], location=granted)
    return granted, ns["namespace_name"], new


def revoke_storage(*, namespace: str, location: str, endpoint_url: str | None = None) -> tuple[Location, str]:
    """Revoke the namespace's grant of exactly that location (NotFoundError when there is none)."""
    granted = grant_location(location, endpoint_url=endpoint_url)
    with open_session(get_settings().database_url) as session:
        ns = get_namespace(session, identifier=namespace)
        catalog_grants.remove_grant(session, namespace_id=ns["namespace_id"], location=granted)
    return granted, ns["namespace_name"]


def list_storage_grants(*, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every grant, or one namespace's, with the namespace's name."""
    with open_session(get_settings().database_url) as session:
        namespace_id = get_namespace(session, identifier=namespace)["namespace_id"] if namespace else None
        return catalog_grants.list_grants(session, namespace_id=namespace_id)
