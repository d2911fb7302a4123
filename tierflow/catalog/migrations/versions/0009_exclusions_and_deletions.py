"""A batch's count of inputs that left a collection's filters and of the documents it deleted.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('excluded_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('documents_deleted_count', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('documents_deleted_count')
        batch_op.drop_column('excluded_count')
