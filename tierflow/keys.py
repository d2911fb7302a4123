"""API keys: created once and shown once, stored as a hash, checked in constant time.

A key reads `tfk_<key id>_<secret>`. The key id finds the row; the secret is compared with
`hmac.compare_digest` against its stored SHA-256 (the secret is 32 random bytes, so a plain hash is
enough: there is nothing to brute-force). A key may be limited to some namespaces.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import api_keys as catalog_keys
from tierflow.catalog import resources
from tierflow.errors import AuthenticationError, ForbiddenError, NotFoundError
from tierflow.timestamps import now_text

_PREFIX = "tfk"
# Compared against when the key id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"tierflow-no-such-key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """An authenticated key: its id, name and the namespace ids it is limited to (None: all)."""

    key_id: str
    name: str
    namespaces: frozenset[str] | None

    @property
    def is_tenant(self) -> bool:
        """A key limited to namespaces is a tenant's: its storage is checked against grants. A key
        for every namespace is the operator's, trusted as the CLI on the server is."""
        return self.namespaces is not None

    def check_namespace(self, namespace_id: str) -> None:
        """Raise ForbiddenError unless this key may act in the namespace."""
        if self.namespaces is not None and namespace_id not in self.namespaces:
            raise ForbiddenError(f"API key '{self.name}' is not allowed in namespace '{namespace_id}'")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, *, name: str, namespaces: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """Store a new key (namespaces by id or name); return its record and the key, in clear, once."""
    namespace_ids = None
    if namespaces:
        namespace_ids = [resources.get_namespace(session, identifier=n)["namespace_id"] for n in namespaces]
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = {"key_id": key_id, "name": name, "secret_hash": _hash(secret), "namespaces": namespace_ids,
           "created_at": now_text(), "revoked_at": None}
    catalog_keys.add_key(session, row=row)
    return _public(row), f"{_PREFIX}_{key_id}_{secret}"


def list_keys(session: Session) -> list[dict[str, Any]]:
    """Every key's id, name, namespaces and dates (never the secret)."""
    return [_public(r) for r in catalog_keys.all_keys(session)]


def revoke_key(session: Session, *, key: str) -> dict[str, Any]:
    """Revoke a key by id or name; NotFoundError when there is none."""
    row = catalog_keys.find_key_by_id_or_name(session, key=key)
    if row is None:
        raise NotFoundError("API key", key)
    revoked = row["revoked_at"] or now_text()
    catalog_keys.set_revoked(session, key_id=row["key_id"], revoked_at=revoked)
    return _public({**row, "revoked_at": revoked})


def authenticate(session: Session, *, authorization: str | None) -> ApiKey:
    """The key of an `Authorization: Bearer …` header, or AuthenticationError."""
    if not authorization:
        raise AuthenticationError("missing Authorization header: send 'Authorization: Bearer <api key>'")
    scheme, _, token = authorization.strip().partition(" ")
    parts = token.strip().split("_", 2)
    if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != _PREFIX or not parts[2]:
        raise AuthenticationError("malformed Authorization header: expected 'Bearer tfk_<id>_<secret>'")
    _, key_id, secret = parts
    row = catalog_keys.find_key(session, key_id=key_id)
    stored = row["secret_hash"] if row is not None else _DUMMY_HASH
    matches = hmac.compare_digest(stored, _hash(secret))
    if row is None or not matches or row["revoked_at"] is not None:
        raise AuthenticationError("invalid or revoked API key")
    namespaces = row["namespaces"]
    return ApiKey(key_id=key_id, name=row["name"], namespaces=frozenset(namespaces) if namespaces is not None else None)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("key_id", "name", "namespaces", "created_at", "revoked_at")}
