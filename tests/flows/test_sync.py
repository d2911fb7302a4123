"""Collections that stay in sync with their buckets: deletions, extractor changes, per-collection
state. A three-tier DAG: notes → chunks (words) → copies → copies2 (passthrough). The tests of
deletions, staleness and schedules, whose SQL differs by database, also run on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, put_text, text_bucket
from tests.utils.factories import trigger as run_trigger
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.catalog.engine import open_session
from tierflow.keys import create_key
from tierflow.staleness import staleness

DAG = ["chunks", "copies", "copies2"]


def count(collection: str, namespace: str = "sync") -> int:
    return list_collection_documents(namespace=namespace, collection=collection, filters=None, limit=1,
                                     offset=0)["pagination"]["total"]


def counts() -> list[int]:
    return [count(c) for c in DAG]


def _define(tmp_path: Any, *, size: int = 1, unique_key: list[str] | None = None) -> None:
    apply_definitions(tmp_path, {"namespace": "sync", "buckets": [text_bucket(unique_key=unique_key)], "collections": [
        chunk_collection(size=size), passthrough_collection("copies", "chunks"),
        passthrough_collection("copies2", "copies")]})


def trigger(**request: Any) -> dict[str, Any]:
    return run_trigger("sync", "chunks", **request)


@pytest.mark.both_backends
def test_an_object_deleted_from_s3_takes_its_documents_from_every_tier(flows, catalog, tmp_path):
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    _define(tmp_path)
    trigger()
    assert counts() == [6, 6, 6]

    flows.delete_object(Bucket="tierflow-test", Key="notes/b.txt")
    kept = trigger(reconcile_deletes=False, dedup_strategy="skip")
    assert kept["deleted_count"] == 0 and counts() == [6, 6, 6]  # kept, on request (b's read fails)

    put_text(flows, "notes/d.txt", "d1 d2")
    put_text(flows, "notes/c.txt", "c1 c2 changed")
    response = trigger(dedup_strategy="skip")
    assert response["deleted_count"] == 1 and counts() == [7, 7, 7]  # a (2), c redone (3: its old 2 replaced), d (2)
    view = batch_view(response["batch_id"])
    assert view["audit"]["deleted"] == 1 and view["audit"]["balanced"]
    assert view["changes"] == {"new": 1, "changed": 1, "unchanged": 1, "stale": 0, "deleted": 1, "excluded": 0,
                               "documents_deleted": 6 + 6}  # b in three tiers, and c's old chunks in three
    texts = {d["text"] for d in list_collection_documents(namespace="sync", collection="copies2", filters=None,
                                                          limit=20, offset=0)["results"]}
    assert not {"b1", "b2"} & texts and {"a1", "d1", "changed"} <= texts


def test_deleting_an_object_over_http_cascades(flows, catalog, tmp_path):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    _define(tmp_path)
    trigger()
    with open_session(catalog) as session:
        key = create_key(session, name="admin", namespaces=None)[1]
    api = TestClient(create_app(), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {key}", "X-Namespace": "sync"}
    listed = api.post("/v1/buckets/notes/objects/list", headers=headers, json={}).json()["results"]
    doomed = next(o["object_id"] for o in listed if o["key"] == "notes/a.txt")
    answer = api.delete(f"/v1/buckets/notes/objects/{doomed}", headers=headers)
    assert answer.status_code == 200 and "6 document(s)" in answer.json()["message"]
    assert counts() == [2, 2, 2]
    assert api.get(f"/v1/buckets/notes/objects/{doomed}", headers=headers).status_code == 404


@pytest.mark.both_backends
def test_a_changed_extractor_makes_documents_stale_and_skip_redoes_exactly_those(flows, catalog, tmp_path):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3 {name}4")
    _define(tmp_path, size=1, unique_key=["key"])
    trigger()
    assert counts() == [8, 8, 8]
    report = staleness(namespace_id=_namespace_id(catalog), collection="chunks")
    assert [(c["current"], c["stale"], c["missing"]) for t in report["tiers"] for c in t["collections"]] == [
        (2, 0, 0), (8, 0, 0), (8, 0, 0)]

    _define(tmp_path, size=2, unique_key=["key"])  # `tierflow apply` of a changed chunk_size
    report = staleness(namespace_id=_namespace_id(catalog), collection="chunks")
    tiers = [(c["current"], c["stale"], c["missing"]) for t in report["tiers"] for c in t["collections"]]
    assert tiers == [(0, 2, 0), (0, 8, 0), (0, 8, 0)]  # every tier below is stale with it

    redone = trigger(dedup_strategy="skip")
    assert [t["inputs_succeeded"] for t in batch_view(redone["batch_id"])["tier_tasks"]] == [2, 4, 4]
    view = batch_view(redone["batch_id"])
    assert view["changes"]["stale"] == 2 and view["audit"]["failed"] == 0  # same files, other settings
    assert counts() == [4, 4, 4]  # two chunks of two words per object: the four old ones are gone
    report = staleness(namespace_id=_namespace_id(catalog), collection="chunks")
    assert all(c["stale"] == 0 and c["missing"] == 0 for t in report["tiers"] for c in t["collections"])
    again = trigger(dedup_strategy="skip")
    assert [t["inputs_succeeded"] for t in batch_view(again["batch_id"])["tier_tasks"]] == [0, 0, 0]


def test_a_change_below_the_root_redoes_only_that_tier_and_below(flows, catalog, tmp_path):
    put_text(flows, "notes/a.txt", "a1 a2")
    _define(tmp_path, unique_key=["key"])
    trigger()
    apply_definitions(tmp_path, {"namespace": "sync", "buckets": [text_bucket(unique_key=["key"])], "collections": [
        chunk_collection(size=1),
        passthrough_collection("copies", "chunks", feature_extractor={
            "feature_extractor_name": "passthrough_extractor", "field_passthrough": [{"source_path": "key"}]}),
        passthrough_collection("copies2", "copies")]})
    redone = trigger(dedup_strategy="skip")
    tiers = batch_view(redone["batch_id"])["tier_tasks"]
    assert [(t["inputs_succeeded"], t["inputs_skipped"]) for t in tiers] == [(0, 1), (2, 0), (2, 0)]


def test_two_collections_on_one_bucket_each_get_what_is_new_for_them(flows, catalog, tmp_path):
    # What the scheduled `process-pending` deployment runs: `dedup_strategy: skip`. With one object
    # status shared by both collections, the second never saw what the first had processed.
    from deployments.serve import NEW_OR_CHANGED

    put_text(flows, "notes/a.txt", "a1 a2")
    apply_definitions(tmp_path, {"namespace": "sync", "buckets": [text_bucket()], "collections": [
        chunk_collection(), chunk_collection("others", size=1)]})
    first = run_trigger("sync", "chunks", **NEW_OR_CHANGED)
    second = run_trigger("sync", "others", **NEW_OR_CHANGED)
    assert [batch_view(r["batch_id"])["tier_tasks"][0]["inputs_succeeded"] for r in (first, second)] == [1, 1]
    put_text(flows, "notes/b.txt", "b1")
    assert batch_view(run_trigger("sync", "others", **NEW_OR_CHANGED)["batch_id"])["tier_tasks"][0][
        "inputs_succeeded"] == 1  # b only
    assert (count("chunks"), count("others")) == (1, 3)


def test_an_input_that_yields_fewer_documents_loses_the_others(flows, catalog, tmp_path):
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    _define(tmp_path, unique_key=["key"])
    trigger()
    assert counts() == [3, 3, 3]
    put_text(flows, "notes/a.txt", "a1")
    trigger()
    assert counts() == [1, 1, 1]


def _namespace_id(url: str) -> str:
    from tierflow.catalog.resources import get_namespace

    with open_session(url) as session:
        return str(get_namespace(session, identifier="sync")["namespace_id"])


@pytest.mark.both_backends
def test_a_bucket_with_a_sync_schedule_follows_its_files_without_a_trigger(flows, catalog, tmp_path):
    import asyncio

    from sqlalchemy import update

    from flows.sync import sync_buckets
    from tierflow.catalog.schema import buckets

    put_text(flows, "notes/a.txt", "a1 a2")
    synced = {**text_bucket(), "sync": {"interval_seconds": 60}}
    apply_definitions(tmp_path, {"namespace": "sync", "buckets": [synced], "collections": [
        chunk_collection(size=1), chunk_collection("others", size=2)]})
    assert len(asyncio.run(sync_buckets())) == 2  # due at once: one batch per collection
    assert (count("chunks"), count("others")) == (2, 1)
    put_text(flows, "notes/b.txt", "b1")
    assert asyncio.run(sync_buckets()) == []  # not due again for a minute
    with open_session(catalog) as session:  # a minute later
        session.execute(update(buckets).values(synced_at="2000-01-01T00:00:00.000000+00:00"))
    later = asyncio.run(sync_buckets())
    assert [batch_view(b)["tier_tasks"][0]["inputs_succeeded"] for b in later] == [1, 1]  # b, for each
    assert (count("chunks"), count("others")) == (3, 2)


def _scheduled(tmp_path: Any, *, size: int = 1) -> None:
    """The sync DAG on a bucket listed every minute: notes → chunks → copies."""
    apply_definitions(tmp_path, {"namespace": "sync", "buckets": [{**text_bucket(), "sync": {"interval_seconds": 60}}],
                                 "collections": [chunk_collection(size=size), passthrough_collection("copies", "chunks")]})


def _sync_when_due(catalog: str) -> list[str]:
    """The scheduled listing, run once the bucket's interval has gone by; the batches it started."""
    import asyncio

    from sqlalchemy import update

    from flows.sync import sync_buckets
    from tierflow.catalog.schema import buckets

    with open_session(catalog) as session:
        session.execute(update(buckets).values(synced_at="2000-01-01T00:00:00.000000+00:00"))
    return asyncio.run(sync_buckets())


