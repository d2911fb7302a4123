"""`tierflow serve`: everything one machine needs, in one process.

The REST API (uvicorn, in a thread) and a Prefect runner serving tierflow's deployments (the
main thread, where Prefect handles SIGTERM and Ctrl-C). Without `PREFECT_API_URL` it first starts
Prefect's local API itself and hands its address to every flow-run process the runner starts,
so they all share one Prefect API instead of each starting its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import uvicorn

from deployments.runs import expect_runner
from deployments.serve import serve_deployments
from tierflow.errors import TierflowError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API to use: `PREFECT_API_URL`, or a local one, on loopback only, for the
    duration of the block."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start(timeout=120)
    if urlsplit(server.api_url).hostname not in LOOPBACK:
        server.stop()  # anyone who reaches a Prefect API can run tierflow's deployments
        raise TierflowError(f"Prefect's local API came up on {server.api_url}, not on loopback: set PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the flow-run processes
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        server.stop()


def run_api_only(*, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve the REST API alone: its triggers become runs of the trigger deployment, which the
    workers of a Prefect server's work pool execute (`prefect deploy --all`, `prefect worker start`)."""
    from api.app import create_app

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise TierflowError(
            "--no-runner needs PREFECT_API_URL: a Prefect server whose work-pool workers run the "
            "trigger deployment (without one, triggered runs would never start)"
        )
    announce(f"tierflow API on http://{host}:{port} (docs: /docs); runs go to the workers of {url}")
    uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning")).run()


def run_stack(*, host: str, port: int, namespace: str, collection: str, cron: str,
              announce: Callable[[str], None]) -> None:
    """Serve the REST API and the deployments until SIGTERM or Ctrl-C; then stop both."""
    from api.app import create_app

    expect_runner()
    with prefect_api() as prefect_url:
        server = uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning"))
        api = threading.Thread(target=server.run, name="tierflow-api", daemon=True)
        api.start()
        announce(f"tierflow API on http://{host}:{port} (docs: /docs); Prefect API {prefect_url}")
        try:
            serve_deployments(namespace=namespace, collection=collection, cron=cron)
        finally:
            server.should_exit = True
            api.join(timeout=10)
