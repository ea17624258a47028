"""a new matching engine version: relatives' chain names, dates of birth years apart

Revision ID: a07f7f433133
Revises: c48d7f1e6a28
Create Date: 2026-11-29 13:00:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a07f7f433133'
down_revision = 'c48d7f1e6a28'
branch_labels = None
depends_on = None


# The engine changed (matching.engine, matching.comparators, matching.names): a relative's
# one-word name found only as a later name of the other's chain is partial, not a full agreement;
# a father's name recorded on one side meets the other side's chain (names after the child's own
# name) when that side records no father; dates of birth that differ also count as ages when
# years apart; Luba "tsh" is read "ch". The thresholds and weights stay: an installation with
# settings gets a new version, a copy of the newest, so that proposals from then on name the new
# engine. After upgrading, `flask matching run` re-keys the names and re-matches.
NOTE = "engine of the 2026-11-29 release, fifth round (database upgrade)"


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
