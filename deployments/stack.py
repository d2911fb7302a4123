"""`tierflow serve`: everything one machine needs, in one process.

The REST API (uvicorn, in a thread) and a Prefect runner serving tierflow's deployments (the
main thread, where Prefect handles SIGTERM and Ctrl-C). Without `PREFECT_API_URL` it first starts
Prefect's local API itself and hands its address to every flow-run process the runner starts,
so they all share one Prefect API instead of each starting its own. Every process it starts dies
with it, however it dies; what they left unfinished is resumed under the batches' leases.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from deployments.prefect_api import PrefectApi, local_prefect_api
from deployments.runs import expect_runner
from deployments.serve import serve_deployments
from flows.clients import share_tls_contexts
from tierflow.errors import TierflowError
from tierflow.leases import SERVER_ID_VARIABLE, holder_name
from tierflow.process import SERVER_PID_VARIABLE


@contextmanager
def prefect_api() -> Iterator[PrefectApi]:
    """The Prefect API to use: `PREFECT_API_URL`, or a local one that dies with this process
    (`deployments/prefect_api.py`), for the duration of the block."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield PrefectApi(url)
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with local_prefect_api() as local:
        os.environ["PREFECT_API_URL"] = local.url  # inherited by the flow-run processes
        with temporary_settings({PREFECT_API_URL: local.url}), _seen_by_every_thread():
            yield local


@contextmanager
def _seen_by_every_thread() -> Iterator[None]:
    """Have threads started without this one's context (uvicorn's, the sweeper's, the webhook
    deliverer's) see the settings of the environment as it is now, for the duration of the block.

    Prefect gives such threads a process-wide settings context, read from the environment when
    Prefect was imported, before the local API had an address. Each Prefect client made there
    then started a temporary Prefect API of its own, on the same database as the local one: the
    REST API's triggers were created through it, and its writes and the local API's contended for
    one SQLite file (tests/deployments/test_serve.py)."""
    import prefect.context

    prior = prefect.context.GLOBAL_SETTINGS_CONTEXT
    prefect.context.refresh_global_settings_context()
    try:
        yield
    finally:
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prior


def run_api_only(*, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve the REST API alone: its triggers become runs of the trigger deployment, which the
    workers of a Prefect server's work pool execute (`prefect deploy --all`, `prefect worker start`)."""
    from api.app import create_app

    share_tls_contexts()
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise TierflowError(
            "--no-runner needs PREFECT_API_URL: a Prefect server whose work-pool workers run the "
            "trigger deployment (without one, triggered runs would never start)"
        )
    announce(f"tierflow API on http://{host}:{port} (docs: /docs); runs go to the workers of {url}")
    uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning")).run()


def run_deployments(*, namespace: str, collection: str, cron: str, announce: Callable[[str], None]) -> None:
    """`tierflow deployments serve`: the deployments alone, on `PREFECT_API_URL` or a local Prefect
    API of tierflow's own (as `tierflow serve`'s), until SIGTERM or Ctrl-C; says where it serves
    once they are registered."""
    share_tls_contexts()
    with prefect_api() as prefect:
        serve_deployments(namespace=namespace, collection=collection, cron=cron,
                          announce=lambda names: announce(f"serving {names} on Prefect API {prefect}"))


def run_stack(*, host: str, port: int, namespace: str, collection: str, cron: str,
              announce: Callable[[str], None]) -> None:
    """Serve the REST API and the deployments until SIGTERM or Ctrl-C; then stop both."""
    from api.app import create_app

    expect_runner()
    share_tls_contexts()  # each trigger, sweep and runner poll makes a Prefect client
    # The runs this server starts die with it (tierflow.process.die_with_server) and name it as
    # the holder of their batches' leases.
    os.environ[SERVER_PID_VARIABLE] = str(os.getpid())
    os.environ[SERVER_ID_VARIABLE] = holder_name()
    with prefect_api() as prefect:
        server = uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning"))
        api = threading.Thread(target=server.run, name="tierflow-api", daemon=True)
        api.start()
        announce(f"tierflow API on http://{host}:{port} (docs: /docs); Prefect API {prefect}")
        try:
            serve_deployments(namespace=namespace, collection=collection, cron=cron)
        finally:
            server.should_exit = True
            api.join(timeout=10)
