"""Log in (with optional second factor), log out, change or reset a password, account page."""
from __future__ import annotations

import time

import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

from app.auth import operations as ops
from app.auth.models import ApiToken, UserSession
from app.auth.passwords import verify_password
from app.extensions import db, login_manager
from app.permissions import API_TOKENS, can, require
from app.users.models import User

bp = Blueprint("auth", __name__)

PENDING_KEY = "pending_login"  # user id and time between password and second factor
PENDING_SECONDS = 300

# Endpoints a user who must change their password may still reach.
ALLOWED_WHILE_PASSWORD_EXPIRED = {"auth.change_password", "auth.logout", "static", "main.switch_language",
                                  "main.healthz"}


@login_manager.user_loader
def _load_user(user_id: str):
    return ops.load_session_user(user_id)


@login_manager.request_loader
def _load_token_user(request):
    return ops.load_token_user(request)


@login_manager.unauthorized_handler
def _unauthorized():
    from app.security import wants_json
    if wants_json():
        abort(401)
    flash(_("Please log in."), "info")
    return redirect(url_for("auth.login"))


@bp.before_app_request
def _force_password_change():
    if request.endpoint in ALLOWED_WHILE_PASSWORD_EXPIRED or request.endpoint is None:
        return None
    if current_user.is_authenticated and current_user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return None


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField(_l("Six-digit code"), validators=[DataRequired(), Length(max=10)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=1024)])


class ResetPasswordForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    code = StringField(_l("Reset code"), validators=[DataRequired(), Length(max=32)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=1024)])


def _address() -> str:
    return request.remote_addr or "unknown"


