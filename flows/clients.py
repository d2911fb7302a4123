"""One Prefect API client for every task run and subflow of a trigger.

In an async flow, Prefect 3.9 builds a new `SyncPrefectClient` for each task run, twice (once to
hydrate the task's context, once for the task engine's client context), and every new client loads
the certificate bundle into a fresh SSL context even for a plain-HTTP API. Sharing one client cut
a one-object trigger from 1.78 s to 1.33 s on two cores (ten re-triggers in
tests/flows/test_reliability.py). With one `SyncClientContext` entered in the
flow before any task starts, Prefect's `get_client(sync_client=True)` finds it: task runs copy
the flow's context into their threads, subflows inherit it, and all of them reuse the one client
(an httpx client, safe to share between threads).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from prefect.context import SyncClientContext


def shared_prefect_client() -> AbstractContextManager[SyncClientContext]:
    """Enter around a flow's body; reuses a client already entered by a parent flow."""
    return SyncClientContext.get_or_create()
