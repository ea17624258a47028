"""Marshmallow schemas of the cases API: one per use, explicit fields, unknown fields refused.

A case's form values travel in `data` (checked by the forms engine); the
record's own attributes (owner, agency, status, stage, version, short_id,
source_id) are never taken from a request body (S4).
"""
from __future__ import annotations

from marshmallow import fields, validate

from app.api import InputSchema, PageArgsSchema, boolean, integer, text
from app.records.schemas import RecordSchema, SearchSchema, choice, query_boolean, query_integer, record_data
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from cases.models import STAGES

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
