"""A Prefect API for the test session, on PostgreSQL when the tests have one.

Prefect's own `prefect_test_harness` always keeps its state in SQLite. Under concurrent writes
(a trigger flow, its tier subflow and the chunk tasks) SQLite answers "database is locked", the
API turns that into a 503 and Prefect's client waits about two seconds before retrying, so each
tier subflow of a test starts seconds late. On PostgreSQL, which CI starts anyway, none of that
happens. Without PostgreSQL this falls back to Prefect's harness unchanged.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sibling_database(postgres_url: str, name: str, *, driver: str | None = None, fresh: bool = False) -> str:
    """The URL of database `name` on the same PostgreSQL server, created if missing (or, when
    `fresh`, dropped and created empty).

    Each pytest-xdist worker gets its own databases this way, so workers never share state.
    """
    url = make_url(postgres_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if fresh:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(drivername=driver or url.drivername, database=name).render_as_string(hide_password=False)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _drain_logs_and_events() -> None:
    """Send what Prefect's background workers still hold before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass  # never started
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def _unwatched() -> dict[Any, bool]:
    """What the tests never look at, switched off: uploading every log line to the API, and the
    server services for automations, event storage, schedules, late and lost runs and block
    registration. Each costs the test API CPU on every run, and CI has two cores for everything."""
    import prefect.settings as settings

    names = ["PREFECT_LOGGING_TO_API_ENABLED", "PREFECT_API_BLOCKS_REGISTER_ON_START",
             *(f"PREFECT_SERVER_SERVICES_{service}_ENABLED" for service in
               ("TRIGGERS", "EVENT_PERSISTER", "SCHEDULER", "LATE_RUNS", "FOREMAN", "REPOSSESSOR", "PAUSE_EXPIRATIONS"))]
    return {getattr(settings, name): False for name in names}


@contextmanager
def prefect_test_server(postgres_url: str | None, *, startup_timeout: int = 120) -> Iterator[None]:
    """Run a Prefect API subprocess for the duration of the block and point clients at it."""
    from prefect.settings import temporary_settings

    with temporary_settings(_unwatched()):
        with _test_server(postgres_url, startup_timeout):
            yield


@contextmanager
def _test_server(postgres_url: str | None, startup_timeout: int) -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    if postgres_url is None:
        with prefect_test_harness(server_startup_timeout=startup_timeout):
            yield
        return

    import prefect.context
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    with ExitStack() as stack:
        stack.enter_context(temporary_settings({
            PREFECT_SERVER_DATABASE_CONNECTION_URL: sibling_database(
                postgres_url, f"prefect_test_{_worker()}", driver="postgresql+asyncpg"),
        }))
        server = SubprocessASGIServer(port=_free_port())
        # Registered as the default server so code that asks for one finds this one.
        SubprocessASGIServer._instances[None] = server
        server.start(timeout=startup_timeout)
        stack.callback(SubprocessASGIServer._instances.pop, None, None)
        stack.callback(server.stop)
        stack.callback(_drain_logs_and_events)
        stack.enter_context(temporary_settings({PREFECT_API_URL: server.api_url}))
        stack.enter_context(prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()))
        yield
