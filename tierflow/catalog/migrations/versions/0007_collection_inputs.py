"""What each collection made from each input (version, fingerprint), deletions per batch, the
newest S3 event applied to each object, and buckets listed on a schedule.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

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
        for name in ('deleted_count', 'new_count', 'changed_count', 'unchanged_count', 'stale_count'):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                                      nullable=True))
        batch_op.add_column(sa.Column('synced_at', sa.String(length=40), nullable=True))
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
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.drop_column('synced_at')
        batch_op.drop_column('sync')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        for name in ('stale_count', 'unchanged_count', 'changed_count', 'new_count', 'deleted_count'):
            batch_op.drop_column(name)
    op.drop_table('collection_inputs')
