"""S3 event notifications as AWS S3, MinIO and EventBridge send them: parsed, applied once, in
the order their sequencers say, whatever order they arrive in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.discovery import object_id_for
from tierflow.errors import BadRequestError
from tierflow.events import apply_events, parse_notification


def minio(event_name: str, key: str, etag: str, sequencer: str) -> dict[str, Any]:
    """A MinIO bucket notification (its documentation's webhook example): keys URL-encoded."""
    return {"EventName": f"s3:{event_name}", "Key": f"tierflow-test/{key}", "Records": [{
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2026-12-03T10:00:00.000Z",
        "eventName": f"s3:{event_name}", "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "17B1F8E7E8D4A1B2", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
               "bucket": {"name": "tierflow-test", "ownerIdentity": {"principalId": "minioadmin"},
                          "arn": "arn:aws:s3:::tierflow-test"},
               "object": {"key": key.replace("/", "%2F"), "size": 5, "eTag": etag, "contentType": "text/plain",
                          "userMetadata": {"content-type": "text/plain"}, "sequencer": sequencer}},
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"}}]}


def eventbridge(detail_type: str, key: str, etag: str, sequencer: str) -> dict[str, Any]:
    """An EventBridge event of S3 (its documentation's Object Created example)."""
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
            "source": "aws.s3", "account": "123456789012", "time": "2026-12-03T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:s3:::tierflow-test"],
            "detail": {"version": "0", "bucket": {"name": "tierflow-test"},
                       "object": {"key": key, "size": 5, "etag": etag, "sequencer": sequencer},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}}


def _bucket(catalog: str) -> dict[str, Any]:
    with open_session(catalog) as session:
        namespace = resources.get_namespace(session, identifier="ev")
        return resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier="notes")


def _objects(catalog: str, bucket: dict[str, Any], *keys: str) -> dict[str, Any]:
    with open_session(catalog) as session:
        return catalog_objects.get_objects(session, object_ids=[object_id_for(bucket["bucket_id"], k) for k in keys])


@pytest.mark.both_backends
def test_minio_and_eventbridge_events_apply_once_and_in_sequencer_order(s3, catalog, tmp_path):
    apply_definitions(tmp_path, {"namespace": "ev", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    bucket = _bucket(catalog)
    put_text(s3, "notes/a b.txt", "alpha")
    put_text(s3, "notes/c.txt", "gamma")

    created = parse_notification(minio("ObjectCreated:Put", "notes/a b.txt", "e1", "1797D5A8B1F2A6B2"))
    assert [(e.key, e.removed) for e in created] == [("notes/a b.txt", False)]  # the key decoded
    assert apply_events(bucket, created).registered == [object_id_for(bucket["bucket_id"], "notes/a b.txt")]
    assert apply_events(bucket, created).ignored == 1  # a repeat changes nothing

    older_removal = parse_notification(minio("ObjectRemoved:Delete", "notes/a b.txt", "", "1797D5A8B1F2A600"))
    assert apply_events(bucket, older_removal).deleted == []  # it happened before the creation applied
    assert list(_objects(catalog, bucket, "notes/a b.txt"))

    removal = parse_notification(eventbridge("Object Deleted", "notes/a b.txt", "", "1797D5A8B1F2A6C0"))
    assert len(apply_events(bucket, removal).deleted) == 1 and not _objects(catalog, bucket, "notes/a b.txt")
    late_creation = parse_notification(eventbridge("Object Created", "notes/a b.txt", "e0", "1797D5A8B1F2A6B9"))
    assert apply_events(bucket, late_creation).registered == []  # older than the removal: stays deleted

    both = parse_notification([eventbridge("Object Created", "notes/c.txt", "e2", "0A"),
                               eventbridge("Object Created", "elsewhere/d.txt", "e3", "0B")])
    outcome = apply_events(bucket, both)
    assert len(outcome.registered) == 1 and outcome.ignored == 1  # another prefix: not this bucket's


@pytest.mark.parametrize(("body", "field"), [
    ({}, "Records"), ({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]},
                      "Records[0].s3.object.key"),
    ({"Records": [{"eventName": 7}]}, "Records[0].eventName"),
    ({"Records": [{}] * 1001}, "Records"),
])
def test_a_body_that_is_no_notification_is_refused_naming_the_field(body, field):
    with pytest.raises(BadRequestError) as refused:
        parse_notification(body)
    assert refused.value.details["field"] == field
