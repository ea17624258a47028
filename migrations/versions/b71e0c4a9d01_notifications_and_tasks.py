"""notifications and tasks

Revision ID: b71e0c4a9d01
Revises: a7c4e2b91f30
Create Date: 2026-11-28 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'b71e0c4a9d01'
down_revision = 'a7c4e2b91f30'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('record_type', sa.String(length=32), nullable=True),
    sa.Column('record_id', sa.String(length=36), nullable=True),
    sa.Column('url', sa.String(length=500), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('emailed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_notifications_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_user_created', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_notifications_user_read_created', ['user_id', 'read_at', 'created_at'], unique=False)

    op.create_table('record_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_type', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('item_key', sa.String(length=64), nullable=False),
    sa.Column('source_field', sa.String(length=64), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('overdue_notified_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_record_tasks_agency_id_agencies')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_record_tasks_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_tasks')),
    sa.UniqueConstraint('record_id', 'record_type', 'kind', 'item_key', name=op.f('uq_record_tasks_record_id'))
    )
    with op.batch_alter_table('record_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_record_tasks_agency_due', ['agency_id', 'due_on'], unique=False)
        batch_op.create_index('ix_record_tasks_due_on', ['due_on'], unique=False)
        batch_op.create_index('ix_record_tasks_owner_due', ['owner_id', 'due_on'], unique=False)


def downgrade():
    with op.batch_alter_table('record_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_record_tasks_owner_due')
        batch_op.drop_index('ix_record_tasks_due_on')
        batch_op.drop_index('ix_record_tasks_agency_due')
    op.drop_table('record_tasks')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_read_created')
        batch_op.drop_index('ix_notifications_user_created')
    op.drop_table('notifications')
