"""Triggers through the real flows: tiers, counters, lineage, task ids, upsert vs create."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

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


def docs(collection: str, namespace: str = "flows", **filters) -> dict:
    return list_collection_documents(namespace=namespace, collection=collection, filters=filters or None, limit=1000, offset=0)


async def read_runs(*ids: str) -> list:
    async with get_client() as client:
        return [await client.read_flow_run(UUID(i)) for i in ids]


@pytest.mark.both_backends
def test_two_tiers_with_task_ids_counters_and_lineage(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two three four five six seven")
    put_text(flows, "notes/b.txt", "alpha beta gamma")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(), passthrough_collection("copies", "chunks")]})
    response = trigger("flows", "chunks")
    view = batch_view(response["batch_id"])

    assert view["status"] == "COMPLETED"
    assert response["total_tiers"] == 2 and response["object_count"] == 2
    assert response["document_count"] == 4 + 4
    tier0, tier1 = view["tier_tasks"]
    assert (tier0["documents_submitted_to_engine"], tier0["documents_written"]) == (2, 4)
    assert (tier1["source_documents_fetched"], tier1["documents_written"]) == (4, 4)
    for tier in view["tier_tasks"]:
        assert tier["documents_submitted_to_engine"] == tier["inputs_succeeded"] + tier["inputs_failed"] + tier["inputs_skipped"]

    # task ids are Prefect flow runs: the trigger, and one subflow per tier, chained by parent_task_id
    trigger_run, run0, run1 = asyncio.run(read_runs(response["task_id"], tier0["task_id"], tier1["task_id"]))
    assert trigger_run.state.is_completed() and trigger_run.name == "trigger-chunks"
    assert (run0.name, run1.name) == ("tier-0", "tier-1")
    assert run0.parent_task_run_id is not None and run1.parent_task_run_id is not None
    assert (tier0["parent_task_id"], tier1["parent_task_id"]) == (response["task_id"], tier0["task_id"])

    copies = docs("copies")["results"]
    chunks = {d["document_id"]: d for d in docs("chunks")["results"]}
    sample = next(d for d in copies if d["text"] == "one two three")
    lineage = sample["_internal"]["lineage"]
    parent = chunks[lineage["source_document_id"]]
    assert lineage["root_object_id"] == parent["_internal"]["lineage"]["root_object_id"]
    assert lineage["root_bucket_id"] == response["source_bucket_ids"][0]
    assert lineage["source_collection_id"] == parent["collection_id"]
    assert lineage["path"] == f"{lineage['root_bucket_id']}/{parent['collection_id']}/{sample['collection_id']}"
    assert [c["document_id"] for c in lineage["chain"]] == [parent["document_id"], sample["document_id"]]
    assert sample["_internal"]["batch_id"] == response["batch_id"]
    assert parent["chunk_index"] == 0 and parent["_internal"]["lineage"]["source_object_id"] == lineage["root_object_id"]


@pytest.mark.both_backends
def test_unique_key_upserts_and_no_key_creates(flows, tmp_path):
    put_text(flows, "notes/a.txt", "a b c d")
    put_text(flows, "plain/a.txt", "a b c d")
    apply_definitions(tmp_path, {"namespace": "flows",
                                 "buckets": [text_bucket(unique_key=["key"]), text_bucket("plain", "plain/")],
                                 "collections": [chunk_collection(size=2), chunk_collection("plain-chunks", "plain", size=2)]})
    for _ in range(2):
        trigger("flows", "chunks")
        trigger("flows", "plain-chunks")
    keyed = docs("chunks")
    assert keyed["pagination"]["total"] == 2  # upserted: same ids, latest batch
    assert len({d["_internal"]["batch_id"] for d in keyed["results"]}) == 1
    assert docs("plain-chunks")["pagination"]["total"] == 4  # created anew each run


def test_diamond_and_three_tiers(flows, tmp_path):
    put_text(flows, "notes/a.txt", "a b c d e f")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket(unique_key=["key"])], "collections": [
        chunk_collection(size=2),
        passthrough_collection("left", "chunks"),
        passthrough_collection("right", "chunks"),
        passthrough_collection("join", "left", "right"),
    ]})
    response = trigger("flows", "chunks")
    view = batch_view(response["batch_id"])
    names = [sorted(view["collection_names"][c] for c in tier) for tier in view["dag_tiers"]]
    assert names == [["chunks"], ["left", "right"], ["join"]]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [3, 6, 6]
    join = docs("join")["results"]
    assert {len(d["_internal"]["lineage"]["chain"]) for d in join} == {3}
    assert {d["_internal"]["lineage"]["path"].split("/")[2] for d in join} == {
        view["tier_tasks"][1]["collection_ids"][0], view["tier_tasks"][1]["collection_ids"][1]}
    assert view["status"] == "COMPLETED"


@pytest.mark.both_backends
def test_objects_sharing_unique_key_values_upsert_one_document(flows, tmp_path):
    put_text(flows, "notes/a.txt", "same words", {"doc-id": "42"})
    put_text(flows, "notes/b.txt", "same words", {"doc-id": "42"})
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket(unique_key=["doc-id"])],
                                 "collections": [chunk_collection(size=5)]})
    response = trigger("flows", "chunks")
    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED" and view["tier_tasks"][0]["inputs_succeeded"] == 2
    assert docs("chunks")["pagination"]["total"] == 1