def _pending_user() -> User | None:
    pending = session.get(PENDING_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    user = db.session.get(User, pending["user_id"])
    return user if user and user.is_active else None


def _finish_login(user: User):
    ops.start_session(user, _address())
    ops.forget_old_failures()
    db.session.commit()
    if user.must_change_password:
        flash(_("Your password was reset. Choose a new one to continue."), "info")
        return redirect(url_for("auth.change_password"))
    return redirect(url_for("main.home"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = ops.check_credentials(form.username.data, form.password.data, _address())
        except ops.LoginThrottled as error:
            db.session.commit()
            form.form_errors.append(error.message)
            status = 429
        except ops.AuthError as error:
            db.session.commit()  # keep the failure count and its audit entry
            form.form_errors.append(error.message)
            status = 401
        else:
            if ops.totp_required(user) or ops.totp_enrolment_required(user):
                session.clear()
                session[PENDING_KEY] = {"user_id": user.id, "at": time.time()}
                db.session.commit()
                if user.is_totp_enabled:
                    return redirect(url_for("auth.second_factor"))
                return redirect(url_for("auth.enrol_second_factor"))
            return _finish_login(user)
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor():
    user = _pending_user()
    if user is None or not user.is_totp_enabled:
        return redirect(url_for("auth.login"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        if ops.is_throttled(user.username, _address()):
            form.code.errors = [_("Too many failed attempts. Wait a few minutes and try again.")]
            status = 429
        else:
            try:
                ops.verify_totp(user, form.code.data, _address())
            except ops.AuthError as error:
                db.session.commit()
                form.code.errors = [error.message]
                status = 401
            else:
                return _finish_login(user)
    return render_template("auth/second_factor.html", form=form), status


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol_second_factor():
    """Administrators must set up a second factor before their first login completes (S13)."""
    user = _pending_user()
    if user is None or user.is_totp_enabled:
        return redirect(url_for("auth.login"))
    return _enrolment(user, on_success=lambda: _finish_login(user))


def _enrolment(user: User, on_success):
    # The secret being set up is kept on the user row, never in the (signed, not encrypted) cookie.
    if not user.totp_pending_secret:
        user.totp_pending_secret = ops.new_totp_secret()
        db.session.commit()
    secret = user.totp_pending_secret
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            ops.enable_totp(user, secret, form.code.data, _address())
        except ops.AuthError as error:
            db.session.commit()
            form.code.errors = [error.message]
            status = 422
        else:
            return on_success()
    uri = ops.totp_uri(user, secret)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return render_template("auth/enrol.html", form=form, secret=secret, qr_svg=qr_svg), status


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        ops.end_current_session("logout")
        db.session.commit()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


class ApiTokenForm(FlaskForm):
    name = StringField(_l("What will use this token?"), validators=[DataRequired(), Length(max=100)])
    days = IntegerField(_l("Valid for (days)"), default=90, validators=[DataRequired(), NumberRange(1, 365)])


def _account_page(token_form=None, new_token=None, status=200):
    sessions = db.session.query(UserSession).filter(
        UserSession.user_id == current_user.id, UserSession.ended_at.is_(None)
    ).order_by(UserSession.created_at.desc()).all()
    tokens = db.session.query(ApiToken).filter(ApiToken.user_id == current_user.id).order_by(
        ApiToken.created_at.desc()).all()
    current = ops.current_session_row()
    return render_template("auth/account.html", sessions=sessions, tokens=tokens,
                           current_session_id=current.id if current else None,
                           totp_mandatory=ops.totp_mandatory(current_user),
                           token_form=token_form or ApiTokenForm(formdata=None),
                           can_make_tokens=can(current_user, API_TOKENS), new_token=new_token), status


@bp.get("/account")
@login_required
def account():
    return _account_page()


@bp.post("/account/tokens")
@login_required
@require(API_TOKENS)
def create_api_token():
    """The token is shown once, in this response; it is never stored or sent again."""
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _account_page(token_form=form, status=422)
    try:
        _row, token = ops.create_api_token(current_user, form.name.data, form.days.data)
    except ops.AuthError as error:
        getattr(form, error.field or "name").errors = [error.message]
        return _account_page(token_form=form, status=422)
    db.session.commit()
    return _account_page(new_token=token, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_api_token(token_id: int):
    if not ops.revoke_api_token(current_user, token_id):
        abort(404)
    db.session.commit()
    flash(_("The token is revoked."), "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            ops.change_password(current_user, form.current_password.data, form.new_password.data, _address())
        except ops.AuthError as error:
            db.session.commit()  # keep a wrong-current-password failure for throttling
            getattr(form, error.field or "new_password").errors = [error.message]
            status = 422
        else:
            user = current_user._get_current_object()
            ops.start_session(user, _address())  # every other session has ended
            db.session.commit()
            flash(_("Your password is changed. You were logged out everywhere else."), "success")
            return redirect(url_for("auth.account"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/change_password.html", form=form), status


@bp.route("/account/second-factor", methods=["GET", "POST"])
@login_required
def account_second_factor():
    if current_user.is_totp_enabled:
        return redirect(url_for("auth.account"))

    def done():
        db.session.commit()
        flash(_("The second factor is on. You will be asked for a code at each login."), "success")
        return redirect(url_for("auth.account"))

    return _enrolment(current_user._get_current_object(), on_success=done)


@bp.post("/account/second-factor/off")
@login_required
def account_second_factor_off():
    if ops.totp_mandatory(current_user):
        flash(_("Your role requires a second factor; it cannot be turned off."), "error")
        return redirect(url_for("auth.account"))
    if not verify_password(current_user.password_hash, request.form.get("password", "")):
        ops.record_login_failure(current_user.username, _address(), current_user, "bad_password_totp_off")
        db.session.commit()
        flash(_("The password is wrong; the second factor stays on."), "error")
        return redirect(url_for("auth.account"))
    ops.disable_totp(current_user, current_user)
    db.session.commit()
    flash(_("The second factor is off."), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/end-others")
@login_required
def end_other_sessions():
    current = ops.current_session_row()
    ended = ops.end_all_sessions(current_user, "ended_by_user", keep_session_id=current.id if current else None)
    db.session.commit()
    flash(_("%(n)d other session(s) ended.", n=ended), "success")
    return redirect(url_for("auth.account"))


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password():
    """Use the one-time code an administrator gave you."""
    form = ResetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            ops.reset_password_with_code(form.username.data, form.code.data, form.new_password.data, _address())
        except ops.LoginThrottled as error:
            db.session.commit()
            form.form_errors.append(error.message)
            status = 429
        except ops.AuthError as error:
            db.session.rollback() if error.field == "new_password" else db.session.commit()
            getattr(form, error.field or "code").errors = [error.message]
            status = 422
        else:
            db.session.commit()
            flash(_("Your password is set. Log in with it now."), "success")
            return redirect(url_for("auth.login"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/reset_password.html", form=form), status
