"""Marshmallow schemas of the tracing API (tracing requests and traces): one per use,
explicit fields, unknown fields refused.

Form values travel in `data` (the inquirer's for a tracing request, the sought
child's for a trace), checked by the forms engine; owner, agency, status,
tracing status, version, short_id and source_id are never taken from a
request body (S4).
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from app.api import InputSchema, PageArgsSchema, boolean, integer, messages, text
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from app.records.schemas import (
    AgencyRefSchema,
    RecordSchema,
    SearchSchema,
    UserRefSchema,
    choice,
    query_boolean,
    query_integer,
    record_data,
)
from tracing.models import TRACE_STATUSES
from tracing.operations import INQUIRY_DATE_FIELD

REQUEST_SORTS = ("updated", "created", "name", "short_id", "inquiry_date")
TRACE_SORTS = ("updated", "created", "name", "age", "short_id")
MAX_TRACES = 50


class TraceSchema(RecordSchema):
    """One child sought: `data` holds only the fields the caller may read."""

    tracing_status = fields.String(validate=validate.OneOf(TRACE_STATUSES))
    tracing_request_id = fields.String()
    # A trace's owner and agency are its tracing request's (kept in step).
    owner = fields.Nested(UserRefSchema, attribute="tracing_request.owner")
    agency = fields.Nested(AgencyRefSchema, attribute="tracing_request.agency")


class TracingRequestSchema(RecordSchema):
    """An inquirer and the children they look for. Build it with the readable field keys of both forms:
    `TracingRequestSchema(readable=..., trace_readable=...)`."""

    inquiry_date = fields.Method("readable_inquiry_date", metadata={"openapi": {
        "type": ["string", "null"], "format": "date",
        "description": "The inquiry date (null when not given or not readable by the caller)."}})
    traces = fields.Method("dump_traces", metadata={"openapi_schema": TraceSchema, "many": True})

    def __init__(self, *, trace_readable=frozenset(), **kwargs):
        super().__init__(**kwargs)
        self.trace_readable = frozenset(trace_readable)

    def readable_inquiry_date(self, request) -> str | None:
        # A copy of a form value: shown only to those who may read that field (S3).
        if INQUIRY_DATE_FIELD not in self.readable or request.inquiry_date is None:
            return None
        return request.inquiry_date.isoformat()

    def dump_traces(self, request) -> list[dict]:
        return TraceSchema(many=True, readable=self.trace_readable).dump(request.traces)


class _RequestFilters:
    status = choice((STATUS_OPEN, STATUS_CLOSED))
    owner = choice(("me",), metadata={"description": "me: only the caller's own tracing requests."})


class TracingRequestListArgsSchema(_RequestFilters, PageArgsSchema):
    """?status, ?flagged, ?consent (for tracing), ?owner=me, ?sort, ?page, ?per_page."""

    flagged = query_boolean(metadata={"description": "true: only tracing requests with an open flag."})
    consent = query_boolean(metadata={"description": "Consent for tracing given (true) or not (false)."})
    sort = choice(REQUEST_SORTS, load_default="updated")


class TracingRequestSearchSchema(_RequestFilters, SearchSchema):
    flagged = boolean()
    consent = boolean()


class _TraceFilters:
    status = choice((STATUS_OPEN, STATUS_CLOSED))
    tracing_status = choice(TRACE_STATUSES)
    sex = text(16)
    location = text(64)
    owner = choice(("me",), metadata={"description": "me: only the traces of the caller's own requests."})


class TraceListArgsSchema(_TraceFilters, PageArgsSchema):
    """?status, ?tracing_status, ?sex, ?age_min, ?age_max, ?location (with its sub-locations), ?flagged,
    ?consent (the tracing request's), ?owner=me, ?sort, ?page, ?per_page."""

    age_min = query_integer()
    age_max = query_integer()
    flagged = query_boolean(metadata={"description": "true: only traces with an open flag."})
    consent = query_boolean(metadata={"description": "The inquirer's consent for tracing given or not."})
    sort = choice(TRACE_SORTS, load_default="updated")


class TraceSearchSchema(_TraceFilters, SearchSchema):
    age_min = integer(maximum=130)
    age_max = integer(maximum=130)
    flagged = boolean()
    consent = boolean()


class TracingRequestCreateSchema(InputSchema):
    """Register an inquirer (`data`) and the children they look for (`traces`, one form each)."""

    data = record_data()
    traces = fields.List(
        fields.Dict(keys=fields.String(), error_messages=messages(
            invalid=_l("Send each child's fields as a JSON object."))),
        required=True, validate=validate.Length(min=1, max=MAX_TRACES, error=_l(
            "Send from {min} to {max} children.")),
        error_messages=messages(invalid=_l("Enter a list.")),
        metadata={"description": "The sought children's form values, one object per child."})
    draft = boolean()


class TraceCreateSchema(InputSchema):
    """Add one more sought child to an open tracing request."""

    data = record_data()
    draft = boolean()


class TraceStatusSchema(InputSchema):
    """Set a trace's tracing status by hand: open, in_progress or closed (the other statuses belong to
    the matching and verification workflow). Closing and reopening need a reason; `version`, if
    sent, refuses the change when someone saved the trace since (409)."""

    tracing_status = choice(TRACE_STATUSES, required=True)
    reason = text(2000)
    version = integer(minimum=1)


class TracingRequestCloseSchema(InputSchema):
    """Close (with every trace in it) or reopen a tracing request, with the reason."""

    reason = text(2000, required=True)
