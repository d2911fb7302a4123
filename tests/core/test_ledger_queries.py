"""Ledger queries answered through the right index on SQLite, whatever the size of the batch.

A tier's close must not read the inputs of the whole batch: at 100,000 objects a walk of the
ledger took seconds per tier (bench/pipeline.py). Nor may selecting one listing page's objects or
one upstream chunk's documents walk everything the batch holds: it took 0.18 s per chunk at
30,000 objects and grew with the batch. These tests capture the statements the real functions
send and ask SQLite how it would run them (with no statistics, as a catalog has, the plan does
not depend on the rows, only on the statement, and so on how many ids it names). And a
selection that finds nothing new must not take SQLite's write lock, which the tier's chunks
wait for to commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, put_text, text_bucket
from tierflow import planning
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import get_engine, open_session
from tierflow.catalog.schema import objects
from tierflow.discovery import discover_bucket_by_id
from tierflow.models.trigger import TriggerRequest
from tierflow.selection import select_new_inputs, select_tier_inputs


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


@pytest.fixture
def two_tiers(s3: object, tmp_path: Any) -> planning.BatchPlan:
    """A planned batch of a file tier (`chunks`) and a document tier below it."""
    apply_definitions(tmp_path, {"namespace": "plans", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(), passthrough_collection("copies", "chunks")]})
    return planning.plan_batch(namespace="plans", collection="chunks", request=TriggerRequest(), task_id=None)


def _selection_plans(catalog: str, sent: list[tuple[str, Any]], table: str) -> list[str]:
    selecting = [(s, p) for s, p in sent if s.startswith("INSERT INTO batch_inputs") and f"FROM {table}" in s]
    return [_plan(catalog, s, p) for s, p in selecting]


def test_an_upstream_chunks_documents_are_found_by_their_sources(catalog, two_tiers, sent):
    chunk = [f"obj_{n}" for n in range(200)]  # the inputs of one upstream chunk of 200 objects
    select_new_inputs(batch_id=two_tiers.batch_id, tier_num=1, upstream_id=two_tiers.collection_id, source_ids=chunk)
    (plan,) = _selection_plans(catalog, sent, "documents")
    assert "SEARCH documents USING INDEX ix_documents_source (collection_id=? AND source_id=?)" in plan


def test_a_listing_pages_objects_are_found_by_their_ids(catalog, two_tiers, sent):
    page = [f"obj_{n}" for n in range(1000)]  # a listing page: how many ids SQLite weighs matters
    select_new_inputs(batch_id=two_tiers.batch_id, tier_num=0, upstream_id=two_tiers.source_bucket_ids[0],
                      source_ids=page)
    (plan,) = _selection_plans(catalog, sent, "objects")
    assert "SEARCH objects USING INDEX sqlite_autoindex_objects_1 (object_id=?)" in plan


def test_a_selection_that_finds_nothing_new_leaves_the_writers_alone(catalog, two_tiers, s3):
    # A tier's last selection usually finds its inputs all in the manifest already; it must not
    # wait for (or hold) SQLite's write lock then, or the tier's last chunks wait on it.
    for n in range(3):
        put_text(s3, f"notes/{n}.txt", "some words")
    discover_bucket_by_id(two_tiers.source_bucket_ids[0])
    select_tier_inputs(batch_id=two_tiers.batch_id, tier_num=0)
    path = catalog.removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a chunk committing its documents, say
    try:
        with open_session(catalog) as session:
            session.connection().exec_driver_sql("PRAGMA busy_timeout=50")  # refuse, not wait a minute
            held = catalog_batches.add_inputs(session, batch_id=two_tiers.batch_id, tier_num=0,
                                              collection_id=two_tiers.collection_id,
                                              ids=select(objects.c.object_id))
    finally:
        writer.rollback()
        writer.close()
    assert held == 3
