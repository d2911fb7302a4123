"""Documents, tasks and the trigger's answers over HTTP, with flows run in this process."""

from __future__ import annotations

import uuid

from tests.api.conftest import assert_error, bucket_body, collection_body, in_namespace
from tests.utils.factories import trigger
from tierflow.settings import get_settings


def test_documents_of_registered_inline_objects_list_filter_page_and_get(api, flows):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers,
             json=collection_body("words", buckets=["notes"], extractor="text_extractor", split_by="words",
                                  chunk_size=2))
    api.post("/v1/collections", headers=headers, json=collection_body("other", buckets=["notes"]))
    for text in ("alpha beta gamma", "delta epsilon"):
        api.post("/v1/buckets/notes/objects", headers=headers,
                 json={"blobs": [{"property": "content", "type": "text", "data": text}]})
    assert trigger("alpha", "words")["document_count"] == 3
    assert api.get("/v1/collections/words", headers=headers).json()["document_count"] == 3
    page = api.post("/v1/collections/words/documents/list", headers=headers, json={"limit": 2}).json()
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 0, "has_more": True}
    document = page["results"][0]
    assert {"document_id", "collection_id", "text", "chunk_index", "_internal"} <= set(document)
    assert {"lineage", "created_at", "updated_at", "batch_id"} <= set(document["_internal"])
    texts = api.post("/v1/collections/words/documents/list", headers=headers,
                     json={"filters": {"field": "text", "operator": "text", "value": "GAMMA"}}).json()
    assert [d["text"] for d in texts["results"]] == ["gamma"]
    got = api.get(f"/v1/collections/words/documents/{document['document_id']}", headers=headers).json()
    assert got == document
    assert_error(api.get(f"/v1/collections/other/documents/{document['document_id']}", headers=headers),
                 404, "NotFoundError")


def test_trigger_rules_are_checked_before_anything_starts(api, flows):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers, json=collection_body("copies", buckets=["notes"]))
    assert_error(api.post("/v1/collections/copies/trigger", headers=headers, json={"include_collections": ["x"]}),
                 400, "BadRequestError", "include_collections")
    assert_error(api.post("/v1/collections/copies/trigger", headers=headers,
                          json={"source_filters": {"field": "a", "operator": "between"}}), 422, "ValidationError")
    assert_error(api.post("/v1/collections/copies/trigger", headers=headers, json={"dedup": "skip"}),
                 422, "ValidationError", "dedup")
    assert api.post("/v1/batches/list", headers=headers).json()["pagination"]["total"] == 0


def test_without_a_runner_the_trigger_is_503_and_the_batch_says_why(api, flows, monkeypatch):
    monkeypatch.setenv("TIERFLOW_TRIGGER_DEPLOYMENT", "trigger-collection/never-served")
    get_settings.cache_clear()
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers, json=collection_body("copies", buckets=["notes"]))
    assert_error(api.post("/v1/collections/copies/trigger", headers=headers, json={}), 503,
                 "ServiceUnavailableError", "tierflow serve")
    batches = api.post("/v1/batches/list", headers=headers).json()["results"]
    assert [b["status"] for b in batches] == ["FAILED"]
    assert "trigger-collection/never-served" in batches[0]["error_summary"]["message"]


def test_tasks_and_batches_of_in_process_runs(api, flows):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers, json=collection_body("copies", buckets=["notes"]))
    api.post("/v1/buckets/notes/objects", headers=headers, json={"blobs": [{"property": "content", "data": "x"}]})
    response = trigger("alpha", "copies")
    task = api.get(f"/v1/tasks/{response['task_id']}", headers=headers).json()
    assert task["task_type"] == "api_collections_trigger" and task["status"] == "COMPLETED"
    assert {"batch_id", "namespace_id", "collection_ids", "current_tier", "total_tiers", "object_count"} <= set(
        task["additional_data"])
    batch = api.get(f"/v1/batches/{response['batch_id']}", headers=headers).json()
    tier_task = api.get(f"/v1/tasks/{batch['tier_tasks'][0]['task_id']}", headers=headers).json()
    assert tier_task["task_type"] == "engine_feature_extractor_run" and tier_task["status"] == "COMPLETED"
    other = in_namespace(api, "beta")
    assert_error(api.get(f"/v1/tasks/{response['task_id']}", headers=other), 404, "NotFoundError")
    assert_error(api.get(f"/v1/batches/{response['batch_id']}", headers=other), 404, "NotFoundError")
    assert_error(api.get(f"/v1/tasks/{uuid.uuid4()}", headers=headers), 404, "NotFoundError")
    assert_error(api.get("/v1/tasks/not-a-uuid", headers=headers), 404, "NotFoundError")
    assert_error(api.post(f"/v1/batches/{response['batch_id']}/cancel", headers=headers), 400, "BadRequestError",
                 "COMPLETED")
    assert_error(api.post(f"/v1/batches/{response['batch_id']}/retry", headers=headers, json={}), 400,
                 "BadRequestError", "no failed inputs")
    listed = api.post("/v1/batches/list", headers=headers, json={"status": "COMPLETED"}).json()
    assert [b["batch_id"] for b in listed["results"]] == [response["batch_id"]]
