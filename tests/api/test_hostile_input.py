"""Input that used to reach a parser unchecked (URL ports, event sizes, deep JSON) is answered
4xx in the contract's body, naming the field, and the server keeps answering."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import assert_error, bucket_body, collection_body, in_namespace
from tierflow.settings import get_settings


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def locations(body: dict[str, Any]) -> list[list[Any]]:
    return [e["location"] for e in body["error"]["details"]["validation_errors"]]


@pytest.mark.parametrize("url, reason", [
    ("http://h.example.com:99999/x", "port from 1 to 65535"),
    ("http://h:abc/", "port from 1 to 65535"),
    ("http://[::1", "not a valid URL"),
    ("http://[zz::1]/", "not a valid URL"),
])
def test_a_malformed_webhook_url_is_a_400_naming_url(api, url, reason):
    namespace = in_namespace(api, "hooks")
    body = assert_error(api.post("/v1/webhooks", headers=namespace, json={"url": url, "events": ["batch.failed"]}),
                        400, "BadRequestError", "url: ", reason)
    assert body["error"]["details"]["field"] == "url"
    assert api.get("/v1/webhooks/list", headers=namespace).json() == []


@pytest.mark.parametrize("size", ["abc", [1], {}, 1.5, True, -1, 1 << 63])
def test_an_event_whose_size_is_not_a_byte_count_is_a_400_naming_it(api, size):
    namespace = in_namespace(api, "events")
    assert api.post("/v1/buckets", headers=namespace, json=bucket_body(storage={"s3_bucket": "files"})).status_code == 200
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "a.txt", "size": size}}}
    body = assert_error(api.post("/v1/buckets/notes/events", headers=namespace, json={"Records": [record]}),
                        400, "BadRequestError", "Records[0].s3.object.size: expected a whole number of bytes")
    assert body["error"]["details"]["field"] == "Records[0].s3.object.size"


def test_an_event_size_past_any_float_and_eventbridge_sizes_are_checked_too(api):
    namespace = {**in_namespace(api, "events"), "Content-Type": "application/json"}
    api.post("/v1/buckets", headers=namespace, json=bucket_body(storage={"s3_bucket": "files"}))
    record = ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, '
              '"object": {"key": "a.txt", "size": 1e400}}}]}')  # json reads it as inf
    assert_error(api.post("/v1/buckets/notes/events", headers=namespace, content=record),
                 400, "BadRequestError", "Records[0].s3.object.size")
    event = {"detail-type": "Object Created", "detail": {"bucket": {"name": "files"},
                                                         "object": {"key": "a.txt", "size": "12", "etag": 7}}}
    assert_error(api.post("/v1/buckets/notes/events", headers=namespace, json=event),
                 400, "BadRequestError", "detail.object.etag: expected a string")


@pytest.mark.parametrize("path, body, location", [
    ("/v1/buckets", bucket_body("deep", metadata=nested(900)), ["body", "metadata"]),
    ("/v1/buckets", bucket_body("deep", bucket_schema={"properties": {"content": {"type": "text", "x": nested(900)}}}),
     ["body", "bucket_schema", "properties", "content"]),
    ("/v1/collections", {**collection_body("deep", buckets=["notes"]), "metadata": nested(900)}, ["body", "metadata"]),
    ("/v1/collections", collection_body("deep", buckets=["notes"], options=nested(900)),
     ["body", "feature_extractor", "parameters"]),
    ("/v1/buckets/notes/objects", {"metadata": nested(900)}, ["body", "metadata"]),
    ("/v1/buckets/notes/objects", {"title": nested(900)}, ["body"]),
    ("/v1/buckets/notes/objects", {"blobs": [{"property": "content", "data": nested(900)}]},
     ["body", "blobs", 0, "data"]),
])
def test_json_nested_past_the_limit_is_a_422_naming_the_field(api, path, body, location):
    namespace = in_namespace(api, "deep")
    assert api.post("/v1/buckets", headers=namespace, json=bucket_body()).status_code == 200
    answer = assert_error(api.post(path, headers=namespace, json=body), 422, "ValidationError",
                          "nested deeper than 32 levels", "TIERFLOW_MAX_JSON_DEPTH")
    assert locations(answer) == [location]
    assert api.get("/v1/buckets/notes", headers=namespace).status_code == 200


def test_the_depth_limit_is_a_setting_and_allows_what_is_within_it(api, monkeypatch):
    namespace = in_namespace(api, "deep")
    assert api.post("/v1/buckets", headers=namespace, json=bucket_body("at", metadata=nested(31))).status_code == 200
    monkeypatch.setenv("TIERFLOW_MAX_JSON_DEPTH", "4")
    get_settings.cache_clear()
    assert api.post("/v1/buckets", headers=namespace, json=bucket_body("four", metadata=nested(3))).status_code == 200
    assert_error(api.post("/v1/buckets", headers=namespace, json=bucket_body("five", metadata=nested(4))),
                 422, "ValidationError", "metadata: Value error, nested deeper than 4 levels")


@pytest.mark.parametrize("endpoint, reason", [
    ("127.0.0.1:5055", "expected an http:// or https:// URL"),
    ("s3.example.com", "expected an http:// or https:// URL"),
    ("ftp://s3.example.com", "expected an http:// or https:// URL"),
    ("http://s3.example.com:99999", "port from 1 to 65535"),
    ("http://[::1", "not a valid URL"),
])
def test_a_bucket_endpoint_that_is_no_http_url_is_a_422_naming_it(api, endpoint, reason):
    namespace = in_namespace(api, "endpoints")
    storage = {"s3_bucket": "files", "endpoint_url": endpoint}
    answer = assert_error(api.post("/v1/buckets", headers=namespace, json=bucket_body(storage=storage)),
                          422, "ValidationError", "storage.endpoint_url", reason)
    assert locations(answer) == [["body", "storage", "endpoint_url"]]
    good = {"s3_bucket": "files", "endpoint_url": "http://127.0.0.1:5055"}
    assert api.post("/v1/buckets", headers=namespace, json=bucket_body(storage=good)).status_code == 200

