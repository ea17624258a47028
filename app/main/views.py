"""Home page, language switch and the health endpoint."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import text

from app.extensions import db
from app.i18n import LOCALE_SESSION_KEY
from app.navigation import navigation_for

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def home():
    return render_template("main/home.html", sections=navigation_for(current_user))


@bp.post("/language")
def switch_language():
    """Remember the chosen language in the session and, when logged in, on the user."""
    locale = request.form.get("locale", "")
    if locale in current_app.config["LANGUAGES"]:
        session[LOCALE_SESSION_KEY] = locale
        if current_user.is_authenticated:
            current_user.locale = locale
            db.session.commit()
    return redirect(local_path(request.form.get("next")) or url_for("main.home"))


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirect)."""
    from urllib.parse import urlsplit
    if not target or any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.get("/healthz")
def healthz():
    """Database and Redis reported separately; 503 only when the database is down (R7)."""
    report = {"database": "ok", "redis": "not_configured"}
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:
        db.session.rollback()
        report["database"] = "unavailable"
    if current_app.config.get("REDIS_URL"):
        try:
            from app.jobs.operations import redis_connection
            redis_connection().ping()
            report["redis"] = "ok"
        except Exception:
            report["redis"] = "unavailable"
    status = 200 if report["database"] == "ok" else 503
    report["status"] = "ok" if status == 200 and report["redis"] != "unavailable" else "degraded"
    return jsonify(report), status
