"""Storage grants in the catalog: add, remove and list a namespace's granted S3 locations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from tierflow.catalog.schema import namespaces, storage_grants
from tierflow.errors import NotFoundError
from tierflow.grants import Location
from tierflow.ids import new_id
from tierflow.timestamps import now_text


def _matching(namespace_id: str, location: Location) -> Any:
    c = storage_grants.c
    endpoint = c.endpoint_url.is_(None) if location.endpoint_url is None else c.endpoint_url == location.endpoint_url
    return select(storage_grants).where(c.namespace_id == namespace_id, c.s3_bucket == location.s3_bucket,
                                        c.prefix == location.prefix, endpoint)


def add_grant(session: Session, *, namespace_id: str, location: Location) -> tuple[dict[str, Any], bool]:
    """Grant the location to the namespace; (the grant, whether it is new). Granting it again
    changes nothing (a new region replaces nothing either: revoke first)."""
    existing = session.execute(_matching(namespace_id, location)).mappings().first()
    if existing is not None:
        return dict(existing), False
    row = {"grant_id": new_id("grt"), "namespace_id": namespace_id, "s3_bucket": location.s3_bucket,
           "prefix": location.prefix, "endpoint_url": location.endpoint_url, "region": location.region,
           "created_at": now_text()}
    session.execute(insert(storage_grants).values(**row))
    return row, True


def remove_grant(session: Session, *, namespace_id: str, location: Location) -> dict[str, Any]:
    """Revoke the namespace's grant of exactly this location; NotFoundError when there is none."""
    existing = session.execute(_matching(namespace_id, location)).mappings().first()
    if existing is None:
        raise NotFoundError("storage grant", location.url(), scope=namespace_id)
    session.execute(delete(storage_grants).where(storage_grants.c.grant_id == existing["grant_id"]))
    return dict(existing)


def list_grants(session: Session, *, namespace_id: str | None = None) -> list[dict[str, Any]]:
    """Every grant (of one namespace, or of all), with its namespace's name, oldest first."""
    query = (select(storage_grants, namespaces.c.namespace_name)
             .join(namespaces, namespaces.c.namespace_id == storage_grants.c.namespace_id)
             .order_by(storage_grants.c.created_at, storage_grants.c.grant_id))
    if namespace_id is not None:
        query = query.where(storage_grants.c.namespace_id == namespace_id)
    return [dict(r) for r in session.execute(query).mappings()]


def granted_locations(session: Session, *, namespace_id: str) -> list[Location]:
    """The locations the namespace may reach."""
    return [Location.of(row) for row in list_grants(session, namespace_id=namespace_id)]
