"""Webhooks: a namespace asks to be called when its batches (or their tiers) end.

Events are written to an outbox in the transaction that closes the batch or the tier, so none is
lost if the process dies before delivering it; a deliverer (`deliver_due`, run by `tierflow
serve`) POSTs each one, signed with the webhook's secret, and tries again with backoff until an
answer in 2xx or `TIERFLOW_WEBHOOK_MAX_AGE_SECONDS`. Every attempt is recorded.

A webhook's URL is a stranger's: it must be http(s) and resolve to public addresses only (checked
when it is registered; each delivery attempt resolves it once more, checks every address and
connects to one of those, tierflow/pinned_http.py; no redirect is followed), unless the operator
sets `TIERFLOW_WEBHOOK_ALLOW_PRIVATE=true`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from tierflow import pinned_http
from tierflow.batch_view import batch_view_in
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import webhooks as catalog_webhooks
from tierflow.catalog.engine import open_session
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.ids import new_id
from tierflow.models.status import Status
from tierflow.settings import get_settings
from tierflow.timestamps import format_timestamp, now_text, utcnow
from tierflow.urls import http_url

EVENTS = ("batch.completed", "batch.completed_with_errors", "batch.failed", "batch.canceled", "tier.completed")
BATCH_EVENTS = {Status.COMPLETED.value: "batch.completed",
                Status.COMPLETED_WITH_ERRORS.value: "batch.completed_with_errors",
                Status.FAILED.value: "batch.failed", Status.CANCELED.value: "batch.canceled"}
MAX_WEBHOOKS = 20
"""Webhooks one namespace may have: each event is written once per webhook."""
SIGNATURE_HEADER, EVENT_HEADER = "X-Tierflow-Signature", "X-Tierflow-Event-Id"
TIMEOUT_SECONDS = 5.0
"""How long one delivery waits for an answer."""
CLAIM_SECONDS = 15.0
"""How long an attempt holds its event: a deliverer that died mid-attempt is replaced after it."""


def _public_error(url: str, reason: str) -> BadRequestError:
    return BadRequestError(f"url: {reason}", details={"field": "url", "url": url[:200]})


def check_url(url: str) -> str:
    """The URL, if a webhook may call it: http or https, a host, and (unless the operator allows
    private addresses) every address it resolves to public. BadRequestError naming `url` if not."""
    try:
        parts = http_url(url)
    except ValueError as error:
        raise _public_error(url, str(error)) from None
    if parts.username or parts.password:
        raise _public_error(url, "credentials in the URL are not accepted; use the webhook's secret")
    if get_settings().webhook_allow_private:
        return url
    try:
        addresses = pinned_http.resolve(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as error:
        raise _public_error(url, f"its host does not resolve ({type(error).__name__})") from error
    for address in addresses:
        reason = pinned_http.refusal(ipaddress.ip_address(address))
        if reason:  # the same rule as every delivery's (tierflow.pinned_http)
            raise _public_error(url, f"its host resolves to {address}, {reason} (the operator may allow those: "
                                     "TIERFLOW_WEBHOOK_ALLOW_PRIVATE)")
    return url


def _view(row: dict[str, Any], *, secret: str | None = None) -> dict[str, Any]:
    view = {"webhook_id": row["webhook_id"], "namespace_id": row["namespace_id"], "url": row["url"],
            "events": row["events"], "created_at": row["created_at"]}
    return {**view, "secret": secret} if secret is not None else view


def create_webhook(*, namespace_id: str, url: str, events: list[str], secret: str | None) -> dict[str, Any]:
    """Register a webhook for these events of the namespace; the view, with the secret (made up
    when none is given: it is shown this once)."""
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise BadRequestError(f"events: expected one or more of {', '.join(EVENTS)}"
                              + (f"; unknown: {', '.join(unknown[:5])}" if unknown else ""),
                              details={"field": "events"})
    check_url(url)
    secret = secret or secrets.token_urlsafe(24)
    row = {"webhook_id": new_id("whk"), "namespace_id": namespace_id, "url": url,
           "events": sorted(set(events)), "secret": secret, "created_at": now_text()}
    with open_session(get_settings().database_url) as session:
        if len(catalog_webhooks.of_namespace(session, namespace_id=namespace_id)) >= MAX_WEBHOOKS:
            raise BadRequestError(f"a namespace has at most {MAX_WEBHOOKS} webhooks; delete one first",
                                  details={"field": "url"})
        catalog_webhooks.create(session, row=row)
    return _view(row, secret=secret)


def list_webhooks(namespace_id: str) -> list[dict[str, Any]]:
    """The namespace's webhooks (without their secrets)."""
    with open_session(get_settings().database_url) as session:
        return [_view(r) for r in catalog_webhooks.of_namespace(session, namespace_id=namespace_id)]


