"""Embeddings through real triggers and the search over them: meaning, pre-filters, and vectors
that stay in step with their documents (upsert, replace, deletion) on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.utils.factories import apply_definitions, put_text, text_bucket, trigger
from tierflow.browse import list_collection_documents
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import document_vectors, documents
from tierflow.definitions import DefinitionError
from tierflow.errors import BadRequestError, ValidationError
from tierflow.search import search_documents

NOTES = {
    "tides": "Ocean tides rise and fall twice a day, pulled by the gravity of the Moon and the Sun.",
    "bread": "Bread dough rises while yeast ferments its sugars; then the loaf is baked in a hot oven.",
    "press": "The printing press spread books and pamphlets across Europe in the fifteenth century.",
    "silk": "Merchants on the Silk Road carried spices, silk and paper between China and the Mediterranean.",
    "leaves": "Green leaves catch sunlight and turn water and carbon dioxide into sugar and oxygen.",
}


def embedded(name: str = "vectors", **parameters) -> dict:
    return {"collection_name": name, "source": {"type": "bucket", "bucket_ids": ["notes"]},
            "feature_extractor": {"feature_extractor_name": "embedding_extractor", "parameters": parameters,
                                  "field_passthrough": [{"source_path": "key"},
                                                        {"source_path": "metadata.topic", "target_path": "topic"}]}}


def seed(flows, tmp_path, *, unique_key: bool = True, topic: dict[str, str] | None = None) -> None:
    for name, text in NOTES.items():
        put_text(flows, f"notes/{name}.txt", text, {"topic": (topic or {}).get(name, "other")})
    bucket = text_bucket(unique_key=["key"] if unique_key else None)
    bucket["bucket_schema"]["properties"]["topic"] = {"type": "string"}
    apply_definitions(tmp_path, {"namespace": "search", "buckets": [bucket], "collections": [embedded()]})


def keys(found: dict) -> list[str]:
    return [d["key"].removeprefix("notes/").removesuffix(".txt") for d in found["results"]]


def vector_rows(catalog: str) -> tuple[int, int]:
    """(vectors, documents) of the catalog."""
    with open_session(catalog) as session:
        return (session.execute(select(func.count()).select_from(document_vectors)).scalar_one(),
                session.execute(select(func.count()).select_from(documents)).scalar_one())


@pytest.mark.both_backends
def test_the_nearest_note_comes_first_and_vectors_are_unit_vectors(flows, tmp_path, catalog):
    seed(flows, tmp_path)
    assert trigger("search", "vectors")["document_count"] == 5
    assert keys(search_documents(namespace="search", collection="vectors", query_text="why is the sea high at noon",
                                 limit=2))[0] == "tides"
    found = search_documents(namespace="search", collection="vectors", query_text="how to bake a loaf", limit=5)
    assert keys(found)[0] == "bread" and len(found["results"]) == 5 and found["mode"] == "exact"
    scores = [d["score"] for d in found["results"]]
    assert scores == sorted(scores, reverse=True)
    vector = np.asarray(found["results"][0]["vectors_embedding"])
    assert vector.shape == (256,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    by_vector = search_documents(namespace="search", collection="vectors", query_vector=vector.tolist(), limit=1)
    assert keys(by_vector) == ["bread"] and by_vector["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.both_backends
def test_a_filter_applies_before_ranking(flows, tmp_path, catalog):
    seed(flows, tmp_path, topic={"tides": "nature", "leaves": "nature", "bread": "food"})
    trigger("search", "vectors")
    query = "ocean tides and the moon"
    everything = search_documents(namespace="search", collection="vectors", query_text=query, limit=5)
    assert keys(everything)[0] == "tides"
    not_nature = {"NOT": {"field": "topic", "operator": "eq", "value": "nature"}}
    found = search_documents(namespace="search", collection="vectors", query_text=query, limit=3, filters=not_nature)
    # The nearest documents are excluded, and the next ones fill the limit, in the same order.
    assert keys(found) == [k for k in keys(everything) if k not in ("tides", "leaves")]
    assert len(found["results"]) == 3
    assert search_documents(namespace="search", collection="vectors", query_text=query, limit=5,
                            filters={"topic": "food"})["results"][0]["key"] == "notes/bread.txt"
    assert search_documents(namespace="search", collection="vectors", query_text=query, limit=5,
                            filters={"key": "notes/none.txt"})["results"] == []
    with pytest.raises(ValidationError):  # filters are checked as in every listing
        search_documents(namespace="search", collection="vectors", query_text=query, filters={"OR": [{}] * 600})


@pytest.mark.both_backends
def test_vectors_follow_their_documents_through_upsert_replace_and_deletion(flows, tmp_path, catalog):
    seed(flows, tmp_path)
    trigger("search", "vectors")
    trigger("search", "vectors")  # unique_key: upserts, the same five documents and vectors
    assert vector_rows(catalog) == (5, 5)
    put_text(flows, "notes/bread.txt", "Volcanoes erupt molten rock and ash from deep inside the Earth.")
    trigger("search", "vectors", dedup_strategy="replace")
    assert vector_rows(catalog) == (5, 5)
    assert keys(search_documents(namespace="search", collection="vectors", query_text="lava from a volcano",
                                 limit=1)) == ["bread"]
    assert keys(search_documents(namespace="search", collection="vectors", query_text="baking bread with yeast",
                                 limit=1)) != ["bread"]
    with open_session(catalog) as session:
        namespace_id = resources.get_namespace(session, identifier="search")["namespace_id"]
        row = resources.get_collection(session, namespace_id=namespace_id, identifier="vectors")
        resources.delete_collection(session, collection_id=row["collection_id"])
    assert vector_rows(catalog) == (0, 0)


def test_without_a_unique_key_each_run_adds_documents_and_their_vectors(flows, tmp_path, catalog):
    seed(flows, tmp_path, unique_key=False)
    trigger("search", "vectors")
    trigger("search", "vectors")
    assert vector_rows(catalog) == (10, 10)
    found = search_documents(namespace="search", collection="vectors", query_text="printing books", limit=2)
    assert keys(found) == ["press", "press"]  # both runs' documents, found by the cache read again


def test_searching_what_has_no_embeddings_or_with_a_wrong_vector_is_refused(flows, tmp_path):
    seed(flows, tmp_path)
    apply_definitions(tmp_path, {"namespace": "search", "collections": [
        {"collection_name": "copies", "source": {"type": "bucket", "bucket_ids": ["notes"]},
         "feature_extractor": {"feature_extractor_name": "passthrough_extractor"}}]}, name="more.yaml")
    trigger("search", "vectors")
    with pytest.raises(BadRequestError, match="collection 'copies' has no embeddings"):
        search_documents(namespace="search", collection="copies", query_text="tides")
    with pytest.raises(ValidationError, match="expected 256 numbers"):
        search_documents(namespace="search", collection="vectors", query_vector=[0.1] * 3)
    with pytest.raises(ValidationError, match="exactly one of query_text and query_vector"):
        search_documents(namespace="search", collection="vectors", query_text="a", query_vector=[0.1] * 256)


def chunked(name: str = "chunks", **parameters) -> dict:
    return {"collection_name": name, "source": {"type": "bucket", "bucket_ids": ["notes"]},
            "feature_extractor": {"feature_extractor_name": "text_extractor",
                                  "parameters": {"split_by": "none", **parameters},
                                  "field_passthrough": [{"source_path": "key"}]}}


@pytest.mark.both_backends
def test_text_chunks_are_searchable_by_their_hashing_embedding(flows, tmp_path, catalog):
    seed(flows, tmp_path)
    apply_definitions(tmp_path, {"namespace": "search", "collections": [
        chunked(), {"collection_name": "copies", "source": {"type": "collection", "collection_ids": ["chunks"]},
                    "feature_extractor": {"feature_extractor_name": "passthrough_extractor"}}]}, name="more.yaml")
    trigger("search", "chunks")
    assert vector_rows(catalog) == (5, 10)  # the chunks' vectors; the copies carry none
    found = search_documents(namespace="search", collection="chunks", query_text="tides of the ocean and the moon",
                             limit=5)
    assert keys(found)[0] == "tides" and len(found["results"]) == 5
    scores = [d["score"] for d in found["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert keys(search_documents(namespace="search", collection="chunks", query_text="yeast in the dough",
                                 limit=1)) == ["bread"]
    vector = found["results"][0]["text_extractor_v1_embedding"]
    assert len(vector) == 64 and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    by_vector = search_documents(namespace="search", collection="chunks", query_vector=vector, limit=1)
    assert keys(by_vector) == ["tides"] and by_vector["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValidationError, match="expected 64 numbers"):
        search_documents(namespace="search", collection="chunks", query_vector=[0.1] * 256)
    with pytest.raises(ValidationError, match="query_text has no words"):
        search_documents(namespace="search", collection="chunks", query_text="?!")


def test_only_collections_whose_extractor_writes_vectors_are_searchable(flows, tmp_path):
    seed(flows, tmp_path)
    apply_definitions(tmp_path, {"namespace": "search", "collections": [
        chunked(), chunked("plain", embedding_dimension=0),
        {"collection_name": "copies", "source": {"type": "collection", "collection_ids": ["chunks"]},
         "feature_extractor": {"feature_extractor_name": "passthrough_extractor"}}]}, name="more.yaml")
    trigger("search", "chunks")
    trigger("search", "plain")
    writers = "vectors are written by embedding_extractor, text_extractor \\(embedding_dimension above 0\\)"
    with pytest.raises(BadRequestError, match=f"'plain' has no embeddings: its extractor \\(text_extractor\\) "
                                              f"writes no vector with these parameters; {writers}"):
        search_documents(namespace="search", collection="plain", query_text="tides")
    # A vector stays with the collection that makes it: a copy downstream neither carries it nor is searchable.
    copies = list_collection_documents(namespace="search", collection="copies", filters=None, limit=10,
                                       offset=0)["results"]
    assert len(copies) == 5 and all("text_extractor_v1_embedding" not in d for d in copies)
    with pytest.raises(BadRequestError, match=f"'copies' has no embeddings: .*passthrough_extractor\\) "
                                              f"writes no vector; {writers}"):
        search_documents(namespace="search", collection="copies", query_text="tides")
    with pytest.raises(DefinitionError, match="field_passthrough\\[0\\].source_path: 'text_extractor_v1_embedding' "
                                              "is the vector of collection 'chunks'"):
        apply_definitions(tmp_path, {"namespace": "search", "collections": [
            {"collection_name": "carried", "source": {"type": "collection", "collection_ids": ["chunks"]},
             "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "field_passthrough": [
                 {"source_path": "text_extractor_v1_embedding"}]}}]}, name="carried.yaml")
