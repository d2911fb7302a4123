"""Built-in extractors through real triggers: PDF → pages → chunks with embeddings → copies,
and images with thumbnails written beside them in S3. Lineage reaches back to the object."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tests.utils.factories import apply_definitions, trigger
from tests.utils.files import pdf_with_pages, png
from tierflow.batch_view import batch_view
from tierflow.browse import list_bucket_objects, list_collection_documents
from tierflow.extractors import CONTENT, Extractor, ExtractorInput, registry


def docs(collection: str, namespace: str = "ext") -> list[dict]:
    return list_collection_documents(namespace=namespace, collection=collection, filters=None, limit=1000,
                                     offset=0)["results"]


def bucket(name: str, prefix: str, kind: str, **extra) -> dict:
    return {"bucket_name": name, "storage": {"s3_bucket": "tierflow-test", "prefix": prefix},
            "bucket_schema": {"properties": {"content": {"type": kind}}}, **extra}


def collection(name: str, extractor: str, source: dict, **parameters) -> dict:
    return {"collection_name": name, "source": source,
            "feature_extractor": {"feature_extractor_name": extractor, "parameters": parameters}}


def test_pdf_to_pages_to_chunks_to_copies_with_full_lineage(flows, tmp_path):
    flows.put_object(Bucket="tierflow-test", Key="pdfs/report.pdf", ContentType="application/pdf",
                     Body=pdf_with_pages("Tides follow the moon.", "Light feeds the leaves."))
    flows.put_object(Bucket="tierflow-test", Key="pdfs/locked.pdf", ContentType="application/pdf",
                     Body=pdf_with_pages("secret", password="pw"))
    flows.put_object(Bucket="tierflow-test", Key="pdfs/broken.pdf", ContentType="application/pdf", Body=b"%PDF-1.4")
    apply_definitions(tmp_path, {"namespace": "ext", "buckets": [bucket("pdfs", "pdfs/", "pdf",
                                                                        unique_key={"fields": ["key"]})],
                                 "collections": [
        collection("pages", "pdf_extractor", {"type": "bucket", "bucket_ids": ["pdfs"]}),
        collection("chunks", "text_extractor", {"type": "collection", "collection_ids": ["pages"]},
                   split_by="words", chunk_size=2, embedding_dimension=16),
        {"collection_name": "copies", "source": {"type": "collection", "collection_ids": ["chunks"]},
         "feature_extractor": {"feature_extractor_name": "passthrough_extractor",
                               "field_passthrough": [{"source_path": "text"}]}},
        {"collection_name": "everything", "source": {"type": "collection", "collection_ids": ["pages"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor", "include_all_source_fields": True,
                               "parameters": {"split_by": "none", "embedding_dimension": 0}}},
    ]})
    response = trigger("ext", "pages")
    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert [(t["inputs_succeeded"], t["inputs_failed"], t["documents_written"]) for t in view["tier_tasks"]] == [
        (1, 2, 2), (4, 0, 6), (4, 0, 4)]
    messages = sorted(f["error"]["message"] for f in view["failed_inputs"])
    assert messages[0].startswith("not a readable PDF") and messages[1].startswith("the PDF is encrypted")

    pages = sorted(docs("pages"), key=lambda d: d["page_number"])
    assert [(p["page_number"], p["page_count"], p["text"]) for p in pages] == [
        (1, 2, "Tides follow the moon."), (2, 2, "Light feeds the leaves.")]
    chunk = next(d for d in docs("chunks") if d["text"] == "Tides follow")
    assert len(chunk["text_extractor_v1_embedding"]) == 16
    copy = next(d for d in docs("copies") if d["text"] == "Tides follow")
    lineage = copy["_internal"]["lineage"]
    report = list_bucket_objects(namespace="ext", bucket="pdfs", filters={"key": "pdfs/report.pdf"}, limit=1,
                                 offset=0)["results"][0]
    assert lineage["root_object_id"] == report["object_id"] and lineage["root_bucket_id"] == report["bucket_id"]
    assert lineage["source_document_id"] == chunk["document_id"]
    assert [c["extractor"] for c in lineage["chain"]] == ["pdf_extractor", "text_extractor", "passthrough_extractor"]
    assert lineage["path"].count("/") == 3 and lineage["path"].startswith(report["bucket_id"])
    assert lineage["extractor"]["name"] == "passthrough_extractor" and lineage["extractor"]["parameters_hash"]
    assert "page_number" not in chunk  # not asked for
    everything = next(d for d in docs("everything") if d["text"] == "Tides follow the moon.")
    assert (everything["page_number"], everything["page_count"], everything["chunk_index"]) == (1, 2, 0)

    again = trigger("ext", "pages")  # unique_key: the same ids, so the same counts
    assert batch_view(again["batch_id"])["tier_tasks"][2]["documents_written"] == 4
    assert (len(docs("pages")), len(docs("chunks")), len(docs("copies")), len(docs("everything"))) == (2, 4, 4, 2)


def test_images_get_facts_and_a_thumbnail_beside_them(flows, tmp_path):
    flows.put_object(Bucket="tierflow-test", Key="images/red.png", ContentType="image/png", Body=png(300, 150))
    flows.put_object(Bucket="tierflow-test", Key="images/bad.png", ContentType="image/png", Body=b"\x89PNG no")
    apply_definitions(tmp_path, {"namespace": "ext", "buckets": [bucket("images", "images/", "image")],
                                 "collections": [collection("facts", "image_extractor",
                                                            {"type": "bucket", "bucket_ids": ["images"]},
                                                            thumbnail_size=32)]})
    view = batch_view(trigger("ext", "facts")["batch_id"])
    assert (view["tier_tasks"][0]["inputs_succeeded"], view["tier_tasks"][0]["inputs_failed"]) == (1, 1)
    assert view["failed_inputs"][0]["error"]["message"].startswith("not a readable image")
    (facts,) = docs("facts")
    assert (facts["width"], facts["height"], facts["format"]) == (300, 150, "PNG")
    assert facts["dominant_colors"][0] == "#c81e1e" and len(facts["perceptual_hash"]) == 16
    (thumbnail,) = facts["document_blobs"]
    assert thumbnail == {"role": "thumbnail", "content_type": "image/png",
                         "url": "s3://tierflow-test/images/.tierflow/red.png.thumbnail.png"}
    stored = flows.get_object(Bucket="tierflow-test", Key="images/.tierflow/red.png.thumbnail.png")
    assert stored["ContentType"] == "image/png" and stored["Body"].read().startswith(b"\x89PNG")
    # The thumbnail is under the bucket's prefix, yet it never becomes an object of its own.
    trigger("ext", "facts")
    objects = list_bucket_objects(namespace="ext", bucket="images", filters=None, limit=10, offset=0)
    assert sorted(o["key"] for o in objects["results"]) == ["images/bad.png", "images/red.png"]


class _Half(BaseModel):
    text: str
    length: int = Field(ge=1)


class _HalfFormed(Extractor):
    """Writes an invalid document (length 0) for empty-looking inputs: that input must fail alone."""

    name = "half_formed"
    Output = _Half
    inputs = {"text": CONTENT}

    def extract(self, item: ExtractorInput, params: Any) -> list[dict[str, Any]]:
        text = item.values["text"].decode()
        return [{"text": text, "length": len(text.strip())}]


def test_an_output_that_breaks_the_model_fails_its_input_and_writes_nothing(flows, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_BUILTINS", (*registry._BUILTINS, _HalfFormed))
    registry.available_extractors.cache_clear()
    try:
        for name, body in (("fine", b"some words"), ("blank", b"   ")):
            flows.put_object(Bucket="tierflow-test", Key=f"notes/{name}.txt", Body=body)
        apply_definitions(tmp_path, {"namespace": "ext", "buckets": [bucket("notes", "notes/", "text")],
                                     "collections": [collection("halves", "half_formed",
                                                                {"type": "bucket", "bucket_ids": ["notes"]})]})
        view = batch_view(trigger("ext", "halves")["batch_id"])
    finally:
        registry.available_extractors.cache_clear()
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    (failure,) = view["failed_inputs"]
    assert failure["error"]["category"] == "validation" and "length" in failure["error"]["message"]
    assert [d["text"] for d in docs("halves")] == ["some words"]
