"""Benchmark: embedding throughput, and vector search latency at 10,000 and 100,000 documents.

1. Embedding: texts of 3, 20, 50 and 200 words embedded by `embedding_extractor` (wordllama-256)
   in chunks of 200, on one thread: texts and words per second per core.
2. Search: N documents of a collection (synthetic sentences, embedded with the same model) in a
   fresh catalog, written by the catalog's own functions; then 60 searches by text, without a
   filter and with one that keeps a tenth of the documents (`topic` eq one of ten values).
   Latency p50 and p95 of `tierflow.search.search_documents` (query embedding, version check,
   scan, fetching the results) once the collection's vectors are in memory; the first search,
   which reads them, is shown apart. Recall@10 compares each answer with a brute-force ranking
   in numpy over the same candidates (1.0 unless the search loses or misorders a document).
   SQLite always; PostgreSQL too with `--postgres URL` (or `TIERFLOW_BENCH_POSTGRES_URL`).

Prints a table and writes bench/results/search.json.

    python bench/search.py [--documents 10000 100000] [--postgres postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import save_results  # noqa: E402
from tierflow.catalog import documents as catalog_documents  # noqa: E402
from tierflow.catalog import resources  # noqa: E402
from tierflow.catalog import vectors as catalog_vectors  # noqa: E402
from tierflow.catalog.engine import dispose_engines, open_session  # noqa: E402
from tierflow.catalog.schema import metadata  # noqa: E402
from tierflow.embeddings import load_model  # noqa: E402
from tierflow.extractors import ExtractorInput  # noqa: E402
from tierflow.extractors.embedding import EmbeddingExtractor, EmbeddingParameters  # noqa: E402
from tierflow.search import search_documents  # noqa: E402
from tierflow.settings import get_settings  # noqa: E402

WORDS = ("tide moon sun ocean bread yeast dough oven press book paper ink silk road spice merchant leaf "
         "light water sugar river mountain snow glacier rain storm wind forest tree root seed flower bee "
         "honey city wall gate king queen law court ship sail harbour star planet orbit comet engine "
         "steam wheel iron copper gold coin market bank loan music song drum violin paint canvas color").split()
STAMP = "2026-01-01T00:00:00.000000+00:00"


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def embedding_throughput() -> list[dict[str, Any]]:
    params = EmbeddingExtractor.for_collection(EmbeddingParameters(), "bench")
    rng = random.Random(1)
    load_model()  # loaded once per process; not part of the figure
    rows = []
    for words in (3, 20, 50, 200):
        texts = [sentence(rng, words) + f" {i}" for i in range(2000)]
        started = time.process_time()
        for start in range(0, len(texts), 200):
            extractor = EmbeddingExtractor()
            items = [ExtractorInput("document", {}, {"text": t}) for t in texts[start:start + 200]]
            extractor.prepare(items, params)
            for item in items:
                extractor.extract(item, params)
        cpu = time.process_time() - started
        rows.append({"words": words, "texts_per_cpu_second": round(len(texts) / cpu),
                     "words_per_cpu_second": round(len(texts) * words / cpu)})
    return rows


def populate(url: str, count: int) -> None:
    """A namespace, a collection of embedding_extractor, and `count` documents with their vectors."""
    os.environ["TIERFLOW_DATABASE_URL"] = url
    get_settings.cache_clear()
    rng = random.Random(7)
    model = load_model()
    with open_session(url) as session:
        ns, _ = resources.put_namespace(session, name="bench", description=None)
        resources.put_collection(session, namespace_id=ns["namespace_id"], values={
            "collection_name": "vectors", "description": None, "source": {"type": "bucket", "bucket_ids": []},
            "feature_extractor": {"feature_extractor_name": "embedding_extractor", "version": "v1",
                                  "parameters": {}, "input_mappings": {}, "field_passthrough": [],
                                  "include_all_source_fields": False},
            "output_schema": {}, "enabled": True, "metadata": {}})
        collection_id = resources.get_collection(session, namespace_id=ns["namespace_id"],
                                                 identifier="vectors")["collection_id"]
    for start in range(0, count, 5000):
        texts = [sentence(rng, 12) for _ in range(min(5000, count - start))]
        vectors = model.embed(texts)
        rows = [{"document_id": f"doc_{start + i:09d}", "collection_id": collection_id,
                 "namespace_id": ns["namespace_id"], "batch_id": None, "root_object_id": None,
                 "source_id": f"src_{start + i}", "fields": {"text": text, "topic": f"t{(start + i) % 10}"},
                 "lineage": {}, "created_at": STAMP, "updated_at": STAMP}
                for i, text in enumerate(texts)]
        with open_session(url, write=True) as session:
            catalog_documents.write_documents(session, rows=rows, upsert=False)
            catalog_vectors.write_vectors(session, collection_id=collection_id, field="vectors_embedding",
                                          vectors=[(r["document_id"], v) for r, v in zip(rows, vectors, strict=True)])


def brute_force(url: str, query: str, filters: dict[str, Any] | None) -> list[str]:
    """The ten best document ids by a plain numpy ranking of every candidate's stored vector."""
    from sqlalchemy import select

    from tierflow.catalog.schema import document_vectors, documents

    vector = load_model().embed([query])[0]
    with open_session(url) as session:
        query_rows = select(document_vectors.c.document_id, document_vectors.c.vector).join(
            documents, documents.c.document_id == document_vectors.c.document_id)
        if filters:
            query_rows = query_rows.where(documents.c.fields["topic"].as_string() == filters["topic"])
        found = session.execute(query_rows).all()
    matrix = np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32).reshape(len(found), -1)
    scores = matrix @ vector
    order = sorted(range(len(found)), key=lambda i: (-float(scores[i]), i))[:10]
    return [found[i][0] for i in order]


