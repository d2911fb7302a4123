"""The search's ranking against a brute-force one, for filters that keep much, little or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.engine import open_session
from tierflow.search import search_documents

STAMP = "2026-01-01T00:00:00.000000+00:00"
COUNT = 3000


@pytest.fixture
def collection(catalog) -> np.ndarray:
    """A collection of COUNT documents (`group` n % 3, `n`) with random unit vectors of 256."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(COUNT, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with open_session(catalog) as session:
        ns, _ = resources.put_namespace(session, name="rank", description=None)
        row, _ = resources.put_collection(session, namespace_id=ns["namespace_id"], values={
            "collection_name": "vectors", "description": None, "source": {"type": "bucket", "bucket_ids": []},
            "feature_extractor": {"feature_extractor_name": "embedding_extractor", "version": "v1",
                                  "parameters": {}},
            "output_schema": {}, "enabled": True, "metadata": {}})
    rows = [{"document_id": f"doc_{n:05d}", "collection_id": row["collection_id"],
             "namespace_id": ns["namespace_id"], "batch_id": None, "root_object_id": None, "source_id": f"s{n}",
             "fields": {"group": f"g{n % 3}", "n": n}, "lineage": {}, "created_at": STAMP, "updated_at": STAMP}
            for n in range(COUNT)]
    with open_session(catalog, write=True) as session:
        catalog_documents.write_documents(session, rows=rows, upsert=False)
        catalog_vectors.write_vectors(session, collection_id=row["collection_id"], field="vectors_embedding",
                                      vectors=[(r["document_id"], v) for r, v in zip(rows, vectors, strict=True)])
    return vectors


def brute_force(vectors: np.ndarray, query: np.ndarray, keep: list[int], limit: int) -> list[str]:
    scores = vectors[keep] @ query
    order = sorted(range(len(keep)), key=lambda i: (-float(scores[i]), keep[i]))[:limit]
    return [f"doc_{keep[i]:05d}" for i in order]


@pytest.mark.both_backends
@pytest.mark.parametrize(("filters", "keep"), [
    (None, lambda n: True),
    ({"group": "g1"}, lambda n: n % 3 == 1),  # a third: found among the best-ranked
    ({"field": "n", "operator": "lt", "value": 150}, lambda n: n < 150),  # a twentieth: a second round
    ({"field": "n", "operator": "in", "value": [7, 2999, 1500]}, lambda n: n in (7, 2999, 1500)),  # all of SQL
    ({"NOT": {"field": "n", "operator": "gte", "value": 0}}, lambda n: False),
])
def test_the_search_ranks_what_the_filter_keeps_as_brute_force_does(collection, filters, keep):
    rng = np.random.default_rng(9)
    for _ in range(3):
        query = collection[rng.integers(COUNT)] + rng.normal(scale=0.3, size=256).astype(np.float32)
        expected = brute_force(collection, query / np.linalg.norm(query), [n for n in range(COUNT) if keep(n)], 25)
        found = search_documents(namespace="rank", collection="vectors", query_vector=query.tolist(), limit=25,
                                 filters=filters)
        assert [d["document_id"] for d in found["results"]] == expected
        assert len(found["results"]) == min(25, sum(1 for n in range(COUNT) if keep(n)))
