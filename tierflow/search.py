"""Searching a collection's documents by vector: nearest first, the filter applied first.

The search is exact: every candidate's vector is compared with the query (one matrix product in
numpy). A collection's vectors are read from the catalog once and kept in memory per process
(`_Vectors`), read again when the collection's `vector_sets.version` moves, which every write
of its vectors does in the same transaction as its documents. A filter is a pre-filter: the
candidates are the documents that match it (checked in SQL, best-ranked first), and the best
`limit` of those are returned, never fewer when enough match. Approximate indexes (sqlite-vec, pgvector) cannot be
installed on the default setup (docs/design/vector-search.md).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.engine import open_session, time_limit
from tierflow.catalog.records import document_record
from tierflow.errors import BadRequestError, ValidationError
from tierflow.extractors import collection_extractor, vector_writers
from tierflow.filters import MATCH_ALL, parse_filter
from tierflow.settings import get_settings

MODE = "exact"
"""How searches are answered (reported by `tierflow db check`)."""


@dataclass(frozen=True)
class _Vectors:
    """A collection's vectors as of one version: ids, the row of each id, one unit vector a row."""

    version: int
    ids: list[str]
    rows: dict[str, int]
    matrix: np.ndarray


_cache: dict[tuple[str, str], _Vectors] = {}
_cache_lock = threading.Lock()


def _vectors(session: Session, url: str, collection_id: str, version: int, dimension: int) -> _Vectors:
    """The collection's vectors at `version`, from memory when this process has read them since."""
    key = (url, collection_id)
    with _cache_lock:
        held = _cache.get(key)
        if held is not None and held.version == version:
            return held
        ids, matrix = catalog_vectors.read_vectors(session, collection_id=collection_id, dimension=dimension)
        held = _cache[key] = _Vectors(version, ids, {d: i for i, d in enumerate(ids)}, matrix)
        return held


def _query_vector(extractor: Any, params: Any, query_text: str | None, query_vector: list[float] | None,
                  dimension: int | None) -> np.ndarray:
    if (query_text is None) == (query_vector is None):
        raise ValidationError([{"type": "value_error", "location": ["body"],
                                "message": "send exactly one of query_text and query_vector"}])
    vector = np.asarray(extractor.embed_query(params, query_text) if query_text is not None else query_vector,
                        dtype=np.float32)
    if dimension is not None and vector.shape != (dimension,):
        raise ValidationError([{"type": "value_error", "location": ["body", "query_vector"],
                                "message": f"expected {dimension} numbers (the collection's vectors), "
                                           f"got {vector.shape[0]}"}])
    if not np.all(np.isfinite(vector)):
        raise ValidationError([{"type": "value_error", "location": ["body", "query_vector"],
                                "message": "numbers must be finite"}])
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def search_documents(*, namespace: str, collection: str, query_text: str | None = None,
                     query_vector: list[float] | None = None, limit: int = 10, filters: Any = None) -> dict[str, Any]:
    """`{results: [document + score], mode}`: the collection's documents nearest the query (cosine
    similarity), best first, among those matching `filters`. A collection is searchable exactly
    when its extractor declares a `vector_field`, and a `query_text` is embedded by that extractor
    (`embed_query`), as its documents were. BadRequestError for a collection whose extractor
    writes no vector; ValidationError for a query of the wrong dimension."""
    where = parse_filter(filters, where="filters")
    settings = get_settings()
    url = settings.database_url
    with open_session(url) as session:
        ns = resources.get_namespace(session, identifier=namespace)
        row = resources.get_collection(session, namespace_id=ns["namespace_id"], identifier=collection)
        extractor, params = collection_extractor(row["feature_extractor"], row["collection_name"])
        if extractor.vector_field(params) is None:
            raise BadRequestError(
                f"collection '{row['collection_name']}' has no embeddings: its extractor ({extractor.name}) "
                f"writes no vector{' with these parameters' if extractor.writes_vectors() else ''}; "
                f"vectors are written by {vector_writers()}", details={"field": "collection"})
        found = catalog_vectors.vector_set(session, collection_id=row["collection_id"])
        query = _query_vector(extractor, params, query_text, query_vector, found[1] if found else None)
        if found is None:
            return {"results": [], "mode": MODE}
        held = _vectors(session, url, row["collection_id"], *found)
        scores = held.matrix @ query if len(held.ids) else np.empty(0, dtype=np.float32)
        with time_limit(session, settings.query_timeout_seconds):
            if where == MATCH_ALL:
                best = _top(scores, limit)
            else:
                best = _best_matching(session, row["collection_id"], where, held, scores, limit)
            chosen = [held.ids[i] for i in best]
            stored = catalog_documents.get_document_rows(session, document_ids=chosen)
        records = [document_record(stored[d]) for d in chosen if d in stored]
        by_id = {r["document_id"]: r for r in
                 catalog_vectors.attach_vectors(session, collection_id=row["collection_id"], records=records)}
    results = [{**by_id[d], "score": round(float(scores[i]), 6)}
               for i, d in zip(best, chosen, strict=True) if d in by_id]
    return {"results": results, "mode": MODE}


