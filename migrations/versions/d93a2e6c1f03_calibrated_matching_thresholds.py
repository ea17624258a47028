"""calibrated matching thresholds for installations still on the old defaults

Revision ID: d93a2e6c1f03
Revises: c82f1d5b0e02
Create Date: 2026-11-28 22:00:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'd93a2e6c1f03'
down_revision = 'c82f1d5b0e02'
branch_labels = None
depends_on = None


# The engine's probabilities are calibrated from this version on (matching.engine: scaled evidence,
# prior -15.4), and its default thresholds moved from 0.9 / 0.3 to 0.8 / 0.02. An installation whose
# settings in force are still the old untouched defaults gets a new settings version with the new
# ones, so it keeps proposing what it used to; settings an administrator chose are left alone.
OLD = (0.9, 0.3)
NEW = (0.8, 0.02)
NOTE = "calibrated defaults (database upgrade)"


def upgrade():
    bind = op.get_bind()
    newest = bind.execute(sa.text(
        "SELECT likely_threshold, possible_threshold, parameters FROM matching_configs ORDER BY id DESC LIMIT 1"
    )).first()
    if newest is None:
        return  # a new installation: the engine creates its settings with the new defaults
    likely, possible, parameters = newest
    if (round(likely, 6), round(possible, 6)) != OLD or parameters not in (None, {}, "{}"):
        return
    configs = sa.table("matching_configs", sa.column("likely_threshold", sa.Float),
                       sa.column("possible_threshold", sa.Float), sa.column("parameters", sa.JSON),
                       sa.column("note", sa.Text), sa.column("created_at", sa.DateTime(timezone=True)))
    op.bulk_insert(configs, [{"likely_threshold": NEW[0], "possible_threshold": NEW[1], "parameters": {},
                              "note": NOTE, "created_at": datetime.now(timezone.utc)}])


def downgrade():
    # Settings versions are history (proposals name the version that scored them): the added version
    # stays; an administrator can set other thresholds on the matching settings page.
    pass
