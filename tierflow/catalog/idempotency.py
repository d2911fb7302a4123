"""Idempotency keys in the catalog: claim a key, read its claim, store or drop its answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.schema import idempotency_keys
from tierflow.timestamps import now_text


def _key(namespace_id: str, key: str) -> ColumnElement[bool]:
    return (idempotency_keys.c.namespace_id == namespace_id) & (idempotency_keys.c.key == key)


def claim_key(session: Session, *, namespace_id: str, key: str, fingerprint: str) -> None:
    """Insert the key's claim (no answer yet); IntegrityError when it is already claimed."""
    session.execute(insert(idempotency_keys).values(namespace_id=namespace_id, key=key, fingerprint=fingerprint,
                                                    response=None, created_at=now_text()))


def read_claim(session: Session, *, namespace_id: str, key: str) -> dict[str, Any]:
    """The key's row: its request's fingerprint and its answer (None while the work starts)."""
    return dict(session.execute(select(idempotency_keys).where(_key(namespace_id, key))).mappings().one())


def store_answer(session: Session, *, namespace_id: str, key: str, response: dict[str, Any]) -> None:
    session.execute(update(idempotency_keys).where(_key(namespace_id, key)).values(response=response))


def drop_claim(session: Session, *, namespace_id: str, key: str) -> None:
    session.execute(delete(idempotency_keys).where(_key(namespace_id, key)))
