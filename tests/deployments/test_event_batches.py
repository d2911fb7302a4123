"""Objects that S3 events registered are gathered into one batch per collection reading their
bucket: at the end of the debounce time, or at once when too many are waiting."""

from __future__ import annotations

import threading
from typing import Any

from deployments import event_batches
from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.discovery import discover_bucket_by_id, object_id_for
from tierflow.settings import get_settings


def test_a_flood_of_events_starts_batches_when_full_not_never(s3, catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLOW_EVENT_DEBOUNCE_SECONDS", "3600")  # only fullness can start them here
    get_settings.cache_clear()
    monkeypatch.setattr(event_batches, "MAX_OBJECT_IDS", 3)
    for name in "abc":
        put_text(s3, f"notes/{name}.txt", name)
    apply_definitions(tmp_path, {"namespace": "ev", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(), chunk_collection("others")]})
    with open_session(catalog) as session:
        namespace = resources.get_namespace(session, identifier="ev")["namespace_id"]
        bucket = resources.get_bucket(session, namespace_id=namespace, identifier="notes")["bucket_id"]
    discover_bucket_by_id(bucket)
    started: list[dict[str, Any]] = []
    done = threading.Event()

    def start(**arguments: Any) -> dict[str, Any]:
        started.append(arguments)
        if len(started) == 2:
            done.set()
        return {}

    batcher = event_batches.EventBatcher(start)
    ids = [object_id_for(bucket, f"notes/{name}.txt") for name in "abc"]
    batcher.add(namespace_id=namespace, bucket_id=bucket, object_ids=ids[:2])
    assert not started  # gathering
    batcher.add(namespace_id=namespace, bucket_id=bucket, object_ids=ids[2:])
    assert done.wait(30)
    assert [a["request"].object_ids for a in started] == [sorted(ids), sorted(ids)]
    assert {a["request"].dedup_strategy for a in started} == {"skip"}  # one batch per collection


def _created(key: str, etag: str, sequencer: str) -> dict[str, Any]:
    return {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "tierflow-test"}, "object": {"key": key, "eTag": etag, "size": 2, "sequencer": sequencer}}}]}


def test_an_event_window_whose_objects_are_already_processed_starts_nothing(flows, catalog, tmp_path):
    from tests.utils.factories import trigger
    from tierflow.events import apply_events, parse_notification

    put_text(flows, "notes/a.txt", "a1")
    apply_definitions(tmp_path, {"namespace": "ev", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    with open_session(catalog) as session:
        namespace = resources.get_namespace(session, identifier="ev")["namespace_id"]
        bucket = resources.get_bucket(session, namespace_id=namespace, identifier="notes")
    etag = flows.head_object(Bucket="tierflow-test", Key="notes/a.txt")["ETag"]
    landed = apply_events(bucket, parse_notification(_created("notes/a.txt", etag, "01"))).registered
    trigger("ev", "chunks", dedup_strategy="skip")  # a trigger took them before the window ended
    started: list[dict[str, Any]] = []

    def start(**arguments: Any) -> dict[str, Any]:
        started.append(arguments)
        return {}

    batcher = event_batches.EventBatcher(start)
    batcher.start_batches(namespace_id=namespace, bucket_id=bucket["bucket_id"], object_ids=set(landed))
    assert started == []  # nothing left to do: no batch

    put_text(flows, "notes/a.txt", "a1 a2")
    etag = flows.head_object(Bucket="tierflow-test", Key="notes/a.txt")["ETag"]
    changed = apply_events(bucket, parse_notification(_created("notes/a.txt", etag, "02"))).registered
    batcher.start_batches(namespace_id=namespace, bucket_id=bucket["bucket_id"], object_ids=set(changed))
    assert [a["request"].object_ids for a in started] == [changed]  # a new version: its batch