def _owned(session: Session, namespace_id: str, webhook_id: str) -> dict[str, Any]:
    row = catalog_webhooks.get(session, webhook_id=webhook_id)
    if row is None or row["namespace_id"] != namespace_id:  # another namespace's is not found either
        raise NotFoundError("webhook", webhook_id)
    return row


def delete_webhook(namespace_id: str, webhook_id: str) -> None:
    """Delete the namespace's webhook, with the events it has not delivered."""
    with open_session(get_settings().database_url) as session:
        _owned(session, namespace_id, webhook_id)
        catalog_webhooks.remove(session, webhook_id=webhook_id)


def webhook_deliveries(namespace_id: str, webhook_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The webhook's latest delivery attempts, newest first."""
    with open_session(get_settings().database_url) as session:
        _owned(session, namespace_id, webhook_id)
        return catalog_webhooks.deliveries(session, webhook_id=webhook_id, limit=limit)


def enqueue(session: Session, *, batch_id: str, event_type: str, tier_num: int | None = None) -> None:
    """Write the event, with the batch as `GET /v1/batches/{id}` shows it now (and, for
    `tier.completed`, the tier's number), to the outbox of every webhook of the batch's namespace
    that wants it, in the caller's transaction."""
    namespace_id = catalog_batches.get_batch(session, batch_id=batch_id)["namespace_id"]
    wanting = [w for w in catalog_webhooks.of_namespace(session, namespace_id=namespace_id)
               if event_type in w["events"]]
    if not wanting:
        return  # most batches: no view to build
    view = batch_view_in(session, batch_id)
    now = now_text()
    event_id = new_id("evt")
    event: dict[str, Any] = {"event_id": event_id, "type": event_type, "created_at": now,
                             "namespace_id": view["namespace_id"], "data": view}
    if tier_num is not None:
        event["tier_num"] = tier_num
    body = json.dumps(event, separators=(",", ":"), default=str)
    catalog_webhooks.enqueue(session, rows=[
        {"event_id": event_id, "webhook_id": w["webhook_id"], "type": event_type, "body": body, "created_at": now,
         "next_attempt_at": now} for w in wanting])


def sign(secret: str, body: bytes) -> str:
    """The `X-Tierflow-Signature` of a body: `sha256=` and the hex HMAC-SHA256 of it with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_seconds(attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1, 2, 4 … up to 60 s)."""
    return float(min(60, 2 ** (attempt - 1)))


def deliver_due(client: httpx.Client, *, limit: int = 50) -> int:
    """Attempt every event that is due, once; how many were delivered."""
    settings = get_settings()
    now = utcnow()
    with open_session(settings.database_url) as session:
        events = catalog_webhooks.due(session, now=format_timestamp(now), limit=limit)
    delivered = 0
    for event in events:
        with open_session(settings.database_url) as session:
            if not catalog_webhooks.claim(session, event_id=event["event_id"], webhook_id=event["webhook_id"],
                                          seen=event["next_attempt_at"],
                                          until=format_timestamp(now + timedelta(seconds=CLAIM_SECONDS))):
                continue  # another deliverer has it
        delivered += _attempt(client, event)
    return delivered


def _attempt(client: httpx.Client, event: dict[str, Any]) -> bool:
    """POST the event once and record how it went; whether it was delivered."""
    settings = get_settings()
    body = event["body"].encode()
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        answer = pinned_http.post(client, event["url"], content=body, allow_private=settings.webhook_allow_private,
                                  headers={"Content-Type": "application/json",
                                           SIGNATURE_HEADER: sign(event["secret"], body),
                                           EVENT_HEADER: event["event_id"], "User-Agent": "tierflow-webhooks"})
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"answered {status}"
    except pinned_http.AddressRefusedError as refused:  # nothing was sent
        error = refused.message[:500]
    except httpx.HTTPError as failed:
        error = f"{type(failed).__name__}"
    now = utcnow()
    attempt = event["attempts"] + 1
    ok = error is None
    expired = (now - datetime.fromisoformat(event["created_at"])).total_seconds() >= settings.webhook_max_age_seconds
    with open_session(settings.database_url) as session:
        catalog_webhooks.record_attempt(
            session,
            attempt={"event_id": event["event_id"], "webhook_id": event["webhook_id"], "attempt": attempt,
                     "attempted_at": format_timestamp(now), "status_code": status, "error": error,
                     "duration_ms": int((time.perf_counter() - started) * 1000)},
            next_attempt_at=None if ok or expired else format_timestamp(
                now + timedelta(seconds=backoff_seconds(attempt))),
            delivered_at=format_timestamp(now) if ok else None,
            gave_up_at=format_timestamp(now) if expired and not ok else None)
    return ok


def delivery_client() -> httpx.Client:
    """The HTTP client deliveries use: short timeouts, and what `pinned_http.new_client` leaves out
    (redirects, proxies from the environment, cookies)."""
    return pinned_http.new_client(timeout=TIMEOUT_SECONDS)
