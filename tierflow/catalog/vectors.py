"""Documents' vectors in the catalog: written with their documents, read whole for a search.

Vectors are float32 bytes (1 KB at 256 dimensions: a quarter of their JSON), kept here only and
put back into a document's fields when it is read (`attach_vectors`). Every write bumps
the collection's `vector_sets.version`, in the same transaction, so a reader that keeps the
vectors in memory (`tierflow.search`) reads them again exactly when they changed; deleting a
document deletes its vector (foreign key), and a replaced input's old documents go that way.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tierflow.catalog.records import document_field
from tierflow.catalog.schema import document_vectors, documents, vector_sets
from tierflow.catalog.upsert import upsert_rows
from tierflow.filters import Node, compile_filter

if TYPE_CHECKING:
    import numpy as np


def write_vectors(session: Session, *, collection_id: str, field: str,
                  vectors: Sequence[tuple[str, Sequence[float]]]) -> None:
    """Store (or replace) each document's vector, kept as `field`, and mark the set changed."""
    if not vectors:
        return
    # float32 in the machine's byte order, as numpy reads them back (`read_vectors`); the array
    # module keeps numpy out of processes that only write (a flow imports it for nothing else).
    upsert_rows(session, document_vectors,
                [{"document_id": d, "collection_id": collection_id, "vector": array("f", v).tobytes()}
                 for d, v in vectors],
                keys=["document_id"], update=["vector"])
    dimension = len(vectors[0][1])
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(vector_sets).values(collection_id=collection_id, field=field, dimension=dimension,
                                                  version=1)
    session.execute(statement.on_conflict_do_update(
        index_elements=["collection_id"],
        set_={"field": field, "dimension": dimension, "version": vector_sets.c.version + 1}))


def take_vectors(rows: Sequence[dict[str, Any]], field: str) -> list[tuple[str, list[float]]]:
    """Remove `field` from each document row's fields and return (document id, vector) pairs.

    A vector is stored once, here, not also in the document's JSON: 256 numbers are 4 KB of JSON
    that every filter over the collection's documents would parse (a filtered search at 100,000
    documents read 1.2 s of it)."""
    taken = []
    for row in rows:
        vector = row["fields"].pop(field, None)
        if isinstance(vector, list):
            taken.append((row["document_id"], vector))
    return taken


def attach_vectors(session: Session, *, collection_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The document records with their vector put back under its field, as users see them."""
    found = session.execute(select(vector_sets.c.field).where(vector_sets.c.collection_id == collection_id)).first()
    if found is None or not records:
        return records
    stored = dict(session.execute(select(document_vectors.c.document_id, document_vectors.c.vector).where(
        document_vectors.c.document_id.in_([r["document_id"] for r in records]))).all())
    for record in records:
        blob = stored.get(record["document_id"])
        if blob is not None:
            unpacked = array("f")
            unpacked.frombytes(blob)
            record[found[0]] = unpacked.tolist()
    return records


def vector_set(session: Session, *, collection_id: str) -> tuple[int, int] | None:
    """(version, dimension) of the collection's vectors, or None when it has none yet."""
    row = session.execute(select(vector_sets.c.version, vector_sets.c.dimension)
                          .where(vector_sets.c.collection_id == collection_id)).first()
    return (int(row[0]), int(row[1])) if row else None


def read_vectors(session: Session, *, collection_id: str, dimension: int) -> tuple[list[str], np.ndarray]:
    """Every vector of the collection of that dimension: their document ids, and one row each."""
    import numpy as np

    ids: list[str] = []
    blobs: list[bytes] = []
    width = dimension * 4
    for document_id, blob in session.execute(
            select(document_vectors.c.document_id, document_vectors.c.vector)
            .where(document_vectors.c.collection_id == collection_id)):
        if len(blob) == width:  # vectors of an earlier model wait until their input is processed again
            ids.append(document_id)
            blobs.append(blob)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dimension)
    return ids, matrix


def matching_document_ids(session: Session, *, collection_id: str, where: Node,
                          among: Sequence[str] | None = None) -> list[str]:
    """The ids of the collection's documents that match the filter (of those `among`, if given)."""
    condition = compile_filter(where, document_field, dialect=session.get_bind().dialect.name)
    if among is not None:
        # By id alone (ids are unique across collections, and these are the collection's own):
        # with the collection's column in the query too, SQLite scanned the collection's index
        # instead of looking the ids up.
        query = select(documents.c.document_id).where(documents.c.document_id.in_(list(among)), condition)
    else:
        query = select(documents.c.document_id).where(documents.c.collection_id == collection_id, condition)
    return list(session.execute(query).scalars())
