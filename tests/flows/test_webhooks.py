"""Webhooks: an event per batch and tier written in the transaction that closes it, delivered
signed, tried again with backoff until a 2xx or its maximum age, every attempt recorded; URLs
that would reach the operator's own network refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
)
from tierflow import webhooks
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import webhook_events
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.settings import get_settings

SECRET = "s3cr3t-of-sixteen-or-more"


class Receiver:
    """An HTTP endpoint (as an httpx transport) that answers the events of type `failing` with
    the statuses it is given, in turn, and everything else with 200; keeps every request."""

    def __init__(self, *statuses: int, failing: str = "batch.completed") -> None:
        self.statuses, self.failing = list(statuses), failing
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if json.loads(request.content)["type"] == self.failing and self.statuses:
            return httpx.Response(self.statuses.pop(0))
        return httpx.Response(200)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def _namespace_id(catalog: str, name: str = "hooks") -> str:
    with open_session(catalog) as session:
        return str(resources.get_namespace(session, identifier=name)["namespace_id"])


@pytest.fixture
def world(flows, catalog, tmp_path, monkeypatch) -> dict[str, Any]:
    monkeypatch.setenv("TIERFLOW_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3")
    apply_definitions(tmp_path, {"namespace": "hooks", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks")]})
    return {"namespace_id": _namespace_id(catalog), "catalog": catalog}


def _due_now(catalog: str) -> None:
    """Make every waiting event due (instead of waiting out its backoff)."""
    with open_session(catalog) as session:
        session.execute(update(webhook_events).where(webhook_events.c.next_attempt_at.is_not(None))
                        .values(next_attempt_at="2000-01-01T00:00:00.000000+00:00"))


def test_a_batch_sends_one_signed_event_per_webhook_tried_again_after_500s(world):
    hook = webhooks.create_webhook(namespace_id=world["namespace_id"], url="http://receiver.test/hook",
                                   events=["batch.completed", "tier.completed"], secret=SECRET)
    batch_id = trigger("hooks", "chunks")["batch_id"]
    receiver = Receiver(500, 500)
    with receiver.client() as client:
        delivered = webhooks.deliver_due(client)
        _due_now(world["catalog"])
        delivered += webhooks.deliver_due(client)
        _due_now(world["catalog"])
        delivered += webhooks.deliver_due(client)
        assert webhooks.deliver_due(client) == 0  # nothing left
    assert delivered == 3  # two tiers, one batch
    bodies = [json.loads(r.content) for r in receiver.requests]
    completed = [b for b in bodies if b["type"] == "batch.completed"]
    assert len(completed) == 3 and len({b["event_id"] for b in completed}) == 1  # tried again: the same event
    assert sorted(b["tier_num"] for b in bodies if b["type"] == "tier.completed") == [0, 1]
    event = completed[-1]
    assert event["data"]["batch_id"] == batch_id and event["data"]["status"] == "COMPLETED"
    assert event["namespace_id"] == world["namespace_id"] and event["data"]["tier_tasks"][1]["documents_written"] == 2
    for request in receiver.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), request.content, hashlib.sha256).hexdigest()
        assert request.headers["X-Tierflow-Signature"] == expected
        assert request.headers["X-Tierflow-Event-Id"] == json.loads(request.content)["event_id"]
    attempts = webhooks.webhook_deliveries(world["namespace_id"], hook["webhook_id"])
    assert sorted((a["status_code"], a["delivered_at"] is not None) for a in attempts) == [
        (200, True), (200, True), (200, True), (500, True), (500, True)]


def test_an_event_is_given_up_after_its_maximum_age(world, monkeypatch):
    hook = webhooks.create_webhook(namespace_id=world["namespace_id"], url="http://receiver.test/hook",
                                   events=["batch.completed"], secret=None)
    assert len(hook["secret"]) >= 16  # made up, shown once
    assert "secret" not in webhooks.list_webhooks(world["namespace_id"])[0]
    trigger("hooks", "chunks")
    monkeypatch.setenv("TIERFLOW_WEBHOOK_MAX_AGE_SECONDS", "1")
    get_settings.cache_clear()
    with open_session(world["catalog"]) as session:
        session.execute(update(webhook_events).values(created_at="2000-01-01T00:00:00.000000+00:00"))
    with Receiver(503, 503).client() as client:
        assert webhooks.deliver_due(client) == 0
        _due_now(world["catalog"])
        assert webhooks.deliver_due(client) == 0
    with open_session(world["catalog"]) as session:
        row = session.execute(select(webhook_events)).mappings().one()
    assert row["gave_up_at"] is not None and row["next_attempt_at"] is None and row["attempts"] == 1


def test_webhook_urls_that_reach_private_addresses_are_refused(world, monkeypatch):
    monkeypatch.setenv("TIERFLOW_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://[::1]/x",
                "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(BadRequestError, match="private, loopback or reserved") as refused:
            webhooks.create_webhook(namespace_id=world["namespace_id"], url=url, events=["batch.completed"],
                                    secret=None)
        assert refused.value.details["field"] == "url"
    for url in ("ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/"):
        with pytest.raises(BadRequestError, match="url:"):
            webhooks.create_webhook(namespace_id=world["namespace_id"], url=url, events=["batch.completed"],
                                    secret=None)
    with pytest.raises(BadRequestError, match="events: expected"):
        webhooks.create_webhook(namespace_id=world["namespace_id"], url="http://1.1.1.1/", events=["batch.done"],
                                secret=None)


def test_a_webhook_of_another_namespace_is_not_found(world, tmp_path):
    apply_definitions(tmp_path, {"namespace": "other", "buckets": [], "collections": []}, name="other.yaml")
    hook = webhooks.create_webhook(namespace_id=world["namespace_id"], url="http://receiver.test/",
                                   events=["batch.failed"], secret=None)
    other = _namespace_id(world["catalog"], "other")
    for call in (lambda: webhooks.delete_webhook(other, hook["webhook_id"]),
                 lambda: webhooks.webhook_deliveries(other, hook["webhook_id"])):
        with pytest.raises(NotFoundError):
            call()
    assert webhooks.list_webhooks(other) == []
    webhooks.delete_webhook(world["namespace_id"], hook["webhook_id"])
    assert webhooks.list_webhooks(world["namespace_id"]) == []
