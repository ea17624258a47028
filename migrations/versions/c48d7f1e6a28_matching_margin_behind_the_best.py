"""a new matching engine version: possible pairs within a margin of the trace's best

Revision ID: c48d7f1e6a28
Revises: b37c6e0d5f17
Create Date: 2026-11-29 10:30:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c48d7f1e6a28'
down_revision = 'b37c6e0d5f17'
branch_labels = None
depends_on = None


# The engine changed (matching.engine): a `possible` pair is proposed only within a margin (7
# bits) of the trace's best candidate, so the default `possible` threshold goes from 0.01 to
# 0.0025 (a child registered with her given name alone is proposed, without a dozen weak
# namesakes), and blocking has the own name's spelling keys. An installation with settings gets
# a new version, a copy of the newest, with the `possible` threshold moved from 0.01 to 0.0025
# only if it was still that default (a threshold an administrator chose is kept); the margin is
# the engine's default unless an administrator sets one. Proposals from then on name the new
# engine. After upgrading, `flask matching run` writes the spelling keys and re-matches.
OLD_POSSIBLE, NEW_POSSIBLE = 0.01, 0.0025
NOTE = "engine defaults of the 2026-11-29 release, fourth round (database upgrade)"


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
