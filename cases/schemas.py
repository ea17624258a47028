"""Marshmallow schemas of the cases API: one per use, explicit fields, unknown fields refused.

A case's form values travel in `data` (checked by the forms engine); the
record's own attributes (owner, agency, status, stage, version, short_id,
source_id) are never taken from a request body (S4).
"""
from __future__ import annotations

from marshmallow import fields, validate

from flask_babel import lazy_gettext as _l
from marshmallow import Schema

from app.api import InputSchema, PageArgsSchema, boolean, integer, messages, text
from app.openapi import ErrorDetailSchema
from app.records.schemas import (
    RecordSchema,
    SearchSchema,
    UserRefSchema,
    choice,
    query_boolean,
    query_integer,
    record_data,
)
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from cases.models import APPROVAL_STATUSES, APPROVAL_TYPES, STAGES

SORTS = ("updated", "created", "name", "age", "short_id")


class CaseSchema(RecordSchema):
    """A case as the API returns it: `data` holds only the fields the caller may read."""

    workflow_stage = fields.String(validate=validate.OneOf(STAGES))
    closed_at = fields.DateTime(allow_none=True)
    closure_reason = fields.String(allow_none=True)


class _CaseFilters:
    """Filters shared by the list (query string) and the search (JSON body)."""

    status = choice((STATUS_OPEN, STATUS_CLOSED))
    stage = choice(STAGES)
    sex = text(16)
    location = text(64)
    owner = choice(("me",), metadata={"description": "me: only the caller's own cases."})


class CaseListArgsSchema(_CaseFilters, PageArgsSchema):
    """?status, ?stage, ?sex, ?age_min, ?age_max, ?location (with its sub-locations), ?flagged,
    ?consent (for tracing), ?owner=me, ?sort, ?page, ?per_page."""

    age_min = query_integer()
    age_max = query_integer()
    flagged = query_boolean(metadata={"description": "true: only cases with an open flag."})
    consent = query_boolean(metadata={"description": "Consent for tracing given (true) or not (false)."})
    sort = choice(SORTS, load_default="updated")


class CaseSearchSchema(_CaseFilters, SearchSchema):
    age_min = integer(maximum=130)
    age_max = integer(maximum=130)
    flagged = boolean()
    consent = boolean()


class CaseCreateSchema(InputSchema):
    """Register a child: the form values, optionally as an incomplete draft (if the form allows it)."""

    data = record_data()
    draft = boolean()


class CaseCloseSchema(InputSchema):
    """Close or reopen a case with the reason; `version`, if sent, refuses the change when someone
    saved the case since (409)."""

    reason = text(2000, required=True)
    version = integer(minimum=1)


# --- approvals and assignment ---------------------------------------------------------------------------

class CaseApprovalSchema(Schema):
    """One request for a supervisor's approval of a case's plan or closure, and its decision."""

    id = fields.Integer()
    case_id = fields.String(metadata={"description": "The case's opaque id."})
    case_short_id = fields.String(attribute="case.short_id", metadata={"description": "The case's short id."})
    approval_type = fields.String(validate=validate.OneOf(APPROVAL_TYPES))
    status = fields.String(validate=validate.OneOf(APPROVAL_STATUSES))
    note = fields.String(attribute="request_note", allow_none=True, metadata={
        "description": "The requester's note; for a closure, the reason the case closes with."})
    case_version = fields.Integer(metadata={"description": "The case version the request was made on."})
    requested_by = fields.Nested(UserRefSchema, allow_none=True)
    requested_at = fields.DateTime()
    decided_by = fields.Nested(UserRefSchema, allow_none=True, metadata={
        "description": "Who approved or rejected it (or the requester, when cancelled)."})
    decided_at = fields.DateTime(allow_none=True)
    comment = fields.String(attribute="decision_comment", allow_none=True)


class CaseApprovalConflictSchema(Schema):
    """409: the request was decided or cancelled first, one of the same type is already waiting,
    or the case is closed."""

    error = fields.Nested(ErrorDetailSchema)


class CaseApprovalListArgsSchema(PageArgsSchema):
    """?status (pending: the caller's queue, oldest first; otherwise newest first), ?type, ?page, ?per_page."""

    status = choice(APPROVAL_STATUSES, load_default="pending")
    type = choice(APPROVAL_TYPES)


class CaseApprovalRequestSchema(InputSchema):
    """Ask for approval of the case plan or of the closure. A closure needs `note`: why the case
    closes (it becomes the closure reason once approved)."""

    approval_type = choice(APPROVAL_TYPES, required=True)
    note = text(2000)


class CaseApprovalDecisionSchema(InputSchema):
    """Approve (comment optional) or reject (comment required)."""

    comment = text(2000)


class CaseApprovalCancelSchema(InputSchema):
    """Cancel one's own waiting request: an empty object."""


class CaseApprovalTypeSchema(Schema):
    approval_type = fields.String(validate=validate.OneOf(APPROVAL_TYPES))
    is_required = fields.Boolean(metadata={"description": "true: a supervisor must approve it."})


class CaseApprovalTypeUpdateSchema(InputSchema):
    is_required = boolean(required=True)


class CaseAssignSchema(InputSchema):
    """Give one or many cases to another user of the caller's teams; all or none."""

    case_ids = fields.List(fields.UUID(error_messages=messages(invalid=_l("Enter a case id."),
                                                               invalid_uuid=_l("Enter a case id."))), required=True,
                           validate=validate.Length(min=1, max=500, error=_l("Send from {min} to {max} ids.")),
                           error_messages=messages(invalid=_l("Enter a list.")))
    owner_id = integer(required=True, minimum=1)
    note = text(2000)


class CaseAssignResultSchema(Schema):
    assigned = fields.Integer(metadata={"description": "How many cases changed owner (those already "
                                                       "owned by the new owner are left alone)."})
    case_ids = fields.List(fields.String())
