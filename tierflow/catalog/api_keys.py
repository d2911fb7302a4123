"""API keys in the catalog: rows by id, by id or name, all of them; revocation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.schema import api_keys


def add_key(session: Session, *, row: dict[str, Any]) -> None:
    session.execute(insert(api_keys).values(**row))


def all_keys(session: Session) -> list[dict[str, Any]]:
    """Every key's row, oldest first."""
    return [dict(r) for r in session.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()]


_KEY = select(api_keys).where(api_keys.c.key_id == bindparam("key_id"))
"""Built once: every request reads it."""


def find_key(session: Session, *, key_id: str) -> dict[str, Any] | None:
    row = session.execute(_KEY, {"key_id": key_id}).mappings().first()
    return dict(row) if row is not None else None


def find_key_by_id_or_name(session: Session, *, key: str) -> dict[str, Any] | None:
    row = session.execute(
        select(api_keys).where((api_keys.c.key_id == key) | (api_keys.c.name == key))).mappings().first()
    return dict(row) if row is not None else None


def set_revoked(session: Session, *, key_id: str, revoked_at: str) -> None:
    session.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=revoked_at))
