"""Shared fixtures: one Prefect test server for the session, a fresh catalog and S3 per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from tests.utils.prefect_server import prefect_test_server, sibling_database  # noqa: E402
from tierflow.catalog.engine import dispose_engines  # noqa: E402
from tierflow.settings import get_settings  # noqa: E402
from tierflow.storage import forget_clients  # noqa: E402

pytest_plugins = ["tests.utils.fake_network"]  # its `network` and `listen` fixtures

SERVER_POSTGRES_URL = os.environ.get("TIERFLOW_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if SERVER_POSTGRES_URL else ["sqlite"]
# Each pytest-xdist worker has a catalog database of its own on that server.
POSTGRES_URL = (sibling_database(SERVER_POSTGRES_URL, f"tierflow_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
                if SERVER_POSTGRES_URL else None)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session, heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with prefect_test_server(POSTGRES_URL):
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_backends: run on SQLite and, when TIERFLOW_TEST_POSTGRES_URL is set, PostgreSQL"
    )


LONGEST_FIRST = ("test_recovery_killed", "test_exact_served", "test_live_served", "test_recovery_stopped", "test_trigger_rules",
                 "test_pipelining", "test_served", "test_fresh_starts", "test_catalog_outage", "test_sync",
                 "test_reliability", "test_tenants_served")
"""Modules that take the longest (real servers, outages): collected first, so that the two xdist
workers (which take whole modules, in order) end together instead of one waiting on a late one.
Not the UI check (`test_workers`): under `.ci/run` it waits for chromium, installed meanwhile (the
terminal check waits only for tmux, installed first, in seconds)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a module, and among the others, the order stays


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "catalog" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("catalog", BACKENDS, indirect=True)


_MIGRATED: set[str] = set()
"""PostgreSQL catalogs this process has already migrated from nothing."""


def _reset_postgres(url: str) -> None:
    """An empty catalog at the current schema.

    The first time in a session (and whenever the schema is not at head) everything is dropped and
    migrated from nothing, as `tierflow db upgrade` does on a new database; after that, emptying
    the tables is enough and takes a fraction of the time."""
    from tierflow.catalog.engine import create_catalog_engine
    from tierflow.catalog.migrate import current_revision, head_revision, upgrade
    from tierflow.catalog.schema import metadata

    engine = create_catalog_engine(url)
    try:
        if url in _MIGRATED and current_revision(engine) == head_revision():
            tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            with engine.begin() as connection:
                connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            return
        metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(engine)
        _MIGRATED.add(url)
    finally:
        engine.dispose()


@pytest.fixture
def catalog(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty catalog for the test (SQLite unless parametrized); yields its URL."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        assert POSTGRES_URL
        dispose_engines()
        _reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    else:
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("TIERFLOW_DATABASE_URL", url)
    monkeypatch.delenv("TIERFLOW_S3_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    yield url
    dispose_engines()
    get_settings.cache_clear()


@pytest.fixture
def s3(catalog: str) -> Iterator[object]:
    """Moto's in-process S3 with an empty `tierflow-test` bucket."""
    with mock_aws():
        forget_clients()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="tierflow-test")
        yield client
        forget_clients()


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """Moto's S3 as a real HTTP server on loopback, for code running in other processes."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def flows(prefect_harness: None, s3: object) -> object:
    """Everything a flow test needs: Prefect API, catalog and S3."""
    return s3