def _started(catalog: str) -> tuple[int, int]:
    """(batches in the catalog, trigger runs in Prefect) of the `chunks` collection."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from sqlalchemy import func, select

    from tierflow.catalog.resources import get_collection
    from tierflow.catalog.schema import batches

    with open_session(catalog) as session:
        collection_id = get_collection(session, namespace_id=_namespace_id(catalog), identifier="chunks")["collection_id"]
        count = session.execute(select(func.count()).select_from(batches)).scalar_one()

    async def runs() -> int:
        async with get_client() as client:
            return len(await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"trigger-{collection_id}"]))))

    return int(count), asyncio.run(runs())


def _sync_status(catalog: str) -> dict[str, Any] | None:
    """The bucket's `sync_status`, as `GET /v1/buckets/notes` shows it."""
    with open_session(catalog) as session:
        key = create_key(session, name="admin", namespaces=None)[1]
    answer = TestClient(create_app()).get("/v1/buckets/notes", headers={"Authorization": f"Bearer {key}",
                                                                        "X-Namespace": "sync"})
    assert answer.status_code == 200
    return answer.json().get("sync_status")


@pytest.mark.both_backends
def test_a_scheduled_listing_that_finds_no_change_starts_nothing(flows, catalog, tmp_path):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    _scheduled(tmp_path)
    assert len(_sync_when_due(catalog)) == 1  # never processed: one batch (copies runs in it)
    started, first = _started(catalog), _sync_status(catalog)
    assert started[1] == 1

    assert _sync_when_due(catalog) == []  # a minute later, nothing changed
    assert _started(catalog) == started  # no batch, no Prefect run
    quiet = _sync_status(catalog)
    assert first and first["changed"] and first["last_change_at"] == first["last_checked_at"]
    assert quiet and quiet["last_checked_at"] > first["last_checked_at"]
    assert not quiet["changed"] and quiet["last_change_at"] == first["last_change_at"]


