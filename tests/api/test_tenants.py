"""Keys limited to a namespace (tenants) through the API: grants, bounded inputs, sanitised errors.

In-process, over the ASGI app; `tests/api/test_tenants_served.py` repeats the attacks that need
real processes (a served API, S3 over HTTP, a listener that must hear nothing).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import assert_error, bucket_body, collection_body, grant, in_namespace, new_key
from tierflow.filters import ast
from tierflow.settings import get_settings


@pytest.fixture
def tenant(api: TestClient, catalog: str) -> TestClient:
    """A client holding a key limited to namespace `team-a`, which is granted s3://shared/team-a/;
    namespace `team-b` exists beside it with s3://shared/team-b/."""
    in_namespace(api, "team-a")
    in_namespace(api, "team-b")
    grant(catalog, "team-a", "s3://shared/team-a/")
    grant(catalog, "team-b", "s3://shared/team-b/")
    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers.update({"Authorization": f"Bearer {new_key(catalog, 'team-a', ['team-a'])}",
                           "X-Namespace": "team-a"})
    return client


def test_a_tenant_binds_buckets_only_inside_its_grants(tenant):
    made = tenant.post("/v1/buckets", json=bucket_body("mine", storage={"s3_bucket": "shared", "prefix": "team-a/in/"}))
    assert made.status_code == 200, made.text
    assert made.json()["storage"] == {"s3_bucket": "shared", "prefix": "team-a/in/", "endpoint_url": None,
                                      "region": None}
    attacks = {
        "operator": ({"s3_bucket": "operator-secrets"}, "s3://operator-secrets/ is not granted"),
        "other tenant": ({"s3_bucket": "shared", "prefix": "team-b/"}, "s3://shared/team-b/ is not granted"),
        "outside": ({"s3_bucket": "shared", "prefix": ""}, "s3://shared/ is not granted"),
        "dot-dot": ({"s3_bucket": "shared", "prefix": "team-a/../team-b/"}, "storage.prefix"),
        "dot-dot-bare": ({"s3_bucket": "shared", "prefix": "in/../"}, "storage.prefix"),
        "endpoint": ({"s3_bucket": "shared", "prefix": "team-a/", "endpoint_url": "http://127.0.0.1:9000/"},
                     "storage.endpoint_url"),
    }
    for name, (storage, named) in attacks.items():
        body = assert_error(tenant.post("/v1/buckets", json=bucket_body(f"x-{name.replace(' ', '-')}", storage=storage)),
                            403, "ForbiddenError", named)
        assert "team-a" in body["error"]["message"] or "prefix" in body["error"]["message"], name
    assert tenant.post("/v1/buckets/list").json()["pagination"]["total"] == 1


def test_a_tenant_registers_objects_only_inside_its_buckets_storage(tenant):
    tenant.post("/v1/buckets", json=bucket_body("mine", storage={"s3_bucket": "shared", "prefix": "team-a/in/"}))
    tenant.post("/v1/buckets", json=bucket_body("loose"))
    for bucket, url in [("mine", "s3://operator-secrets/prod.env"), ("mine", "s3://shared/team-b/x.txt"),
                        ("mine", "s3://shared/team-a/in/../../team-b/x.txt"), ("mine", "s3://shared/team-a/in//x"),
                        ("loose", "s3://operator-secrets/prod.env"),
                        ("loose", "s3://shared/team-b/x.txt")]:
        refused = tenant.post(f"/v1/buckets/{bucket}/objects", json={"blobs": [{"property": "content", "data": url}]})
        assert_error(refused, 403, "ForbiddenError", url)
    for bucket, data in [("mine", "s3://shared/team-a/in/a.txt"), ("loose", "s3://shared/team-a/elsewhere.txt"),
                         ("loose", "inline text")]:
        assert tenant.post(f"/v1/buckets/{bucket}/objects",
                           json={"blobs": [{"property": "content", "data": data}]}).status_code == 200
    assert tenant.get("/v1/buckets/mine").json()["object_count"] == 1
    assert tenant.get("/v1/buckets/loose").json()["object_count"] == 2