_FIRST_CHECK = 256
"""Best-ranked documents whose filter is checked first; each later round checks four times more."""
_WALK_LIMIT = 0.2
"""Past this share of the collection checked, a filter that matches so little is run on its own."""


def _best_matching(session: Session, collection_id: str, where: Any, held: _Vectors, scores: np.ndarray,
                   limit: int) -> list[int]:
    """Rows of the `limit` best-scoring documents among those matching `where`, best first.

    The documents are walked in score order and the filter is checked in SQL on each round's
    documents only: at 100,000 documents checking the filter on all of them cost 230 ms, while a
    filter that keeps one in ten finds its `limit` among the first few hundred. A filter that
    matches too little for that to pay is run once over the whole collection instead. Either way
    the answer is the pre-filtered one."""
    order = np.argsort(-scores, kind="stable")
    found: list[int] = []
    checked, size = 0, max(_FIRST_CHECK, 4 * limit)
    while len(found) < limit and checked < len(order):
        if checked >= _WALK_LIMIT * len(order):
            matching = catalog_vectors.matching_document_ids(session, collection_id=collection_id, where=where)
            rows = np.fromiter((held.rows[d] for d in matching if d in held.rows), dtype=np.int64)
            return [int(rows[i]) for i in _top(scores[rows], limit)]
        batch = order[checked:checked + size]
        ids = [held.ids[i] for i in batch]
        passing = set(catalog_vectors.matching_document_ids(session, collection_id=collection_id, where=where,
                                                            among=ids))
        found.extend(int(i) for i in batch if held.ids[i] in passing)
        checked, size = checked + len(batch), size * 4
    return found[:limit]


def describe_search(engine: Engine) -> str:
    """How searches are answered on this catalog, and why no approximate index (`tierflow db check`)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            available = connection.exec_driver_sql(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").first() is not None
        why = ("pgvector is available on this server, but tierflow does not use it yet" if available
               else "pgvector is not installed on this server")
    else:
        loadable = hasattr(sqlite3.Connection, "enable_load_extension")
        why = ("this Python's sqlite3 could load sqlite-vec, but tierflow does not use it yet" if loadable
               else "this Python's sqlite3 cannot load extensions (sqlite-vec)")
    return f"vector search: {MODE} scan with numpy, vectors kept in memory per collection ({why})"


def _top(scores: np.ndarray, limit: int) -> list[int]:
    """Positions of the `limit` highest scores, highest first (ties by position, so stable)."""
    if len(scores) > limit:
        part = np.argpartition(-scores, limit - 1)[:limit]
    else:
        part = np.arange(len(scores))
    return sorted(part.tolist(), key=lambda i: (-float(scores[i]), i))
