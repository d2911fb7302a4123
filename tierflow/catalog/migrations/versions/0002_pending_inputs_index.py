"""The manifest's status index carries the input id: pending inputs are read in id order.

`iter_input_chunks` reads a collection's PENDING inputs page by page, ordered by id. With the index
on (batch_id, collection_id, status) only, SQLite walked the primary key instead, reading every
input of the collection to find none pending: 0.6 s at the close of a 300,000-input tier
(bench/pipeline.py at 30,000 objects), a tier's orchestration overhead. With the input id in the
index the same query is answered from the index alone.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_inputs_status')
        batch_op.create_index('ix_batch_inputs_status', ['batch_id', 'collection_id', 'status', 'input_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_inputs_status')
        batch_op.create_index('ix_batch_inputs_status', ['batch_id', 'collection_id', 'status'], unique=False)