@pytest.mark.parametrize("change", ["changed", "deleted", "new"])
def test_a_changed_deleted_or_new_object_starts_one_batch_and_then_the_bucket_is_quiet(flows, catalog, tmp_path,
                                                                                      change):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    _scheduled(tmp_path)
    _sync_when_due(catalog)
    batches, runs = _started(catalog)
    if change == "changed":
        put_text(flows, "notes/a.txt", "a1 a2 a3")  # a new etag
    elif change == "deleted":
        flows.delete_object(Bucket="tierflow-test", Key="notes/b.txt")
    else:
        put_text(flows, "notes/c.txt", "c1")

    started = _sync_when_due(catalog)
    assert len(started) == 1 and _started(catalog) == (batches + 1, runs + 1)
    assert batch_view(started[0])["changes"][change] == 1
    status = _sync_status(catalog)
    assert _sync_when_due(catalog) == [] and _started(catalog) == (batches + 1, runs + 1)  # done: quiet again
    assert status and status["changed"] and status["last_change_at"] == status["last_checked_at"]


def test_a_collection_that_is_not_current_is_triggered_though_no_file_changed(flows, catalog, tmp_path):
    put_text(flows, "notes/a.txt", "a1 a2")
    _scheduled(tmp_path)
    _sync_when_due(catalog)
    _scheduled(tmp_path, size=2)  # `tierflow apply` of a changed chunk size: every tier is stale
    started = _sync_when_due(catalog)
    # a is redone (stale: same file, other settings); its new chunks replace the old ones, so copies
    # reads new documents, not stale ones
    assert len(started) == 1 and batch_view(started[0])["changes"]["stale"] == 1
    assert batch_view(started[0])["tier_tasks"][0]["inputs_succeeded"] == 1
    assert _sync_when_due(catalog) == []
