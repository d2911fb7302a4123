"""Bulk UPDATEs of many rows that mostly receive the same values (a chunk's outcomes, statuses).

One `UPDATE … WHERE id IN (…)` per distinct set of new values instead of one statement per row:
SQLAlchemy prepares each row's parameters in Python, which cost more than the chunk's extraction
when every input of a chunk wrote its own ledger row (bench/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Table, update
from sqlalchemy.orm import Session

from tierflow.catalog.engine import rows_changed


def update_grouped(
    session: Session,
    table: Table,
    id_column: ColumnElement[Any],
    new_values: Mapping[str, Mapping[str, Any]],
    *,
    where: Iterable[ColumnElement[bool]] = (),
    common: Mapping[str, Any] | None = None,
) -> int:
    """Set `new_values[id]` on the row of each id (those that also match `where`), plus `common`;
    how many rows changed."""
    groups: dict[bytes, tuple[Mapping[str, Any], list[str]]] = {}
    for row_id, values in new_values.items():
        key = orjson.dumps(values, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
        groups.setdefault(key, (values, []))[1].append(row_id)
    conditions = list(where)
    changed = 0
    for values, ids in groups.values():
        changed += rows_changed(session,
            update(table).where(*conditions, id_column.in_(ids)).values(**values, **(common or {})))
    return changed
