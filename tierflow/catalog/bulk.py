"""Executing one INSERT with many rows, the way each database takes them fastest.

SQLAlchemy prepares every row's parameters in Python before the driver sees them: it builds a
dict of bind names per row and runs each column's bind processor (the JSON serializer for
`fields` and `lineage`). On SQLite, whose driver writes the rows in C, that preparation was a
quarter of writing a document (11.1 microseconds per document upserted, against 8.6 without it),
and a trigger's process is bound by its processor. So on SQLite the statement is compiled once
per call and the rows go to the driver as tuples, with the JSON columns encoded by `to_json`,
the serializer SQLAlchemy's JSON type calls for this engine, so they are stored exactly as
before (tests/core/test_bulk_writes.py). Other databases keep SQLAlchemy's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from tierflow.catalog.engine import to_json


def execute_many(session: Session, statement: Insert, rows: Sequence[dict[str, Any]]) -> None:
    """Execute `statement` (an INSERT, perhaps with ON CONFLICT) once per row.

    Every row must have the keys of the first, as SQLAlchemy's executemany also requires.
    """
    if not rows:
        return
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        session.execute(statement, list(rows))
        return
    compiled = statement.compile(dialect=bind.dialect, column_keys=list(rows[0]))
    order = compiled.positiontup or []
    if not set(order) <= rows[0].keys():  # a parameter that is not a column value: SQLAlchemy knows
        session.execute(statement, list(rows))
        return
    as_json = {c.key for c in statement.table.columns if isinstance(c.type, JSON)}
    converters = [(name, name in as_json) for name in order]
    parameters = [
        tuple(to_json(row[name]) if is_json else row[name] for name, is_json in converters)
        for row in rows
    ]
    session.connection().exec_driver_sql(compiled.string, parameters)
