"""Webhooks: an event per batch and tier written in the transaction that closes it, delivered
signed, tried again with backoff until a 2xx or its maximum age, every attempt recorded; URLs
that would reach the operator's own network refused, at registration and at each attempt, which
connects to the address it checked (a name rebound to loopback after the check reaches nothing)."""

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
PUBLIC = "1.2.3.4"


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
        with pytest.raises(BadRequestError, match="its host resolves to .*, an? (loopback|private|link-local) address") as refused:
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


def _public_hook(world: dict[str, Any], url: str, monkeypatch) -> dict[str, Any]:
    """A webhook registered as a tenant would, private addresses refused (its name must resolve publicly)."""
    monkeypatch.setenv("TIERFLOW_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    return webhooks.create_webhook(namespace_id=world["namespace_id"], url=url, events=["batch.completed"],
                                   secret=SECRET)


def test_a_name_rebound_to_loopback_after_the_check_reaches_only_the_checked_address(world, network, listen,
                                                                                     monkeypatch):
    receiver, internal = listen(), listen()
    network.answer("rebind.test", [PUBLIC], [PUBLIC], ["127.0.0.1"])  # registration, the attempt, then loopback
    network.route(PUBLIC, internal.port, receiver)
    _public_hook(world, f"http://rebind.test:{internal.port}/hook", monkeypatch)
    batch_id = trigger("hooks", "chunks")["batch_id"]
    with webhooks.delivery_client() as client:
        assert webhooks.deliver_due(client) == 1
    assert internal.requests == []
    assert network.asked.count("rebind.test") == 2  # once to register, once to deliver: never again to connect
    [request] = receiver.requests
    assert json.loads(request["body"])["data"]["batch_id"] == batch_id
    assert request["headers"]["Host"] == f"rebind.test:{internal.port}"
    assert request["headers"]["X-Tierflow-Signature"] == webhooks.sign(SECRET, request["body"])


def test_each_attempt_resolves_the_name_again_and_checks_it(world, network, listen, monkeypatch):
    receiver, internal = listen((500, {})), listen()
    network.answer("rebind.test", [PUBLIC], [PUBLIC], ["127.0.0.1"])
    network.route(PUBLIC, internal.port, receiver)
    hook = _public_hook(world, f"http://rebind.test:{internal.port}/hook", monkeypatch)
    trigger("hooks", "chunks")
    with webhooks.delivery_client() as client:
        assert webhooks.deliver_due(client) == 0  # the receiver answers 500
        _due_now(world["catalog"])
        assert webhooks.deliver_due(client) == 0  # the name now resolves to loopback: refused
    assert len(receiver.requests) == 1 and internal.requests == []
    assert network.asked.count("rebind.test") == 3
    attempts = webhooks.webhook_deliveries(world["namespace_id"], hook["webhook_id"])
    assert [(a["status_code"], a["error"]) for a in attempts] == [
        (None, "url: its host rebind.test resolves to 127.0.0.1, a loopback address; not contacted"),
        (500, "answered 500")]
    with open_session(world["catalog"]) as session:
        assert session.execute(select(webhook_events.c.next_attempt_at)).scalar_one() is not None  # tried again


def test_an_attempt_to_a_name_that_now_resolves_privately_is_refused_and_recorded(world, network, monkeypatch):
    network.answer("hook.test", [PUBLIC])
    hook = _public_hook(world, "http://hook.test/hook", monkeypatch)
    trigger("hooks", "chunks")
    refused = {"127.0.0.1": "a loopback address", "224.0.0.1": "a multicast address",
               "::ffff:7f00:1": "an address embedding 127.0.0.1, a loopback address",
               "64:ff9b::a9fe:a9fe": "an address embedding 169.254.169.254, a link-local address",
               "2002:a00:1::1": "an address embedding 10.0.0.1, a private address",
               "192.0.0.8": "a non-public address", "fec0::1": "a non-public address"}
    with webhooks.delivery_client() as client:
        for address in refused:
            network.answer("hook.test", [PUBLIC, address])  # every address the name gives is checked
            _due_now(world["catalog"])
            assert webhooks.deliver_due(client) == 0
    errors = [a["error"] for a in webhooks.webhook_deliveries(world["namespace_id"], hook["webhook_id"])]
    assert errors[::-1] == [f"url: its host hook.test resolves to {address}, {reason}; not contacted"
                            for address, reason in refused.items()]
    assert [c for c in network.connected if c[1] == 80] == []


def test_a_redirect_is_not_followed_even_by_a_client_that_would(world, network, listen, monkeypatch):
    internal = listen()
    receiver = listen((307, {"Location": f"http://127.0.0.1:{internal.port}/stolen"}))
    network.answer("hook.test", [PUBLIC])
    network.route(PUBLIC, receiver.port, receiver)
    hook = _public_hook(world, f"http://hook.test:{receiver.port}/hook", monkeypatch)
    trigger("hooks", "chunks")
    with httpx.Client(follow_redirects=True) as client:
        assert webhooks.deliver_due(client) == 0
    assert len(receiver.requests) == 1 and internal.requests == []
    [attempt] = webhooks.webhook_deliveries(world["namespace_id"], hook["webhook_id"])
    assert (attempt["status_code"], attempt["error"]) == (307, "answered 307")
