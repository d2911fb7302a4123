"""The scheduled listing's check: a bucket differs from the catalog when an object is new, gone,
or listed at another etag, size or last-modified time; it reads only the listing."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.client import BaseClient
from sqlalchemy import update

from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import objects
from tierflow.discovery import discover_bucket, object_id_for
from tierflow.sync import listing_differs


def _registered(s3: Any, catalog: str, tmp_path: Any) -> dict[str, Any]:
    """The `notes` bucket, its two files listed into the catalog."""
    for name in ("a", "b"):
        put_text(s3, f"notes/{name}.txt", name)
    apply_definitions(tmp_path, {"namespace": "chk", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    with open_session(catalog) as session:
        namespace = resources.get_namespace(session, identifier="chk")["namespace_id"]
        bucket = resources.get_bucket(session, namespace_id=namespace, identifier="notes")
    discover_bucket(bucket)
    return bucket


def _store(catalog: str, bucket: dict[str, Any], **values: Any) -> None:
    with open_session(catalog) as session:
        session.execute(update(objects).where(objects.c.object_id == object_id_for(bucket["bucket_id"], "notes/a.txt"))
                        .values(**values))


@pytest.mark.both_backends
@pytest.mark.parametrize("stored", [{"etag": "0" * 32}, {"size_bytes": 99},
                                    {"last_modified": "2000-01-01T00:00:00.000000+00:00"}])
def test_an_object_stored_otherwise_than_listed_is_a_difference(s3, catalog, tmp_path, stored):
    bucket = _registered(s3, catalog, tmp_path)
    assert not listing_differs(bucket)
    _store(catalog, bucket, **stored)
    assert listing_differs(bucket)


def test_new_and_gone_objects_are_differences_and_a_time_never_learnt_is_not(s3, catalog, tmp_path):
    bucket = _registered(s3, catalog, tmp_path)
    _store(catalog, bucket, last_modified=None)  # as an S3 event registers it: events carry no time
    assert not listing_differs(bucket)
    put_text(s3, "notes/c.txt", "c")
    assert listing_differs(bucket)
    s3.delete_object(Bucket="tierflow-test", Key="notes/c.txt")
    s3.delete_object(Bucket="tierflow-test", Key="notes/b.txt")
    assert listing_differs(bucket)


def test_the_check_reads_no_object(s3, catalog, tmp_path, monkeypatch):
    bucket = _registered(s3, catalog, tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(BaseClient, "_make_api_call", _recording(calls, BaseClient._make_api_call))
    assert not listing_differs(bucket)
    assert set(calls) == {"ListObjectsV2"}


def _recording(calls: list[str], call: Any) -> Any:
    """`call`, noting the name of each S3 operation it makes."""
    def recorded(self: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return call(self, operation, params)
    return recorded
