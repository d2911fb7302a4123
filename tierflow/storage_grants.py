"""The operator's commands on storage grants (`tierflow storage grant|revoke|list`), each one
transaction on the catalog; what a grant allows is `tierflow.grants`."""

from __future__ import annotations

from typing import Any

from tierflow.catalog import grants as catalog_grants
from tierflow.catalog.engine import open_session
from tierflow.catalog.resources import get_namespace
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.grants import Location, grant_location
from tierflow.settings import get_settings

DEFAULT_ENDPOINT = "default"
"""What `--endpoint-url` says for a grant through the server's own endpoint (`storage list`: "(default)")."""


def grant_storage(*, namespace: str, location: str, endpoint_url: str | None = None,
                  region: str | None = None) -> tuple[Location, str, bool]:
    """Grant `s3://BUCKET[/PREFIX]` to the namespace (id or name): (the location as granted, the
    namespace's name, whether the grant is new)."""
    granted = grant_location(location, endpoint_url=endpoint_url, region=region)
    with open_session(get_settings().database_url) as session:
        ns = get_namespace(session, identifier=namespace)
        _, new = catalog_grants.add_grant(session, namespace_id=ns["namespace_id"], location=granted)
    return granted, ns["namespace_name"], new


class GrantNotFoundError(NotFoundError):
    """No grant of the namespace is the one asked for: the message says which was looked for and
    lists those there are, so the operator can ask again by what `storage list` shows."""

    def __init__(self, wanted: Location, through: str, namespace: str, granted: list[Location]) -> None:
        super().__init__("storage grant", wanted.url(), scope=namespace)
        listed = "; ".join(shown(g) for g in granted) or "none"
        self.message = f"{self.message} (looked for it through {through}); its grants: {listed}"
        self.args = (self.message,)


def shown(grant: Location) -> str:
    """A grant as `storage list` shows it: its location and endpoint."""
    return f"{grant.url()} endpoint {grant.endpoint_url or '(default)'}"


def revoke_storage(*, namespace: str, location: str, endpoint_url: str | None = None) -> tuple[Location, str]:
    """Revoke the namespace's grant of `s3://BUCKET[/PREFIX]`, found as `storage list` shows it:
    the one grant of that location, whatever its endpoint, or with `endpoint_url` the one reached
    through it (`default`: the server's). GrantNotFoundError when there is none; BadRequestError
    when grants of the location differ only by endpoint and none is named."""
    any_endpoint = endpoint_url is None
    asked = None if endpoint_url in (None, DEFAULT_ENDPOINT, "(default)") else endpoint_url
    wanted = grant_location(location, endpoint_url=asked)
    with open_session(get_settings().database_url) as session:
        ns = get_namespace(session, identifier=namespace)
        granted = catalog_grants.granted_locations(session, namespace_id=ns["namespace_id"])
        matches = [g for g in granted if (g.s3_bucket, g.prefix) == (wanted.s3_bucket, wanted.prefix)
                   and (any_endpoint or g.endpoint_url == wanted.endpoint_url)]
        if not matches:
            through = "any endpoint" if any_endpoint else (wanted.endpoint_url or "the default endpoint")
            raise GrantNotFoundError(wanted, through, ns["namespace_name"], granted)
        if len(matches) > 1:
            raise BadRequestError(
                f"namespace '{ns['namespace_name']}' has {len(matches)} grants of {wanted.url()}: "
                f"{'; '.join(shown(g) for g in matches)}; name one with --endpoint-url "
                f"(`{DEFAULT_ENDPOINT}` for the default endpoint)", details={"field": "endpoint_url"})
        catalog_grants.remove_grant(session, namespace_id=ns["namespace_id"], location=matches[0])
    return matches[0], ns["namespace_name"]


def list_storage_grants(*, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every grant, or one namespace's, with the namespace's name."""
    with open_session(get_settings().database_url) as session:
        namespace_id = get_namespace(session, identifier=namespace)["namespace_id"] if namespace else None
        return catalog_grants.list_grants(session, namespace_id=namespace_id)
