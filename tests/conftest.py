"""Test fixtures: a session-wide app on a migrated database, one rolled-back
transaction per test, factories for agencies, groups and users, and a web
client that logs in and sends CSRF tokens like a browser does.

DATABASE_URL (or TEST_DATABASE_URL) selects the database: PostgreSQL in CI,
a temporary SQLite file otherwise. The schema is built by the Alembic
migrations, not by create_all, so the tests run on what production runs.
"""
from __future__ import annotations

import contextvars
import os
import re
import tempfile
import uuid

import pytest
from flask.testing import FlaskClient
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

os.environ.setdefault("APP_ENV", "test")

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402

_TMP = tempfile.mkdtemp(prefix="cpims-tests-")
os.environ["INSTANCE_PATH"] = _TMP
if not (os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")):
    os.environ["TEST_DATABASE_URL"] = f"sqlite:///{_TMP}/test.sqlite3"
REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
os.environ.pop("REDIS_URL", None)  # jobs run in-process unless a test asks for Redis

PASSWORD = "correct horse battery staple"


def reset_schema(app) -> None:
    """Drop everything and run the migrations from empty."""
    from flask_migrate import upgrade
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
            with db.engine.begin() as connection:
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        db.session.remove()


class IsolatedClient(FlaskClient):
    """Each request runs in a fresh context, as in production: it pushes its own app
    context (and `g`) instead of reusing the one the test holds open."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def compile_translations() -> None:
    """Compile app/translations/*/messages.po when its .mo is missing or older (as `make translations`
    does), so a plain `pytest` runs against the current French and Arabic catalogues."""
    from pathlib import Path

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for po_path in (Path(__file__).parent.parent / "app" / "translations").glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=po_path.parent.parent.name)
        partial = mo_path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        partial.replace(mo_path)  # atomic: another test run never reads half a file


@pytest.fixture(scope="session")
def app():
    compile_translations()
    application = create_app("test")
    application.test_client_class = IsolatedClient
    reset_schema(application)
    with application.app_context():
        from app.cli import seed_roles
        seed_roles()
        db.session.commit()
        db.session.remove()
    return application


@pytest.fixture(autouse=True)
def _transaction(request, app):
    """Each test runs in a transaction that is rolled back afterwards."""
    from forms.definitions import forget_definitions
    from matching.index import forget_indexes
    forget_indexes()  # a process's matching indexes would still hold the rolled-back records
    forget_definitions()  # ... and its form definitions the rolled-back form rows
    if "committed" in request.fixturenames or "own_database" in request.fixturenames:
        yield
        return
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        # A plain Session bound to this connection (Flask-SQLAlchemy's own picks the engine).
        # One factory for the whole run: session event hooks are attached to its class once.
        _TEST_SESSION_FACTORY.configure(bind=connection)
        db.session = scoped_session(_TEST_SESSION_FACTORY, scopefunc=_app_ctx_id)
        _install_hooks_once()
        try:
            yield
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


_TEST_SESSION_FACTORY = sessionmaker(join_transaction_mode="create_savepoint")
_hooks_installed = []


def _install_hooks_once():
    if not _hooks_installed:
        from app.jobs.operations import install_session_hooks
        install_session_hooks()
        _hooks_installed.append(True)


@pytest.fixture
def committed(app):
    """For tests that need real commits (threads, live server): data is truncated afterwards."""
    yield
    with app.app_context():
        db.session.remove()
        truncate_data(app)


@pytest.fixture
def own_database():
    """For tests that build their own app on another database: db.session is left alone."""
    yield


def truncate_data(app) -> None:
    """Delete rows made by a committed test, keeping the seeded roles."""
    keep = {"roles", "role_permissions", "alembic_version"}
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in keep]
        with db.engine.begin() as connection:
            if db.engine.dialect.name == "postgresql":
                connection.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
            else:
                connection.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_delete"))
                for table in tables:
                    connection.execute(text(f"DELETE FROM {table}"))
                connection.execute(text(
                    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
                    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END"))


@pytest.fixture(scope="session")
def default_forms_rows(app):
    """The rows `load_default_configuration` writes, captured once per run (then rolled back).

    Loading the shipped forms runs about 1,000 statements (1.1 s on PostgreSQL); about 270 tests
    need them, so each of those copies these rows in a few bulk INSERTs instead.
    """
    from sqlalchemy import func, select

    from forms.operations import load_default_configuration
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        session = sessionmaker(bind=connection)()
        before = {t.name: session.execute(select(func.count()).select_from(t)).scalar() for t in db.metadata.sorted_tables}
        original = db.session
        db.session = scoped_session(lambda: session)
        try:
            load_default_configuration()
            session.flush()
            rows = []
            for table in db.metadata.sorted_tables:  # parents first
                # In key order: the new rows come last, and a parent field (lower id) before its subfields.
                found = [dict(row._mapping) for row in session.execute(
                    select(table).order_by(*table.primary_key.columns))]
                if len(found) != before[table.name]:
                    keep = found if before[table.name] == 0 else found[before[table.name]:]
                    rows.append((table, keep))
        finally:
            db.session = original
            session.close()
            outer.rollback()
            connection.close()
    return rows


def _copy_rows(rows) -> None:
    from sqlalchemy import Integer, select
    for table, items in rows:
        if items and table.name == "role_permissions":
            # Kept across committed tests (truncate_data): add only the grants that are missing.
            held = set(db.session.execute(select(table.c.role_id, table.c.permission)).all())
            items = [{"role_id": i["role_id"], "permission": i["permission"]} for i in items
                     if (i["role_id"], i["permission"]) not in held]
        if items:
            db.session.execute(table.insert(), items)
    if db.engine.dialect.name == "postgresql":  # explicit ids do not move the sequences: catch them up
        for table, items in rows:
            key = list(table.primary_key.columns)
            if items and len(key) == 1 and isinstance(key[0].type, Integer) and key[0].autoincrement \
                    and table.name != "role_permissions":
                db.session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key[0].name}'), "
                    f"(SELECT max({key[0].name}) FROM {table.name}))"))


@pytest.fixture
def default_forms(request, app, default_forms_rows):
    """The shipped child-protection forms (case, tracing request, trace), as `flask seed demo` loads them."""
    from forms.definitions import invalidate_definitions
    from forms.operations import load_default_configuration
    if "committed" in request.fixturenames:
        with app.app_context():
            load_default_configuration()
            db.session.commit()
            db.session.remove()
    else:
        _copy_rows(default_forms_rows)
        db.session.commit()
        invalidate_definitions()


# --- factories -----------------------------------------------------------------------

class Factory:
    """Small builders for test data; each returns a flushed object."""

    def __init__(self, app):
        self.app = app

    def agency(self, code=None, name=None):
        from app.users.operations import create_agency
        code = code or f"ag-{uuid.uuid4().hex[:8]}"
        return create_agency(code, name or code.upper())

    def group(self, code=None, agency=None):
        from app.users.operations import create_group
        code = code or f"gr-{uuid.uuid4().hex[:8]}"
        return create_group(code, code.title(), agency)

    def role(self, code):
        from sqlalchemy import select
        from app.users.models import Role
        return db.session.execute(select(Role).where(Role.code == code)).scalar_one()

    def user(self, role="caseworker", agency=None, groups=(), username=None, password=PASSWORD,
             locale="en", full_name=None):
        from app.users.operations import create_user
        agency = agency or self.agency()
        username = username or f"u{uuid.uuid4().hex[:10]}"
        role_obj = self.role(role) if isinstance(role, str) else role
        return create_user(username, full_name or f"Test {username}", password, agency, role_obj,
                           list(groups), locale=locale, must_change_password=False)


@pytest.fixture
def make(app):
    return Factory(app)


# --- a web client that behaves like a browser ---------------------------------------------

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class WebClient:
    def __init__(self, client):
        self.client = client
        self.last = None

    def __getattr__(self, name):
        return getattr(self.client, name)

    def csrf_token(self, path="/login") -> str:
        response = self.client.get(path)
        match = CSRF_RE.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {path} ({response.status_code})"
        return match.group(1)

    def form(self, path: str, data: dict | None = None, token_from: str | None = None, **kwargs):
        """POST a form with the CSRF token a real page would carry."""
        payload = dict(data or {})
        payload.setdefault("csrf_token", self.csrf_token(token_from or ("/" if self.logged_in else "/login")))
        self.last = self.client.post(path, data=payload, **kwargs)
        return self.last

    @property
    def logged_in(self) -> bool:
        with self.client.session_transaction() as session:
            return "sid" in session

    def login(self, username: str, password: str = PASSWORD):
        response = self.form("/login", {"username": username, "password": password}, token_from="/login")
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        return response

    def logout(self):
        return self.form("/logout", token_from="/")


@pytest.fixture
def client(app):
    return WebClient(app.test_client())


@pytest.fixture
def login_as(app, make):
    """login_as("supervisor", groups=[...]) -> (WebClient, user)"""

    def _login(role="caseworker", **kwargs):
        user = make.user(role, **kwargs)
        db.session.commit()
        web = WebClient(app.test_client())
        web.login(user.username)
        return web, user

    return _login


# --- services ------------------------------------------------------------------------------

def _redis_available(url: str) -> bool:
    try:
        from redis import Redis
        Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


@pytest.fixture
def redis_jobs(app):
    """Jobs go through a real Redis queue private to this test; yields the queue."""
    if not _redis_available(REDIS_URL):
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not answering at {REDIS_URL}")
        pytest.skip("Redis is not running here")
    queue_name = f"cpims-test-{uuid.uuid4().hex[:8]}"
    old = app.config["REDIS_URL"], app.config["RQ_QUEUE"]
    app.config["REDIS_URL"], app.config["RQ_QUEUE"] = REDIS_URL, queue_name
    from app.jobs.operations import rq_queue
    with app.app_context():
        queue = rq_queue()
    try:
        yield queue
    finally:
        queue.empty()
        queue.delete(delete_jobs=True)
        app.config["REDIS_URL"], app.config["RQ_QUEUE"] = old


@pytest.fixture
def redis_down(app):
    """REDIS_URL points at a closed port, as when Redis has stopped."""
    old = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    yield
    app.config["REDIS_URL"] = old
