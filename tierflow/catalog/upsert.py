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

# SQLite allows 32,766 bound parameters per statement; stay well below it.
_MAX_PARAMS = 30_000


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert `rows`; where `keys` already exist, overwrite the `update` columns."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    per_statement = max(1, _MAX_PARAMS // max(1, len(rows[0])))
    for start in range(0, len(rows), per_statement):
        part = rows[start:start + per_statement]
        statement = module.insert(table).values(list(part))
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: statement.excluded[name] for name in update},
        )
        session.execute(statement)
