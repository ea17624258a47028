"""Application factory: `create_app` is a list of small, named set-up steps."""
from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.routing import IntegerConverter

from config import BaseConfig, load_config

# Feature packages, each with the same small set of modules. Importing a
# package's modules registers its models, permissions, tasks and blueprints.
FEATURE_BLUEPRINTS = (
    "app.main.views",
    "app.auth.views",
    "app.auth.api",
    "app.users.views",
    "app.users.api",
    "app.audit.views",
    "app.jobs.views",
    "forms.views",
    "forms.api",
    "cases.views",
    "matching.views",
    "matching.api",
    "cases.api",
    "cases.approval_views",
    "tracing.views",
    "tracing.api",
    "reports.views",
    "reports.api",
    "app.openapi",
    "app.notifications.views",
    "app.notifications.api",
    "followups.views",
    "followups.api",
    "workflows.views",
    "workflows.api",
    "app.records.io_views",
    "app.records.retention_views",
)


def create_app(config: BaseConfig | dict | str | None = None) -> Flask:
    """Build the app. `config` is a settings object, an environment name, or overrides."""
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None,
                instance_relative_config=True)
    configure_app(app, config)
    configure_logging(app)
    register_extensions(app)
    register_security(app)
    register_i18n(app)
    register_template_helpers(app)
    register_blueprints(app)
    register_commands(app)
    return app


def configure_app(app: Flask, config) -> None:
    overrides = {}
    if isinstance(config, dict):
        overrides = dict(config)
        config = overrides.pop("APP_ENV", None)
    if config is None or isinstance(config, str):
        config = load_config(config, app.instance_path)
    for key in dir(config):
        if key.isupper():
            app.config[key] = getattr(config, key)
    app.config.update(overrides)
    app.config["ENV_NAME"] = config.ENV_NAME
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    app.permanent_session_lifetime = app.config["SESSION_MAX_HOURS"] * 3600
    # Ids in URLs fit a database integer; a larger number is simply "not found" (never a 500).
    app.url_map.converters["int"] = BoundedIntegerConverter
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)
    trusted_proxies = int(os.environ.get("TRUSTED_PROXIES", "0") or 0)
    if trusted_proxies:
        # Behind a reverse proxy: trust that many X-Forwarded-* hops for the client address.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies)


class BoundedIntegerConverter(IntegerConverter):
    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str):
        # Werkzeug checks the method before the converter: a refused value on a route of another
        # method would answer 405 ("use GET") for PATCH /x/99999999999. An id out of range is
        # simply not found, whatever the method (found by the API fuzzer).
        from werkzeug.exceptions import NotFound
        from werkzeug.routing import ValidationError
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


def _engine_options(url: str) -> dict:
    # hide_parameters: SQL errors never carry bound values (names, phone numbers) into logs (S16).
    if url.startswith("sqlite"):
        # SQLite: wait for the writer instead of failing at once.
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    # jit=off: the list queries are short OLTP queries; PostgreSQL's JIT spent more time compiling
    # them than running them (supervisor task list at 100,000 cases: 936 ms with JIT, 415 ms without).
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10, "hide_parameters": True,
            "connect_args": {"options": "-c jit=off"}}


def configure_logging(app: Flask) -> None:
    from app.security import RequestIdLogFilter
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(RequestIdLogFilter())
    root = logging.getLogger()
    if not any(isinstance(f, RequestIdLogFilter) for h in root.handlers for f in h.filters):
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("app").setLevel(logging.DEBUG if app.debug else logging.INFO)
    # Werkzeug's access log prints query strings; ours never carry personal data (S22),
    # but keep it at warning in production where gunicorn's own log is used.
    if app.config["ENV_NAME"] == "production":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)


def register_extensions(app: Flask) -> None:
    from app.db import alembic_render_item
    from app.extensions import csrf, db, login_manager, migrate
    from app.jobs.operations import install_session_hooks

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            _sqlite_pragmas(db.engine)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"),
                     render_as_batch=True, compare_type=True, render_item=alembic_render_item)
    csrf.init_app(app)
    login_manager.init_app(app)
    _dispatch_jobs_after_requests(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = None  # our server-side sessions do better (app.auth)
    install_session_hooks()


def _dispatch_jobs_after_requests(app: Flask) -> None:
    """Jobs committed by a request are pushed to rq (or run in-process) once it is done."""
    from app.jobs.operations import dispatch_committed_jobs, maybe_sweep_inline

    @app.after_request
    def _dispatch(response):
        try:
            dispatch_committed_jobs()
            maybe_sweep_inline()
        except Exception:  # the user's work is committed; the sweeper will catch up
            logging.getLogger(__name__).exception("could not dispatch jobs after the request")
        return response


def _sqlite_pragmas(engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, open transactions (savepoints work, DDL is transactional).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def register_security(app: Flask) -> None:
    from app.api import init_api
    from app.security import init_security
    init_security(app)
    init_api(app)


def register_i18n(app: Flask) -> None:
    from app.i18n import init_i18n
    init_i18n(app)


def register_template_helpers(app: Flask) -> None:
    import hashlib

    from flask import url_for

    from app.navigation import navigation_for

    versions: dict[str, str] = {}

    def static_url(filename: str) -> str:
        # A content hash in the URL lets browsers cache static files for a year (slow links).
        if filename not in versions:
            path = os.path.join(app.static_folder, filename)
            with open(path, "rb") as handle:
                versions[filename] = hashlib.sha256(handle.read()).hexdigest()[:12]
        return url_for("static", filename=filename, v=versions[filename])

    # Flask's own default is None ("no-cache"), so setdefault never applied: set it unless configured.
    # Only static files use it; every other response is made no-store by app.security.
    if app.config.get("SEND_FILE_MAX_AGE_DEFAULT") is None:
        app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 365 * 24 * 3600
    app.jinja_env.globals.update(static_url=static_url, navigation_for=navigation_for)
    from app.records.views import init_record_templates
    init_record_templates(app)


# Model modules imported even where no blueprint needs them yet, so the metadata
# (and so `flask db migrate` and the schema test) always sees every table.
FEATURE_MODELS = ("app.records.models", "cases.models", "tracing.models", "matching.models",
                  "app.notifications.models", "followups.models", "workflows.models")
# Modules that register background tasks and record-saved hooks.
FEATURE_TASKS = ("matching.tasks", "app.notifications.tasks", "followups.tasks")


def register_blueprints(app: Flask) -> None:
    import importlib
    for module_name in (*FEATURE_MODELS, *FEATURE_TASKS):
        importlib.import_module(module_name)
    for module_name in FEATURE_BLUEPRINTS:
        module = importlib.import_module(module_name)
        app.register_blueprint(module.bp)


def register_commands(app: Flask) -> None:
    from app.cli import seed_group
    from app.jobs.cli import jobs_group, worker_command
    from app.users.cli import agencies_group, groups_group, roles_group, users_group
    for command in (seed_group, jobs_group, worker_command, users_group, roles_group,
                    agencies_group, groups_group):
        app.cli.add_command(command)
    from matching.cli import matching_group
    app.cli.add_command(matching_group)
    from forms.cli import forms_group, locations_group
    app.cli.add_command(forms_group)
    app.cli.add_command(locations_group)
    from cases.cli import cases_group
    from tracing.cli import tracing_group
    app.cli.add_command(cases_group)
    app.cli.add_command(tracing_group)
    from app.records.cli import records_group
    app.cli.add_command(records_group)
    from followups.cli import followups_group
    app.cli.add_command(followups_group)
