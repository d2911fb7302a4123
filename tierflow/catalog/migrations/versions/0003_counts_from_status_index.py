"""The manifest's status index carries `documents_written`: a tier is counted from the index alone.

A tier's close counts its inputs per status and sums the documents they wrote. By tier number
(no index of its own) SQLite read every input of the batch, table rows included: 3.3 s at the
close of the file tier of a 100,000-object batch (1.1 million inputs, bench/pipeline.py), and
3.1 s at the document tier's. Counted by the tier's collections through this index, with the
column last so that pending inputs stay in id order for `iter_input_chunks` (revision 0002), a
synthetic 1.1-million-input ledger is counted in 9 ms (file tier) and 109 ms (document tier)
instead of 127 and 353 ms, its page cache warm. In bench/pipeline.py the tiers' orchestration
overhead, mostly their close, went from 0.88 and 0.90 s to 0.25 and 0.13 s at 30,000 objects,
and from 3.4 and 3.2 s to 1.16 and 0.36 s at 100,000.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_inputs_status')
        batch_op.create_index('ix_batch_inputs_status',
                              ['batch_id', 'collection_id', 'status', 'input_id', 'documents_written'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_inputs_status')
        batch_op.create_index('ix_batch_inputs_status', ['batch_id', 'collection_id', 'status', 'input_id'],
                              unique=False)
