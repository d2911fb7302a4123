"""Storage grants, and which buckets a tenant defined.

A tenant's key may bind buckets and register objects only inside S3 locations the operator
granted to its namespace (`tierflow storage grant`); a bucket a tenant defined is checked against
those grants again each time it is read.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'storage_grants',
        sa.Column('grant_id', sa.String(length=64), nullable=False),
        sa.Column('namespace_id', sa.String(length=64), nullable=False),
        sa.Column('s3_bucket', sa.String(length=63), nullable=False),
        sa.Column('prefix', sa.Text(), nullable=False),
        sa.Column('endpoint_url', sa.Text(), nullable=True),
        sa.Column('region', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.namespace_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('grant_id'),
    )
    op.create_index('ix_storage_grants_namespace_id', 'storage_grants', ['namespace_id'], unique=False)
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_defined', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('buckets', schema=None) as batch_op:
        batch_op.drop_column('tenant_defined')
    op.drop_index('ix_storage_grants_namespace_id', table_name='storage_grants')
    op.drop_table('storage_grants')
