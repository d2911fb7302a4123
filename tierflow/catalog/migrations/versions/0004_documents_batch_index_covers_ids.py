"""The documents' (collection, batch) index carries the document id: a batch's documents are listed
from the index alone.

A lower tier's last selection asks whether the upper collection wrote any document in this batch
that the tier's manifest lacks (`catalog.batches.add_inputs`). Through the index on (collection_id,
batch_id) SQLite read each of those documents' table rows for its id: 2.8 s at the close of the
document tier of a 100,000-object batch (a million documents, a 3.2 GB catalog; bench/pipeline.py),
a tier's orchestration overhead whenever the tier had caught up with the one above. With the id in
the index the same statement took 0.68 s on the same catalog.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_collection_batch')
        batch_op.create_index('ix_documents_collection_batch', ['collection_id', 'batch_id', 'document_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_collection_batch')
        batch_op.create_index('ix_documents_collection_batch', ['collection_id', 'batch_id'], unique=False)
