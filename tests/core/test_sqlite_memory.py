"""A SQLite catalog's memory stays under `sqlite_memory_mb`, however large the catalog and however
many connections read it: without the limit each pooled connection keeps its own page cache full,
and a process's memory grows with the catalog it has written."""

from __future__ import annotations

import ctypes
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tierflow.catalog.engine import create_catalog_engine
from tierflow.settings import get_settings


def _sqlite_in_this_process() -> ctypes.CDLL:
    """The SQLite library Python's sqlite3 module runs on (not some other copy of it)."""
    sqlite3.connect(":memory:").close()
    paths = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "libsqlite3" in line}
    if len(paths) != 1:
        pytest.skip(f"this Python's SQLite is not one shared library mapped here: {sorted(paths)}")
    return ctypes.CDLL(paths.pop())


@pytest.fixture
def sqlite_memory_used() -> Iterator[ctypes._CFuncPtr]:
    memory_used = _sqlite_in_this_process().sqlite3_memory_used
    memory_used.restype = ctypes.c_int64
    yield memory_used
    # The limit is the process's: give the rest of the session back the default.
    get_settings.cache_clear()
    sqlite3.connect(":memory:").execute(f"PRAGMA soft_heap_limit={get_settings().sqlite_memory_mb << 20}").close()


@pytest.mark.parametrize(("limit_mb", "most_mb"), [(4, 8), (1024, None)])
def test_sqlite_memory_stays_under_the_setting_across_connections(
    tmp_path, monkeypatch, sqlite_memory_used, limit_mb: int, most_mb: int | None
):
    monkeypatch.setenv("TIERFLOW_SQLITE_MEMORY_MB", str(limit_mb))
    get_settings.cache_clear()
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE pages (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO pages (body) VALUES (:body)"), [{"body": "x" * 1000}] * 30_000)
    before = sqlite_memory_used()
    with engine.connect() as first, engine.connect() as second, engine.connect() as third:
        for connection in (first, second, third):
            assert connection.execute(text("SELECT sum(length(body)) FROM pages")).scalar() == 30_000_000
        grown_mb = (sqlite_memory_used() - before) / 2**20
    engine.dispose()
    if most_mb is None:
        # The check's own control: with room, three readers of a 30 MB table do cache it.
        assert grown_mb > 3 * 8
    else:
        assert grown_mb < most_mb
