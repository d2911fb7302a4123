"""Searchable vectors of documents, and a version per collection's set of them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'document_vectors',
        sa.Column('document_id', sa.String(length=64), nullable=False),
        sa.Column('collection_id', sa.String(length=64), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['document_id'], ['documents.document_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('document_id'),
    )
    op.create_index('ix_document_vectors_collection_id', 'document_vectors', ['collection_id'], unique=False)
    op.create_table(
        'vector_sets',
        sa.Column('collection_id', sa.String(length=64), nullable=False),
        sa.Column('field', sa.String(length=128), nullable=False),
        sa.Column('dimension', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.collection_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('collection_id'),
    )


def downgrade() -> None:
    op.drop_table('vector_sets')
    op.drop_index('ix_document_vectors_collection_id', table_name='document_vectors')
    op.drop_table('document_vectors')
