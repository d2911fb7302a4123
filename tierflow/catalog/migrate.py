"""The catalog's schema: created and migrated with Alembic, checked before use.

`tierflow db upgrade` brings a catalog to the schema this version of tierflow needs. A SQLite
catalog (one machine, the embedded default) is upgraded on first use, so `make demo` needs no
step. A shared PostgreSQL catalog is only checked on first use: several workers starting at once
must not race to alter shared tables, so there the upgrade is an explicit, single step, and a
catalog behind the code is a clear error that names the command.

Catalogs made before migrations existed (tables but no `alembic_version`) are stamped at the
baseline, which describes exactly those tables, and upgraded from there.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from tierflow.errors import TerminalError

BASELINE = "0001"


class CatalogSchemaError(TerminalError):
    """The catalog's schema is not the one this tierflow needs."""

    status = 503
    type_name = "ServiceUnavailableError"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision this code needs."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The catalog's revision (None: empty, or made before migrations existed)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the catalog to the head revision; (revision before, revision after)."""
    with _exclusive(engine), engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = _config(connection)
        if before is None and inspect(connection).has_table("namespaces"):
            command.stamp(config, BASELINE)  # tables from before migrations: they are the baseline
            before = BASELINE
        command.upgrade(config, "head")
    return before, head_revision()


def ensure_schema(engine: Engine) -> None:
    """On first use: upgrade a SQLite catalog; check that any other is at the head revision."""
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise CatalogSchemaError(
            f"the catalog at {engine.url.render_as_string(hide_password=True)} has schema revision "
            f"{current or 'none'}, this tierflow needs {head}: run `tierflow db upgrade` once",
            details={"current": current, "required": head},
        )


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One upgrade at a time: a file lock beside a SQLite catalog, an advisory lock on PostgreSQL."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{Path(engine.url.database).expanduser()}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT pg_advisory_lock(7413)")
            try:
                yield
            finally:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(7413)")
                connection.commit()
        return
    yield
