"""One Prefect API client for every task run and subflow of a trigger, which retries a busy API
soon.

In an async flow, Prefect 3.9 builds a new `SyncPrefectClient` for each task run, twice (once to
hydrate the task's context, once for the task engine's client context), and every new client loads
the certificate bundle into a fresh SSL context even for a plain-HTTP API. Sharing one client cut
a one-object trigger from 1.78 s to 1.33 s on two cores (ten re-triggers in
tests/flows/test_reliability.py). With one `SyncClientContext` entered in the
flow before any task starts, Prefect's `get_client(sync_client=True)` finds it: task runs copy
the flow's context into their threads, subflows inherit it, and all of them reuse the one client
(an httpx client, safe to share between threads).

A Prefect API on SQLite (the temporary local one, and `prefect server start` unless told
otherwise) answers 503 when creating a subflow's run collides with a write of its own background
services: it reads the parent's labels, then inserts, in one deferred SQLite transaction, and
SQLite refuses the insert at once when another write committed in between. A second try a moment
later passes. Prefect's client, given no `Retry-After`, waits 2 s, then 4, 8…, so each such answer
cost a tier subflow 2 s or more (a bench/pipeline.py timeline at 1,000 objects: both tier
subflows refused at 0.41 s, started at 2.1 and 2.4 s). The clients of a trigger therefore read a
503 that names no `Retry-After` as asking for one of `QUICK_RETRIES`, spread at random between
half and one and a half times it; after those, Prefect's own backoff applies (32 s, its fifth
and last retry), so an API that stays unavailable is still waited for, about 35 s in all
instead of 62.

The first is short because the write it collided with is short: with 0.1 s, the file tier's
first chunk of a 2,000-object trigger started at a median of 0.65 s, with 0.03 s at 0.56 s (six
alternating triggers each, bench/pipeline.py's workload; in one of the six the API refused five
requests, and its first chunk still started at 0.53 s). Spread, and four of them, because
requests refused together came back together: Prefect adds at most a fifth to a wait, so when
the tier subflows were still created at once they were refused together again. With three tiers
(`make demo`), 3 runs of 20 had a tier wait out the three quick tries there were and then
Prefect's 16 s (the demo took 28 to 33 s instead of 10 to 13); with the waits spread and a
fourth one, none of 12 runs did.
"""

from __future__ import annotations

import random
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prefect.context import AsyncClientContext, SyncClientContext

QUICK_RETRIES = (0.03, 0.15, 0.6, 2.0)
"""Seconds before each of a request's first retries after a 503 without `Retry-After`, on
average (see `SPREAD`)."""

SPREAD = (0.5, 1.5)
"""A quick retry waits between these multiples of its `QUICK_RETRIES` entry, drawn at random."""

_ATTEMPTS = "tierflow_503_answers"
"""Where a request counts its 503 answers (Prefect's client resends the same request object)."""


def ask_for_quick_retry(response: httpx.Response) -> None:
    """Give a 503 without `Retry-After` the wait of its next quick retry, if one is left."""
    if response.status_code != 503 or "Retry-After" in response.headers:
        return
    answers = response.request.extensions.get(_ATTEMPTS, 0)
    response.request.extensions[_ATTEMPTS] = answers + 1
    if answers < len(QUICK_RETRIES):
        response.headers["Retry-After"] = f"{QUICK_RETRIES[answers] * random.uniform(*SPREAD):.3f}"


async def _ask_for_quick_retry_async(response: httpx.Response) -> None:
    ask_for_quick_retry(response)


def retry_busy_api_soon(client: Any) -> None:
    """Add the quick-retry hook to a Prefect client's httpx client (once).

    Prefect's clients take no hooks of their own and keep the httpx client in `_client`; a client
    without one (a future Prefect) is left as it is, with Prefect's backoff only.
    """
    http = getattr(client, "_client", None)
    if isinstance(http, httpx.AsyncClient):
        hook: Any = _ask_for_quick_retry_async
    elif isinstance(http, httpx.Client):
        hook = ask_for_quick_retry
    else:
        return
    hooks = http.event_hooks
    if hook not in hooks["response"]:
        hooks["response"] = [*hooks["response"], hook]
        http.event_hooks = hooks


@contextmanager
def shared_prefect_client() -> Iterator[SyncClientContext]:
    """Enter around a flow's body; reuses a client already entered by a parent flow. The sync
    client and the flow's async client (which starts its subflows) retry a busy API soon."""
    with SyncClientContext.get_or_create() as context:
        retry_busy_api_soon(context.client)
        async_context = AsyncClientContext.get()
        if async_context is not None:
            retry_busy_api_soon(async_context.client)
        yield context


class _OneContextPerArguments:
    """The `ssl` module as Prefect's client module sees it, except that `create_default_context`
    makes one context per arguments and gives that one again after.

    Prefect configures the context it is given the same way each time (its TLS settings), and
    httpx only reads it, so sharing one is safe; it is safe between threads too."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._made: dict[Any, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        key = (args, tuple(sorted(kwargs.items())))
        with self._lock:
            context = self._made.get(key)
            if context is None:
                context = self._made[key] = self._module.create_default_context(*args, **kwargs)
            return context


def share_tls_contexts() -> bool:
    """Have every Prefect client of this process share one SSL context; whether it could.

    Each new Prefect client loads the certificate bundle into a fresh SSL context (about 20 ms),
    even for a plain-HTTP API, and Prefect's engine makes five of them before a flow's first task.
    Prefect takes no context from outside, so its client module is given an `ssl` that makes each
    context once. A Prefect whose client module no longer imports `ssl` is left as it is
    (tests/flows/test_clients.py fails then)."""
    import prefect.client.orchestration as orchestration

    current = getattr(orchestration, "ssl", None)
    if isinstance(current, _OneContextPerArguments):
        return True
    if current is not ssl:
        return False
    orchestration.ssl = _OneContextPerArguments(ssl)  # type: ignore[assignment]
    return True
