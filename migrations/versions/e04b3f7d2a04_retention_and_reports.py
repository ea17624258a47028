"""retention and reports

Revision ID: e04b3f7d2a04
Revises: d93a2e6c1f03
Create Date: 2026-11-28 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'e04b3f7d2a04'
down_revision = 'd93a2e6c1f03'
branch_labels = None
depends_on = None

# Every record table (app.records.models.RecordMixin) learns when retention anonymised the record.
RECORD_TABLES = ('cases', 'tracing_requests', 'traces')


def upgrade():
    for table in RECORD_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    for table in reversed(RECORD_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('anonymised_at')
