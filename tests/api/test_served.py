"""`tierflow serve` as a user runs it: a real HTTP server and runner, moto's S3 over HTTP.

A key is made with `tierflow keys create`, everything else goes through HTTP: define, trigger
(202, Idempotency-Key), poll the task and the batch to the end, retry after a fix, cancel, and
stop the server with SIGTERM.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from deployments.serve import NEW_OR_CHANGED
from tests.utils.http_stack import define, finished_task, poll, served_on_moto


@pytest.fixture(scope="module")
def stack(prefect_harness, tmp_path_factory) -> Iterator[dict[str, Any]]:
    with served_on_moto(tmp_path_factory.mktemp("served"), "ci", TIERFLOW_EVENT_DEBOUNCE_SECONDS="1") as stack:
        yield stack


def test_two_tiers_triggered_over_http_and_polled_to_completed(stack):
    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "served", "in/")
    for i in range(3):
        s3.put_object(Bucket="files", Key=f"in/{i}.txt", Body=f"one two three four {i}".encode())
    idempotent = {**headers, "Idempotency-Key": "first-run"}
    started = time.monotonic()
    answer = client.post("/v1/collections/words/trigger", json={}, headers=idempotent)
    assert answer.status_code == 202 and time.monotonic() - started < 5
    body = answer.json()
    assert {"batch_id", "task_id", "collection_id", "total_tiers", "message", "source_bucket_ids",
            "source_collection_ids", "object_count", "document_count"} <= set(body)
    assert body["total_tiers"] == 2
    repeat = client.post("/v1/collections/words/trigger", json={}, headers=idempotent)
    assert repeat.status_code == 202 and repeat.json() == body
    reused = client.post("/v1/collections/words/trigger", json={"object_ids": ["x"]}, headers=idempotent)
    assert reused.status_code == 400 and reused.json()["error"]["type"] == "BadRequestError"

    task = finished_task(client, headers, body["task_id"])
    assert task["status"] == "COMPLETED" and task["task_type"] == "api_collections_trigger", task
    assert task["additional_data"]["batch_id"] == body["batch_id"] and task["error"] is None
    batch = client.get(f"/v1/batches/{body['batch_id']}", headers=headers).json()
    assert batch["status"] == "COMPLETED" and batch["task_id"] == body["task_id"]
    assert [t["documents_written"] for t in batch["tier_tasks"]] == [9, 9]
    assert batch["tier_tasks"][1]["parent_task_id"] == batch["tier_tasks"][0]["task_id"]
    tier = client.get(f"/v1/tasks/{batch['tier_tasks'][1]['task_id']}", headers=headers).json()
    assert tier["task_type"] == "engine_feature_extractor_run" and tier["status"] == "COMPLETED"
    assert client.post("/v1/batches/list", headers=headers).json()["pagination"]["total"] == 1
    docs = client.post("/v1/collections/copies/documents/list", headers=headers, json={"limit": 100}).json()
    assert docs["pagination"]["total"] == 9
    assert {d["_internal"]["lineage"]["root_bucket_id"] for d in docs["results"]} == {batch["bucket_id"]}


def test_retry_reruns_only_the_failed_inputs_once_fixed(stack):
    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "retried", "retry/")
    s3.put_object(Bucket="files", Key="retry/good.txt", Body=b"fine words here")
    s3.put_object(Bucket="files", Key="retry/bad.txt", Body=b"\xff\xfe broken")
    first = client.post("/v1/collections/words/trigger", json={}, headers=headers).json()
    assert finished_task(client, headers, first["task_id"])["status"] == "COMPLETED_WITH_ERRORS"
    batch = client.get(f"/v1/batches/{first['batch_id']}", headers=headers).json()
    assert batch["failed_object_count"] == 1 and batch["tier_tasks"][0]["inputs_succeeded"] == 1
    (failed,) = batch["failed_inputs"]
    assert failed["error"]["category"] == "validation" and "not UTF-8" in failed["error"]["message"]
    assert batch["audit"]["balanced"] and batch["audit"]["failed"] == 1
    written_before = client.post("/v1/collections/words/documents/list", headers=headers).json()["results"]

    s3.put_object(Bucket="files", Key="retry/bad.txt", Body=b"now readable")
    retry = client.post(f"/v1/batches/{first['batch_id']}/retry", headers=headers, json={"retry_mode": "all"})
    assert retry.status_code == 202 and retry.json()["retried_inputs"] == 1
    twice = client.post(f"/v1/batches/{first['batch_id']}/retry", headers=headers, json={"retry_mode": "all"})
    assert twice.status_code == 409 and twice.json()["error"]["type"] == "AlreadyExistsError"  # one run per batch
    assert finished_task(client, headers, retry.json()["task_id"])["status"] == "COMPLETED"
    batch = client.get(f"/v1/batches/{first['batch_id']}", headers=headers).json()
    assert batch["status"] == "COMPLETED" and batch["failed_object_count"] == 0
    assert [t["inputs_succeeded"] for t in batch["tier_tasks"]] == [2, 3]  # 2 + 1 chunks of words
    after = client.post("/v1/collections/words/documents/list", headers=headers).json()["results"]
    untouched = {d["document_id"]: d["_internal"]["updated_at"] for d in written_before}
    assert all(untouched[d["document_id"]] == d["_internal"]["updated_at"]
               for d in after if d["document_id"] in untouched)
    assert len(after) == 3


def test_cancel_before_the_run_starts(stack):
    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "cancelled", "cancel/")
    s3.put_object(Bucket="files", Key="cancel/a.txt", Body=b"a b c")
    started = client.post("/v1/collections/words/trigger", json={}, headers=headers).json()
    cancelled = client.post(f"/v1/batches/{started['batch_id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELED"
    assert finished_task(client, headers, started["task_id"])["status"] == "CANCELED"
    assert client.get(f"/v1/batches/{started['batch_id']}", headers=headers).json()["status"] == "CANCELED"


def test_the_scheduled_deployment_is_served_too(stack):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        scheduled = prefect.read_deployment_by_name("trigger-collection/process-pending")
    assert scheduled.schedules[0].schedule.cron == "*/15 * * * *"
    assert scheduled.parameters["request"] == NEW_OR_CHANGED


def _aws_record(event_name: str, key: str, etag: str = "", size: int = 0, sequencer: str = "") -> dict[str, Any]:
    """One record as AWS S3 sends it (the documentation's event message structure, version 2.1)."""
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T10:00:00.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "tierflow",
               "bucket": {"name": "files", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": "arn:aws:s3:::files"},
               "object": {"key": key, "size": size, "eTag": etag, "sequencer": sequencer}},
    }


