"""`POST /v1/collections/{c}/documents/search` and defining embedding collections over HTTP."""

from __future__ import annotations

from tests.api.conftest import assert_error, bucket_body, in_namespace
from tests.utils.factories import put_text, trigger


def embedding_collection(name: str, **parameters) -> dict:
    return {"collection_name": name, "source": {"type": "bucket", "bucket_ids": ["notes"]},
            "feature_extractor": {"feature_extractor_name": "embedding_extractor", "parameters": parameters,
                                  "field_passthrough": [{"source_path": "key"}]}}


def test_search_over_http_with_its_errors(api, flows):
    headers = in_namespace(api, "web")
    api.post("/v1/buckets", headers=headers,
             json=bucket_body(storage={"s3_bucket": "tierflow-test", "prefix": "notes/"}))
    made = api.post("/v1/collections", headers=headers, json=embedding_collection("vectors"))
    assert made.status_code == 200, made.text
    assert made.json()["output_schema"]["properties"]["vectors_embedding"]["dimension"] == 256
    named = api.post("/v1/collections", headers=headers, json=embedding_collection("named", output_field="vec"))
    assert "vec" in named.json()["output_schema"]["properties"]
    api.post("/v1/collections", headers=headers, json={
        "collection_name": "copies", "source": {"type": "bucket", "bucket_ids": ["notes"]},
        "feature_extractor": {"feature_extractor_name": "passthrough_extractor"}})
    put_text(flows, "notes/tides.txt", "The tides of the ocean follow the moon.")
    put_text(flows, "notes/bread.txt", "Knead the dough, let it rise, bake the bread.")
    trigger("web", "vectors")

    found = api.post("/v1/collections/vectors/documents/search", headers=headers,
                     json={"query_text": "sea and moon", "limit": 1})
    assert found.status_code == 200, found.text
    (best,) = found.json()["results"]
    assert best["key"] == "notes/tides.txt" and 0 < best["score"] <= 1 and best["_internal"]["lineage"]
    listed = api.post("/v1/collections/vectors/documents/list", headers=headers, json={}).json()["results"]
    assert [len(d["vectors_embedding"]) for d in listed] == [256, 256]  # stored apart, shown in place
    one = api.get(f"/v1/collections/vectors/documents/{best['document_id']}", headers=headers).json()
    assert one["vectors_embedding"] == best["vectors_embedding"]
    assert_error(api.post("/v1/collections/copies/documents/search", headers=headers, json={"query_text": "x"}),
                 400, "BadRequestError", "has no embeddings")
    wrong = assert_error(api.post("/v1/collections/vectors/documents/search", headers=headers,
                                  json={"query_vector": [0.5, 0.5]}), 422, "ValidationError", "expected 256 numbers")
    assert wrong["error"]["details"]["validation_errors"][0]["location"] == ["body", "query_vector"]
    assert_error(api.post("/v1/collections/vectors/documents/search", headers=headers, json={"limit": 3}),
                 422, "ValidationError", "exactly one of")
    assert api.post("/v1/collections/named/documents/search", headers=headers,
                    json={"query_text": "x"}).json()["results"] == []  # not processed yet: nothing found


def test_models_that_cannot_be_loaded_here_are_refused_when_defined(api):
    headers = in_namespace(api, "web")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    assert_error(api.post("/v1/collections", headers=headers, json=embedding_collection("a", model="gpt-9")),
                 400, "BadRequestError", "'gpt-9' is not one of wordllama-256, sentence-transformers")
    assert_error(api.post("/v1/collections", headers=headers,  # its package is an extra, not installed here
                          json=embedding_collection("b", model="sentence-transformers", model_path="mini")),
                 400, "BadRequestError", "pip install 'tierflow[sentence-transformers]'")
