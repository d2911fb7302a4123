"""Baseline: the catalog's tables as they were before migrations existed.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('namespaces', JSON, nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('revoked_at', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('key_id')
    )
    op.create_table('batches',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('collection_id', sa.String(length=64), nullable=False),
    sa.Column('collection_ids', JSON, nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('request', JSON, nullable=False),
    sa.Column('source_bucket_ids', JSON, nullable=False),
    sa.Column('source_collection_ids', JSON, nullable=False),
    sa.Column('current_tier', sa.Integer(), nullable=True),
    sa.Column('total_tiers', sa.Integer(), nullable=False),
    sa.Column('dag_tiers', JSON, nullable=False),
    sa.Column('object_count', sa.Integer(), nullable=True),
    sa.Column('document_count', sa.Integer(), nullable=True),
    sa.Column('failed_object_count', sa.Integer(), nullable=False),
    sa.Column('error_summary', JSON, nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('batch_id')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_namespace_id'), ['namespace_id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response', JSON, nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('namespace_id', 'key')
    )
    op.create_table('namespaces',
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('namespace_id'),
    sa.UniqueConstraint('namespace_name')
    )
    op.create_table('batch_inputs',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('collection_id', sa.String(length=64), nullable=False),
    sa.Column('input_id', sa.String(length=64), nullable=False),
    sa.Column('tier_num', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('documents_written', sa.Integer(), nullable=False),
    sa.Column('error', JSON, nullable=True),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.batch_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'collection_id', 'input_id')
    )
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.create_index('ix_batch_inputs_status', ['batch_id', 'collection_id', 'status'], unique=False)

    op.create_table('batch_runs',
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.batch_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id')
    )
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_runs_batch_id'), ['batch_id'], unique=False)

    op.create_table('buckets',
    sa.Column('bucket_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('bucket_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('bucket_schema', JSON, nullable=False),
    sa.Column('unique_key', JSON, nullable=True),
    sa.Column('metadata', JSON, nullable=False),
    sa.Column('storage', JSON, nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.namespace_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bucket_id'),
    sa.UniqueConstraint('namespace_id', 'bucket_name')
    )
    op.create_table('collections',
    sa.Column('collection_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('collection_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source', JSON, nullable=False),
    sa.Column('feature_extractor', JSON, nullable=False),
    sa.Column('output_schema', JSON, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('metadata', JSON, nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.namespace_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('collection_id'),
    sa.UniqueConstraint('namespace_id', 'collection_name')
    )
    op.create_table('tier_tasks',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('tier_num', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('parent_task_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('collection_ids', JSON, nullable=False),
    sa.Column('source_type', sa.String(length=16), nullable=False),
    sa.Column('source_collection_ids', JSON, nullable=False),
    sa.Column('started_at', sa.String(length=40), nullable=True),
    sa.Column('completed_at', sa.String(length=40), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('error_summary', JSON, nullable=True),
    sa.Column('source_documents_fetched', sa.Integer(), nullable=False),
    sa.Column('documents_after_source_filter', sa.Integer(), nullable=False),
    sa.Column('documents_submitted_to_engine', sa.Integer(), nullable=False),
    sa.Column('documents_written', sa.Integer(), nullable=False),
    sa.Column('inputs_succeeded', sa.Integer(), nullable=False),
    sa.Column('inputs_failed', sa.Integer(), nullable=False),
    sa.Column('inputs_skipped', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.batch_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'tier_num')
    )
    op.create_table('documents',
    sa.Column('document_id', sa.String(length=64), nullable=False),
    sa.Column('collection_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('root_object_id', sa.String(length=64), nullable=True),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('fields', JSON, nullable=False),
    sa.Column('lineage', JSON, nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['collection_id'], ['collections.collection_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id')
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index('ix_documents_collection_batch', ['collection_id', 'batch_id'], unique=False)
        batch_op.create_index('ix_documents_source', ['collection_id', 'source_id'], unique=False)

    op.create_table('objects',
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('bucket_id', sa.String(length=64), nullable=False),
    sa.Column('namespace_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('key_prefix', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('etag', sa.String(length=128), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('last_modified', sa.String(length=40), nullable=True),
    sa.Column('metadata', JSON, nullable=False),
    sa.Column('blobs', JSON, nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['bucket_id'], ['buckets.bucket_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('object_id')
    )
    with op.batch_alter_table('objects', schema=None) as batch_op:
        batch_op.create_index('ix_objects_bucket_key', ['bucket_id', 'key'], unique=False)
        batch_op.create_index('ix_objects_bucket_status', ['bucket_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('objects', schema=None) as batch_op:
        batch_op.drop_index('ix_objects_bucket_status')
        batch_op.drop_index('ix_objects_bucket_key')

    op.drop_table('objects')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_source')
        batch_op.drop_index('ix_documents_collection_batch')

    op.drop_table('documents')
    op.drop_table('tier_tasks')
    op.drop_table('collections')
    op.drop_table('buckets')
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_runs_batch_id'))

    op.drop_table('batch_runs')
    with op.batch_alter_table('batch_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_inputs_status')

    op.drop_table('batch_inputs')
    op.drop_table('namespaces')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_namespace_id'))

    op.drop_table('batches')
    op.drop_table('api_keys')
