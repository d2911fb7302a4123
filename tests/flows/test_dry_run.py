"""A dry run says what the trigger would do, before and after changes in S3, and the trigger then
does just that; the dry run itself changes nothing in the catalog or in Prefect."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from sqlalchemy import func, select

from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, put_text, text_bucket
from tests.utils.factories import trigger as run_trigger
from tierflow import dry_run
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import batch_inputs, batches, documents, objects
from tierflow.dry_run import preview_trigger
from tierflow.models.trigger import TriggerRequest


def _catalog_counts(catalog: str) -> tuple[int, ...]:
    with open_session(catalog) as session:
        return tuple(session.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (objects, batches, batch_inputs, documents))


async def _flow_runs() -> int:
    async with get_client() as client:
        return len(await client.read_flow_runs())


def _preview_changes_nothing(catalog: str, **request: Any) -> dict[str, Any]:
    before, runs = _catalog_counts(catalog), asyncio.run(_flow_runs())
    preview = preview_trigger(namespace="dry", collection="chunks", request=TriggerRequest(**request))
    assert _catalog_counts(catalog) == before and asyncio.run(_flow_runs()) == runs
    return preview


def _agrees(preview: dict[str, Any], view: dict[str, Any]) -> None:
    """The batch did what the preview said it would."""
    changes = view["changes"]
    assert {k: preview["objects"][k] for k in ("new", "changed", "unchanged", "deleted")} == {
        k: changes[k] for k in ("new", "changed", "unchanged", "deleted")}
    root = view["tier_tasks"][0]
    assert preview["inputs_to_process"] == root["inputs_succeeded"]
    assert preview["selected"]["skipped"] == root["inputs_skipped"]
    assert [t["collection_ids"] for t in preview["tiers"]] == [t["collection_ids"] for t in view["tier_tasks"]]


def test_a_dry_run_matches_what_the_trigger_then_does(flows, catalog, tmp_path):
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3 {name}4 {name}5 {name}6")
    apply_definitions(tmp_path, {"namespace": "dry", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks")]})

    first = _preview_changes_nothing(catalog)
    assert first["objects"] == {"listed": 3, "new": 3, "changed": 0, "unchanged": 0, "deleted": 0}
    assert first["complete"]
    assert first["bytes_to_read"] == 3 * len("a1 a2 a3 a4 a5 a6")
    assert first["expected_documents"] == [None, None]  # no history yet
    _agrees(first, batch_view(run_trigger("dry", "chunks")["batch_id"]))

    # One file changed, one added, one removed: and a filter on the key that leaves one out.
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    put_text(flows, "notes/d.txt", "d1 d2 d3 d4 d5 d6")
    put_text(flows, "notes/e.txt", "e1 e2 e3")
    flows.delete_object(Bucket="tierflow-test", Key="notes/b.txt")
    keep = {"AND": [{"field": "key", "operator": "ne", "value": "notes/e.txt"}]}
    second = _preview_changes_nothing(catalog, dedup_strategy="skip", source_filters=keep)
    assert second["objects"] == {"listed": 4, "new": 2, "changed": 1, "unchanged": 1, "deleted": 1}
    assert second["selected"] == {"new": 1, "changed": 1, "unchanged": 0, "skipped": 1}
    assert second["bytes_to_read"] == len("a1 a2 a3") + len("d1 d2 d3 d4 d5 d6")
    # History: each file made two chunks of three words, and each chunk one copy.
    assert second["expected_documents"] == [4, 4]
    view = batch_view(run_trigger("dry", "chunks", dedup_strategy="skip", source_filters=keep)["batch_id"])
    _agrees(second, view)
    assert view["tier_tasks"][0]["documents_written"] == 3  # a: one chunk now, d: two


def test_a_dry_run_of_a_huge_bucket_stops_listing_and_says_so(flows, catalog, tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    apply_definitions(tmp_path, {"namespace": "dry", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    monkeypatch.setattr(dry_run, "MAX_LISTED", 2)  # 100,000 in production; a page here holds all three
    preview = _preview_changes_nothing(catalog)
    assert not preview["complete"] and preview["objects"]["listed"] == 3 and preview["objects"]["deleted"] == 0


def _split(name: str, source: str, split_by: str, **extractor: Any) -> dict[str, Any]:
    return {"collection_name": name, "source": {"type": "collection", "collection_ids": [source]},
            "feature_extractor": {"feature_extractor_name": "text_extractor",
                                  "parameters": {"split_by": split_by, "chunk_size": 1}, **extractor}}


def _only(collection: dict[str, Any], field: str, operator: str, value: Any) -> dict[str, Any]:
    """The collection, reading only the inputs whose `field` passes."""
    condition = {"field": field, "operator": operator, "value": value}
    collection["source"]["source_filters"] = {"filters": {"AND": [condition]}}
    return collection


def _by_collection(preview: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["collection_name"]: c for c in preview["collections"]}


def _written(view: dict[str, Any]) -> list[int]:
    return [t["documents_written"] for t in view["tier_tasks"]]


def test_a_filter_below_the_root_is_applied_where_passthrough_fields_tell_it(flows, catalog, tmp_path):
    # The quickstart's shape: notes of two paragraphs of two sentences each, their category
    # carried down from the object's metadata; tier 2 keeps the science sentences only.
    for name, category in (("tides", "science"), ("bread", "cooking"), ("silk", "history")):
        put_text(flows, f"notes/{name}.txt", f"{name} one. {name} two.\n\n{name} three. {name} four.",
                 metadata={"category": category})
    paragraphs = {"collection_name": "paragraphs", "source": {"type": "bucket", "bucket_ids": ["notes"]},
                  "feature_extractor": {"feature_extractor_name": "text_extractor",
                                        "parameters": {"split_by": "paragraphs", "chunk_size": 1},
                                        "field_passthrough": [{"source_path": "metadata.category",
                                                               "target_path": "category"}]}}
    apply_definitions(tmp_path, {"namespace": "dry", "buckets": [text_bucket(unique_key=["key"])], "collections": [
        paragraphs,
        _split("sentences", "paragraphs", "sentences", field_passthrough=[{"source_path": "category"}]),
        _split("words", "paragraphs", "words"),
        _only(passthrough_collection("science", "sentences"), "category", "eq", "science"),
        _only(passthrough_collection("fours", "sentences"), "text", "contains", "four"),
    ]})
    before = _written(batch_view(run_trigger("dry", "paragraphs")["batch_id"]))  # the history
    preview = preview_trigger(namespace="dry", collection="paragraphs", request=TriggerRequest())
    again = _written(batch_view(run_trigger("dry", "paragraphs")["batch_id"]))
    assert before == again == [6, 12 + 24, 4 + 3]
    # Tier 2: science's 4 exactly, and at most 12 for fours (it wrote 3).
    assert preview["expected_documents"] == [6, 36, 4 + 12]
    assert preview["expected_documents_exact"] == [True, True, False]
    assert [t["expected_documents_exact"] for t in preview["tiers"]] == [True, True, False]

    estimates = _by_collection(preview)
    # Tier 2 reads sentences only (not words), and `category` is known from the metadata.
    assert estimates["science"]["reads"] == [estimates["sentences"]["collection_id"]]
    assert (estimates["science"]["expected_inputs"], estimates["science"]["expected_documents"]) == (4, 4)
    assert estimates["science"]["expected_documents_exact"] and estimates["science"]["reason"] is None
    # `text` is what the extractor writes: every sentence is counted, and the figure says so.
    assert estimates["fours"]["expected_documents"] == 12 > 3
    assert not estimates["fours"]["expected_documents_exact"] and "text" in estimates["fours"]["reason"]


def test_a_collection_is_estimated_from_the_upstream_it_reads(flows, catalog, tmp_path):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3 {name}4 {name}5 {name}6")
    apply_definitions(tmp_path, {"namespace": "dry", "buckets": [text_bucket(unique_key=["key"])], "collections": [
        chunk_collection(size=3),
        _split("words", "chunks", "words"),
        passthrough_collection("copies", "chunks"),
        passthrough_collection("copies-of-copies", "copies"),
    ]})
    before = _written(batch_view(run_trigger("dry", "chunks")["batch_id"]))
    preview = _preview_changes_nothing(catalog)
    assert before == _written(batch_view(run_trigger("dry", "chunks")["batch_id"])) == [4, 12 + 4, 4]
    assert preview["expected_documents"] == [4, 16, 4]  # not 16: copies-of-copies reads copies only
    assert _by_collection(preview)["words"]["expected_documents"] == 12
    assert all(preview["expected_documents_exact"])
