"""A tier's live progress (inputs known, done, whether all are known, first and last activity),
and webhooks with their outbox of events and each delivery attempt.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('tier_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inputs_known', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('inputs_done', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('inputs_final', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('first_done_at', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('last_activity_at', sa.String(length=40), nullable=True))
    op.create_table(
        'webhooks',
        sa.Column('webhook_id', sa.String(length=64), nullable=False),
        sa.Column('namespace_id', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('events', _JSON, nullable=False),
        sa.Column('secret', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.namespace_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('webhook_id'),
    )
    op.create_index('ix_webhooks_namespace_id', 'webhooks', ['namespace_id'])
    op.create_table(
        'webhook_events',
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('webhook_id', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.Column('next_attempt_at', sa.String(length=40), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('delivered_at', sa.String(length=40), nullable=True),
        sa.Column('gave_up_at', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.webhook_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'webhook_id'),
    )
    op.create_index('ix_webhook_events_next_attempt_at', 'webhook_events', ['next_attempt_at'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('webhook_id', sa.String(length=64), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('attempted_at', sa.String(length=40), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['event_id', 'webhook_id'], ['webhook_events.event_id', 'webhook_events.webhook_id'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'webhook_id', 'attempt'),
    )


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhook_events_next_attempt_at', table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_index('ix_webhooks_namespace_id', table_name='webhooks')
    op.drop_table('webhooks')
    with op.batch_alter_table('tier_tasks', schema=None) as batch_op:
        for name in ('last_activity_at', 'first_done_at', 'inputs_final', 'inputs_done', 'inputs_known'):
            batch_op.drop_column(name)
