"""Connecting to the catalog database.

SQLite is the default (a file, WAL mode so readers do not block the writer); PostgreSQL works
through the same code. SQLite connections get the `tf_fold` and `tf_regexp` functions the filter
compiler calls, backed by the same Python code as the evaluator.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tierflow.catalog.schema import metadata
from tierflow.filters.matching import fold, regex_search

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_regexp(pattern: str, case_sensitive: int, value: Any) -> int:
    if not isinstance(value, str):
        return 0
    return int(regex_search(pattern, bool(case_sensitive), value))


def _sqlite_fold(value: Any) -> Any:
    return fold(value) if isinstance(value, str) else value


def _on_sqlite_connect(connection: sqlite3.Connection, _record: Any) -> None:
    connection.create_function("tf_fold", 1, _sqlite_fold, deterministic=True)
    connection.create_function("tf_regexp", 3, _sqlite_regexp, deterministic=True)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def create_catalog_engine(url: str) -> Engine:
    """A new engine for `url`, with tierflow's SQLite setup where it applies."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, pool_size=8, max_overflow=16)
        event.listen(engine, "connect", _on_sqlite_connect)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
    return engine


def get_engine(url: str) -> Engine:
    """The shared engine for `url`, created (with its tables) on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_catalog_engine(url)
            metadata.create_all(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests and process shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def open_session(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory.begin() as session:
        yield session
