"""The trigger's request rules, filters, failure isolation and the PENDING-only schedule."""

from __future__ import annotations

import asyncio

import pytest

from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
)
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.engine import open_session
from tierflow.discovery import object_id_for
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.models.trigger import TriggerRequest
from tierflow.planning import validate_trigger
from tierflow.settings import get_settings


@pytest.fixture
def world(flows, tmp_path):
    """Two bound buckets, a bucket-sourced collection over both and a collection-sourced one."""
    put_text(flows, "notes/a.txt", "alpha beta", {"category": "science"})
    put_text(flows, "notes/b.txt", "gamma delta", {"category": "history"})
    put_text(flows, "more/c.txt", "epsilon", {"category": "science"})
    report = apply_definitions(tmp_path, {
        "namespace": "rules",
        "buckets": [text_bucket(unique_key=["key"]), text_bucket("more", "more/"), text_bucket("other", "other/")],
        "collections": [
            {**chunk_collection(size=5), "source": {"type": "bucket", "bucket_ids": ["notes", "more"]}},
            passthrough_collection("copies", "chunks"),
        ],
    })
    return report


@pytest.mark.parametrize(
    ("collection", "request_fields", "error", "message"),
    [
        ("chunks", {"include_collections": ["copies"]}, BadRequestError,
         "include_collections applies only to collection-sourced collections"),
        ("copies", {"include_buckets": ["notes"]}, BadRequestError, "include_buckets applies only to bucket-sourced"),
        ("chunks", {"include_buckets": ["other"]}, BadRequestError, "include_buckets: 'other' is not a source of collection 'chunks'"),
        ("chunks", {"include_buckets": ["ghost"]}, NotFoundError, "bucket 'ghost' was not found"),
        ("copies", {"include_collections": ["copies"]}, BadRequestError, "'copies' is not a source"),
        ("copies", {"object_ids": ["obj_1"]}, BadRequestError, "object_ids applies only to bucket-sourced"),
        ("ghost", {}, NotFoundError, "collection 'ghost' was not found"),
    ],
)
def test_request_rules(world, collection, request_fields, error, message):
    with pytest.raises(error, match=message):
        validate_trigger(namespace="rules", collection=collection, request=TriggerRequest(**request_fields))


def test_a_violation_fails_the_flow_run_before_any_work(world):
    with pytest.raises(BadRequestError, match="include_buckets applies only"):
        trigger("rules", "copies", include_buckets=["notes"])
    with pytest.raises(NotFoundError, match="namespace 'nowhere'"):
        trigger("nowhere", "chunks")


def test_a_bad_filter_fails_parameter_validation_with_its_place(world):
    from flows.trigger import trigger_collection

    bad = {"source_filters": {"AND": [{"field": "status", "operator": "equals", "value": "x"}]}}
    with pytest.raises(Exception, match=r"AND\[0\]\.operator: 'equals' is not one of"):
        asyncio.run(trigger_collection("rules", "chunks", bad))


def test_filters_object_ids_and_include_buckets_combine(world):
    response = trigger("rules", "chunks", source_filters={"metadata.category": "SCIENCE"})
    view = batch_view(response["batch_id"])
    assert response["object_count"] == 2  # a.txt and c.txt
    assert view["tier_tasks"][0]["source_documents_fetched"] == 3
    assert view["tier_tasks"][0]["documents_after_source_filter"] == 2

    only_notes = trigger("rules", "chunks", include_buckets=["notes"], source_filters={"metadata.category": "science"})
    assert only_notes["object_count"] == 1 and len(only_notes["source_bucket_ids"]) == 1

    bucket_id = only_notes["source_bucket_ids"][0]
    by_id = trigger("rules", "chunks", object_ids=[object_id_for(bucket_id, "notes/b.txt")])
    assert by_id["object_count"] == 1
    with pytest.raises(BadRequestError, match="obj_missing not found in the collection's source buckets"):
        trigger("rules", "chunks", object_ids=["obj_missing"])


def test_collection_sourced_root_reads_all_upstream_documents(world):
    trigger("rules", "chunks")
    response = trigger("rules", "copies", source_filters={"field": "text", "operator": "text", "value": "GAMMA"})
    assert response["source_collection_ids"] and response["object_count"] == 1
    assert response["total_tiers"] == 1


