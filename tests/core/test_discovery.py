"""Discovery: new, changed and unchanged objects; pagination; metadata; deterministic ids."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket
from tierflow import batches, planning
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import objects
from tierflow.chunking import chunk_plan
from tierflow.discovery import discover_bucket_by_id, object_id_for
from tierflow.models.trigger import TriggerRequest
from tierflow.processing import process_chunk
from tierflow.selection import select_new_inputs, select_tier_inputs
from tierflow.settings import get_settings
from tierflow.storage import s3_client


def define(tmp_path, catalog, **bucket) -> str:
    report = apply_definitions(tmp_path, {"namespace": "disc", "buckets": [text_bucket(**bucket)]})
    with open_session(catalog) as session:
        return resources.get_bucket(session, namespace_id=report.namespace_id, identifier="notes")["bucket_id"]


@pytest.mark.both_backends
def test_new_changed_and_unchanged_objects(s3, catalog, tmp_path):
    bucket_id = define(tmp_path, catalog)
    put_text(s3, "notes/a.txt", "first", {"category": "science"})
    put_text(s3, "notes/b.txt", "second")
    put_text(s3, "elsewhere/c.txt", "not under the prefix")
    stats = discover_bucket_by_id(bucket_id)
    assert (stats.listed, stats.new, stats.changed, stats.unchanged) == (2, 2, 0, 0)

    a_id = object_id_for(bucket_id, "notes/a.txt")
    with open_session(catalog) as session:
        record = catalog_objects.get_objects(session, object_ids=[a_id])[a_id]
        session.execute(update(objects).values(status="COMPLETED"))
    assert record["key"] == "notes/a.txt"
    assert record["size_bytes"] == 5
    assert record["content_type"] == "text/plain"
    assert record["metadata"] == {"category": "science"}
    assert record["blobs"][0]["data"] == "s3://tierflow-test/notes/a.txt"
    assert record["blobs"][0]["property"] == "content"
    assert record["status"] == "PENDING"
    assert record["etag"] and record["last_modified"].endswith("+00:00")

    put_text(s3, "notes/a.txt", "first, edited")
    put_text(s3, "notes/d.txt", "new")
    stats = discover_bucket_by_id(bucket_id)
    assert (stats.listed, stats.new, stats.changed, stats.unchanged) == (3, 1, 1, 1)
    b_id = object_id_for(bucket_id, "notes/b.txt")
    with open_session(catalog) as session:
        found = catalog_objects.get_objects(session, object_ids=[a_id, b_id])
    assert found[a_id]["status"] == "PENDING" and found[a_id]["size_bytes"] == 13  # changed: back to PENDING
    assert found[b_id]["status"] == "COMPLETED"  # unchanged: keeps its status


def test_listing_pages_through_every_page(s3, catalog, tmp_path, monkeypatch):
    # Three pages of 40 keys (the last one partial) exercise the same continuation path as
    # S3's 1000-key pages, at a tenth of the cost.
    monkeypatch.setenv("TIERFLOW_DISCOVERY_PAGE_SIZE", "40")
    get_settings.cache_clear()
    bucket_id = define(tmp_path, catalog)
    keys = [f"notes/{i:05d}.txt" for i in range(105)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="tierflow-test", Key=k, Body=b"x"), keys))
    listings: list[object] = []
    s3_client(None, None).meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kwargs: listings.append(kwargs["params"]))
    stats = discover_bucket_by_id(bucket_id)
    assert (stats.listed, stats.new) == (105, 105)
    assert len(listings) == 3
    assert discover_bucket_by_id(bucket_id).unchanged == 105


def test_metadata_takes_the_types_of_the_bucket_schema(s3, catalog, tmp_path):
    bucket = text_bucket()
    bucket["bucket_schema"]["properties"].update(year={"type": "integer"}, draft={"type": "boolean"})
    report = apply_definitions(tmp_path, {"namespace": "disc", "buckets": [bucket]})
    put_text(s3, "notes/a.txt", "x", {"year": "2024", "draft": "true", "category": "7"})
    with open_session(catalog) as session:
        bucket_id = resources.get_bucket(session, namespace_id=report.namespace_id, identifier="notes")["bucket_id"]
    discover_bucket_by_id(bucket_id)
    oid = object_id_for(bucket_id, "notes/a.txt")
    with open_session(catalog) as session:
        assert catalog_objects.get_objects(session, object_ids=[oid])[oid]["metadata"] == {
            "year": 2024, "draft": True, "category": "7"}


def _count_calls(operation: str) -> list[str]:
    calls: list[str] = []
    s3_client(None, None).meta.events.register(
        f"before-call.s3.{operation}", lambda **kwargs: calls.append(kwargs["params"]["url_path"]))
    return calls


def test_a_bucket_of_files_alone_is_not_headed_and_its_reads_fill_in_the_facts(s3, catalog, tmp_path):
    # Nothing but the file is declared, so nothing needs metadata before the files are read: the
    # listing is enough, and the GET that reads each file records its real content type and metadata.
    bucket = text_bucket()
    del bucket["bucket_schema"]["properties"]["category"]
    collection = {"collection_name": "copies", "source": {"type": "bucket", "bucket_ids": ["notes"]},
                  "feature_extractor": {"feature_extractor_name": "text_extractor",
                                        "parameters": {"embedding_dimension": 0}}}
    report = apply_definitions(tmp_path, {"namespace": "disc", "buckets": [bucket], "collections": [collection]})
    s3.put_object(Bucket="tierflow-test", Key="notes/readme", Body=b"plain words",
                  ContentType="text/markdown", Metadata={"lang": "en"})
    heads = _count_calls("HeadObject")
    with open_session(catalog) as session:
        bucket_id = resources.get_bucket(session, namespace_id=report.namespace_id, identifier="notes")["bucket_id"]
    discover_bucket_by_id(bucket_id)
    oid = object_id_for(bucket_id, "notes/readme")
    with open_session(catalog) as session:
        before = catalog_objects.get_objects(session, object_ids=[oid])[oid]
    assert heads == []
    assert (before["content_type"], before["metadata"]) == (None, {})  # no extension to guess from

    plan = planning.plan_batch(namespace="disc", collection="copies", request=TriggerRequest(), task_id=None)
    select_tier_inputs(batch_id=plan.batch_id, tier_num=0)
    [(collection_id, ids)] = chunk_plan(batch_id=plan.batch_id, tier_num=0)
    assert process_chunk(batch_id=plan.batch_id, collection_id=collection_id, tier_num=0, input_ids=ids).succeeded == 1
    with open_session(catalog) as session:
        after = catalog_objects.get_objects(session, object_ids=[oid])[oid]
    assert (after["content_type"], after["metadata"], after["status"]) == ("text/markdown", {"lang": "en"}, "COMPLETED")


def test_declared_fields_or_the_setting_make_discovery_head_each_new_object(s3, catalog, tmp_path, monkeypatch):
    bucket = text_bucket()
    del bucket["bucket_schema"]["properties"]["category"]
    report = apply_definitions(tmp_path, {"namespace": "disc", "buckets": [bucket]})
    put_text(s3, "notes/a.txt", "x", {"category": "science"})
    monkeypatch.setenv("TIERFLOW_DISCOVERY_HEAD", "always")
    get_settings.cache_clear()
    heads = _count_calls("HeadObject")
    with open_session(catalog) as session:
        bucket_id = resources.get_bucket(session, namespace_id=report.namespace_id, identifier="notes")["bucket_id"]
    discover_bucket_by_id(bucket_id)
    assert heads == ["/notes/a.txt"]
    oid = object_id_for(bucket_id, "notes/a.txt")
    with open_session(catalog) as session:
        assert catalog_objects.get_objects(session, object_ids=[oid])[oid]["metadata"] == {"category": "science"}


def test_each_registered_page_is_heard_and_selected_for_the_root_tier_once(s3, catalog, tmp_path, monkeypatch):
    # The root tier starts on the first listing page: each page is registered before it is heard
    # of, and selecting it adds only what the trigger's filter keeps, once.
    monkeypatch.setenv("TIERFLOW_DISCOVERY_PAGE_SIZE", "2")
    get_settings.cache_clear()
    apply_definitions(tmp_path, {"namespace": "disc", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    for i in range(5):
        put_text(s3, f"notes/{i}.txt", "x", {"category": "keep" if i % 2 else "drop"})
    request = TriggerRequest.model_validate(
        {"source_filters": {"AND": [{"field": "metadata.category", "operator": "eq", "value": "keep"}]}})
    plan = planning.plan_batch(namespace="disc", collection="chunks", request=request, task_id=None)
    heard: list[list[str]] = []

    def on_page(object_ids: list[str]) -> None:
        with open_session(catalog) as session:
            assert set(catalog_objects.get_objects(session, object_ids=object_ids)) == set(object_ids)
        heard.append(object_ids)

    discover_bucket_by_id(plan.source_bucket_ids[0], on_page)
    assert [len(page) for page in heard] == [2, 2, 1]

    bucket_id = plan.source_bucket_ids[0]
    added = [select_new_inputs(batch_id=plan.batch_id, tier_num=0, upstream_id=bucket_id, source_ids=page)
             for page in heard]
    kept = sorted(i for a in added for ids in a.values() for i in ids)
    assert kept == sorted(object_id_for(bucket_id, f"notes/{i}.txt") for i in (1, 3))
    assert select_new_inputs(batch_id=plan.batch_id, tier_num=0, upstream_id=bucket_id,
                             source_ids=heard[0]) == {plan.collection_id: []}
    # The closing full selection adds nothing more and counts the batch's objects.
    assert select_tier_inputs(batch_id=plan.batch_id, tier_num=0)[plan.collection_id]["selected"] == 2


def test_a_batch_whose_run_died_while_discovery_fed_it_is_discovered_again(s3, catalog, tmp_path):
    apply_definitions(tmp_path, {"namespace": "disc", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    plan = planning.plan_batch(namespace="disc", collection="chunks", request=TriggerRequest(), task_id=None)
    assert plan.streams_discovery
    batches.start_tier(batch_id=plan.batch_id, tier_num=0, task_id=None, parent_task_id=None)
    # Its root selection never closed: discovery runs again and feeds the root tier.
    assert planning.adopt_batch(batch_id=plan.batch_id, task_id=None, namespace="disc").streams_discovery
    select_tier_inputs(batch_id=plan.batch_id, tier_num=0)
    again = planning.adopt_batch(batch_id=plan.batch_id, task_id=None, namespace="disc")
    assert again.resumed and not again.streams_discovery
    named = planning.plan_batch(namespace="disc", collection="chunks", task_id=None,
                                request=TriggerRequest(object_ids=[]))
    assert not named.streams_discovery  # named objects are checked before anything runs