def test_files_that_land_are_processed_and_files_removed_take_their_documents(stack):
    from urllib.parse import quote_plus

    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "landed", "landed/")
    again = {"collection_name": "again", "source": {"type": "bucket", "bucket_ids": ["notes"]},
             "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                                   "parameters": {"split_by": "words", "chunk_size": 1}}}
    assert client.post("/v1/collections", json=again, headers=headers).status_code == 200
    s3.put_object(Bucket="files", Key="landed/old one.txt", Body=b"old words")
    first = client.post("/v1/collections/words/trigger", json={}, headers=headers).json()
    assert finished_task(client, headers, first["task_id"])["status"] == "COMPLETED"

    s3.delete_object(Bucket="files", Key="landed/old one.txt")
    records = [_aws_record("ObjectRemoved:Delete", quote_plus("landed/old one.txt"), sequencer="0055AED6DCD90281E6")]
    for i in range(5):
        put = s3.put_object(Bucket="files", Key=f"landed/new {i}.txt", Body=f"fresh words {i}".encode())
        records.append(_aws_record("ObjectCreated:Put", quote_plus(f"landed/new {i}.txt"), put["ETag"].strip('"'),
                                   16, f"0055AED6DCD9028{i}F0"))
    records.append(_aws_record("ObjectCreated:Put", "elsewhere/x.txt", "abc", 1, "01"))  # not this bucket's prefix
    body = {"Records": records}
    answer = client.post("/v1/buckets/notes/events", json=body, headers=headers)
    assert answer.status_code == 200 and answer.json() | {"message": ""} == {
        "registered": 5, "deleted": 1, "ignored": 1, "message": ""}
    # The removed file's documents went at once, in both collections and the tier below.
    docs = client.post("/v1/collections/copies/documents/list", headers=headers, json={"limit": 100}).json()
    assert docs["pagination"]["total"] == 0

    def batches() -> list[dict[str, Any]]:
        listed = client.post("/v1/batches/list", headers=headers, json={"limit": 100}).json()["results"]
        return [b for b in listed if b["batch_id"] != first["batch_id"]]

    made = poll(batches, lambda found: len(found) == 2 and all(b["status"] == "COMPLETED" for b in found))
    assert sorted(len(b["object_ids"]) for b in made) == [5, 5]  # one batch per collection, for the five
    assert client.post("/v1/collections/again/documents/list", headers=headers,
                       json={"limit": 100}).json()["pagination"]["total"] == 5 * 3
    assert client.post("/v1/collections/copies/documents/list", headers=headers,
                       json={"limit": 100}).json()["pagination"]["total"] == 5 * 2

    replayed = client.post("/v1/buckets/notes/events", json=body, headers=headers).json()
    assert (replayed["registered"], replayed["deleted"], replayed["ignored"]) == (0, 0, 7)  # nothing new to start
    bad = client.post("/v1/buckets/notes/events", json={"Records": [{"eventName": 3}]}, headers=headers)
    assert bad.status_code == 400 and "Records[0].eventName" in bad.json()["error"]["message"]


def test_sigterm_stops_the_server_cleanly(stack):
    server = stack["server"]
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
