"""Authentication operations. They flush; the calling view commits.

Throttling state lives in the database, not in Redis, so it holds across many
web processes and keeps working when Redis is down (S9).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

import pyotp
from flask import current_app, session
from flask_babel import gettext as _
from sqlalchemy import delete, func, select, text, update

from app.audit.operations import record_audit
from app.auth.models import ApiToken, LoginFailure, PasswordResetCode, UserSession
from app.auth.passwords import hash_password, needs_rehash, password_problems, verify_password
from app.db import utcnow
from app.extensions import db
from app.users.models import User

SESSION_TOKEN_KEY = "sid"
TOUCH_EVERY = timedelta(seconds=60)  # how stale last_seen_at may get before we write it


class AuthError(Exception):
    """A refusal to show the user; `field` names the form field it concerns, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class LoginThrottled(AuthError):
    pass


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def account_key(username: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, username.strip().lower().encode(), hashlib.sha256).hexdigest()


def find_user(username: str) -> User | None:
    return db.session.execute(
        select(User).where(User.username == username.strip().lower())
    ).scalar_one_or_none()


# --- throttling --------------------------------------------------------------

def _window_start():
    return utcnow() - timedelta(minutes=current_app.config["LOGIN_WINDOW_MINUTES"])


def _lock_account(username: str) -> None:
    """Serialise login attempts on one account (PostgreSQL), so parallel guesses cannot all
    pass the count before any failure is written. Released when the request commits."""
    if db.session.get_bind().dialect.name == "postgresql":
        key = int(account_key(username)[:15], 16)  # fits a signed 64-bit advisory lock key
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def is_throttled(username: str, address: str) -> bool:
    cfg = current_app.config
    since = _window_start()
    by_account = db.session.scalar(select(func.count(LoginFailure.id)).where(
        LoginFailure.account_key == account_key(username), LoginFailure.at >= since))
    if by_account >= cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"]:
        return True
    by_address = db.session.scalar(select(func.count(LoginFailure.id)).where(
        LoginFailure.address == address, LoginFailure.at >= since))
    return by_address >= cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]


def record_login_failure(username: str, address: str, user: User | None, reason: str) -> None:
    db.session.add(LoginFailure(account_key=account_key(username), address=address))
    record_audit("auth.login_failed", "user", user.id if user else None,
                 detail={"reason": reason}, user=user)


def forget_old_failures() -> int:
    """Delete failures older than the window (run by a periodic job or on login)."""
    result = db.session.execute(delete(LoginFailure).where(LoginFailure.at < _window_start()))
    return result.rowcount or 0


# --- password check ------------------------------------------------------------

def check_credentials(username: str, password: str, address: str) -> User:
    """Return the user if the password is right, else raise one same-looking AuthError."""
    wrong = AuthError(_("Unknown username or wrong password."))
    _lock_account(username)
    if is_throttled(username, address):
        record_audit("auth.login_throttled", detail={})
        raise LoginThrottled(_("Too many failed attempts. Wait a few minutes and try again."))
    user = find_user(username)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active or not user.agency.is_active:
        record_login_failure(username, address, user,
                             "inactive" if (ok and user is not None) else "bad_credentials")
        raise wrong
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def totp_required(user: User) -> bool:
    return user.is_totp_enabled


def totp_mandatory(user: User) -> bool:
    """A second factor is required of administrator roles when REQUIRE_TOTP_FOR_ADMINS is on (S13)."""
    from app.permissions import is_admin_role
    return bool(current_app.config["REQUIRE_TOTP_FOR_ADMINS"] and is_admin_role(user.role))


def totp_enrolment_required(user: User) -> bool:
    return totp_mandatory(user) and not user.is_totp_enabled


# --- sessions ------------------------------------------------------------------

def start_session(user: User, address: str) -> UserSession:
    """Log `user` in with a brand-new session (no fixation: the old cookie content is dropped)."""
    from flask_login import login_user
    session.clear()
    token = secrets.token_urlsafe(32)
    row = UserSession(token_hash=_sha256(token), user_id=user.id, address=address)
    db.session.add(row)
    session[SESSION_TOKEN_KEY] = token
    session["locale"] = user.locale  # see app.i18n.select_locale
    session.permanent = True
    login_user(user)
    user.last_login_at = utcnow()
    record_audit("auth.login", "user", user.id, user=user)
    db.session.flush()
    return row