@pytest.mark.both_backends
def test_one_bad_input_fails_alone(flows, tmp_path):
    put_text(flows, "notes/good.txt", "fine words here")
    flows.put_object(Bucket="tierflow-test", Key="notes/bad.txt", Body=b"\xff\xfe broken")
    apply_definitions(tmp_path, {"namespace": "fail", "buckets": [text_bucket()],
                                          "collections": [chunk_collection(), passthrough_collection("copies", "chunks")]})
    response = trigger("fail", "chunks")
    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert view["failed_object_count"] == 1
    tier0 = view["tier_tasks"][0]
    assert (tier0["inputs_succeeded"], tier0["inputs_failed"], tier0["status"]) == (1, 1, "COMPLETED_WITH_ERRORS")
    [error] = tier0["errors"]
    assert error["category"] == "validation" and "not UTF-8 text" in error["message"]
    assert error["extractor"] == "text_extractor" and error["tier"] == 0
    assert view["tier_tasks"][1]["status"] == "COMPLETED"
    bucket_id = response["source_bucket_ids"][0]
    with open_session(get_settings().database_url) as session:
        found = catalog_objects.get_objects(session, object_ids=[object_id_for(bucket_id, k) for k in ("notes/good.txt", "notes/bad.txt")])
    assert sorted(o["status"] for o in found.values()) == ["COMPLETED", "FAILED"]


PENDING_ONLY = {"AND": [{"field": "status", "operator": "eq", "value": "PENDING"}]}


def test_pending_only_processes_new_objects(world, flows):
    first = trigger("rules", "chunks", source_filters=PENDING_ONLY)
    assert first["object_count"] == 3
    put_text(flows, "notes/new.txt", "brand new")
    put_text(flows, "notes/a.txt", "alpha beta, edited")
    second = trigger("rules", "chunks", source_filters=PENDING_ONLY)
    assert second["object_count"] == 2  # the new object and the changed one
    assert trigger("rules", "chunks", source_filters=PENDING_ONLY)["object_count"] == 0
    total = list_collection_documents(namespace="rules", collection="chunks", filters=None, limit=10, offset=0)
    assert total["pagination"]["total"] == 3 + 1  # edited a.txt upserted (unique key); new.txt added one


def test_a_run_that_breaks_marks_its_batch_failed(flows, tmp_path):
    from sqlalchemy import select

    from tierflow.catalog.schema import batches
    from tierflow.storage import StorageError

    bucket = text_bucket()
    bucket["storage"]["s3_bucket"] = "no-such-s3-bucket"
    apply_definitions(tmp_path, {"namespace": "broken", "buckets": [bucket], "collections": [chunk_collection()]})
    with pytest.raises(StorageError, match="no such S3 bucket"):
        trigger("broken", "chunks")
    with open_session(get_settings().database_url) as session:
        [batch_id] = session.execute(select(batches.c.batch_id)).scalars().all()
    view = batch_view(batch_id)
    assert view["status"] == "FAILED"
    assert "no such S3 bucket" in view["error_summary"]["message"]


def test_input_mappings_and_required_passthrough(flows, tmp_path):
    put_text(flows, "notes/a.txt", "file body is ignored", {"summary": "from the metadata", "category": "x"})
    put_text(flows, "notes/b.txt", "no summary here", {"category": "y"})
    collection = chunk_collection(size=10)
    collection["feature_extractor"].update(
        input_mappings={"text": "metadata.summary"},
        field_passthrough=[{"source_path": "metadata.category", "target_path": "topic", "required": True}],
    )
    required = chunk_collection("needs-author", size=10)
    required["feature_extractor"]["field_passthrough"] = [{"source_path": "metadata.author", "required": True}]
    apply_definitions(tmp_path, {"namespace": "maps", "buckets": [text_bucket()], "collections": [collection, required]})

    view = batch_view(trigger("maps", "chunks")["batch_id"])
    [failure] = view["tier_tasks"][0]["errors"]
    assert "input 'text': source path 'metadata.summary' is missing" in failure["message"]
    [doc] = list_collection_documents(namespace="maps", collection="chunks", filters=None, limit=5, offset=0)["results"]
    assert (doc["text"], doc["topic"]) == ("from the metadata", "x")

    view = batch_view(trigger("maps", "needs-author")["batch_id"])
    assert view["status"] == "FAILED" and view["failed_object_count"] == 2
    assert {e["message"] for e in view["tier_tasks"][0]["errors"]} == {
        "field_passthrough: required field 'metadata.author' is missing"}


def test_a_run_given_a_batch_of_another_namespace_refuses_it(world, tmp_path):
    from flows.trigger import trigger_collection
    from tierflow import planning

    apply_definitions(tmp_path, {"namespace": "elsewhere", "buckets": [text_bucket("x", "x/")]}, name="other.yaml")
    plan = planning.plan_batch(namespace="rules", collection="chunks", request=TriggerRequest(), task_id=None)
    with pytest.raises(NotFoundError, match=f"batch '{plan.batch_id}' was not found in namespace 'elsewhere'"):
        asyncio.run(trigger_collection("elsewhere", "chunks", batch_id=plan.batch_id))
    assert batch_view(plan.batch_id)["status"] == "DRAFT"  # untouched: the run never adopted it
