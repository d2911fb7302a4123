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
