"""A trigger's Prefect clients retry a busy API (503 without `Retry-After`) within a second, then
fall back to Prefect's own backoff; a `Retry-After` the API sends is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.context import AsyncClientContext, SyncClientContext

from flows.clients import (
    QUICK_RETRIES,
    SPREAD,
    ask_for_quick_retry,
    retry_busy_api_soon,
    share_tls_contexts,
    shared_prefect_client,
)

API = "http://prefect.test/api"


def _answers(*statuses: int, retry_after: str | None = None) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering each request with the next status (the last one repeats)."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status = statuses[min(len(seen), len(statuses)) - 1]
        headers = {"Retry-After": retry_after} if retry_after and status == 503 else {}
        return httpx.Response(status, json={"detail": "hi"}, headers=headers)

    return httpx.MockTransport(handle), seen


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits Prefect's client makes between tries, recorded instead of slept."""
    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr("prefect.client.base.time.sleep", recorded.append)
    monkeypatch.setattr("prefect.client.base.anyio.sleep", async_sleep)
    return recorded


def _sync_client(transport: httpx.MockTransport) -> SyncPrefectClient:
    return SyncPrefectClient(API, httpx_settings={"transport": transport})


def test_first_503s_are_retried_within_a_second(waits: list[float]) -> None:
    transport, seen = _answers(503, 503, 200)
    client = _sync_client(transport)
    retry_busy_api_soon(client)
    retry_busy_api_soon(client)  # once only
    with client:
        assert client.hello().status_code == 200
    assert len(seen) == 3
    # Each asks for its quick wait spread by SPREAD; Prefect adds up to 20% (its default jitter)
    # to a wait the server asked for, never less.
    low, high = SPREAD
    assert [quick * low - 1e-3 <= wait <= quick * high * 1.2 + 1e-3
            for quick, wait in zip(QUICK_RETRIES[:2], waits, strict=True)] == [True, True]


def test_without_the_hook_prefect_waits_seconds(waits: list[float]) -> None:
    transport, _ = _answers(503, 200)
    with _sync_client(transport) as client:
        client.hello()
    assert waits and waits[0] >= 1.5


def test_an_api_that_stays_busy_gets_prefects_backoff_after_the_quick_tries(waits: list[float]) -> None:
    transport, seen = _answers(503)
    client = _sync_client(transport)
    retry_busy_api_soon(client)
    with client, pytest.raises(httpx.HTTPStatusError):
        client.hello()
    quick = len(QUICK_RETRIES)
    assert len(seen) == len(waits)  # Prefect also waits once after its last try
    assert max(waits[:quick]) <= QUICK_RETRIES[-1] * SPREAD[1] * 1.2 + 1e-3
    assert min(waits[quick:]) >= 2 ** (quick + 1) * 0.5  # Prefect's 2**try, give or take its jitter


def test_a_retry_after_from_the_api_is_kept(waits: list[float]) -> None:
    transport, _ = _answers(503, 200, retry_after="7")
    client = _sync_client(transport)
    retry_busy_api_soon(client)
    with client:
        client.hello()
    assert waits and waits[0] >= 7


def test_the_async_client_retries_soon_too(waits: list[float]) -> None:
    transport, seen = _answers(503, 200)
    client = PrefectClient(API, httpx_settings={"transport": transport})
    retry_busy_api_soon(client)

    async def call() -> int:
        async with client:
            return (await client.hello()).status_code

    assert asyncio.run(call()) == 200
    assert len(seen) == 2 and waits and waits[0] <= 0.2


def test_a_flows_clients_both_get_the_hook(prefect_harness: None) -> None:
    @flow
    async def body() -> list[Any]:
        with shared_prefect_client() as context:
            hooked = [context.client._client, AsyncClientContext.get().client._client]
            assert SyncClientContext.get() is context
            return [any("quick_retry" in getattr(h, "__name__", "") for h in c.event_hooks["response"])
                    for c in hooked]

    assert asyncio.run(body()) == [True, True]


def test_requests_refused_together_are_not_asked_back_together() -> None:
    # Tier subflows are created at once; refused at once and retried after the same wait, they
    # were refused together again.
    first_waits = []
    for _ in range(20):
        response = httpx.Response(503, request=httpx.Request("POST", f"{API}/task_runs/"))
        ask_for_quick_retry(response)
        first_waits.append(float(response.headers["Retry-After"]))
    low, high = SPREAD
    assert all(QUICK_RETRIES[0] * low <= wait <= QUICK_RETRIES[0] * high for wait in first_waits)
    assert len(set(first_waits)) > 1


def test_prefect_clients_made_after_sharing_load_the_certificates_once() -> None:
    # Fails when Prefect's client module no longer makes its SSL contexts through its `ssl`.
    import prefect.client.orchestration as orchestration

    original = orchestration.ssl
    try:
        assert share_tls_contexts() and share_tls_contexts()  # a second call changes nothing
        clients = [SyncPrefectClient(API), SyncPrefectClient(API), PrefectClient(API)]
        made = orchestration.ssl._made
        assert len(made) == 1
        assert all(c._client._transport._pool._ssl_context is next(iter(made.values())) for c in clients)
    finally:
        orchestration.ssl = original
