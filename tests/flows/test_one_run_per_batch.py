"""One run per batch: starting, retrying, resuming and cancelling by compare-and-set, and chunks
that claim their inputs, so that no input is processed by two runs (SQLite and PostgreSQL).

The bucket has no unique_key: an input processed twice would show as extra documents.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from deployments import operations
from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket, trigger
from tierflow import batches, chunking, planning, processing, selection
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import leases as catalog_leases
from tierflow.catalog.engine import open_session
from tierflow.discovery import discover_bucket_by_id
from tierflow.errors import BadRequestError
from tierflow.leases import BatchBusyError, Lease, LeaseHeldError
from tierflow.models.trigger import TriggerRequest
from tierflow.storage import s3_client


def documents_of(collection: str = "chunks") -> int:
    return list_collection_documents(namespace="once", collection=collection, filters=None, limit=1,
                                     offset=0)["pagination"]["total"]


def _define(tmp_path: Any) -> None:
    apply_definitions(tmp_path, {"namespace": "once", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=1)]})


def _planned(s3: Any, tmp_path: Any, names: tuple[str, ...] = ("a", "b", "c")) -> tuple[str, str, list[str]]:
    """A batch planned, discovered and selected, as a run does before its chunks: (batch id,
    collection id, its inputs)."""
    for name in names:
        put_text(s3, f"notes/{name}.txt", f"{name}1 {name}2")
    _define(tmp_path)
    plan = planning.plan_batch(namespace="once", collection="chunks", request=TriggerRequest(), task_id=None)
    discover_bucket_by_id(plan.source_bucket_ids[0])
    selection.select_tier_inputs(batch_id=plan.batch_id, tier_num=0)
    (collection_id, ids), = chunking.chunk_plan(batch_id=plan.batch_id, tier_num=0)
    return plan.batch_id, collection_id, ids


@pytest.mark.both_backends
def test_a_run_cannot_take_a_batch_another_run_holds(s3, catalog, tmp_path):
    batch_id, _, _ = _planned(s3, tmp_path)
    first = Lease.take(batch_id, "run-1")
    with pytest.raises(LeaseHeldError):
        Lease.take(batch_id, "run-2")
    assert Lease.take(batch_id, "run-1").generation > first.generation  # the same run may take it again


@pytest.mark.both_backends
def test_an_input_claimed_by_a_newer_run_is_not_processed_by_an_older_one(s3, catalog, tmp_path):
    batch_id, collection_id, ids = _planned(s3, tmp_path)
    old = Lease.take(batch_id, "run-old")
    with open_session(catalog) as session:  # the old run's chunk claimed the inputs, then its lease ran out
        catalog_leases.claim_inputs(session, batch_id=batch_id, collection_id=collection_id, input_ids=ids,
                                    generation=old.generation)
        catalog_leases.expire(session, batch_id=batch_id, owner="run-old", at="2000-01-01T00:00:00.000000+00:00")
    new = Lease.take(batch_id, "run-new")
    taken = processing.process_chunk(batch_id=batch_id, collection_id=collection_id, tier_num=0,
                                     input_ids=ids[:2], generation=new.generation)
    assert taken.succeeded == 2
    # The old run's chunk goes on: what the new run did is not done again, what it has claimed
    # is not taken back, and what neither finished is left to the new run.
    with open_session(catalog) as session:
        catalog_leases.claim_inputs(session, batch_id=batch_id, collection_id=collection_id, input_ids=ids[2:],
                                    generation=new.generation)
    late = processing.process_chunk(batch_id=batch_id, collection_id=collection_id, tier_num=0,
                                    input_ids=ids, generation=old.generation)
    assert (late.inputs, late.succeeded, late.documents_written) == (0, 0, 0)
    assert documents_of() == 4  # two objects, two words each: once


@pytest.mark.both_backends
def test_results_of_inputs_taken_over_meanwhile_are_rolled_back(s3, catalog, tmp_path):
    batch_id, collection_id, ids = _planned(s3, tmp_path)
    with open_session(catalog) as session:
        assert sorted(catalog_leases.claim_inputs(session, batch_id=batch_id, collection_id=collection_id,
                                                  input_ids=ids, generation=1)) == sorted(ids)
        assert sorted(catalog_leases.claim_inputs(session, batch_id=batch_id, collection_id=collection_id,
                                                  input_ids=ids, generation=2)) == sorted(ids)
    outcomes = [{"input_id": i, "status": "COMPLETED", "documents_written": 1} for i in ids]
    with pytest.raises(catalog_batches.ClaimLostError), open_session(catalog) as session:
        catalog_batches.record_results(session, batch_id=batch_id, collection_id=collection_id, results=outcomes,
                                       generation=1)
    with open_session(catalog) as session:
        counts = catalog_batches.input_counts(session, batch_id=batch_id, collection_ids=[collection_id])
    assert counts == {"PENDING": {"inputs": 3, "documents": 0}}  # nothing of the old run's chunk kept


@pytest.mark.both_backends
def test_two_retries_at_once_run_once_and_a_retry_waits_for_a_cancelled_run(flows, catalog, tmp_path):
    put_text(flows, "notes/a.txt", "one two")
    put_text(flows, "notes/b.txt", "three four")
    _define(tmp_path)
    client = s3_client(None, None)

    def vanish(request: Any, **_: Any) -> None:  # b's file goes away between discovery and its read
        if "notes/b.txt" in request.url:
            flows.delete_object(Bucket="tierflow-test", Key="notes/b.txt")

    client.meta.events.register("before-send.s3.GetObject", vanish)
    batch_id = trigger("once", "chunks")["batch_id"]
    client.meta.events.unregister("before-send.s3.GetObject", vanish)
    assert batch_view(batch_id)["status"] == "COMPLETED_WITH_ERRORS" and documents_of() == 2
    put_text(flows, "notes/b.txt", "three four")  # fixed

    gate = threading.Barrier(2)
    outcomes: list[Any] = []

    def retry() -> None:
        gate.wait()
        try:
            outcomes.append(operations.retry(batch_id, transient_only=False, tier_nums=None,
                                             via=operations.Via.THIS_PROCESS))
        except (BatchBusyError, BadRequestError) as refused:
            outcomes.append(refused)

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # The other is refused: 409 while the first holds the batch, or, when a slow thread comes only
    # after the first retry has run, 400 with nothing left to retry. Either way it runs nothing.
    refused = [o for o in outcomes if isinstance(o, (BatchBusyError, BadRequestError))]
    assert len(outcomes) == 2 and len(refused) == 1 and refused[0].status in (409, 400), outcomes
    view = batch_view(batch_id)
    assert view["status"] == "COMPLETED" and documents_of() == 4  # b once, a not again
    (attempts,) = catalog_attempts(catalog, batch_id).values()  # b's: the error of its first try, kept
    assert len(attempts) == 1 and "no such key" in attempts[0]["message"]

    # A cancelled batch whose run has not stopped yet (it still holds the lease) is not retried
    # under it; once that run has ended, it is.
    plan = planning.plan_batch(namespace="once", collection="chunks", request=TriggerRequest(), task_id=None)
    running = Lease.take(plan.batch_id, "run-still-going")
    batches.start_tier(batch_id=plan.batch_id, tier_num=0, task_id=None, parent_task_id=None)
    batches.cancel_batch(plan.batch_id)
    assert running.generation > 0
    _fail_one_input(catalog, plan.batch_id, view["collection_ids"][0])
    with pytest.raises(BatchBusyError):
        batches.reset_failed_inputs(plan.batch_id, transient_only=False, tier_nums=None)
    batches.finish_batch(batch_id=plan.batch_id, run_id="run-still-going")  # the cancelled run ends
    count, _ = batches.reset_failed_inputs(plan.batch_id, transient_only=False, tier_nums=None)
    assert count == 1


def _fail_one_input(url: str, batch_id: str, collection_id: str) -> None:
    """A failed input in the ledger of a batch that never selected any."""
    from sqlalchemy import insert

    from tierflow.catalog.schema import batch_inputs

    with open_session(url) as session:
        session.execute(insert(batch_inputs).values(
            batch_id=batch_id, collection_id=collection_id, input_id="obj_x", tier_num=0, status="FAILED",
            documents_written=0, error={"message": "gone"}, updated_at="2026-01-01T00:00:00.000000+00:00"))


def catalog_attempts(url: str, batch_id: str) -> dict[str, Any]:
    """The attempt history of each retried input of the batch."""
    from sqlalchemy import select

    from tierflow.catalog.schema import batch_inputs

    with open_session(url) as session:
        rows = session.execute(select(batch_inputs.c.input_id, batch_inputs.c.attempts)
                               .where(batch_inputs.c.batch_id == batch_id, batch_inputs.c.attempts.is_not(None)))
        return {input_id: attempts for input_id, attempts in rows}


def test_a_retry_keeps_the_earlier_errors_of_its_inputs(flows, catalog, tmp_path):
    put_text(flows, "notes/b.txt", "three four")
    _define(tmp_path)
    client = s3_client(None, None)

    def vanish(request: Any, **_: Any) -> None:
        flows.delete_object(Bucket="tierflow-test", Key="notes/b.txt")

    client.meta.events.register("before-send.s3.GetObject", vanish)
    batch_id = trigger("once", "chunks")["batch_id"]
    operations.retry(batch_id, transient_only=False, tier_nums=None, via=operations.Via.THIS_PROCESS)
    client.meta.events.unregister("before-send.s3.GetObject", vanish)
    view = batch_view(batch_id)
    (failure,) = view["failed_inputs"]
    assert view["status"] == "FAILED" and len(failure["attempts"]) == 1
    assert failure["attempts"][0]["message"] == failure["error"]["message"]  # the first try's, kept
