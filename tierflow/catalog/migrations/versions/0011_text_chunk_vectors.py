"""text_extractor's embeddings become searchable vectors: moved from the documents' JSON to
`document_vectors`, with a `vector_sets` row per collection, as new chunks are written.

Without this, a collection processed before would answer every search with nothing until each
of its inputs was processed again. No table changes: a data migration only.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from array import array
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_FIELD = 'text_extractor_v1_embedding'
_DEFAULT_DIMENSION = 64
_BATCH = 1000

_collections = sa.table('collections', sa.column('collection_id', sa.String),
                        sa.column('feature_extractor', _JSON))
_documents = sa.table('documents', sa.column('document_id', sa.String), sa.column('collection_id', sa.String),
                      sa.column('fields', _JSON))
_vectors = sa.table('document_vectors', sa.column('document_id', sa.String),
                    sa.column('collection_id', sa.String), sa.column('vector', sa.LargeBinary))
_sets = sa.table('vector_sets', sa.column('collection_id', sa.String), sa.column('field', sa.String),
                 sa.column('dimension', sa.Integer), sa.column('version', sa.BigInteger))


def _dimension(spec: dict[str, Any]) -> int:
    """The collection's embedding_dimension (0: it writes no vector)."""
    if spec.get('feature_extractor_name') != 'text_extractor' or spec.get('version', 'v1') != 'v1':
        return 0
    return int((spec.get('parameters') or {}).get('embedding_dimension', _DEFAULT_DIMENSION))


def _move(connection: sa.Connection, collection_id: str, dimension: int) -> None:
    """Move the collection's embeddings out of its documents, a batch of documents at a time."""
    after = ''
    moved = False
    while True:
        rows = connection.execute(
            sa.select(_documents.c.document_id, _documents.c.fields)
            .where(_documents.c.collection_id == collection_id, _documents.c.document_id > after)
            .order_by(_documents.c.document_id).limit(_BATCH)).all()
        if not rows:
            break
        after = rows[-1][0]
        for document_id, fields in rows:
            vector = fields.pop(_FIELD, None) if isinstance(fields, dict) else None
            if not isinstance(vector, list):
                continue
            connection.execute(sa.update(_documents).where(_documents.c.document_id == document_id)
                               .values(fields=fields))
            connection.execute(sa.insert(_vectors).values(document_id=document_id, collection_id=collection_id,
                                                          vector=array('f', vector).tobytes()))
            moved = True
    if moved:
        connection.execute(sa.insert(_sets).values(collection_id=collection_id, field=_FIELD, dimension=dimension,
                                                   version=1))


def upgrade() -> None:
    connection = op.get_bind()
    for collection_id, spec in connection.execute(
            sa.select(_collections.c.collection_id, _collections.c.feature_extractor)).all():
        dimension = _dimension(spec or {})
        if dimension:  # one of dimension 0 writes no vector; its documents have none to move
            _move(connection, collection_id, dimension)


def downgrade() -> None:
    connection = op.get_bind()
    for collection_id, spec in connection.execute(
            sa.select(_collections.c.collection_id, _collections.c.feature_extractor)).all():
        if not _dimension(spec or {}):
            continue
        for document_id, blob in connection.execute(
                sa.select(_vectors.c.document_id, _vectors.c.vector)
                .where(_vectors.c.collection_id == collection_id)).all():
            fields = connection.execute(sa.select(_documents.c.fields)
                                        .where(_documents.c.document_id == document_id)).scalar_one()
            unpacked = array('f')
            unpacked.frombytes(blob)
            connection.execute(sa.update(_documents).where(_documents.c.document_id == document_id)
                               .values(fields={**fields, _FIELD: [round(v, 6) for v in unpacked.tolist()]}))
        connection.execute(sa.delete(_vectors).where(_vectors.c.collection_id == collection_id))
        connection.execute(sa.delete(_sets).where(_sets.c.collection_id == collection_id))