def latencies(url: str, filters: dict[str, Any] | None) -> dict[str, Any]:
    rng = random.Random(11)
    queries = [sentence(rng, 4) for _ in range(60)]
    started = time.perf_counter()
    search_documents(namespace="bench", collection="vectors", query_text=queries[0], limit=10, filters=filters)
    first = time.perf_counter() - started
    times, recalls = [], []
    for query in queries:
        started = time.perf_counter()
        found = search_documents(namespace="bench", collection="vectors", query_text=query, limit=10,
                                 filters=filters)
        times.append(time.perf_counter() - started)
        if len(recalls) < 10:
            exact = brute_force(url, query, filters)
            recalls.append(len({d["document_id"] for d in found["results"]} & set(exact)) / len(exact))
    times.sort()
    return {"first_ms": round(first * 1000, 1), "p50_ms": round(statistics.median(times) * 1000, 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1] * 1000, 2),
            "recall_at_10": round(statistics.mean(recalls), 3)}


def empty_postgres(url: str) -> None:
    from tierflow.catalog.engine import create_catalog_engine
    from tierflow.catalog.migrate import upgrade

    engine = create_catalog_engine(url)
    metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    engine.dispose()


def main() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--postgres", default=os.environ.get("TIERFLOW_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    result: dict[str, Any] = {"embedding": embedding_throughput(), "search": []}
    print(f"{'words':>6}{'texts/s':>10}{'words/s':>11}  (one core)")
    for row in result["embedding"]:
        print(f"{row['words']:>6}{row['texts_per_cpu_second']:>10,}{row['words_per_cpu_second']:>11,}")
    print(f"\n{'backend':<11}{'documents':>10}  {'filter':<8}{'first ms':>9}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'recall@10':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.documents:
            backends = [("sqlite", f"sqlite:///{tmp}/search-{count}.db")]
            if args.postgres:
                backends.append(("postgresql", args.postgres))
            for backend, url in backends:
                if backend == "postgresql":
                    empty_postgres(url)
                populate(url, count)
                for label, filters in (("none", None), ("1 in 10", {"topic": "t3"})):
                    row = {"backend": backend, "documents": count, "filter": label, **latencies(url, filters)}
                    result["search"].append(row)
                    print(f"{backend:<11}{count:>10,}  {label:<8}{row['first_ms']:>9}{row['p50_ms']:>8}"
                          f"{row['p95_ms']:>8}{row['recall_at_10']:>10}")
                dispose_engines()
    save_results("search", result)


if __name__ == "__main__":
    main()
