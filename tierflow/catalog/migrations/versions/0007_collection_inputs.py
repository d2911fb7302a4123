"""What each collection made from each input (version, fingerprint), deletions per batch, and
the newest S3 event applied to each object.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'collection_inputs',
        sa.Column('collection_id', sa.String(length=64), nullable=False),
        sa.Column('input_id', sa.String(length=64), nullable=False),
        sa.Column('input_version', sa.String(length=128), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('documents', sa.Integer(), nullable=False),
        sa.Column('processed_at', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.collection_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('collection_id', 'input_id'),
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_count', sa.Integer(), server_default='0', nullable=False))
    op.create_table(
        'object_events',
        sa.Column('object_id', sa.String(length=64), nullable=False),
        sa.Column('sequencer', sa.String(length=64), nullable=False),
        sa.Column('removed', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint('object_id'),
    )


def downgrade() -> None:
    op.drop_table('object_events')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('deleted_count')
    op.drop_table('collection_inputs')
