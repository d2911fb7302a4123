"""The ledger queries a tier's close runs are answered from the status index alone on SQLite.

A tier's close must not read the inputs of the whole batch: at 100,000 objects a walk of the
ledger took seconds per tier (bench/pipeline.py). These tests capture the statements the real
functions send and ask SQLite how it would run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import get_engine, open_session


@pytest.fixture
def sent(catalog: str) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the catalog engine sends while the test runs."""
    engine = get_engine(catalog)
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


def _plan(catalog: str, statement: str, parameters: Any) -> str:
    with get_engine(catalog).connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return " | ".join(row[3] for row in rows)


def _ledger_plans(catalog: str, sent: list[tuple[str, Any]]) -> list[str]:
    ledger = [(s, p) for s, p in sent if "batch_inputs" in s]  # taken before EXPLAIN adds its own
    return [_plan(catalog, s, p) for s, p in ledger]


def test_counting_a_tier_reads_only_the_status_index(catalog, sent):
    with open_session(catalog) as session:
        catalog_batches.input_counts(session, batch_id="btch_a", collection_ids=["col_a", "col_b"])
    (plan,) = _ledger_plans(catalog, sent)
    assert "COVERING INDEX ix_batch_inputs_status (batch_id=? AND collection_id=?)" in plan


def test_finding_failed_inputs_seeks_their_status(catalog, sent):
    with open_session(catalog) as session:
        catalog_batches.failed_inputs(session, batch_id="btch_a", collection_ids=["col_a"])
    (plan,) = _ledger_plans(catalog, sent)
    assert "INDEX ix_batch_inputs_status (batch_id=? AND collection_id=? AND status=?)" in plan


def test_pending_inputs_are_read_in_id_order_from_the_index(catalog, sent):
    list(catalog_batches.iter_input_chunks(catalog, batch_id="btch_a", collection_id="col_a", size=10))
    (plan,) = _ledger_plans(catalog, sent)
    assert "COVERING INDEX ix_batch_inputs_status (batch_id=? AND collection_id=? AND status=? AND input_id>?)" in plan
    assert "TEMP B-TREE" not in plan  # no sort of the pending inputs
