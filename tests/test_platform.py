"""Factory, settings, headers, errors, health, audit trail and logs (S14-S16, S20, S23, R7)."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from app import create_app
from app.audit.models import AuditEntry, AuditTrailIsAppendOnly
from app.audit.operations import record_audit
from app.extensions import db
from config import ConfigError, load_config
from tests.conftest import PASSWORD


def test_security_headers_on_pages(client):
    response = client.get("/login")
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Request-ID"]


def test_static_files_are_cacheable(client):
    page = client.get("/login").get_data(as_text=True)
    assert "/static/css/app.css?v=" in page
    response = client.get("/static/css/app.css")
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()


def test_session_cookie_flags(make, client):
    user = make.user()
    db.session.commit()
    token = client.csrf_token("/login")
    response = client.client.post("/login", data={"username": user.username, "password": PASSWORD,
                                                  "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_refuses_unsafe_settings(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("SECRET_KEY", "change-me")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config("production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigError, match="DEBUG"):
        load_config("production")
    monkeypatch.delenv("FLASK_DEBUG")
    config = load_config("production")
    assert config.SESSION_COOKIE_SECURE is True
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_config("staging")


def test_production_app_sets_secure_cookie_and_hsts(own_database, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/p.sqlite3")
    monkeypatch.setenv("SECRET_KEY", "y" * 40)
    production = create_app("production")
    assert production.config["SESSION_COOKIE_SECURE"] is True
    response = production.test_client().get("/healthz")
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_error_pages_show_a_reference_and_no_traceback(client):
    response = client.get("/no/such/page")
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] in body
    assert "Traceback" not in body


def test_json_errors_for_api_paths(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json()["error"]["reference"] == response.headers["X-Request-ID"]


def test_healthz_reports_database_and_redis_separately(app, client, redis_down):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "unavailable", "status": "degraded"}


def test_healthz_with_redis(app, client, redis_jobs):
    assert client.get("/healthz").get_json()["redis"] == "ok"


def test_database_down_gives_503_page(own_database, monkeypatch):
    # A PostgreSQL URL on a closed port: the connection is refused.
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    broken = create_app("development")
    broken.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
    client = broken.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["database"] == "unavailable"
    page = client.get("/login", headers={"Accept": "text/html"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Traceback" not in body  # the login form needs no database


def test_database_down_on_a_query_page(own_database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    broken = create_app("development")
    broken.config["WTF_CSRF_ENABLED"] = False
    response = broken.test_client().post("/login", data={"username": "someone", "password": "x" * 12})
    assert response.status_code == 503
    assert "not answering" in response.get_data(as_text=True)


def test_audit_entry_is_written_in_the_same_transaction(app, make):
    user = make.user()
    db.session.commit()
    before = db.session.scalar(select(func.count(AuditEntry.id)))
    record_audit("test.action", "thing", "42", user=user)
    db.session.rollback()
    assert db.session.scalar(select(func.count(AuditEntry.id))) == before
    record_audit("test.action", "thing", "42", user=user)
    db.session.commit()
    assert db.session.scalar(select(func.count(AuditEntry.id))) == before + 1


def test_audit_trail_is_append_only_in_the_application(make):
    entry = record_audit("test.action", "thing", "1", user=make.user())
    db.session.flush()
    entry.action = "tampered"
    with pytest.raises(AuditTrailIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    entry = record_audit("test.action", "thing", "2", user=make.user())
    db.session.flush()
    db.session.delete(entry)
    with pytest.raises(AuditTrailIsAppendOnly):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET action = 'tampered'",
    "DELETE FROM audit_entries",
])
def test_audit_trail_is_append_only_in_the_database(make, statement):
    record_audit("test.action", "thing", "3", user=make.user())
    db.session.flush()
    with pytest.raises(DatabaseError, match="append-only"):
        with db.session.begin_nested():
            db.session.execute(text(statement))


def test_logs_carry_no_personal_data(app, make, client, caplog):
    """Names, usernames and passwords typed by users never reach the logs (S16)."""
    caplog.set_level(logging.DEBUG)
    secret_name = "Zainab Sentinelname"
    user = make.user(full_name=secret_name, username="sentinel-user")
    db.session.commit()
    client.form("/login", {"username": "sentinel-user", "password": "the wrong sentinel password"})
    client.form("/login", {"username": "sentinel-user", "password": PASSWORD})
    client.get("/")
    client.get("/account")
    client.form("/account/password", {"current_password": "nope nope nope", "new_password": "short"})
    client.get("/no/such/page")
    text_logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for sentinel in (secret_name, "Sentinelname", "sentinel-user", "the wrong sentinel password", PASSWORD):
        assert sentinel not in text_logged
    assert user.id


def test_language_switch_sets_direction(login_as):
    web, user = login_as()
    page = web.get("/").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in page
    response = web.form("/language", {"locale": "ar", "next": "/account"})
    assert response.headers["Location"].endswith("/account")
    page = web.get("/").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page
    db.session.expire_all()
    assert user.locale == "ar"
    # An off-site "next" is ignored.
    response = web.form("/language", {"locale": "fr", "next": "//evil.example/"})
    assert response.headers["Location"] == "/"
    assert '<html lang="fr" dir="ltr">' in web.get("/").get_data(as_text=True)


def test_anonymous_language_choice_and_accept_language(client):
    page = client.get("/login", headers={"Accept-Language": "ar,en;q=0.5"}).get_data(as_text=True)
    assert 'dir="rtl"' in page
    client.form("/language", {"locale": "fr"})
    page = client.get("/login", headers={"Accept-Language": "ar"}).get_data(as_text=True)
    assert 'lang="fr"' in page


def test_database_down_with_a_logged_in_user_gives_503_with_reference(own_database, monkeypatch, tmp_path):
    """The user loader needs the database; the error page must not (R7)."""
    from sqlalchemy import create_engine

    from tests.conftest import reset_schema
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/down.sqlite3")
    monkeypatch.setenv("TEST_DATABASE_URL", f"sqlite:///{tmp_path}/down.sqlite3")
    live = create_app("test")
    reset_schema(live)
    with live.app_context():
        from app.cli import seed_roles
        from app.users.operations import create_agency, create_user
        from app.users.models import Role
        seed_roles()
        role = db.session.execute(select(Role).where(Role.code == "caseworker")).scalar_one()
        create_user("downuser", "Down User", PASSWORD, create_agency("down", "Down"), role,
                    must_change_password=False)
        db.session.commit()
    client = live.test_client()
    token_page = client.get("/login").get_data(as_text=True)
    token = token_page.split('name="csrf-token" content="')[1].split('"')[0]
    assert client.post("/login", data={"username": "downuser", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    with live.app_context():
        db.engine.dispose()
        # Point the engine at a server that is not there, as when the database goes down.
        live.extensions["sqlalchemy"]._app_engines[live][None] = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    for path in ("/", "/account", "/api/v1/me", "/healthz"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.headers["X-Request-ID"], path
        assert "Traceback" not in response.get_data(as_text=True)
    assert response.get_json()["database"] == "unavailable"

