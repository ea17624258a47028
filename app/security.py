"""Request ids, security headers, error pages (S19, S20, S23, R7)."""
from __future__ import annotations

import logging
import uuid

from flask import Flask, g, has_request_context, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class RequestIdLogFilter(logging.Filter):
    """Adds the request id to every log line so an error page's reference finds its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json")


def init_security(app: Flask) -> None:
    @app.before_request
    def _assign_request_id():
        g.request_id = str(uuid.uuid4())

    @app.before_request
    def _check_csrf():
        """Every state-changing browser request carries the CSRF token (S7). A request with a
        bearer token is authenticated by that token alone (never by the cookie), and a
        cross-site page cannot add that header, so it needs none."""
        from flask_login import current_user

        from app.auth.operations import token_request
        from app.extensions import csrf
        if (request.method in ("GET", "HEAD", "OPTIONS", "TRACE") or token_request()
                or request.url_rule is None  # no such route: answer 404/405, not a CSRF error
                # An API call with no session has nothing to forge and no anonymous API route writes:
                # it gets the 401 that tells the client to authenticate, not a CSRF 400 (API fuzzer).
                or (request.path.startswith("/api/") and not current_user.is_authenticated)
                or not app.config.get("WTF_CSRF_ENABLED", True)):
            return
        csrf.protect()

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(self), geolocation=(), microphone=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            # Pages and exports may hold children's data: never keep them in a cache.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        headers["X-Request-ID"] = g.get("request_id", "")
        return response

    def _render_error(status: int, title: str, message: str):
        from flask_babel import gettext as _
        reference = g.get("request_id", "")
        if wants_json():
            body = {"error": {"status": status, "message": str(title), "reference": reference}}
            return jsonify(body), status
        # A standalone page rendered without the context processors (Flask-Login's would load
        # the user from the database), so it renders even when the database is down.
        from app.i18n import current_language
        locale, direction = current_language()
        html = app.jinja_env.get_template("errors/error.html").render(
            status=status, title=title, message=message, reference=reference,
            current_locale=locale, text_direction=direction)
        return app.response_class(html, status=status, mimetype="text/html")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        from flask_babel import gettext as _
        from app.audit.operations import write_pending_denials
        if error.code in (403, 404):
            try:
                write_pending_denials()
            except Exception:  # the refusal still stands if the audit write fails
                log.exception("could not write a denial to the audit trail")
        titles = {
            400: _("The request could not be understood."),
            403: _("You do not have permission to do this."),
            404: _("Not found."),
            405: _("This action is not allowed here."),
            409: _("Someone else changed this first."),
            413: _("The file is too large."),
            422: _("Some values need your attention."),
            429: _("Too many attempts. Wait a few minutes and try again."),
        }
        title = titles.get(error.code, error.name)
        if error.code == 400 and "CSRF" in (error.description or ""):
            title = _("Your form expired or was sent from elsewhere. Go back, reload the page and try again.")
        return _render_error(error.code or 500, title, "")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(error):
        from flask_babel import gettext as _
        from app.extensions import db
        try:
            db.session.rollback()
        except Exception:
            pass
        log.error("database error: %s", type(error.orig).__name__ if getattr(error, "orig", None) else type(error).__name__)
        return _render_error(503, _("The database is not answering. Try again in a minute."), "")

    @app.errorhandler(Exception)
    def _unexpected(error):
        from flask_babel import gettext as _
        from app.extensions import db
        try:
            db.session.rollback()
        except Exception:
            pass
        log.exception("unhandled error")
        return _render_error(500, _("Something went wrong on our side. The team can trace it with this reference."), "")
