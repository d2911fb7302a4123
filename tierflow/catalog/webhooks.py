"""Webhooks, their outbox of events, and each delivery attempt, in the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from tierflow.catalog.engine import rows_changed
from tierflow.catalog.schema import webhook_deliveries, webhook_events, webhooks


def create(session: Session, *, row: dict[str, Any]) -> None:
    """Add a webhook (`webhook_id`, `namespace_id`, `url`, `events`, `secret`, `created_at`)."""
    session.execute(insert(webhooks).values(**row))


def of_namespace(session: Session, *, namespace_id: str) -> list[dict[str, Any]]:
    """The namespace's webhooks, oldest first."""
    rows = session.execute(select(webhooks).where(webhooks.c.namespace_id == namespace_id)
                           .order_by(webhooks.c.created_at, webhooks.c.webhook_id)).mappings()
    return [dict(r) for r in rows]


def get(session: Session, *, webhook_id: str) -> dict[str, Any] | None:
    """The webhook, or None."""
    row = session.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id)).mappings().first()
    return None if row is None else dict(row)


def remove(session: Session, *, webhook_id: str) -> None:
    """Delete the webhook with its undelivered events and their attempts."""
    session.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))


def enqueue(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Put events in the outbox (`event_id`, `webhook_id`, `type`, `body`, `created_at`,
    `next_attempt_at`), in the caller's transaction."""
    if rows:
        session.execute(insert(webhook_events), list(rows))


def due(session: Session, *, now: str, limit: int) -> list[dict[str, Any]]:
    """Undelivered events whose next attempt is due, oldest first."""
    rows = session.execute(
        select(webhook_events, webhooks.c.url, webhooks.c.secret)
        .join(webhooks, webhooks.c.webhook_id == webhook_events.c.webhook_id)
        .where(webhook_events.c.next_attempt_at <= now).order_by(webhook_events.c.next_attempt_at).limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def claim(session: Session, *, event_id: str, webhook_id: str, seen: str, until: str) -> bool:
    """Take the event for one attempt: move its next attempt from `seen` to `until`, if no one
    else moved it first (a compare-and-set, so two servers do not both send it)."""
    return bool(rows_changed(session, update(webhook_events).where(
        webhook_events.c.event_id == event_id, webhook_events.c.webhook_id == webhook_id,
        webhook_events.c.next_attempt_at == seen).values(next_attempt_at=until)))


def record_attempt(session: Session, *, attempt: dict[str, Any], next_attempt_at: str | None,
                   delivered_at: str | None, gave_up_at: str | None) -> None:
    """Record one attempt (`event_id`, `webhook_id`, `attempt`, `attempted_at`, `status_code`,
    `error`, `duration_ms`) and what comes next: another attempt, or none (delivered, given up)."""
    session.execute(insert(webhook_deliveries).values(**attempt))
    session.execute(update(webhook_events).where(
        webhook_events.c.event_id == attempt["event_id"], webhook_events.c.webhook_id == attempt["webhook_id"])
        .values(attempts=attempt["attempt"], next_attempt_at=next_attempt_at, delivered_at=delivered_at,
                gave_up_at=gave_up_at))


def deliveries(session: Session, *, webhook_id: str, limit: int) -> list[dict[str, Any]]:
    """The webhook's latest delivery attempts, newest first, each with its event's type and state."""
    rows = session.execute(
        select(webhook_deliveries, webhook_events.c.type, webhook_events.c.delivered_at,
               webhook_events.c.gave_up_at)
        .join(webhook_events, (webhook_events.c.event_id == webhook_deliveries.c.event_id)
              & (webhook_events.c.webhook_id == webhook_deliveries.c.webhook_id))
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.attempted_at.desc(), webhook_deliveries.c.attempt.desc()).limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def pending_events(session: Session, *, webhook_id: str) -> list[dict[str, Any]]:
    """The webhook's events not yet delivered nor given up."""
    rows = session.execute(select(webhook_events).where(
        webhook_events.c.webhook_id == webhook_id, webhook_events.c.next_attempt_at.is_not(None))).mappings()
    return [dict(r) for r in rows]
