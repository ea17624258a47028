"""matching blocking and bulk runs

Revision ID: d93a2e6c1f03
Revises: c82f1d5b0e02
Create Date: 2026-11-28 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'd93a2e6c1f03'
down_revision = 'c82f1d5b0e02'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
