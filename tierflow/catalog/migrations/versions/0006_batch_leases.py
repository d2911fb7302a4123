"""Batch leases and input claims: one run per batch, crashed runs resumed by a sweep.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_holder', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('lease_generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('auto_resumes', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_batches_lease_expires_at', ['lease_expires_at'], unique=False)
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_column('attempts')
        batch_op.drop_column('claim')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index('ix_batches_lease_expires_at')
        batch_op.drop_column('auto_resumes')
        batch_op.drop_column('lease_generation')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_holder')
        batch_op.drop_column('lease_owner')
