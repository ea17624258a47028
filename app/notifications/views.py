"""The inbox (/notifications): one's own notifications, newest first; open, mark read, mark all read.

Every query is restricted to the logged-in user's rows: someone else's notification id
answers 404, like a missing one. Opening a notification marks it read and follows its
link, which is always a same-site path (checked again here, so a stored value can never
turn the inbox into an open redirect).
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.extensions import db
from app.listing import HTML_PER_PAGE, page_number
from app.notifications import operations as ops

bp = Blueprint("notifications", __name__, url_prefix="/notifications", template_folder="templates")

# No menu entry: the link with the unread count sits in every page header (base.html).

def _unread_for_header() -> int | None:
    """The unread count shown in every page header (one indexed COUNT), None when logged out."""
    if not current_user.is_authenticated:
        return None
    return ops.unread_count(current_user)


def _register_header_count(state) -> None:
    state.app.jinja_env.globals["unread_notifications"] = _unread_for_header


bp.record_once(_register_header_count)


@bp.get("")
@login_required
def inbox():
    unread_only = request.args.get("unread") == "1"
    page = db.paginate(ops.user_notifications(current_user, unread_only=unread_only), page=page_number(),
                       per_page=HTML_PER_PAGE, error_out=False)
    items = [{"notification": row, "text": ops.render_message(row)} for row in page.items]
    return render_template("notifications/inbox.html", page=page, items=items, unread_only=unread_only,
                           args={"unread": "1"} if unread_only else {})


def _own_or_404(notification_id: int):
    notification = ops.get_own_notification(current_user, notification_id)
    if notification is None:
        abort(404)
    return notification


@bp.get("/<int:notification_id>/open")
@login_required
def open_notification(notification_id: int):
    """Mark read and go to the notification's page (the inbox when it has none)."""
    notification = _own_or_404(notification_id)
    ops.mark_notification_read(notification)
    db.session.commit()
    target = notification.url if ops.is_safe_url(notification.url) else None
    return redirect(target or url_for(".inbox"))


def _back_to_inbox():
    page = page_number()
    args = {"page": page} if page > 1 else {}
    if request.args.get("unread") == "1":
        args["unread"] = "1"
    return redirect(url_for(".inbox", **args))


@bp.post("/<int:notification_id>/read")
@login_required
def mark_read(notification_id: int):
    ops.mark_notification_read(_own_or_404(notification_id))
    db.session.commit()
    return _back_to_inbox()


@bp.post("/read-all")
@login_required
def mark_all_read():
    count = ops.mark_all_notifications_read(current_user)
    db.session.commit()
    if count:
        flash(_("All notifications are marked read."), "success")
    return _back_to_inbox()
