"""Marshmallow schemas every kind of record shares in the JSON API: the record's
common fields, history, notes, flags, the edit conflict answer, and the inputs
that change them.

Input schemas list exactly what a client may send; anything else (owner,
agency, status, short_id, source_id, ...) is a 422 "Unknown field" (S4). A
record's form values travel in `data` and are checked by the forms engine,
which refuses unknown keys and fields the caller may not change. Output
schemas that carry form values take the set of field keys the caller may
read: other fields are left out entirely (S3).
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.api import InputSchema, boolean, integer, messages, text
from app.openapi import ErrorDetailSchema
from app.records.models import STATUS_CLOSED, STATUS_OPEN

READABLE_DATA_DOC = {
    "type": "object",
    "description": "Form values by field key, limited to the fields the caller's role may read (see "
                   "GET /api/forms/{record_type} for their definitions).",
}
RECORD_STATUSES = (STATUS_OPEN, STATUS_CLOSED)


# --- building blocks ----------------------------------------------------------------------------------

def choice(values, **kwargs) -> fields.String:
    """One of fixed codes (works for query strings and JSON bodies alike)."""
    return fields.String(validate=validate.OneOf(tuple(values), error=_l("Choose one of: {choices}.")),
                         error_messages=messages(invalid=_l("Enter text.")), **kwargs)


def query_integer(minimum: int = 0, maximum: int = 130) -> fields.Integer:
    """A whole number in a query string (text there, so not strict)."""
    return fields.Integer(validate=validate.Range(min=minimum, max=maximum,
                                                  error=_l("Use a number from {min} to {max}.")),
                          error_messages=messages(invalid=_l("Enter a whole number.")))


def query_boolean(**kwargs) -> fields.Boolean:
    """true or false in a query string."""
    return fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"},
                          error_messages=messages(invalid=_l("Enter true or false.")), **kwargs)


def record_data(required: bool = True) -> fields.Dict:
    return fields.Dict(keys=fields.String(), required=required,
                       error_messages=messages(invalid=_l("Send the record's fields as a JSON object.")),
                       metadata={"description": "Form values by field key; fields not sent keep their value, "
                                                "a field sent empty (null, \"\" or []) is cleared."})


class UserRefSchema(Schema):
    """A user named on a record (owner, author)."""

    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()


class AgencyRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class RecordSchema(Schema):
    """What every record shows: identity, ownership, version and the readable form values.

    Build it with the field keys the caller may read: `RecordSchema(readable=...)`.
    """

    id = fields.String(metadata={"description": "Opaque id (UUID), used in URLs."})
    short_id = fields.String(metadata={"description": "Seven characters, shown to people."})
    status = fields.String(validate=validate.OneOf(RECORD_STATUSES))
    version = fields.Integer(metadata={"description": "Send it back with a change (optimistic locking)."})
    owner = fields.Nested(UserRefSchema)
    agency = fields.Nested(AgencyRefSchema)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    data = fields.Method("readable_data", metadata={"openapi": READABLE_DATA_DOC})

    def __init__(self, *, readable=frozenset(), **kwargs):
        super().__init__(**kwargs)
        self.readable = frozenset(readable)

    def readable_data(self, record) -> dict:
        return {key: value for key, value in (record.data or {}).items() if key in self.readable}


# --- history, notes, flags ------------------------------------------------------------------------------

class ChangeSchema(Schema):
    """One field's change; record attributes are named "@status", "@workflow_stage", "@tracing_status"."""

    field = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)


class HistoryEntrySchema(Schema):
    """One save of the record: who, when, and the changes to the fields the caller may read."""

    id = fields.Integer()
    action = fields.String(metadata={"description": "create, update, attach, close, reopen, import, ..."})
    at = fields.DateTime()
    version = fields.Integer(metadata={"description": "The record version this save produced."})
    user = fields.Nested(UserRefSchema, allow_none=True)
    comment = fields.String(allow_none=True, metadata={"description": "E.g. the reason for closing."})
    changes = fields.Nested(ChangeSchema, many=True)
    hidden_changes = fields.Integer(metadata={
        "description": "How many changed fields are left out because the caller may not read them."})


class NoteSchema(Schema):
    id = fields.Integer()
    subject = fields.String()
    body = fields.String()
    created_at = fields.DateTime()
    author = fields.Nested(UserRefSchema)


class FlagSchema(Schema):
    id = fields.Integer()
    reason = fields.String()
    created_at = fields.DateTime()
    created_by = fields.Nested(UserRefSchema)
    is_open = fields.Boolean()
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.Nested(UserRefSchema, allow_none=True)
    resolution = fields.String(allow_none=True)


class RecordConflictSchema(Schema):
    """409: someone saved the record after the version the change started from. Nothing was saved;
    send the change again with `current_version` once the caller has looked at both values."""

    error = fields.Nested(ErrorDetailSchema)
    current_version = fields.Integer()
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", metadata={
        "description": "The fields (that the caller may read) changed by the other saves."})
    current = fields.Dict(metadata={"description": "The stored values, limited to the fields the caller may "
                                                   "read."})
    yours = fields.Dict(metadata={"description": "The values the caller sent, kept so nothing is lost."})


# --- inputs ---------------------------------------------------------------------------------------------

class RecordUpdateSchema(InputSchema):
    """Change a record's form values, starting from `version`."""

    version = integer(required=True, minimum=1)
    data = record_data()
    draft = boolean()


class ReasonSchema(InputSchema):
    """Close or reopen, with the reason (kept in the history)."""

    reason = text(2000, required=True)


class NoteCreateSchema(InputSchema):
    body = text(20000, required=True)
    subject = text(200)


class FlagCreateSchema(InputSchema):
    reason = text(2000, required=True)


class FlagResolveSchema(InputSchema):
    resolution = text(2000, required=True)


class SearchSchema(InputSchema):
    """Search by short id, phone number or name (spelling variants included). Sent in the body so
    names never appear in a URL."""

    q = text(200, required=True)
    limit = fields.Integer(strict=True, load_default=50, validate=validate.Range(
        min=1, max=100, error=_l("Use a number from {min} to {max}.")),
        error_messages=messages(invalid=_l("Enter a whole number.")))
