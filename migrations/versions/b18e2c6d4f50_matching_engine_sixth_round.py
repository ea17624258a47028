"""a new matching engine version: approximate dates of birth, other readings of letters, more names agreeing

Revision ID: b18e2c6d4f50
Revises: a07f7f433133
Create Date: 2026-11-29 17:00:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b18e2c6d4f50'
down_revision = 'a07f7f433133'
branch_labels = None
depends_on = None


# The engine changed (matching.engine, matching.comparators, matching.names): a date of birth
# marked approximate is compared as an age; the nickname and other names are not read as the
# child's chain; two Latin spellings sharing one of the other readings of their letters (g/q,
# dh/z, di/j, kh/h) are phonetic variants; each of the child's names agreeing beyond two adds to
# the whole-name weight; the first stage's best ten candidates are always compared. The
# thresholds and weights stay: an installation with settings gets a new version, a copy of the
# newest, so that proposals from then on name the new engine. After upgrading, `flask matching
# run` re-matches.
NOTE = "engine of the 2026-11-29 release, sixth round (database upgrade)"


def upgrade():
    bind = op.get_bind()
    newest = bind.execute(sa.text(
        "SELECT likely_threshold, possible_threshold, parameters FROM matching_configs ORDER BY id DESC LIMIT 1"
    )).first()
    if newest is None:
        return  # a new installation: the engine creates its settings with the defaults
    likely, possible, parameters = newest
    if isinstance(parameters, str):  # SQLite hands JSON back as text
        import json
        parameters = json.loads(parameters)
    configs = sa.table("matching_configs", sa.column("likely_threshold", sa.Float),
                       sa.column("possible_threshold", sa.Float), sa.column("parameters", sa.JSON),
                       sa.column("note", sa.Text), sa.column("created_at", sa.DateTime(timezone=True)))
    op.bulk_insert(configs, [{"likely_threshold": likely, "possible_threshold": possible,
                              "parameters": parameters or {}, "note": NOTE,
                              "created_at": datetime.now(timezone.utc)}])


def downgrade():
    # Settings versions are history (proposals name the version that scored them): it stays.
    pass
