"""One-statement bulk upserts on SQLite and PostgreSQL (`INSERT … ON CONFLICT DO UPDATE`).

A database-level upsert, not check-then-insert, so two writers of the same key cannot create
duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tierflow.catalog.bulk import execute_many


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert `rows`; where `keys` already exist, overwrite the `update` columns.

    One statement executed with many parameter sets (`execute_many`): compiled once, not as a
    200-row VALUES each time, which cost more than writing it.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in update},
    )
    execute_many(session, statement, rows)
