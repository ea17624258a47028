"""Administrators change weights and thresholds; each change is a new engine version."""
from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from matching.engine import current_settings
from matching.models import MatchingConfig


def test_settings_page_saves_a_new_engine_version(login_as):
    web, admin = login_as("administrator")
    page = web.get("/admin/matching")
    assert page.status_code == 200
    before = current_settings().version
    form = {"likely_threshold": "0.95", "possible_threshold": "0.4", "prior": "-9", "margin": "10",
            "names.exact.m": "0.4", "names.exact.u": "0.0004"}
    from matching.engine import DEFAULT_PARAMETERS
    for comparator, levels in DEFAULT_PARAMETERS.items():
        for level, (m, u) in levels.items():
            form.setdefault(f"{comparator}.{level}.m", str(m))
            form.setdefault(f"{comparator}.{level}.u", str(u))
    response = web.form("/admin/matching", form, token_from="/admin/matching")
    assert response.status_code == 302
    settings = current_settings()
    assert settings.version > before and settings.likely == 0.95 and settings.margin == 10.0
    config = db.session.get(MatchingConfig, settings.version)
    assert config.parameters == {"names": {"exact": [0.4, 0.0004]}, "prior": -9.0, "margin": 10.0}
    assert db.session.execute(select(AuditEntry).where(AuditEntry.action == "matching.settings_changed")).first()


def test_bad_settings_are_refused_field_by_field(login_as):
    web, _ = login_as("administrator")
    response = web.form("/admin/matching", {"likely_threshold": "0.2", "possible_threshold": "0.5", "prior": "x"},
                        token_from="/admin/matching")
    assert response.status_code == 422
    from matching import operations as ops
    try:
        ops.save_settings(0.8, 0.01, {}, None, None, margin=-1.0)
    except ops.SettingsError as error:
        assert list(error.errors) == ["margin"]
    else:
        raise AssertionError("a negative margin was saved")


def test_only_administrators_reach_the_settings(login_as):
    web, _ = login_as("supervisor")
    assert web.get("/admin/matching").status_code == 403


def test_estimate_needs_enough_decisions(app):
    result = app.test_cli_runner().invoke(args=["matching", "estimate"])
    assert result.exit_code != 0 and "At least 20 confirmed" in result.output
