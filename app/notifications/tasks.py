"""E-mail for notifications, sent by a background job (never inside the request)."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from flask_babel import force_locale, gettext

from app.db import utcnow
from app.extensions import db
from app.jobs.operations import task
from app.notifications.models import Notification
from app.notifications.operations import EMAIL_TASK, mail_configured, render_message


@task(EMAIL_TASK)
def send_email(notification_id: int) -> None:
    """Send one notification by e-mail, in the recipient's language: a subject, the message
    and an absolute link. Only short ids travel (no names, no personal data). An SMTP error
    raises, so the jobs framework retries later; a sent e-mail is never sent again."""
    from app.users.models import User
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.emailed_at is not None or not mail_configured():
        return
    user = db.session.get(User, notification.user_id)
    if user is None or not user.is_active or not user.email:
        return
    config = current_app.config
    locale = user.locale if user.locale in config["LANGUAGES"] else config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        text = render_message(notification)
        subject = gettext("Child protection: %(message)s", message=_shorten(text))
        lines = [text, ""]
        link = absolute_link(notification)
        if link:
            lines += [gettext("Open it: %(link)s", link=link), ""]
        lines.append(gettext("You receive this e-mail because you have an account. "
                             "Sign in to see the details."))
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config["MAIL_FROM"]
    message["To"] = user.email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines))
    message["Content-Language"] = locale  # after set_content, which replaces the Content-* headers
    _send(message)
    notification.emailed_at = utcnow()
    db.session.commit()


def absolute_link(notification: Notification) -> str | None:
    """BASE_URL + the inbox's open link (which marks it read and then goes to the record)."""
    base = (current_app.config.get("BASE_URL") or "").rstrip("/")
    if not base:
        return None
    return f"{base}/notifications/{notification.id}/open"


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _send(message: EmailMessage) -> None:
    config = current_app.config
    timeout = 30
    with smtplib.SMTP(config["MAIL_SERVER"], int(config.get("MAIL_PORT") or 25), timeout=timeout) as smtp:
        if config.get("MAIL_USE_TLS"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        smtp.send_message(message)
