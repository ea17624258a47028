"""Settings, one class per environment, read from environment variables.

`APP_ENV` picks the class (development, test, production); every value can be
overridden with an environment variable of the same name. Production refuses to
start with DEBUG on or without a real secret key (S23).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

INSECURE_SECRET_KEYS = {"", "dev", "change-me", "secret", "development-secret-key"}


class ConfigError(RuntimeError):
    """Raised at start-up when the settings are unsafe or incomplete."""


def _env(name: str, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class BaseConfig:
    ENV_NAME = "base"
    DEBUG = False
    TESTING = False

    # Storage and jobs. REDIS_URL unset means jobs run in-process.
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL: str | None = None
    RQ_QUEUE = "primero"
    JOB_MAX_ATTEMPTS = 4
    JOB_BACKOFF_SECONDS = (10, 60, 300)  # wait before the 2nd, 3rd, 4th attempt
    JOB_SWEEP_SECONDS = 15

    # Sessions (S10, S11).
    SESSION_COOKIE_NAME = "cpims_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    SESSION_IDLE_MINUTES = 30
    SESSION_MAX_HOURS = 12
    REMEMBER_COOKIE_DURATION = 0

    # Login throttling (S9): failures within the window.
    LOGIN_WINDOW_MINUTES = 15
    LOGIN_MAX_FAILURES_PER_ACCOUNT = 10
    LOGIN_MAX_FAILURES_PER_ADDRESS = 50

    PASSWORD_MIN_LENGTH = 12
    PASSWORD_MAX_LENGTH = 128
    PASSWORD_RESET_MINUTES = 60
    REQUIRE_TOTP_FOR_ADMINS = False

    WTF_CSRF_CHECK_DEFAULT = False  # app.security checks every unsafe request itself (token clients exempt)
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session, which has its own limits
    WTF_CSRF_SSL_STRICT = True

    LANGUAGES = {"en": "English", "fr": "Français", "ar": "العربية"}
    RTL_LANGUAGES = {"ar"}
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"

    MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # a larger request is refused with 413
    MAX_PHOTO_BYTES = 5 * 1024 * 1024
    MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
    UPLOAD_FOLDER: str | None = None  # default: instance/uploads (outside the static folder)
    # Retention (app.records.retention): closed records older than this are anonymised when an
    # administrator runs the job; the location is kept down to this many levels of the hierarchy.
    RETENTION_CLOSED_YEARS = 5
    RETENTION_LOCATION_LEVELS = 2
    PREFERRED_URL_SCHEME = "http"

    # E-mail for notifications: sent by a background job only when MAIL_SERVER and MAIL_FROM are set.
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    MAIL_USE_TLS = False  # STARTTLS
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_FROM: str | None = None
    # The address users reach the site at (e.g. https://cpims.example.org): links in e-mails.
    BASE_URL: str | None = None
    # Tasks: how many days ahead "due soon" looks.
    TASKS_DUE_SOON_DAYS = 7
    # Matching (matching.index): each worker keeps the matchable cases and traces in memory and
    # ranks one record's candidates there (about 0.5 GB per 100,000 records of each type);
    # off, it queries the database instead (slower, no memory). The index is rebuilt in full at
    # least this often (seconds).
    MATCHING_MEMORY_INDEX = True
    MATCHING_INDEX_MAX_AGE = 900

    def __init__(self, instance_path: str | None = None):
        self.instance_path = instance_path
        self.SECRET_KEY = _env("SECRET_KEY", "")
        self.REDIS_URL = _env("REDIS_URL", self.REDIS_URL)
        self.UPLOAD_FOLDER = _env("UPLOAD_FOLDER", self.UPLOAD_FOLDER)
        self.RETENTION_CLOSED_YEARS = _env_int("RETENTION_CLOSED_YEARS", self.RETENTION_CLOSED_YEARS)
        self.RETENTION_LOCATION_LEVELS = _env_int("RETENTION_LOCATION_LEVELS", self.RETENTION_LOCATION_LEVELS)
        self.RQ_QUEUE = _env("RQ_QUEUE", self.RQ_QUEUE)
        self.SESSION_IDLE_MINUTES = _env_int("SESSION_IDLE_MINUTES", self.SESSION_IDLE_MINUTES)
        self.SESSION_MAX_HOURS = _env_int("SESSION_MAX_HOURS", self.SESSION_MAX_HOURS)
        self.LOGIN_MAX_FAILURES_PER_ACCOUNT = _env_int(
            "LOGIN_MAX_FAILURES_PER_ACCOUNT", self.LOGIN_MAX_FAILURES_PER_ACCOUNT)
        self.LOGIN_MAX_FAILURES_PER_ADDRESS = _env_int(
            "LOGIN_MAX_FAILURES_PER_ADDRESS", self.LOGIN_MAX_FAILURES_PER_ADDRESS)
        self.REQUIRE_TOTP_FOR_ADMINS = _env_bool("REQUIRE_TOTP_FOR_ADMINS", self.REQUIRE_TOTP_FOR_ADMINS)
        self.DEBUG = _env_bool("FLASK_DEBUG", self.DEBUG)
        self.MATCHING_MEMORY_INDEX = _env_bool("MATCHING_MEMORY_INDEX", self.MATCHING_MEMORY_INDEX)
        self.MATCHING_INDEX_MAX_AGE = _env_int("MATCHING_INDEX_MAX_AGE", self.MATCHING_INDEX_MAX_AGE)
        self.MAIL_SERVER = _env("MAIL_SERVER", self.MAIL_SERVER)
        self.MAIL_PORT = _env_int("MAIL_PORT", self.MAIL_PORT)
        self.MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", self.MAIL_USE_TLS)
        self.MAIL_USERNAME = _env("MAIL_USERNAME", self.MAIL_USERNAME)
        self.MAIL_PASSWORD = _env("MAIL_PASSWORD", self.MAIL_PASSWORD)
        self.MAIL_FROM = _env("MAIL_FROM", self.MAIL_FROM)
        self.BASE_URL = _env("BASE_URL", self.BASE_URL)
        self.TASKS_DUE_SOON_DAYS = _env_int("TASKS_DUE_SOON_DAYS", self.TASKS_DUE_SOON_DAYS)
        url = _env("DATABASE_URL")
        if url:
            self.SQLALCHEMY_DATABASE_URI = normalise_database_url(url)

    def validate(self) -> None:
        """Refuse settings that would be unsafe in this environment."""
        if not self.SQLALCHEMY_DATABASE_URI:
            raise ConfigError("DATABASE_URL is not set")


class DevelopmentConfig(BaseConfig):
    """Embedded default: a SQLite file in the instance folder, jobs in-process."""

    ENV_NAME = "development"

    def __init__(self, instance_path: str | None = None):
        super().__init__(instance_path)
        if not self.SQLALCHEMY_DATABASE_URI and instance_path:
            self.SQLALCHEMY_DATABASE_URI = f"sqlite:///{Path(instance_path) / 'cpims.sqlite3'}"
        if not self.SECRET_KEY and instance_path:
            self.SECRET_KEY = _instance_secret_key(Path(instance_path))


class TestConfig(BaseConfig):
    ENV_NAME = "test"
    TESTING = True
    PASSWORD_HASH_FAST = True  # cheaper argon2 parameters so the suite stays fast

    def __init__(self, instance_path: str | None = None):
        super().__init__(instance_path)
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            _env("TEST_DATABASE_URL") or _env("DATABASE_URL") or "sqlite://")
        self.SECRET_KEY = "test-secret-key-not-for-production-use"
        self.RQ_QUEUE = _env("RQ_QUEUE", "cpims-test")
        self.SERVER_NAME = None


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"

    def __init__(self, instance_path: str | None = None):
        super().__init__(instance_path)
        self.SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
        self.REQUIRE_TOTP_FOR_ADMINS = _env_bool("REQUIRE_TOTP_FOR_ADMINS", True)

    def validate(self) -> None:
        super().validate()
        if self.DEBUG:
            raise ConfigError("Production refuses to start with DEBUG on (unset FLASK_DEBUG)")
        if self.SECRET_KEY in INSECURE_SECRET_KEYS or len(self.SECRET_KEY) < 32:
            raise ConfigError("Production needs SECRET_KEY set to a random value of at least 32 characters")


CONFIGS = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None, instance_path: str | None = None) -> BaseConfig:
    name = name or _env("APP_ENV", "development")
    try:
        cls = CONFIGS[name]
    except KeyError as exc:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from exc
    config = cls(instance_path)
    config.validate()
    return config


def _instance_secret_key(instance: Path) -> str:
    """A random key kept in the instance folder so development sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
