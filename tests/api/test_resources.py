"""Namespaces, buckets, objects and collections over HTTP: fields, conflicts, validation, paging."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_error, bucket_body, collection_body, grant, in_namespace

NAMESPACE_FIELDS = {"namespace_id", "namespace_name", "description", "created_at", "updated_at"}
BUCKET_FIELDS = {"bucket_id", "bucket_name", "description", "bucket_schema", "unique_key", "metadata", "storage",
                 "object_count", "created_at", "updated_at"}
COLLECTION_FIELDS = {"collection_id", "collection_name", "source", "feature_extractor", "output_schema", "tier",
                     "document_count", "enabled", "created_at", "updated_at"}
OBJECT_FIELDS = {"object_id", "bucket_id", "key_prefix", "blobs", "metadata", "status", "created_at", "updated_at"}


def test_create_read_list_delete_with_the_contract_fields(api):
    created = api.post("/v1/namespaces", json={"namespace_name": "alpha", "description": "first"}).json()
    assert NAMESPACE_FIELDS <= set(created) and created["namespace_id"].startswith("ns_")
    assert api.get(f"/v1/namespaces/{created['namespace_id']}").json() == created
    headers = {"X-Namespace": "alpha"}
    bucket = api.post("/v1/buckets", headers=headers, json=bucket_body(
        storage={"s3_bucket": "my-files", "prefix": "in/"}, unique_key={"fields": ["sku"]})).json()
    assert BUCKET_FIELDS <= set(bucket) and bucket["storage"]["s3_bucket"] == "my-files"
    assert bucket["object_count"] == 0 and bucket["unique_key"] == {"fields": ["sku"], "default_policy": None}
    first = api.post("/v1/collections", headers=headers, json=collection_body("first", buckets=["notes"])).json()
    second = api.post("/v1/collections", headers=headers, json=collection_body("second", collections=["first"])).json()
    assert COLLECTION_FIELDS <= set(first) and (first["tier"], second["tier"]) == (0, 1)
    assert second["source"]["collection_ids"] == [first["collection_id"]]
    assert api.get("/v1/collections/second", headers=headers).json()["collection_id"] == second["collection_id"]
    # a source that is read cannot go; readers first
    assert_error(api.delete("/v1/collections/first", headers=headers), 400, "BadRequestError", "second")
    assert_error(api.delete("/v1/buckets/notes", headers=headers), 400, "BadRequestError", "first")
    for path in ("/v1/collections/second", "/v1/collections/first", "/v1/buckets/notes"):
        assert api.delete(path, headers=headers).json()["success"] is True
        assert_error(api.get(path, headers=headers), 404, "NotFoundError")
    assert api.delete("/v1/namespaces/alpha").status_code == 200
    assert_error(api.get("/v1/namespaces/alpha"), 404, "NotFoundError", "alpha")


def test_names_are_unique_409(api):
    headers = in_namespace(api, "alpha")
    assert_error(api.post("/v1/namespaces", json={"namespace_name": "alpha"}), 409, "AlreadyExistsError", "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    assert_error(api.post("/v1/buckets", headers=headers, json=bucket_body()), 409, "AlreadyExistsError", "notes")
    api.post("/v1/collections", headers=headers, json=collection_body("c", buckets=["notes"]))
    assert_error(api.post("/v1/collections", headers=headers, json=collection_body("c", buckets=["notes"])),
                 409, "AlreadyExistsError")


def test_pagination(api):
    headers = in_namespace(api, "alpha")
    for name in ("a", "b", "c"):
        api.post("/v1/buckets", headers=headers, json=bucket_body(name))
    first = api.post("/v1/buckets/list", headers=headers, json={"limit": 2}).json()
    assert [b["bucket_name"] for b in first["results"]] == ["a", "b"]
    assert first["pagination"] == {"total": 3, "limit": 2, "offset": 0, "has_more": True}
    rest = api.post("/v1/buckets/list", headers=headers, json={"limit": 2, "offset": 2}).json()
    assert [b["bucket_name"] for b in rest["results"]] == ["c"] and rest["pagination"]["has_more"] is False
    assert_error(api.post("/v1/buckets/list", headers=headers, json={"limit": 0}), 422, "ValidationError")


def test_collection_checks(api):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    assert_error(api.post("/v1/collections", headers=headers, json=collection_body("x", buckets=["nope"])),
                 404, "NotFoundError", "nope")
    assert_error(api.post("/v1/collections", headers=headers,
                          json=collection_body("x", buckets=["notes"], extractor="ocr")),
                 400, "BadRequestError", "'ocr'", "text_extractor")
    assert_error(api.post("/v1/collections", headers=headers,
                          json=collection_body("x", buckets=["notes"], extractor="text_extractor", split_by="lines")),
                 422, "ValidationError", "split_by")
    body = assert_error(api.post("/v1/collections", headers=headers,
                                 json={"collection_name": "x", "source": {"type": "bucket"}}), 422, "ValidationError")
    problems = body["error"]["details"]["validation_errors"]
    assert {tuple(p["location"]) for p in problems} >= {("body", "feature_extractor")}
    assert all({"type", "location", "message"} <= set(p) for p in problems)


def test_no_cycle_can_be_made_over_http(api):
    # Creating never redefines, and a source must exist first, so a cycle cannot be closed here;
    # `tierflow apply`, which can redefine, refuses cycles (tests/core/test_definitions.py).
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers, json=collection_body("a", buckets=["notes"]))
    api.post("/v1/collections", headers=headers, json=collection_body("b", collections=["a"]))
    assert_error(api.post("/v1/collections", headers=headers, json=collection_body("c", collections=["c"])),
                 404, "NotFoundError")
    assert_error(api.post("/v1/collections", headers=headers, json=collection_body("a", collections=["b"])),
                 409, "AlreadyExistsError")


def test_objects_register_read_list_delete(api, catalog):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    stored = api.post("/v1/buckets/notes/objects", headers=headers, json={
        "key_prefix": "2024/", "blobs": [{"property": "content", "type": "text", "data": "hello"}],
        "metadata": {"lang": "en"}, "category": "greeting"}).json()
    assert OBJECT_FIELDS <= set(stored) and stored["status"] == "PENDING"
    assert stored["metadata"] == {"lang": "en", "category": "greeting"}  # extra keys fold into metadata
    by_url = {"blobs": [{"property": "content", "data": "s3://files/in/b.txt"}], "metadata": {"lang": "fr"}}
    # A bucket without storage reads only locations granted to its namespace, whoever registers.
    assert_error(api.post("/v1/buckets/notes/objects", headers=headers, json=by_url), 403, "ForbiddenError",
                 "s3://files/in/b.txt is not inside a storage grant")
    grant(catalog, "alpha", "s3://files/in/")
    assert api.post("/v1/buckets/notes/objects", headers=headers, json=by_url).status_code == 200
    assert api.get("/v1/buckets/notes", headers=headers).json()["object_count"] == 2
    found = api.post("/v1/buckets/notes/objects/list", headers=headers,
                     json={"filters": {"metadata.lang": "EN"}}).json()
    assert [o["object_id"] for o in found["results"]] == [stored["object_id"]]
    assert_error(api.post("/v1/buckets/notes/objects/list", headers=headers,
                          json={"filters": {"AND": [{"field": "x", "operator": "near"}]}}), 422, "ValidationError",
                 "filters.AND[0].operator")
    assert api.get(f"/v1/buckets/notes/objects/{stored['object_id']}", headers=headers).json() == stored
    assert api.delete(f"/v1/buckets/notes/objects/{stored['object_id']}", headers=headers).status_code == 200
    assert_error(api.get(f"/v1/buckets/notes/objects/{stored['object_id']}", headers=headers), 404, "NotFoundError")


@pytest.mark.parametrize("default_policy", [None, "upsert"])
def test_unique_key_policies(api, default_policy):
    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body(
        unique_key={"fields": ["sku"], **({"default_policy": default_policy} if default_policy else {})}))

    def register(policy=None, sku="A1", text="v1"):
        return api.post("/v1/buckets/notes/objects", headers=headers, params={"policy": policy} if policy else {},
                        json={"blobs": [{"property": "content", "data": text}], "metadata": {"sku": sku}})

    if default_policy is None:
        assert_error(register(), 400, "BadRequestError", "policy")
    else:
        assert register().status_code == 200
    assert_error(register("update", sku="B2"), 404, "NotFoundError")
    first = register("upsert").json()
    assert_error(register("insert"), 409, "AlreadyExistsError")
    updated = register("update", text="v2").json()
    assert updated["object_id"] == first["object_id"] and updated["blobs"][0]["data"] == "v2"
    assert_error(api.post("/v1/buckets/notes/objects", headers=headers, params={"policy": "upsert"},
                          json={"blobs": [], "metadata": {}}), 400, "BadRequestError", "sku")
    assert_error(register("sideways"), 422, "ValidationError")
    api.post("/v1/buckets", headers=headers, json=bucket_body("plain"))
    assert_error(api.post("/v1/buckets/plain/objects", headers=headers, params={"policy": "insert"},
                          json={"blobs": []}), 400, "BadRequestError", "no unique_key")


def test_an_unexpected_failure_is_a_500_without_internals(api, monkeypatch):
    from tierflow.catalog import resources

    def broken(*args, **kwargs):
        raise RuntimeError("connection to postgresql://admin:hunter2@db failed")

    monkeypatch.setattr(resources, "list_page", broken)
    body = assert_error(api.post("/v1/namespaces/list"), 500, "InternalServerError")
    assert "hunter2" not in str(body) and "Traceback" not in str(body)


def test_unknown_paths_and_openapi(api):
    assert_error(api.get("/v1/nothing-here"), 404, "NotFoundError")
    schema = api.get("/openapi.json").json()
    assert {"/v1/collections/{identifier}/trigger", "/v1/tasks/{task_id}", "/v1/batches/{batch_id}/retry",
            "/v1/buckets/{identifier}/objects/list"} <= set(schema["paths"])
    assert "TriggerCollectionResponse" in schema["components"]["schemas"]
    assert api.get("/docs").status_code == 200


def test_extractors_are_listed_with_their_parameters(api):
    listed = {e["feature_extractor_name"]: e for e in api.get("/v1/collections/features/extractors").json()}
    assert {"passthrough_extractor", "text_extractor"} <= set(listed)
    text = listed["text_extractor"]
    assert text["version"] == "v1" and text["position_fields"] == ["chunk_index"]
    assert text["parameters_schema"]["properties"]["split_by"]["default"] == "words"
    assert "text_extractor_v1_embedding" in text["output_schema"]["properties"]
    api.headers.pop("Authorization")
    assert_error(api.get("/v1/collections/features/extractors"), 401, "UnauthorizedError")


def test_verify_answers_per_tier_and_404_for_an_unknown_collection(api):
    headers = in_namespace(api, "checked")
    assert api.post("/v1/buckets", json=bucket_body(), headers=headers).status_code == 200
    assert api.post("/v1/collections", json=collection_body("chunks", buckets=["notes"]), headers=headers).status_code == 200
    report = api.get("/v1/collections/chunks/verify", headers=headers)
    assert report.status_code == 200, report.text
    assert report.json()["clean"] and report.json()["tiers"][0]["collections"][0]["collection_name"] == "chunks"
    assert_error(api.get("/v1/collections/nope/verify", headers=headers), 404, "NotFoundError")