def current_session_row() -> UserSession | None:
    token = session.get(SESSION_TOKEN_KEY)
    if not token:
        return None
    return db.session.execute(
        select(UserSession).where(UserSession.token_hash == _sha256(token))
    ).scalar_one_or_none()


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the cookie is only good while its server-side session lives."""
    if token_request():
        return None  # a request that brings a token is authenticated by the token alone
    row = current_session_row()
    if row is None or row.ended_at is not None or str(row.user_id) != str(user_id):
        return None
    now = utcnow()
    cfg = current_app.config
    reason = None
    if now - row.last_seen_at > timedelta(minutes=cfg["SESSION_IDLE_MINUTES"]):
        reason = "idle_timeout"
    elif now - row.created_at > timedelta(hours=cfg["SESSION_MAX_HOURS"]):
        reason = "lifetime_exceeded"
    elif not row.user.is_active or not row.user.agency.is_active:
        reason = "user_inactive"
    if reason:
        row.ended_at, row.end_reason = now, reason
        db.session.commit()
        session.pop(SESSION_TOKEN_KEY, None)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        db.session.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
        db.session.commit()
    return row.user


def end_current_session(reason: str = "logout") -> None:
    from flask_login import logout_user
    row = current_session_row()
    if row is not None and row.ended_at is None:
        row.ended_at, row.end_reason = utcnow(), reason
        record_audit("auth.logout", "user", row.user_id)
    logout_user()
    session.clear()


def end_all_sessions(user: User, reason: str, keep_session_id: int | None = None) -> int:
    """End every session of `user` on every machine, and revoke their API tokens
    (password change, reset, deactivation, "log out everywhere")."""
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep_session_id is not None:
        query = query.where(UserSession.id != keep_session_id)
    result = db.session.execute(query.values(ended_at=utcnow(), end_reason=reason))
    db.session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    return result.rowcount or 0


# --- passwords -----------------------------------------------------------------

def _user_inputs(user: User) -> list[str]:
    return [user.username, user.full_name, *(user.full_name or "").split(), user.email or ""]


def set_password(user: User, new_password: str) -> None:
    problems = password_problems(new_password, _user_inputs(user))
    if problems:
        raise AuthError(" ".join(problems), field="new_password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    user.must_change_password = False


def change_password(user: User, current_password: str, new_password: str, address: str) -> None:
    """Change one's own password; every other session of the user ends (S10)."""
    if not verify_password(user.password_hash, current_password):
        record_login_failure(user.username, address, user, "bad_current_password")
        raise AuthError(_("The current password is wrong."), field="current_password")
    if current_password == new_password:
        raise AuthError(_("Choose a password different from the current one."), field="new_password")
    set_password(user, new_password)
    end_all_sessions(user, "password_change")
    record_audit("auth.password_changed", "user", user.id, user=user)


