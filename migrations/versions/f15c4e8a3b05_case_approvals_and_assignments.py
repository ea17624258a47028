"""case approvals and assignments

Revision ID: f15c4e8a3b05
Revises: e04b3f7d2a04
Create Date: 2026-11-28 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'f15c4e8a3b05'
down_revision = 'e04b3f7d2a04'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('case_approval_settings',
    sa.Column('approval_type', sa.String(length=32), nullable=False),
    sa.Column('is_required', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_case_approval_settings_updated_by_id_users')),
    sa.PrimaryKeyConstraint('approval_type', name=op.f('pk_case_approval_settings'))
    )
    op.create_table('case_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('approval_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_note', sa.Text(), nullable=True),
    sa.Column('case_version', sa.Integer(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_approvals_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_case_approvals_decided_by_id_users')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_case_approvals_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_approvals'))
    )
    with op.batch_alter_table('case_approvals', schema=None) as batch_op:
        batch_op.create_index('ix_case_approvals_case', ['case_id', 'id'], unique=False)
        batch_op.create_index('ix_case_approvals_status_requested', ['status', 'requested_at'], unique=False)


def downgrade():
    with op.batch_alter_table('case_approvals', schema=None) as batch_op:
        batch_op.drop_index('ix_case_approvals_status_requested')
        batch_op.drop_index('ix_case_approvals_case')
    op.drop_table('case_approvals')

    op.drop_table('case_approval_settings')
