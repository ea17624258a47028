"""a new matching engine version for the defaults of this release

Revision ID: a26b5d9c4e06
Revises: f15c4e8a3b05
Create Date: 2026-11-29 01:30:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a26b5d9c4e06'
down_revision = 'f15c4e8a3b05'
branch_labels = None
depends_on = None


# The engine's defaults changed in this release (matching.engine: the prior -15.4 -> -14.4,
# weaker language/nationality/ethnicity/religion weights, a one-word name no longer counted
# twice, an inquirer compared with a relative the relationship does not point to no longer
# costs points, a second blocking stage on the child's own name; and the name keys). Proposals
# name the settings version that scored them, so an installation that has settings gets a new
# version (a copy of the newest: an administrator's thresholds and weights are kept); from it
# on, proposals are known to come from the new engine. After upgrading, `flask matching run`
# re-keys every record and re-matches.
NOTE = "engine defaults of the 2026-11-29 release (database upgrade)"


def upgrade():
    bind = op.get_bind()
    newest = bind.execute(sa.text(
        "SELECT likely_threshold, possible_threshold, parameters FROM matching_configs ORDER BY id DESC LIMIT 1"
    )).first()
    if newest is None:
        return  # a new installation: the engine creates its settings with the new defaults
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
