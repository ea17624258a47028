"""Migrations reach the models' schema from empty, step by step, and go back down (R6)."""
from __future__ import annotations

import json
import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db


@pytest.fixture
def scratch_app(app, own_database, tmp_path, monkeypatch):
    """A second app on an empty database of the same kind as the suite's."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "postgresql":
        name = f"cpims_mig_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        scratch_url = url.set(database=name)
    else:
        scratch_url = make_url(f"sqlite:///{tmp_path}/migrations.sqlite3")
    monkeypatch.setenv("TEST_DATABASE_URL", scratch_url.render_as_string(hide_password=False))
    scratch = create_app("test")
    yield scratch
    with scratch.app_context():
        db.engine.dispose()
    if url.get_backend_name() == "postgresql":
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _schema_diff(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def _revisions(app):
    from alembic.script import ScriptDirectory
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config(
            os.path.join(os.path.dirname(app.root_path), "migrations"))
        script = ScriptDirectory.from_config(config)
        return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_upgrade_from_empty_matches_the_models_and_downgrades(scratch_app):
    revisions = _revisions(scratch_app)
    assert revisions
    with scratch_app.app_context():
        for revision in revisions:  # one step at a time: each upgrades from the previous one
            upgrade(revision=revision)
    assert _schema_diff(scratch_app) == []
    with scratch_app.app_context():
        for previous in reversed(["base", *revisions[:-1]]):
            downgrade(revision=previous)
        tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        upgrade()  # and back up again
    assert _schema_diff(scratch_app) == []
    # The append-only triggers are there after the whole journey (S15).
    with scratch_app.app_context(), db.engine.connect() as connection:
        connection.execute(text("INSERT INTO audit_entries (at, action, outcome, detail) "
                                "VALUES (CURRENT_TIMESTAMP, 'probe', 'success', '{}')"))
        for statement in ("UPDATE audit_entries SET action = 'changed'", "DELETE FROM audit_entries"):
            with pytest.raises(Exception, match="append-only"):
                with connection.begin_nested():
                    connection.execute(text(statement))


def test_untouched_old_matching_thresholds_move_to_the_calibrated_defaults(scratch_app):
    """d93a2e6c1f03: settings still on the old 0.9 / 0.3 defaults get a new version at 0.8 / 0.02;
    thresholds an administrator chose stay as they are."""
    def newest(connection):
        return connection.execute(text("SELECT likely_threshold, possible_threshold, note FROM matching_configs "
                                       "ORDER BY id DESC LIMIT 1")).first()

    insert = text("INSERT INTO matching_configs (created_at, likely_threshold, possible_threshold, parameters, "
                  "note) VALUES (CURRENT_TIMESTAMP, :likely, :possible, '{}', 'before')")
    with scratch_app.app_context():
        upgrade(revision="c82f1d5b0e02")
        with db.engine.begin() as connection:
            connection.execute(insert, {"likely": 0.9, "possible": 0.3})
        upgrade(revision="d93a2e6c1f03")
        with db.engine.connect() as connection:
            likely, possible, note = newest(connection)
        assert (likely, possible) == (0.8, 0.02) and "calibrated" in note
        downgrade(revision="c82f1d5b0e02")
        with db.engine.begin() as connection:
            connection.execute(insert, {"likely": 0.95, "possible": 0.5})  # an administrator's choice
        upgrade(revision="d93a2e6c1f03")
        with db.engine.connect() as connection:
            assert tuple(newest(connection)) == (0.95, 0.5, "before")


def test_the_engine_defaults_of_this_release_get_their_own_settings_version(scratch_app):
    """a26b5d9c4e06: an installation with settings gets a new version, a copy of the newest (the
    administrator's thresholds and weights kept), so new proposals name the new engine."""
    with scratch_app.app_context():
        upgrade(revision="f15c4e8a3b05")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO matching_configs (created_at, likely_threshold, possible_threshold, parameters, note) "
                "VALUES (CURRENT_TIMESTAMP, 0.85, 0.05, :parameters, 'chosen')"),
                {"parameters": '{"sex": {"different": [0.01, 0.5]}}'})
        upgrade(revision="a26b5d9c4e06")
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT id, likely_threshold, possible_threshold, parameters, note "
                                           "FROM matching_configs ORDER BY id")).all()
        assert len(rows) == 2 and rows[1][0] > rows[0][0]
        parameters = rows[1][3] if isinstance(rows[1][3], dict) else json.loads(rows[1][3])
        assert (rows[1][1], rows[1][2], parameters) == (0.85, 0.05, {"sex": {"different": [0.01, 0.5]}})
        assert "release" in rows[1][4]


@pytest.mark.parametrize("before, revision, old, new, named", [
    ("a26b5d9c4e06", "b37c6e0d5f17", 0.02, 0.01, "second round"),
    ("b37c6e0d5f17", "c48d7f1e6a28", 0.01, 0.0025, "fourth round"),
    ("c48d7f1e6a28", "a07f7f433133", 0.0025, 0.0025, "fifth round"),  # the engine only: thresholds kept
    ("a07f7f433133", "b18e2c6d4f50", 0.0025, 0.0025, "sixth round"),
])
def test_a_new_engine_round_moves_only_the_untouched_possible_threshold(scratch_app, before, revision, old, new,
                                                                       named):
    """A new settings version, a copy of the newest; `possible` at the old default becomes the
    new default, a threshold an administrator chose stays."""
    select_all = text("SELECT likely_threshold, possible_threshold, parameters, note FROM matching_configs "
                      "ORDER BY id")
    insert = text("INSERT INTO matching_configs (created_at, likely_threshold, possible_threshold, parameters, "
                  "note) VALUES (CURRENT_TIMESTAMP, :likely, :possible, :parameters, 'before')")
    with scratch_app.app_context():
        upgrade(revision=before)
        with db.engine.begin() as connection:
            connection.execute(insert, {"likely": 0.8, "possible": old, "parameters": '{"prior": -13.0}'})
        upgrade(revision=revision)
        with db.engine.connect() as connection:
            rows = connection.execute(select_all).all()
        likely, possible, parameters, note = rows[-1]
        parameters = parameters if isinstance(parameters, dict) else json.loads(parameters)
        assert len(rows) == 2 and (likely, possible, parameters) == (0.8, new, {"prior": -13.0})
        assert named in note
        downgrade(revision=before)
        with db.engine.begin() as connection:
            connection.execute(insert, {"likely": 0.9, "possible": 0.05, "parameters": "{}"})
        upgrade(revision=revision)
        with db.engine.connect() as connection:
            likely, possible, _parameters, _note = connection.execute(select_all).all()[-1]
        assert (likely, possible) == (0.9, 0.05)
