"""An incremental run is exact, case by case: inputs that leave a filter are deletions below it,
the same bytes put with new metadata are a change, staleness counts what `skip` will redo, and a
cancelled batch's counters are what it wrote."""

from __future__ import annotations

import time

import pytest

from tests.utils.factories import apply_definitions, passthrough_collection, put_text, text_bucket, trigger
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.settings import get_settings
from tierflow.staleness import staleness


def texts(collection: str) -> list[str]:
    page = list_collection_documents(namespace="exact", collection=collection, filters=None, limit=1000, offset=0)
    return sorted(d["text"] for d in page["results"])


def world(tmp_path, *, category: str = "science") -> None:
    """paras (paragraphs, category passed through) -> sci (category == `category`) -> sci-words."""
    apply_definitions(tmp_path, {"namespace": "exact", "buckets": [text_bucket(unique_key=["key"])], "collections": [
        {"collection_name": "paras", "source": {"type": "bucket", "bucket_ids": ["notes"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "paragraphs", "chunk_size": 1},
                               "field_passthrough": [{"source_path": "metadata.category", "target_path": "category"}]}},
        passthrough_collection("sci", "paras", source={"type": "collection", "collection_ids": ["paras"],
                                                       "source_filters": {"filters": {"category": category}}}),
        {"collection_name": "sci-words", "source": {"type": "collection", "collection_ids": ["sci"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "words", "chunk_size": 1}}},
    ]})


def namespace_id() -> str:
    with open_session(get_settings().database_url) as session:
        return resources.get_namespace(session, identifier="exact")["namespace_id"]


@pytest.mark.both_backends
@pytest.mark.parametrize("dedup", [None, "skip", "replace"])
def test_an_input_that_leaves_a_filter_is_deleted_below(flows, tmp_path, dedup):
    world(tmp_path)
    put_text(flows, "notes/a.txt", "one two\n\nthree", {"category": "science"})
    put_text(flows, "notes/b.txt", "four", {"category": "science"})
    trigger("exact", "paras")
    assert texts("sci-words") == ["four", "one", "three", "two"]

    put_text(flows, "notes/a.txt", "one two\n\nthree!", {"category": "art"})  # new bytes, out of the filter
    view = batch_view(trigger("exact", "paras", **({"dedup_strategy": dedup} if dedup else {}))["batch_id"])
    assert texts("paras") == ["four", "one two", "three!"]
    assert texts("sci") == ["four"] and texts("sci-words") == ["four"]
    assert view["changes"]["excluded"] == 2  # a's two paragraphs left sci
    assert view["changes"]["documents_deleted"] == 2 + 3  # their sci documents and sci-words' below
    assert view["audit"]["balanced"]


@pytest.mark.both_backends
def test_a_filter_changed_deletes_what_it_now_leaves_out(flows, tmp_path):
    world(tmp_path)
    put_text(flows, "notes/a.txt", "alpha", {"category": "science"})
    put_text(flows, "notes/b.txt", "beta", {"category": "art"})
    trigger("exact", "paras")
    world(tmp_path, category="art")
    trigger("exact", "paras", dedup_strategy="skip")
    assert texts("sci") == ["beta"] and texts("sci-words") == ["beta"]
    for tier in staleness(namespace_id=namespace_id(), collection="paras")["tiers"]:
        for row in tier["collections"]:
            assert (row["stale"], row["missing"], row["left_over"]) == (0, 0, 0), row


@pytest.mark.both_backends
def test_the_same_bytes_with_new_metadata_are_a_change(flows, tmp_path):
    world(tmp_path)
    put_text(flows, "notes/a.txt", "alpha", {"category": "science"})
    put_at = time.time()
    trigger("exact", "paras")
    assert texts("sci") == ["alpha"]
    while int(time.time()) <= int(put_at):  # LastModified is kept to the second
        time.sleep(0.05)
    put_text(flows, "notes/a.txt", "alpha", {"category": "art"})  # same ETag, new LastModified
    view = batch_view(trigger("exact", "paras", dedup_strategy="skip")["batch_id"])
    assert view["changes"]["changed"] == 1
    page = list_collection_documents(namespace="exact", collection="paras", filters=None, limit=10, offset=0)
    assert [d["category"] for d in page["results"]] == ["art"]
    assert texts("sci") == [] and texts("sci-words") == []


@pytest.mark.both_backends
def test_staleness_reports_filtered_inputs_as_excluded(flows, tmp_path):
    world(tmp_path)
    put_text(flows, "notes/a.txt", "alpha\n\nbeta", {"category": "science"})
    put_text(flows, "notes/b.txt", "gamma", {"category": "art"})
    trigger("exact", "paras")
    report = staleness(namespace_id=namespace_id(), collection="paras")
    sci = report["tiers"][1]["collections"][0]
    assert (sci["inputs"], sci["current"], sci["stale"], sci["missing"], sci["excluded"]) == (2, 2, 0, 0, 1)


