"""JSON shapes of notifications (/api/v1/notifications)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.api import InputSchema, PageArgsSchema
from app.notifications.operations import render_message


class NotificationListArgsSchema(PageArgsSchema):
    unread = fields.String(validate=validate.OneOf(("0", "1"), error=_l("Choose a listed value.")),
                           metadata={"description": "1: only the unread ones."})


class NotificationSchema(Schema):
    """One of the caller's notifications; `text` is translated into the caller's language."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "e.g. match_confirmed, referral_received."})
    text = fields.Function(render_message, metadata={"openapi": {"type": "string"},
                                                      "description": "The message in the caller's language."})
    message = fields.String(metadata={"description": "The untranslated message (msgid)."})
    params = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Short ids and codes filled into the message."})
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    url = fields.String(allow_none=True, metadata={"description": "Same-site path of the page concerned."})
    actor = fields.Function(lambda n: n.actor.full_name if n.actor else None,
                            metadata={"openapi": {"type": ["string", "null"]}})
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class MarkedSchema(Schema):
    marked = fields.Integer(metadata={"description": "How many notifications were unread and are now read."})


class MarkReadSchema(InputSchema):
    """No fields: send {}."""
