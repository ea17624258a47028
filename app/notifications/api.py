"""JSON API of the inbox: list one's notifications, mark one or all read.

Only ever the caller's own notifications: another user's id answers 404, like a missing one.
"""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user, login_required

from app.api import json_body, load_input
from app.extensions import db
from app.notifications import operations as ops
from app.notifications.schemas import MarkReadSchema, MarkedSchema, NotificationListArgsSchema, NotificationSchema
from app.openapi import Page, api_doc
from app.records.api import paginated

bp = Blueprint("notifications_api", __name__, url_prefix="/api/v1")
TAGS = ("Notifications",)


@bp.get("/notifications")
@api_doc("The caller's notifications, newest first", tags=TAGS, query=NotificationListArgsSchema,
         responses={200: Page(NotificationSchema)}, errors=(422,),
         description="`?unread=1` lists only the unread ones. Texts are in the caller's language.")
@login_required
def list_notifications():
    args = load_input(NotificationListArgsSchema(), request.args.to_dict())
    query = ops.user_notifications(current_user, unread_only=args.get("unread") == "1")
    return jsonify(paginated(query, lambda rows: NotificationSchema(many=True).dump(rows), args))


@bp.post("/notifications/<int:notification_id>/read")
@api_doc("Mark one of the caller's notifications read", tags=TAGS, body=MarkReadSchema,
         responses={200: NotificationSchema}, errors=(404, 422))
@login_required
def read_notification(notification_id: int):
    load_input(MarkReadSchema(), json_body())
    notification = ops.get_own_notification(current_user, notification_id)
    if notification is None:
        abort(404)
    ops.mark_notification_read(notification)
    db.session.commit()
    return jsonify(NotificationSchema().dump(notification))


@bp.post("/notifications/read-all")
@api_doc("Mark all of the caller's notifications read", tags=TAGS, body=MarkReadSchema,
         responses={200: MarkedSchema}, errors=(422,))
@login_required
def read_all_notifications():
    load_input(MarkReadSchema(), json_body())
    marked = ops.mark_all_notifications_read(current_user)
    db.session.commit()
    return jsonify(MarkedSchema().dump({"marked": marked}))
