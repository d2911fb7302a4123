"""The temporary Prefect API of `tierflow serve` (no `PREFECT_API_URL`): a child process that
listens on loopback only and dies with the server, however the server dies.

Prefect's own temporary server (`SubprocessASGIServer`) outlived a `tierflow serve` killed with
SIGKILL, and after a restart two Prefect APIs shared one database. This starts the same
application (Prefect's API factory under uvicorn, with the settings Prefect gives its own) through
`python -m deployments.prefect_api`, which first asks the kernel to kill it when its parent dies.

Its database is tierflow's, under tierflow's home (`<home>/prefect/prefect.db`), not Prefect's
`~/.prefect/prefect.db`: a `prefect server start` on this machine has its own deployments and runs,
and `tierflow serve` neither runs nor pauses them. An operator who chose Prefect's home or database
(`PREFECT_HOME`, `PREFECT_SERVER_DATABASE_CONNECTION_URL`, in the environment or a Prefect profile)
gets that one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from tierflow.errors import TierflowError
from tierflow.settings import home

if TYPE_CHECKING:
    from prefect.settings import Settings

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


DATABASE_SETTINGS = frozenset({"connection_url", "driver", "host", "name"})
"""Prefect's database settings (`PREFECT_SERVER_DATABASE_*`) that say which database its API uses."""


@dataclass(frozen=True)
class PrefectApi:
    """A Prefect API tierflow talks to: its URL and, for one tierflow started, where it keeps its
    state (said in the start line, so an operator knows which database the runs are in)."""

    url: str
    database: str | None = None

    def __str__(self) -> str:
        return self.url if self.database is None else f"{self.url} (database {self.database})"


def own_database_url(settings: Settings) -> str | None:
    """The local API's database under tierflow's home, or None where the operator chose Prefect's
    home or database (`settings` has them set): then the API uses theirs."""
    if "home" in settings.model_fields_set or DATABASE_SETTINGS & settings.server.database.model_fields_set:
        return None
    return f"sqlite+aiosqlite:///{home() / 'prefect' / 'prefect.db'}"


def shown_database(url: str) -> str:
    """A database URL for people: a SQLite file's path, any other URL without its password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return parsed.render_as_string(hide_password=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def command(port: int) -> list[str]:
    """The command line of the API process."""
    return [sys.executable, "-m", "deployments.prefect_api", str(os.getpid()), str(port)]


@contextmanager
def local_prefect_api(timeout: float = 120) -> Iterator[PrefectApi]:
    """Start the API process, wait until it answers, yield it; stop it at the end."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    port = _free_port()
    env = {**RECORDER_ENV, **os.environ, **_SERVER_ENV,  # the operator's own settings win
           **settings.to_environment_variables(exclude_unset=True)}
    database = own_database_url(settings)
    if database is None:
        database = settings.server.database.connection_url.get_secret_value()  # type: ignore[union-attr]
    else:
        (home() / "prefect").mkdir(parents=True, exist_ok=True)
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    # A session of its own: a signal sent to the server's process group (Ctrl-C in a terminal)
    # leaves it up while the runner drains and pauses its deployments; the server stops it after.
    process = subprocess.Popen(command(port), env=env, start_new_session=True)
    api = PrefectApi(url=f"http://{HOST}:{port}/api", database=shown_database(database))
    try:
        _wait_until_healthy(process, api.url, timeout)
        yield api
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
