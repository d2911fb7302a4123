"""Connecting to the catalog database.

SQLite is the default (a file, WAL mode so readers do not block the writer); PostgreSQL works
through the same code. SQLite connections get the `tf_fold` and `tf_regexp` functions the filter
compiler calls, backed by the same Python code as the evaluator.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from tierflow.catalog.migrate import ensure_schema
from tierflow.errors import BadRequestError, TransientError
from tierflow.filters.matching import fold, regex_search
from tierflow.settings import get_settings

_engines: dict[str, Engine] = {}
_session_factories: dict[str, sessionmaker[Session]] = {}
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
    # A catalog of many documents outgrows SQLite's 2 MB default page cache, and checkpointing
    # the WAL every 1000 pages rewrites the same index pages again and again: both made commits
    # of a large batch several times slower (bench/pipeline.py at 10,000 objects). 16 MB per
    # connection is as fast there as 64 MB was (60.3 s against 58.0 s, within run-to-run noise)
    # and a batch's process peaked at 446 MB instead of 722 MB: a flow holds several connections.
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.execute("PRAGMA wal_autocheckpoint=16384")
    # Each pooled connection's cache fills as the catalog grows, so a process's memory grew with
    # the batches it had written: SQLite's memory reached 88 MB in a trigger of 30,000 objects,
    # a fifth of the process. This limit covers all of the process's connections together (it is
    # SQLite's, process-wide); at 40 MB the same trigger peaked at 308 MB instead of 359 and 373
    # MB, in a time between theirs (146 s against 156 and 141 s; bench/pipeline.py's tierflow
    # child).
    cursor.execute(f"PRAGMA soft_heap_limit={get_settings().sqlite_memory_mb << 20}")
    cursor.close()


def to_json(value: Any) -> str:
    """A JSON column's value as the catalog stores it (what SQLAlchemy's JSON type is given)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # integers beyond 64 bits, which the standard library writes as they are
        return json.dumps(value)


def _from_json(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # the same integers, read back
        return json.loads(text)


_JSON = {"json_serializer": to_json, "json_deserializer": _from_json}
"""Every document's fields and lineage pass through these: orjson (which Prefect already brings)
encodes and decodes them several times faster than the standard library."""


def create_catalog_engine(url: str) -> Engine:
    """A new engine for `url`, with tierflow's SQLite setup where it applies."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, pool_size=8, max_overflow=16, **_JSON)
        event.listen(engine, "connect", _on_sqlite_connect)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16, **_JSON)
    return engine


def get_engine(url: str) -> Engine:
    """The shared engine for `url`, made on first use after its schema is checked (`migrate`)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_catalog_engine(url)
            ensure_schema(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests and process shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _session_factories.clear()


_sqlite_writers: dict[str, threading.Lock] = {}


def _session_factory(url: str, engine: Engine) -> sessionmaker[Session]:
    """The session factory of `engine`, made once: `sessionmaker` builds a new Session subclass
    each time it is made, which cost more (140 microseconds) than opening a session then did. A
    factory of an engine since disposed is replaced."""
    factory = _session_factories.get(url)
    if factory is None or factory.kw.get("bind") is not engine:
        factory = _session_factories[url] = sessionmaker(engine, expire_on_commit=False)
    return factory


class CatalogUnavailableError(TransientError):
    """The catalog database cannot be reached right now (refused, restarting, busy past its
    timeout): what failed may succeed when tried again."""

    status = 503
    type_name = "ServiceUnavailableError"


_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
"""PostgreSQL SQLSTATEs of a connection lost or refused: class 08, the server shutting down or
starting, too many connections."""

_SQLITE_BUSY = ("database is locked", "unable to open database file", "disk i/o error")


def is_unreachable(error: BaseException) -> bool:
    """Whether a database error says the catalog cannot be reached now, rather than that the
    statement is wrong."""
    if isinstance(error, (DisconnectionError, SqlTimeoutError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None)
    if isinstance(error.orig, sqlite3.OperationalError):
        return any(text in str(error.orig).lower() for text in _SQLITE_BUSY)
    if isinstance(error, (OperationalError, InterfaceError)):
        return state is None or str(state).startswith(_UNREACHABLE_STATES)
    return False


@contextmanager
def open_session(url: str, *, write: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error. A catalog that
    cannot be reached raises CatalogUnavailableError (transient: retried where steps retry).

    `write=True` marks a transaction that writes much (a chunk's documents). On SQLite, which
    has one writer at a time, such transactions of one process queue on a lock here: a thread
    waiting on SQLite's own busy handler sleeps in steps of up to 100 ms and lost more time than
    the writes took when four chunks of a tier finished together.
    """
    try:
        engine = get_engine(url)
        factory = _session_factory(url, engine)
        if write and engine.dialect.name == "sqlite":
            with _lock:
                writer = _sqlite_writers.setdefault(url, threading.Lock())
            with writer, factory.begin() as session:
                yield session
            return
        with factory.begin() as session:
            yield session
    except SQLAlchemyError as error:
        if is_unreachable(error):
            raise CatalogUnavailableError(f"the catalog database cannot be reached ({type(error).__name__}); "
                                          "try again shortly") from error
        raise


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it changed (what compare-and-set reads)."""
    return int(cast(CursorResult[Any], session.execute(statement)).rowcount)


class QueryTimeoutError(BadRequestError):
    """A query ran past its time limit (`time_limit`) and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query took longer than {seconds:g} s (TIERFLOW_QUERY_TIMEOUT_SECONDS) and was "
                         "stopped: narrow the filters", details={"timeout_seconds": seconds})


_SQLITE_STEPS = 1000
"""SQLite virtual-machine steps between two looks at the clock (a few microseconds apart)."""


@contextmanager
def time_limit(session: Session, seconds: float) -> Iterator[None]:
    """Stop the session's queries inside the block after `seconds`, with QueryTimeoutError: a
    listing whose filter the caller wrote must not hold the catalog or an API thread for long.

    PostgreSQL stops them itself (`statement_timeout`, for the rest of the transaction); SQLite
    through a progress handler that interrupts the statement once the deadline has passed."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")
        try:
            yield
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) == "57014":  # query_canceled
                raise QueryTimeoutError(seconds) from error
            raise
        return
    raw = connection.connection.dbapi_connection
    if not isinstance(raw, sqlite3.Connection):
        yield
        return
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: time.monotonic() > deadline, _SQLITE_STEPS)
    try:
        yield
    except OperationalError as error:
        if "interrupted" in str(error.orig):
            raise QueryTimeoutError(seconds) from error
        raise
    finally:
        raw.set_progress_handler(None, 0)
