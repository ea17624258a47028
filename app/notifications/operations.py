"""Creating, listing and reading notifications.

`notify` is the one entry point other features use (see the interface in the project
brief): it stores one row per recipient in the caller's transaction and, when e-mail is
configured, queues one e-mail job per row. Nothing is sent inside the request.
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import current_app, has_request_context, url_for
from flask_babel import gettext
from sqlalchemy import func, select, update

from app.db import utcnow
from app.extensions import db
from app.notifications.models import Notification

EMAIL_TASK = "notifications.send_email"


def notify(recipients: Iterable, kind: str, message: str, params: dict | None = None, *,
           actor=None, record=None, url: str | None = None) -> list[Notification]:
    """Tell `recipients` (User objects) that something happened; returns the rows added.

    `message` is an untranslated msgid (marked with app.i18n.N_) with %(name)s placeholders
    filled from `params` when shown. `params` holds short ids and codes only, never names:
    it is copied into e-mails. Duplicates, the actor themself and inactive users are skipped.
    Only flushes; the caller commits.
    """
    clean_params = {str(key): str(value) for key, value in (params or {}).items()}
    safe_link = url if is_safe_url(url) else None
    actor_id = getattr(actor, "id", None)
    pairs: list[tuple[Notification, object]] = []
    for user in _unique_active(recipients, actor_id):
        row = Notification(
            user_id=user.id, kind=kind, message=message, params=clean_params,
            record_type=getattr(record, "RECORD_TYPE", None) if record is not None else None,
            record_id=str(record.id) if record is not None else None,
            url=safe_link, actor_id=actor_id, created_at=utcnow())
        db.session.add(row)
        pairs.append((row, user))
    if not pairs:
        return []
    db.session.flush()
    if mail_configured():
        from app.jobs.operations import enqueue
        from app.notifications import tasks  # noqa: F401  (registers the e-mail task)
        for row, user in pairs:
            if user.email:
                # Ids only: the job reads the message and the address when it runs.
                enqueue(EMAIL_TASK, {"notification_id": row.id})
    return [row for row, _user in pairs]


def _unique_active(recipients: Iterable, actor_id: int | None):
    seen: set[int] = set()
    for user in recipients or ():
        if user is None or user.id in seen or user.id == actor_id or not user.is_active:
            continue
        seen.add(user.id)
        yield user


def mail_configured() -> bool:
    """E-mail goes out only when an SMTP server and a sender address are set."""
    return bool(current_app.config.get("MAIL_SERVER") and current_app.config.get("MAIL_FROM"))


def is_safe_url(url: str | None) -> bool:
    """A relative path on this site: no scheme, no host, no protocol-relative `//` or `/\\` trick."""
    if not url or not isinstance(url, str):
        return False
    if not url.startswith("/") or url.startswith("//") or url.startswith("/\\"):
        return False
    if any(ord(ch) < 32 for ch in url) or "\\" in url:
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


def relative_url(endpoint: str, **values) -> str:
    """A same-site path for `endpoint`, also outside a request (jobs, CLI), for `notify(url=...)`."""
    if has_request_context():
        return url_for(endpoint, **values)
    root = current_app.config.get("APPLICATION_ROOT") or "/"
    adapter = current_app.url_map.bind("localhost", script_name=root)
    return adapter.build(endpoint, values)


def render_message(notification: Notification) -> str:
    """The message in the current language, with its parameters filled in."""
    params = notification.params or {}
    try:
        return gettext(notification.message, **params)
    except (KeyError, ValueError, TypeError):
        # A stored message whose placeholders no longer fit its parameters still shows, unfilled.
        return gettext(notification.message)


def user_notifications(user, *, unread_only: bool = False):
    """A query for `user`'s own notifications, newest first (never anyone else's)."""
    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query.order_by(Notification.created_at.desc(), Notification.id.desc())


def unread_count(user) -> int:
    """One indexed COUNT over (user_id, read_at): cheap enough for every page header."""
    return db.session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))).scalar_one()


def get_own_notification(user, notification_id: int) -> Notification | None:
    """The notification if it is `user`'s; None otherwise (someone else's looks like a missing one)."""
    return db.session.execute(select(Notification).where(
        Notification.id == notification_id, Notification.user_id == user.id)).scalar_one_or_none()


def mark_notification_read(notification: Notification) -> Notification:
    """Mark one notification read (kept as first read)."""
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.flush()
    return notification


def mark_all_notifications_read(user) -> int:
    """Mark all of `user`'s unread notifications read; returns how many changed."""
    result = db.session.execute(update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)).values(read_at=utcnow()))
    return result.rowcount or 0
