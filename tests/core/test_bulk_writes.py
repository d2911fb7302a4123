"""Rows written by `execute_many` are stored exactly as SQLAlchemy's own executemany stores them.

On SQLite the rows bypass SQLAlchemy's per-row parameter handling (tierflow/catalog/bulk.py), so
these tests write the same rows both ways and compare what the database holds, byte for byte.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, literal
from sqlalchemy.dialects import sqlite

from tierflow.catalog.bulk import execute_many
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import documents


def _rows(prefix: str, text_value: str = "alpha") -> list[dict[str, Any]]:
    stamp = "2026-01-01T00:00:00.000000+00:00"
    return [{
        "document_id": f"{prefix}_{n}", "collection_id": "col_x", "namespace_id": "ns_x", "batch_id": None,
        "root_object_id": None, "source_id": f"obj_{n}",
        "fields": {"text": f"{text_value} {n}", "accents": "café ☕", "big": 2**70, "none": None, "nested": [1, {"b": 2}]},
        "lineage": {"chain": [], "path": "bkt/col", "source_document_id": None},
        "created_at": stamp, "updated_at": stamp,
    } for n in range(3)]


def _stored(catalog: str, prefix: str) -> list[tuple[Any, ...]]:
    """Every column of the rows with this id prefix, as the database holds them (no decoding)."""
    with open_session(catalog) as session:
        rows = session.connection().exec_driver_sql(
            "SELECT substr(document_id, instr(document_id, '_')), collection_id, namespace_id, batch_id, "
            "root_object_id, source_id, fields, lineage, created_at, updated_at FROM documents "
            "WHERE document_id LIKE ? ORDER BY document_id", (f"{prefix}_%",)).all()
    return [tuple(row) for row in rows]


def test_inserted_rows_are_stored_as_sqlalchemy_stores_them(catalog):
    with open_session(catalog, write=True) as session:
        session.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")  # no collection defined here
        session.execute(insert(documents), _rows("sqla"))
        execute_many(session, insert(documents), _rows("bulk"))
    bulk, through_sqlalchemy = _stored(catalog, "bulk"), _stored(catalog, "sqla")
    assert len(bulk) == 3 and bulk == through_sqlalchemy


def test_an_upsert_updates_the_named_columns_of_rows_it_finds(catalog):
    statement = sqlite.insert(documents)
    statement = statement.on_conflict_do_update(index_elements=["document_id"],
                                                set_={"fields": statement.excluded.fields})
    with open_session(catalog, write=True) as session:
        session.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")  # no collection defined here
        for prefix in ("sqla", "bulk"):
            execute_many(session, statement, _rows(prefix))
        session.execute(statement, [{**row, "source_id": "changed"} for row in _rows("sqla", "beta")])
        execute_many(session, statement, [{**row, "source_id": "changed"} for row in _rows("bulk", "beta")])
    bulk = _stored(catalog, "bulk")
    assert bulk == _stored(catalog, "sqla")
    assert [row[5] for row in bulk] == ["obj_0", "obj_1", "obj_2"]  # not in `set_`: kept
    assert all('"beta ' in row[6] for row in bulk)


def test_a_statement_with_its_own_parameters_goes_through_sqlalchemy(catalog):
    statement = sqlite.insert(documents)
    statement = statement.on_conflict_do_update(index_elements=["document_id"], set_={"source_id": literal("again")})
    with open_session(catalog, write=True) as session:
        session.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")  # no collection defined here
        execute_many(session, statement, _rows("bulk"))
        execute_many(session, statement, _rows("bulk"))
    assert [row[5] for row in _stored(catalog, "bulk")] == ["again"] * 3
