"""a new matching engine version for the second round of this release's defaults

Revision ID: b37c6e0d5f17
Revises: a26b5d9c4e06
Create Date: 2026-11-29 05:00:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b37c6e0d5f17'
down_revision = 'a26b5d9c4e06'
branch_labels = None
depends_on = None


# The engine changed again (matching.engine: the inquirer who is the trace's mother or father is
# no longer counted twice, parents shared with a possible sibling are capped, an article joined
# to a name meets it written apart, a sibling asking is compared on the chain after the own name;
# the probabilities were fitted again: scale 0.82, prior -12.85). With calibrated probabilities
# the old `possible` threshold 0.02 would drop true pairs it used to keep; the new default is
# 0.01. An installation with settings gets a new version, a copy of the newest, with the
# `possible` threshold moved from 0.02 to 0.01 only if it was still that default (a threshold an
# administrator chose is kept); proposals from then on name the new engine.
OLD_POSSIBLE, NEW_POSSIBLE = 0.02, 0.01
NOTE = "engine defaults of the 2026-11-29 release, second round (database upgrade)"


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
    if round(possible, 6) == OLD_POSSIBLE:
        possible = NEW_POSSIBLE
    configs = sa.table("matching_configs", sa.column("likely_threshold", sa.Float),
                       sa.column("possible_threshold", sa.Float), sa.column("parameters", sa.JSON),
                       sa.column("note", sa.Text), sa.column("created_at", sa.DateTime(timezone=True)))
    op.bulk_insert(configs, [{"likely_threshold": likely, "possible_threshold": possible,
                              "parameters": parameters or {}, "note": NOTE,
                              "created_at": datetime.now(timezone.utc)}])


def downgrade():
    # Settings versions are history (proposals name the version that scored them): it stays.
    pass
