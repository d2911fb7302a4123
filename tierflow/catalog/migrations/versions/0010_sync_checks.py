"""When a bucket's scheduled listing last checked it, and when a check last found something to do.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync_checked_at', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('sync_changed_at', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.drop_column('sync_changed_at')
        batch_op.drop_column('sync_checked_at')