def test_a_tenant_stays_in_its_namespace(tenant):
    assert_error(tenant.get("/v1/buckets/list", headers={"X-Namespace": "team-b"}), 403, "ForbiddenError")
    assert_error(tenant.post("/v1/namespaces", json={"namespace_name": "team-c"}), 403, "ForbiddenError")
    assert_error(tenant.delete("/v1/namespaces/team-a"), 403, "ForbiddenError")
    assert [n["namespace_name"] for n in tenant.post("/v1/namespaces/list").json()["results"]] == ["team-a"]


def test_bodies_over_the_limit_get_413_and_the_server_keeps_answering(tenant, monkeypatch):
    monkeypatch.setenv("TIERFLOW_MAX_REQUEST_BYTES", str(1 << 20))
    get_settings.cache_clear()
    big = json.dumps({"bucket_name": "big", "metadata": {"blob": "x" * (2 << 20)}})
    body = assert_error(tenant.post("/v1/buckets", content=big, headers={"Content-Type": "application/json"}),
                        413, "PayloadTooLargeError", "TIERFLOW_MAX_REQUEST_BYTES")
    assert body["error"]["details"] == {"limit_bytes": 1 << 20}

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * (64 << 10)

    assert_error(tenant.post("/v1/buckets", content=chunked(), headers={"Content-Type": "application/json"}),
                 413, "PayloadTooLargeError")
    assert tenant.post("/v1/buckets", json=bucket_body("small")).status_code == 200


def test_filters_are_bounded_in_size_and_in_pattern_work(tenant):
    tenant.post("/v1/buckets", json=bucket_body())
    tenant.post("/v1/collections", json=collection_body("docs", buckets=["notes"]))
    listing = "/v1/collections/docs/documents/list"
    empty_groups = {"filters": {"OR": [{} for _ in range(50_000)]}}
    assert_error(tenant.post(listing, json=empty_groups), 422, "ValidationError",
                 f"at most {ast.MAX_NODES} groups and conditions")
    many_words = {"filters": {"field": "text", "operator": "text", "value": " ".join(f"w{i}" for i in range(300))}}
    assert_error(tenant.post(listing, json=many_words), 422, "ValidationError", "at most 32 words")
    many_patterns = {"filters": {"AND": [{"field": "text", "operator": "regex", "value": f"a{i}"}
                                         for i in range(ast.MAX_PATTERNS + 1)]}}
    assert_error(tenant.post(listing, json=many_patterns), 422, "ValidationError", "patterns")
    assert tenant.post(listing, json={"filters": {"OR": [{} for _ in range(10)]}}).status_code == 200


def test_trigger_lists_are_capped(tenant):
    tenant.post("/v1/buckets", json=bucket_body())
    tenant.post("/v1/collections", json=collection_body("docs", buckets=["notes"]))
    too_many = {"object_ids": [f"obj_{i}" for i in range(10_001)]}
    body = assert_error(tenant.post("/v1/collections/docs/trigger", json=too_many), 422, "ValidationError")
    assert body["error"]["details"]["validation_errors"][0]["location"][-1] == "object_ids"
    assert_error(tenant.post("/v1/collections/docs/trigger", json={"include_buckets": ["b"] * 101}),
                 422, "ValidationError", "include_buckets")


def test_a_listing_past_its_time_limit_is_a_clear_400(tenant, monkeypatch):
    tenant.post("/v1/buckets", json=bucket_body())
    for i in range(300):
        tenant.post("/v1/buckets/notes/objects", json={"blobs": [{"property": "content", "data": f"t{i}"}],
                                                        "metadata": {"n": i, "text": "lorem ipsum " * 20}})
    monkeypatch.setenv("TIERFLOW_QUERY_TIMEOUT_SECONDS", "0.000001")
    get_settings.cache_clear()
    slow = {"filters": {"field": "metadata.text", "operator": "regex", "value": "ipsum$"}}
    assert_error(tenant.post("/v1/buckets/notes/objects/list", json=slow), 400, "BadRequestError",
                 "TIERFLOW_QUERY_TIMEOUT_SECONDS")
    monkeypatch.setenv("TIERFLOW_QUERY_TIMEOUT_SECONDS", "10")
    get_settings.cache_clear()
    assert tenant.post("/v1/buckets/notes/objects/list", json=slow).json()["pagination"]["total"] == 0
