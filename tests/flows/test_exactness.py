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
