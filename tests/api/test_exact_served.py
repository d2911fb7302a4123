"""Incremental runs are exact, through `tierflow serve` and moto's S3 over HTTP as a user meets
them: objects deleted, changed (some out of the filter between tiers) and added, then a `skip`
trigger, leave every tier as the sources call for (`verify` clean, staleness all zero, the
filtered tiers' counts as a model of the objects says); a batch cancelled mid-run counts exactly
the documents that carry its id; a scheduled listing of an unchanged bucket starts nothing.

`TIERFLOW_TEST_EXACT_OBJECTS` sets the bucket's size (200 here; the figure of the issue is 2,000).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.utils.http_stack import finished_task, poll, served_on_moto

OBJECTS = int(os.environ.get("TIERFLOW_TEST_EXACT_OBJECTS", "200"))


@pytest.fixture(scope="module")
def stack(prefect_harness, tmp_path_factory) -> Iterator[dict[str, Any]]:
    with served_on_moto(tmp_path_factory.mktemp("exact"), "exact", TIERFLOW_CHUNK_SIZE="10",
                        TIERFLOW_SWEEP_SECONDS="1") as stack:
        yield stack


def define(client: httpx.Client, namespace: str, prefix: str, **bucket: Any) -> dict[str, str]:
    """paras (a paragraph each, `category` passed through) -> sci (category science) -> sci-text."""
    headers = {"X-Namespace": namespace}
    assert client.post("/v1/namespaces", json={"namespace_name": namespace}).status_code == 200
    answer = client.post("/v1/buckets", headers=headers, json={
        "bucket_name": "files", "storage": {"s3_bucket": "files", "prefix": prefix},
        "bucket_schema": {"properties": {"content": {"type": "text"}, "category": {"type": "string"}}},
        "unique_key": {"fields": ["key"]}, **bucket})
    assert answer.status_code == 200, answer.text
    for body in (
        {"collection_name": "paras", "source": {"type": "bucket", "bucket_ids": ["files"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                               "parameters": {"split_by": "paragraphs", "chunk_size": 1},
                               "field_passthrough": [{"source_path": "metadata.category", "target_path": "category"}]}},
        {"collection_name": "sci", "source": {"type": "collection", "collection_ids": ["paras"],
                                              "source_filters": {"filters": {"category": "science"}}},
         "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"}},
        {"collection_name": "sci-text", "source": {"type": "collection", "collection_ids": ["sci"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                               "parameters": {"split_by": "words", "chunk_size": 2}}},
    ):
        assert client.post("/v1/collections", json=body, headers=headers).status_code == 200
    return headers


def put(s3: Any, key: str, version: int, category: str) -> None:
    body = f"first paragraph of {key} v{version}\n\nsecond one {version}".encode()
    s3.put_object(Bucket="files", Key=key, Body=body, Metadata={"category": category})


def run(client: httpx.Client, headers: dict[str, str], **request: Any) -> dict[str, Any]:
    answer = client.post("/v1/collections/paras/trigger", json=request, headers=headers)
    assert answer.status_code == 202, answer.text
    assert finished_task(client, headers, answer.json()["task_id"], seconds=240)["status"] == "COMPLETED"
    return client.get(f"/v1/batches/{answer.json()['batch_id']}", headers=headers).json()


def total(client: httpx.Client, headers: dict[str, str], collection: str, filters: Any = None) -> int:
    page = client.post(f"/v1/collections/{collection}/documents/list", headers=headers,
                       json={"limit": 1, **({"filters": filters} if filters else {})})
    assert page.status_code == 200, page.text
    return int(page.json()["pagination"]["total"])


def test_deletions_changes_and_filter_exits_end_exact(stack):
    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "exact", "exact/")
    model = {f"exact/{i:05}.txt": "science" if i % 2 else "art" for i in range(OBJECTS)}
    for key, category in model.items():
        put(s3, key, 1, category)
    run(client, headers)

    step = max(OBJECTS // 20, 3)
    keys = sorted(model)
    for key in keys[:step]:  # deleted
        s3.delete_object(Bucket="files", Key=key)
        del model[key]
    for n, key in enumerate(keys[step:2 * step]):  # changed: a third of them leave science
        model[key] = "art" if n % 3 == 0 else model[key]
        put(s3, key, 2, model[key])
    for i in range(OBJECTS, OBJECTS + step):  # added
        model[f"exact/{i:05}.txt"] = "science"
        put(s3, f"exact/{i:05}.txt", 1, "science")
    batch = run(client, headers, dedup_strategy="skip")
    assert batch["status"] == "COMPLETED" and batch["audit"]["balanced"], batch["audit"]
    assert batch["changes"]["deleted"] == step and batch["changes"]["excluded"] > 0

    science = sum(1 for category in model.values() if category == "science")
    assert total(client, headers, "paras") == 2 * len(model)
    assert total(client, headers, "sci") == 2 * science
    report = client.get("/v1/collections/paras/verify", headers=headers).json()
    assert report["clean"], report
    staleness = client.get("/v1/collections/paras/staleness", headers=headers).json()
    for tier in staleness["tiers"]:
        for row in tier["collections"]:
            assert (row["stale"], row["missing"], row["left_over"]) == (0, 0, 0), row


def test_a_batch_cancelled_mid_run_counts_the_documents_that_carry_its_id(stack):
    client, s3 = stack["client"], stack["s3"]
    headers = define(client, "cancelled", "cancelled/")
    for i in range(OBJECTS):
        put(s3, f"cancelled/{i:05}.txt", 1, "science")
    for _ in range(3):  # a batch that ends before the cancel lands is tried again
        answer = client.post("/v1/collections/paras/trigger", json={"dedup_strategy": "force"}, headers=headers)
        assert answer.status_code == 202, answer.text
        batch_id, task_id = answer.json()["batch_id"], answer.json()["task_id"]
        poll(lambda batch_id=batch_id: client.get(f"/v1/batches/{batch_id}", headers=headers).json(),
             lambda b: b["tier_tasks"][0]["progress"]["processed"] > 0 or b["status"] == "COMPLETED", 120)
        if client.post(f"/v1/batches/{batch_id}/cancel", headers=headers).status_code == 200:
            break
    else:
        pytest.fail("every batch ended before its cancel")
    finished_task(client, headers, task_id, seconds=120)  # its run has stopped: nothing more commits
    batch = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
    assert batch["status"] == "CANCELED"
    carried = {collection: total(client, headers, collection, {"_internal.batch_id": batch_id})
               for collection in ("paras", "sci", "sci-text")}
    assert [t["documents_written"] for t in batch["tier_tasks"]] == list(carried.values())
    assert batch["document_count"] == sum(carried.values()) and sum(carried.values()) > 0
    audit = batch["audit"]
    assert audit["balanced"] and audit["inputs"] == (audit["succeeded"] + audit["failed"] + audit["skipped"]
                                                     + audit["cancelled"]), audit


def test_a_scheduled_listing_of_an_unchanged_bucket_starts_nothing(stack):
    client, s3 = stack["client"], stack["s3"]
    for i in range(3):
        put(s3, f"quiet/{i}.txt", 1, "science")
    headers = define(client, "quiet", "quiet/", sync={"interval_seconds": 10})  # the shortest allowed

    def bucket() -> dict[str, Any]:
        return client.get("/v1/buckets/files", headers=headers).json()

    def batches() -> list[dict[str, Any]]:
        return client.post("/v1/batches/list", headers=headers, json={"limit": 100}).json()["results"]

    poll(batches, lambda found: len(found) == 1 and found[0]["status"] == "COMPLETED", 120)  # the first listing
    checked = poll(bucket, lambda b: (b.get("sync_status") or {}).get("changed") is False, 60)  # the next one
    assert checked["sync_status"]["last_checked_at"] > checked["sync_status"]["last_change_at"]
    assert len(batches()) == 1