def create_reset_code(user: User, created_by: User | None) -> str:
    """A single-use code (shown once to the administrator) that lets `user` set a new password."""
    db.session.execute(update(PasswordResetCode).where(
        PasswordResetCode.user_id == user.id, PasswordResetCode.used_at.is_(None)).values(used_at=utcnow()))
    raw = secrets.token_hex(6).upper()
    code = "-".join(raw[i:i + 4] for i in range(0, 12, 4))
    db.session.add(PasswordResetCode(
        user_id=user.id, code_hash=_sha256(code), created_by_id=getattr(created_by, "id", None),
        expires_at=utcnow() + timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"])))
    record_audit("auth.reset_code_created", "user", user.id, user=created_by)
    db.session.flush()
    return code


def reset_password_with_code(username: str, code: str, new_password: str, address: str) -> User:
    """Use a reset code: it works once, before it expires, for the user it was made for."""
    invalid = AuthError(_("This code is not valid. Ask your administrator for a new one."), field="code")
    _lock_account(username)
    if is_throttled(username, address):
        raise LoginThrottled(_("Too many failed attempts. Wait a few minutes and try again."))
    user = find_user(username)
    normalised = code.strip().upper().replace(" ", "")
    if "-" not in normalised and len(normalised) == 12:
        normalised = "-".join(normalised[i:i + 4] for i in range(0, 12, 4))
    row = None
    if user is not None:
        row = db.session.execute(select(PasswordResetCode).where(
            PasswordResetCode.user_id == user.id,
            PasswordResetCode.code_hash == _sha256(normalised)).with_for_update()).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at < utcnow() or not user.is_active:
        record_login_failure(username, address, user, "bad_reset_code")
        raise invalid
    set_password(user, new_password)
    # Single use, also under concurrency: only one request can flip used_at from NULL.
    claimed = db.session.execute(update(PasswordResetCode).where(
        PasswordResetCode.id == row.id, PasswordResetCode.used_at.is_(None)).values(used_at=utcnow()))
    if claimed.rowcount != 1:
        raise invalid
    end_all_sessions(user, "password_reset")
    record_audit("auth.password_reset", "user", user.id, user=user)
    return user


# --- second factor (TOTP) --------------------------------------------------------

def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="CPIMS")


def _matching_step(secret: str, code: str) -> int | None:
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for drift in (0, -1, 1):  # one step of clock drift either way
        moment = now + timedelta(seconds=30 * drift)
        if hmac.compare_digest(totp.at(moment), code):
            return totp.timecode(moment)
    return None


def verify_totp(user: User, code: str, address: str) -> None:
    """Check a login code; a code cannot be used twice."""
    step = _matching_step(user.totp_secret or "", code)
    if step is None or (user.last_totp_step is not None and step <= user.last_totp_step):
        record_login_failure(user.username, address, user, "bad_totp")
        raise AuthError(_("This code is not right. Enter the current code from your app."), field="code")
    user.last_totp_step = step


def enable_totp(user: User, secret: str, code: str, address: str) -> None:
    step = _matching_step(secret, code)
    if step is None:
        record_login_failure(user.username, address, user, "bad_totp_enrolment")
        raise AuthError(_("This code is not right. Enter the current code from your app."), field="code")
    user.totp_secret, user.is_totp_enabled, user.last_totp_step = secret, True, step
    user.totp_pending_secret = None
    record_audit("auth.totp_enabled", "user", user.id, user=user)


def disable_totp(user: User, by: User) -> None:
    user.totp_secret, user.is_totp_enabled, user.last_totp_step = None, False, None
    record_audit("auth.totp_disabled", "user", user.id, user=by)


# --- personal API tokens ------------------------------------------------------------

API_TOKEN_PREFIX = "cpims_"
API_TOKEN_MAX_DAYS = 365
TOKEN_TOUCH_EVERY = timedelta(hours=1)


def create_api_token(user: User, name: str, days: int) -> tuple[ApiToken, str]:
    """Make a token for `user`; returns the row and the token, which is shown once."""
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 100:
        errors["name"] = _("Give the token a name of up to 100 characters (what will use it?).")
    if not isinstance(days, int) or not 1 <= days <= API_TOKEN_MAX_DAYS:
        errors["days"] = _("Choose between 1 and %(n)d days.", n=API_TOKEN_MAX_DAYS)
    if errors:
        field, message = next(iter(errors.items()))
        raise AuthError(message, field=field)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=_sha256(token), prefix=token[:12],
                   expires_at=utcnow() + timedelta(days=days))
    db.session.add(row)
    db.session.flush()
    record_audit("auth.api_token_created", "api_token", row.id, detail={"days": days}, user=user)
    return row, token


def revoke_api_token(user: User, token_id: int) -> bool:
    result = db.session.execute(update(ApiToken).where(
        ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
    ).values(revoked_at=utcnow()))
    if result.rowcount:
        record_audit("auth.api_token_revoked", "api_token", token_id, user=user)
    return bool(result.rowcount)


def token_request() -> bool:
    """An API request that authenticates with a bearer token (and never with the cookie)."""
    from flask import request
    return request.path.startswith("/api/") and bearer_token() is not None


def bearer_token() -> str | None:
    from flask import request
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def load_token_user(request) -> User | None:
    """Flask-Login's request loader: a valid, unexpired, unrevoked token of an active user."""
    # Tokens work on the JSON API only: never on pages, the account or administration screens.
    if not token_request():
        return None
    token = bearer_token()
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == _sha256(token))).scalar_one_or_none()
    if row is None or not row.is_usable or not row.user.is_active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        db.session.commit()
    from flask import g
    g.api_token_id = row.id  # app.permissions.can: tokens carry no administrative permission
    return row.user
