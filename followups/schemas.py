"""JSON shapes of tasks (/api/v1/tasks)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.api import PageArgsSchema
from followups.models import KINDS
from followups.operations import DUE_CHOICES, OVERDUE


class TaskListArgsSchema(PageArgsSchema):
    due = fields.String(load_default=OVERDUE, validate=validate.OneOf(DUE_CHOICES, error=_l("Choose a listed value.")),
                        metadata={"description": "overdue: due before today; soon: due today or within the "
                                                 "configured days (TASKS_DUE_SOON_DAYS, 7 by default)."})


class TaskSchema(Schema):
    """One task of an open case in the caller's scope, read from a field the caller may read."""

    record_type = fields.String(validate=validate.OneOf(("case",)))
    record_id = fields.String()
    record_short_id = fields.String()
    kind = fields.String(validate=validate.OneOf(KINDS))
    description = fields.String(metadata={"description": "The task in the caller's language."})
    params = fields.Function(lambda item: dict(item["task"].params or {}), metadata={
        "openapi": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": "Codes the description is built from (e.g. service_type)."})
    due_on = fields.Date()
    days = fields.Integer(metadata={"description": "Days from today to the due date (negative: late)."})
    owner_id = fields.Integer(metadata={"description": "The caseworker who owns the case."})
    owner_name = fields.String(allow_none=True)