def _chunked_batch(s3, tmp_path, monkeypatch):
    """Three objects of a words collection, planned, listed and selected into three chunks of one."""
    from tierflow import batches, chunking, planning, selection
    from tierflow.discovery import discover_bucket_by_id
    from tierflow.models.trigger import TriggerRequest

    monkeypatch.setenv("TIERFLOW_CHUNK_SIZE", "1")
    get_settings.cache_clear()
    for name in ("a", "b", "c"):
        put_text(s3, f"notes/{name}.txt", "one two three four")
    apply_definitions(tmp_path, {"namespace": "exact", "buckets": [text_bucket()], "collections": [
        {"collection_name": "words", "source": {"type": "bucket", "bucket_ids": ["notes"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "words", "chunk_size": 1}}}]})
    plan = planning.plan_batch(namespace="exact", collection="words", request=TriggerRequest(), task_id=None)
    discover_bucket_by_id(plan.source_bucket_ids[0])
    selection.select_tier_inputs(batch_id=plan.batch_id, tier_num=0)
    chunks = list(chunking.chunk_plan(batch_id=plan.batch_id, tier_num=0))
    assert len(chunks) == 3
    batches.start_tier(batch_id=plan.batch_id, tier_num=0, task_id=None, parent_task_id=None)
    return plan.batch_id, chunks


def _carrying(batch_id: str) -> int:
    from sqlalchemy import func, select

    from tierflow.catalog.schema import documents

    with open_session(get_settings().database_url) as session:
        return session.execute(select(func.count()).select_from(documents)
                               .where(documents.c.batch_id == batch_id)).scalar_one()


@pytest.mark.both_backends
def test_a_cancelled_batch_counts_what_it_wrote(s3, catalog, tmp_path, monkeypatch):
    from tierflow import batches, processing

    batch_id, chunks = _chunked_batch(s3, tmp_path, monkeypatch)

    def run(chunk: tuple[str, list[str]]) -> None:
        processing.process_chunk(batch_id=batch_id, collection_id=chunk[0], tier_num=0, input_ids=chunk[1])

    run(chunks[0])
    real = processing._documents_for

    def cancelled_meanwhile(*args, **kwargs):  # the cancel lands while this chunk is under way
        monkeypatch.setattr(processing, "_documents_for", real)
        batches.cancel_batch(batch_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(processing, "_documents_for", cancelled_meanwhile)
    run(chunks[1])
    run(chunks[2])  # begun after the cancel: does nothing

    view = batch_view(batch_id)
    (tier,) = view["tier_tasks"]
    assert view["status"] == tier["status"] == "CANCELED"
    assert _carrying(batch_id) == 8 and tier["documents_written"] == view["document_count"] == 8
    assert (tier["documents_submitted_to_engine"], tier["inputs_succeeded"]) == (3, 2)
    assert (view["audit"]["cancelled"], view["audit"]["lost"], view["audit"]["balanced"]) == (1, 0, True)


@pytest.mark.both_backends
def test_a_failed_batch_counts_what_its_run_wrote_before_failing(s3, catalog, tmp_path, monkeypatch):
    from tierflow import batches, processing

    batch_id, chunks = _chunked_batch(s3, tmp_path, monkeypatch)
    processing.process_chunk(batch_id=batch_id, collection_id=chunks[0][0], tier_num=0, input_ids=chunks[0][1])
    response = batches.finish_batch(batch_id=batch_id, failure="the run's process died", transient=True)
    (tier,) = batch_view(batch_id)["tier_tasks"]
    assert response.document_count == tier["documents_written"] == _carrying(batch_id) == 4
    assert (tier["documents_submitted_to_engine"], tier["inputs_succeeded"]) == (3, 1)


@pytest.mark.both_backends
def test_verify_reports_what_a_collection_should_not_hold_until_a_run_fixes_it(flows, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app
    from tierflow.verify import verify_collection

    world(tmp_path)
    put_text(flows, "notes/a.txt", "alpha", {"category": "science"})
    put_text(flows, "notes/b.txt", "beta", {"category": "art"})
    trigger("exact", "paras")
    assert verify_collection(namespace_id=namespace_id(), collection="paras")["clean"]

    world(tmp_path, category="art")  # sci now reads beta only: alpha's documents should go, beta's come
    report = verify_collection(namespace_id=namespace_id(), collection="paras")
    sci = report["tiers"][1]["collections"][0]
    assert (sci["unexpected_documents"]["count"], sci["unprocessed_inputs"]["count"]) == (1, 1)
    assert report["tiers"][2]["collections"][0]["unprocessed_inputs"]["count"] == 0  # nothing new there yet
    assert report["differences"] == 2 and not report["clean"]
    found = CliRunner().invoke(app, ["collections", "verify", "paras", "-n", "exact"])
    assert found.exit_code == 1 and "2 difference(s)" in found.output

    trigger("exact", "paras", dedup_strategy="skip")
    assert CliRunner().invoke(app, ["collections", "verify", "paras", "-n", "exact"]).exit_code == 0
