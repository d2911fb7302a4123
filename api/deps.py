"""Route dependencies: the caller's key and the namespace it acts in; the catalog session.

`CurrentKey` authenticates `Authorization: Bearer …` (401); `NamespaceDep` resolves
`X-Namespace` or `?namespace=` by id or name (400 missing, 404 unknown) and checks that the key
may act there (403). Routes then stay a few lines each.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tierflow.browse import page_of
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.errors import BadRequestError
from tierflow.keys import ApiKey, authenticate
from tierflow.settings import get_settings


def catalog() -> AbstractContextManager[Session]:
    """A catalog session in one transaction; routes open it themselves so that it commits
    before the answer is sent, not after (as a dependency with `yield` would)."""
    return open_session(get_settings().database_url)


def current_key(
    authorization: Annotated[str | None, Header(description="Bearer <api key>")] = None,
) -> ApiKey:
    with catalog() as session:
        return authenticate(session, authorization=authorization)


CurrentKey = Annotated[ApiKey, Depends(current_key)]


@dataclass(frozen=True)
class Caller:
    """Who asks and in which namespace, as the request says (nothing checked yet)."""

    authorization: str | None
    namespace: str | None


async def caller(
    authorization: Annotated[str | None, Header(description="Bearer <api key>")] = None,
    x_namespace: Annotated[str | None, Header(description="Namespace id (ns_…) or name.")] = None,
    namespace: Annotated[str | None, Query(description="Namespace id or name, when no X-Namespace header.")] = None,
) -> Caller:
    # Async: it reads only the request, so it costs no trip to a worker thread.
    return Caller(authorization=authorization, namespace=x_namespace or namespace)


CallerDep = Annotated[Caller, Depends(caller)]


def namespace_of(who: Caller) -> dict[str, Any]:
    """The namespace `who` acts in, after checking its key (401) and that the key may act there
    (403); 400 without a namespace, 404 for an unknown one. One catalog session."""
    with catalog() as session:
        return namespace_in(session, who)


def namespace_in(session: Session, who: Caller) -> dict[str, Any]:
    """`namespace_of`, read in this session (a route that reads more in the same one)."""
    key = authenticate(session, authorization=who.authorization)
    if not who.namespace:
        raise BadRequestError("namespace missing: send the X-Namespace header or ?namespace=",
                              details={"field": "X-Namespace"})
    row = resources.get_namespace(session, identifier=who.namespace)
    key.check_namespace(row["namespace_id"])
    return row


async def current_namespace(who: CallerDep) -> dict[str, Any]:
    # One trip to a worker thread for the key and the namespace together: each trip costs more
    # than their two indexed reads, and a route of its own makes one more.
    return await run_in_threadpool(namespace_of, who)


NamespaceDep = Annotated[dict[str, Any], Depends(current_namespace)]


def list_in_namespace(kind: str, namespace_id: str, limit: int, offset: int,
                      view: Callable[[Session, list[dict[str, Any]]], list[dict[str, Any]]]) -> dict[str, Any]:
    """One page of a namespace's buckets or collections, as the contract shows them."""
    with catalog() as session:
        rows, total = resources.list_page(session, kind=kind, namespace_id=namespace_id, limit=limit, offset=offset)
        return page_of(view(session, rows), total=total, limit=limit, offset=offset)
