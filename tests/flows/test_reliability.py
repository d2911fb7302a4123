"""Nothing lost, nothing doubled: dedup strategies, re-triggers, concurrent triggers, S3 faults.

Faults come through real paths: botocore's own event hooks answer S3 requests with 503 before
they leave the client, so botocore's retries and Prefect's chunk retries are what get exercised.
"""

from __future__ import annotations

import asyncio

import pytest

from flows.trigger import trigger_collection
from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
)
from tests.utils.s3_answers import s3_error
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.models.trigger import TriggerRequest
from tierflow.settings import get_settings
from tierflow.storage import forget_clients, s3_client


def count(collection: str, namespace: str = "rel") -> int:
    return list_collection_documents(namespace=namespace, collection=collection, filters=None, limit=1,
                                     offset=0)["pagination"]["total"]


def audit_of(response: dict) -> dict:
    view = batch_view(response["batch_id"])
    assert view["audit"]["balanced"] and view["audit"]["lost"] == 0, view["audit"]
    return view["audit"]


@pytest.mark.both_backends
def test_dedup_strategies_skip_replace_and_force(flows, tmp_path):
    for name, text in (("a", "one two three four"), ("b", "five six"), ("c", "seven")):
        put_text(flows, f"notes/{name}.txt", text)
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=2)]})
    assert audit_of(trigger("rel", "chunks"))["succeeded"] == 3 and count("chunks") == 4

    skipped = trigger("rel", "chunks", dedup_strategy="skip")
    assert audit_of(skipped) == {"inputs": 3, "succeeded": 0, "failed": 0, "skipped": 3, "cancelled": 0, "lost": 0, "deleted": 0,
                                 "excluded": 0, "documents_deleted": 0, "balanced": True}
    assert count("chunks") == 4

    put_text(flows, "notes/c.txt", "seven eight nine")  # new content, new etag
    changed = trigger("rel", "chunks", dedup_strategy="skip")
    assert (audit_of(changed)["succeeded"], audit_of(changed)["skipped"]) == (1, 2)
    assert count("chunks") == 5  # no unique_key, yet skip redoes c in place: its two new chunks replace the old one

    replaced = trigger("rel", "chunks", dedup_strategy="replace")
    assert audit_of(replaced)["succeeded"] == 3
    assert count("chunks") == 5  # exactly the current contents: 2 + 1 + 2

    forced = trigger("rel", "chunks", dedup_strategy="force")
    assert audit_of(forced)["succeeded"] == 3 and count("chunks") == 10  # creates again, as documented


def test_ten_retriggers_with_a_unique_key_keep_the_count(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two three four five")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(size=2)]})
    for _ in range(10):
        assert audit_of(trigger("rel", "chunks"))["succeeded"] == 1
        assert count("chunks") == 3


@pytest.mark.both_backends
def test_two_concurrent_triggers_leave_no_duplicates(flows, tmp_path):
    for i in range(6):
        put_text(flows, f"notes/{i}.txt", f"word{i} other{i} third{i}")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(size=1), passthrough_collection("copies", "chunks")]})

    async def both() -> list[dict]:
        return list(await asyncio.gather(*(trigger_collection("rel", "chunks", TriggerRequest()) for _ in range(2))))

    responses = asyncio.run(both())
    assert all(batch_view(r["batch_id"])["status"] == "COMPLETED" for r in responses)
    assert count("chunks") == 18 and count("copies") == 18


def _failing_gets(client, answers: list[int]) -> list[str]:
    """Answer the client's next GetObject calls with these statuses (then let them through)."""
    calls: list[str] = []

    def maybe_fail(request, **_):
        calls.append(request.url)
        if answers:
            status = answers.pop(0)
            return s3_error(request.url, status, "SlowDown")
        return None

    client.meta.events.register("before-send.s3.GetObject", maybe_fail)
    return calls


def test_s3_throttling_is_retried_until_it_passes(flows, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLOW_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("TIERFLOW_IO_CONCURRENCY", "1")
    get_settings.cache_clear()
    forget_clients()
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", "one two")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    client = s3_client(None, None)
    # Three refusals: the presigned GET and botocore's two attempts take them, so that GET gives
    # up and the chunk task is retried by Prefect (nothing of the chunk was written).
    calls = _failing_gets(client, [503, 503, 503])
    response = trigger("rel", "chunks")
    assert batch_view(response["batch_id"])["status"] == "COMPLETED"
    assert audit_of(response)["succeeded"] == 2 and count("chunks") == 2
    assert len(calls) >= 5  # 2 objects, 3 refusals; a failed first try of the chunk refetches too
    tier_run = batch_view(response["batch_id"])["tier_tasks"][0]["task_id"]
    assert asyncio.run(chunk_run_counts(tier_run)) == [2]  # the chunk task ran twice


async def chunk_run_counts(flow_run_id: str) -> list[int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="process-chunk")))
    return [r.run_count for r in runs]


