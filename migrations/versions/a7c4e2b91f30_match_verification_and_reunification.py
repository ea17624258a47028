"""match verification and reunification

Revision ID: a7c4e2b91f30
Revises: d3689085f124
Create Date: 2026-11-29 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'a7c4e2b91f30'
down_revision = 'd3689085f124'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('match_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('methods', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('verified_by_id', sa.Integer(), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['match_proposals.id'], name=op.f('fk_match_verifications_proposal_id_match_proposals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verified_by_id'], ['users.id'], name=op.f('fk_match_verifications_verified_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_verifications'))
    )
    with op.batch_alter_table('match_verifications', schema=None) as batch_op:
        batch_op.create_index('ix_match_verifications_proposal', ['proposal_id', 'id'], unique=False)

    op.create_table('match_reunifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('verification_id', sa.Integer(), nullable=False),
    sa.Column('reunified_on', sa.Date(), nullable=False),
    sa.Column('place', sa.Text(), nullable=False),
    sa.Column('with_whom', sa.Text(), nullable=False),
    sa.Column('follow_up_due', sa.Date(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['match_proposals.id'], name=op.f('fk_match_reunifications_proposal_id_match_proposals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verification_id'], ['match_verifications.id'], name=op.f('fk_match_reunifications_verification_id_match_verifications'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_match_reunifications_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_reunifications'))
    )
    with op.batch_alter_table('match_reunifications', schema=None) as batch_op:
        batch_op.create_index('ix_match_reunifications_proposal', ['proposal_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('match_reunifications', schema=None) as batch_op:
        batch_op.drop_index('ix_match_reunifications_proposal')
    op.drop_table('match_reunifications')

    with op.batch_alter_table('match_verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_match_verifications_proposal')
    op.drop_table('match_verifications')
