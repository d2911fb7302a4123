"""The temporary Prefect API of `tierflow serve` (no `PREFECT_API_URL`): a child process that
listens on loopback only and dies with the server, however the server dies.

Prefect's own temporary server (`SubprocessASGIServer`) outlived a `tierflow serve` killed with
SIGKILL, and after a restart two Prefect APIs shared one database. This starts the same
application (Prefect's API factory under uvicorn, with the settings Prefect gives its own) through
`python -m deployments.prefect_api`, which first asks the kernel to kill it when its parent dies.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tierflow.errors import TierflowError

HOST = "127.0.0.1"
"""Anyone who reaches a Prefect API can run tierflow's deployments: loopback only."""

NICENESS = 5
"""Prefect's API, whose background work (recording task runs from their events) takes a third of
a core during a large batch, yields the CPU to tierflow's REST API and to the runs: reads of a
running batch do not wait behind that bookkeeping. The runs themselves keep the default
priority: niced, they lost throughput to everything else on the machine (docs/benchmarks.md)."""

_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
"""What Prefect sets for its own temporary server (no UI, the ephemeral server's services)."""

RECORDER_ENV = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1"}
"""Prefect's API records task runs from their events one event per database write by default,
which was most of its CPU during a large batch (on the two cores the batch runs on). It writes
them 100 at a time instead, or whatever has come within a second: a task run shows in the API
and the UI up to a second later. Settings of the operator's own for these come first.
docs/design/warm-starts.md has the measurements."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def command(port: int) -> list[str]:
    """The command line of the API process."""
    return [sys.executable, "-m", "deployments.prefect_api", str(os.getpid()), str(port)]


@contextmanager
def local_prefect_api(timeout: float = 120) -> Iterator[str]:
    """Start the API process, wait until it answers, yield its URL; stop it at the end."""
    from prefect.settings import get_current_settings

    port = _free_port()
    env = {**RECORDER_ENV, **os.environ, **_SERVER_ENV,  # the operator's own settings win
           **get_current_settings().to_environment_variables(exclude_unset=True)}
    process = subprocess.Popen(command(port), env=env)
    url = f"http://{HOST}:{port}/api"
    try:
        _wait_until_healthy(process, url, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TierflowError(f"Prefect's local API exited at start (code {process.returncode}); set "
                                "PREFECT_API_URL to use a Prefect server")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling: the process offers nothing to wait on
    raise TierflowError(f"Prefect's local API did not answer within {timeout:g} s; set PREFECT_API_URL")


def write_transactions_wait_their_turn() -> None:
    """Have Prefect's API on SQLite begin each of its write transactions with `BEGIN IMMEDIATE`,
    so that a write waits for the one before it (SQLite's busy timeout) instead of being refused.

    Prefect begins them DEFERRED (IMMEDIATE only where it asks for `with_for_update`): one that
    reads, then writes, is refused at once when another write committed in between, and the API
    answers 503, which its clients retry after 2, 4, 8… s. docs/design/warm-starts.md has the
    measurements."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred = AioSqliteConfiguration.begin_transaction

    def immediate(self: Any, session: Any, with_for_update: bool = False) -> Any:
        return deferred(self, session, with_for_update=True)

    AioSqliteConfiguration.begin_transaction = immediate  # type: ignore[method-assign]


def main(parent: int, port: int) -> None:
    """The API process: tie its life to `parent`'s, then serve Prefect's API on loopback."""
    import uvicorn

    from tierflow.process import die_with_parent

    die_with_parent(parent)
    os.nice(NICENESS)
    write_transactions_wait_their_turn()
    uvicorn.run("prefect.server.api.server:create_app", factory=True, host=HOST, port=port,
                log_level="error", lifespan="on")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