def test_a_missing_key_fails_its_input_once_without_retries(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    client = s3_client(None, None)

    def vanish(request, **_):  # the file went away between discovery and processing
        flows.delete_object(Bucket="tierflow-test", Key="notes/a.txt")

    client.meta.events.register("before-send.s3.GetObject", vanish)
    calls = _failing_gets(client, [])
    response = trigger("rel", "chunks")
    view = batch_view(response["batch_id"])
    assert view["status"] == "FAILED" and audit_of(response)["failed"] == 1
    error = view["failed_inputs"][0]["error"]
    assert error["category"] == "dependency" and "no such key" in error["message"] and not error["transient"]
    presigned = [url for url in calls if "X-Amz-Signature=" in url]
    assert len(presigned) == 1 and len(calls) == 2  # its presigned GET, then botocore's, neither retried


def test_chunks_of_a_cancelled_batch_write_nothing_and_nothing_counts_as_lost(s3, catalog, tmp_path):
    from tierflow import batches, chunking, planning, processing, selection
    from tierflow.discovery import discover_bucket_by_id

    for name in ("a", "b", "c"):
        put_text(s3, f"notes/{name}.txt", "one two")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    plan = planning.plan_batch(namespace="rel", collection="chunks", request=TriggerRequest(), task_id=None)
    discover_bucket_by_id(plan.source_bucket_ids[0])
    selection.select_tier_inputs(batch_id=plan.batch_id, tier_num=0)
    (collection_id, ids), = chunking.chunk_plan(batch_id=plan.batch_id, tier_num=0)
    batches.start_tier(batch_id=plan.batch_id, tier_num=0, task_id=None, parent_task_id=None)
    assert batches.cancel_batch(plan.batch_id) == []  # no Prefect runs to stop here

    result = processing.process_chunk(batch_id=plan.batch_id, collection_id=collection_id, tier_num=0, input_ids=ids)
    assert (result.inputs, result.succeeded, result.documents_written) == (3, 0, 0)
    assert batches.finish_tier(batch_id=plan.batch_id, tier_num=0)["status"] == "CANCELED"
    assert batches.finish_batch(batch_id=plan.batch_id).document_count == 0
    view = batch_view(plan.batch_id)
    assert view["status"] == "CANCELED" and count("chunks") == 0
    assert view["audit"] == {"inputs": 3, "succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 3, "lost": 0, "deleted": 0,
                             "excluded": 0, "documents_deleted": 0, "balanced": True}


def test_a_document_records_the_version_it_read_so_skip_never_redoes_it(flows, tmp_path):
    # The file is replaced between the listing and the read: its documents are made from the new
    # bytes and must say so, or the next `skip` trigger (which lists the new etag) makes them again.
    put_text(flows, "notes/a.txt", "old words")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    client = s3_client(None, None)
    replaced: list[str] = []

    def replace_once(request, **_):
        if not replaced:
            replaced.append(flows.put_object(Bucket="tierflow-test", Key="notes/a.txt", Body=b"new words here")["ETag"])

    client.meta.events.register("before-send.s3.GetObject", replace_once)
    first = trigger("rel", "chunks")
    client.meta.events.unregister("before-send.s3.GetObject", replace_once)
    (document,) = list_collection_documents(namespace="rel", collection="chunks", filters=None, limit=10,
                                            offset=0)["results"]
    assert document["text"] == "new words here"
    assert document["_internal"]["lineage"]["source_version"].split("@")[0] == replaced[0].strip('"')
    assert audit_of(first)["succeeded"] == 1
    again = trigger("rel", "chunks", dedup_strategy="skip")
    assert (audit_of(again)["succeeded"], audit_of(again)["skipped"]) == (0, 1) and count("chunks") == 1


def test_a_listing_page_answered_500_is_retried(flows, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLOW_S3_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    forget_clients()
    put_text(flows, "notes/a.txt", "one two")
    apply_definitions(tmp_path, {"namespace": "rel", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    client = s3_client(None, None)
    answers = [500, 500]  # botocore's two attempts both refused: the discovery task is retried

    def refuse(request, **_):
        return s3_error(request.url, answers.pop(0), "InternalError") if answers else None

    client.meta.events.register("before-send.s3.ListObjectsV2", refuse)
    response = trigger("rel", "chunks")
    assert not answers and batch_view(response["batch_id"])["status"] == "COMPLETED"
    assert audit_of(response)["succeeded"] == 1 and count("chunks") == 1
