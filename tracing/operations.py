"""Operations on tracing requests and traces.

A tracing request holds the inquirer's data; each trace holds one sought
child's data and its own tracing status. Traces share the request's owner,
agency and groups (scope), kept in step here. Like every operation, these
flush; the caller commits.
"""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.audit.operations import record_audit
from app.db import new_uuid, utcnow
from app.extensions import db
from app.permissions import ROLE_ADMINISTRATOR, ROLE_SUPERVISOR, ROLE_TRACING_OFFICER, register_permission
from app.records import hooks
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from app.records.operations import (
    RecordError,
    check_version,
    diff_data,
    ensure_not_anonymised,
    flush_with_version_check,
    insert_with_short_id,
    record_change,
)
from app.records.search import index_names
from app.records.values import denormalised_values, digits, display_name, phone_keys
from tracing.models import TRACE_CLOSED, TRACE_IN_PROGRESS, TRACE_OPEN, Trace, TracingRequest

TRACING_READ = register_permission("tracing", "read", _l("See tracing requests and traces in one's scope"),
                                   (ROLE_TRACING_OFFICER, ROLE_SUPERVISOR))
TRACING_CREATE = register_permission("tracing", "create", _l("Register tracing requests"),
                                     (ROLE_TRACING_OFFICER,))
TRACING_UPDATE = register_permission("tracing", "update", _l("Edit tracing requests and traces, add notes"),
                                     (ROLE_TRACING_OFFICER,))
TRACING_CLOSE = register_permission("tracing", "close", _l("Close and reopen tracing requests"),
                                    (ROLE_TRACING_OFFICER, ROLE_SUPERVISOR))
TRACING_RESOLVE_FLAGS = register_permission("tracing", "resolve_flags", _l("Resolve flags on tracing requests"),
                                            (ROLE_SUPERVISOR,))
TRACING_EXPORT = register_permission("tracing", "export", _l("Export tracing requests in bulk (CSV, XLSX)"),
                                     (ROLE_SUPERVISOR,))
TRACING_IMPORT = register_permission("tracing", "import", _l("Import tracing requests from CSV or XLSX"),
                                     (ROLE_TRACING_OFFICER, ROLE_SUPERVISOR, ROLE_ADMINISTRATOR))

CONSENT_FIELD = "consent_for_tracing"
INQUIRY_DATE_FIELD = "inquiry_date"


def _apply_request_values(request: TracingRequest, data: dict) -> None:
    request.data = data
    request.display_name = display_name("tracing_request", data, ("inquirer_name", "full_name"))
    phones = phone_keys("tracing_request")
    request.phone_digits = digits(next((data[key] for key in phones if data.get(key)), None))
    request.is_consent_for_tracing = bool(data.get(CONSENT_FIELD))
    inquiry = data.get(INQUIRY_DATE_FIELD)
    request.inquiry_date = date.fromisoformat(inquiry) if isinstance(inquiry, str) and inquiry else None


def _apply_trace_values(trace: Trace, data: dict) -> None:
    trace.data = data
    values = denormalised_values("trace", data)
    trace.display_name = values["display_name"]
    trace.sex = values["sex"]
    trace.age = values["age"]
    trace.location_code = values["location_code"]


def create_tracing_request(user, data: dict, traces: list[dict], *, draft: bool = False,
                           source_id: str | None = None, trace_source_ids: list[str | None] | None = None,
                           action: str = "create") -> TracingRequest:
    """Register an inquirer and the children they look for (at least one)."""
    from forms.operations import FormValidationError, validate_record_data
    if not traces:
        raise RecordError({"traces": [_("Add at least one child that the inquirer is looking for.")]})
    errors: dict[str, list[str]] = {}
    try:
        cleaned = validate_record_data("tracing_request", data, user, draft=draft)
    except FormValidationError as error:
        errors.update(error.errors)
        cleaned = {}
    cleaned_traces = []
    for index, trace_data in enumerate(traces):
        try:
            cleaned_traces.append(validate_record_data("trace", trace_data, user, draft=draft))
        except FormValidationError as error:
            errors.update({f"traces.{index}.{key}": messages for key, messages in error.errors.items()})
    if errors:
        raise FormValidationError(errors)
    request = TracingRequest(id=new_uuid(), owner_id=user.id, agency_id=user.agency_id, created_by_id=user.id,
                             updated_by_id=user.id, status=STATUS_OPEN, source_id=source_id)
    request.groups = list(user.groups)
    _apply_request_values(request, cleaned)
    insert_with_short_id(request, TracingRequest)
    index_names(request)
    record_change(request, action, user, diff_data({}, cleaned))
    record_audit(f"tracing_request.{action}", "tracing_request", request.id,
                 detail={"fields": sorted(cleaned), "traces": len(cleaned_traces)}, user=user)
    source_ids = trace_source_ids or [None] * len(cleaned_traces)
    for trace_data, trace_source_id in zip(cleaned_traces, source_ids, strict=True):
        _insert_trace(request, user, trace_data, trace_source_id, action)
    return request


def _insert_trace(request: TracingRequest, user, cleaned: dict, source_id: str | None, action: str) -> Trace:
    trace = Trace(id=new_uuid(), tracing_request_id=request.id, owner_id=request.owner_id, agency_id=request.agency_id,
                  created_by_id=user.id, updated_by_id=user.id, status=STATUS_OPEN,
                  tracing_status=TRACE_OPEN, source_id=source_id)
    _apply_trace_values(trace, cleaned)
    insert_with_short_id(trace, Trace)
    db.session.expire(request, ["traces"])  # the collection now holds the new trace
    index_names(trace)
    record_change(trace, action, user, diff_data({}, cleaned))
    record_audit(f"trace.{action}", "trace", trace.id,
                 detail={"fields": sorted(cleaned), "tracing_request": request.id}, user=user)
    hooks.record_saved(trace, set(cleaned))
    return trace


def add_trace(request: TracingRequest, user, data: dict, *, draft: bool = False,
              source_id: str | None = None) -> Trace:
    """Add one more sought child to an open tracing request."""
    from forms.operations import validate_record_data
    if request.status == STATUS_CLOSED:
        raise RecordError({"status": [_("This tracing request is closed; reopen it first.")]})
    cleaned = validate_record_data("trace", data, user, draft=draft)
    return _insert_trace(request, user, cleaned, source_id, "create")


def update_tracing_request(request: TracingRequest, user, data: dict, expected_version: int | None, *,
                           draft: bool = False, action: str = "update") -> list[dict]:
    ensure_not_anonymised(request)
    from forms.operations import validate_record_data
    check_version(request, expected_version, data)
    cleaned = validate_record_data("tracing_request", data, user, existing=request.data, draft=draft)
    changes = diff_data(request.data or {}, cleaned)
    if not changes:
        return []
    _apply_request_values(request, cleaned)
    request.updated_by_id, request.updated_at = user.id, utcnow()
    flush_with_version_check(request, data)
    index_names(request)
    record_change(request, action, user, changes)
    record_audit(f"tracing_request.{action}", "tracing_request", request.id,
                 detail={"fields": [c["field"] for c in changes]}, user=user)
    # The inquirer's data (names, relationship) matters to matching: every trace is re-examined.
    for trace in request.traces:
        hooks.record_saved(trace, {f"tracing_request.{c['field']}" for c in changes})
    return changes


def update_trace(trace: Trace, user, data: dict, expected_version: int | None, *, draft: bool = False,
                 action: str = "update") -> list[dict]:
    ensure_not_anonymised(trace)
    from forms.operations import validate_record_data
    check_version(trace, expected_version, data)
    cleaned = validate_record_data("trace", data, user, existing=trace.data, draft=draft)
    changes = diff_data(trace.data or {}, cleaned)
    if not changes:
        return []
    _apply_trace_values(trace, cleaned)
    trace.updated_by_id, trace.updated_at = user.id, utcnow()
    flush_with_version_check(trace, data)
    index_names(trace)
    record_change(trace, action, user, changes)
    record_audit(f"trace.{action}", "trace", trace.id, detail={"fields": [c["field"] for c in changes]}, user=user)
    hooks.record_saved(trace, {c["field"] for c in changes})
    return changes


def close_tracing_request(request: TracingRequest, user, reason: str) -> None:
    """Close the request and every trace in it (e.g. the family was found by other means)."""
    reason = (reason or "").strip()
    if request.status == STATUS_CLOSED:
        raise RecordError({"status": [_("This tracing request is already closed.")]})
    if not reason:
        raise RecordError({"reason": [_("Say why the tracing request is closed.")]})
    request.status, request.updated_by_id, request.updated_at = STATUS_CLOSED, user.id, utcnow()
    record_change(request, "close", user, [{"field": "@status", "old": STATUS_OPEN, "new": STATUS_CLOSED}], reason)
    for trace in request.traces:
        if trace.status != STATUS_CLOSED:
            before = trace.tracing_status
            trace.status, trace.tracing_status = STATUS_CLOSED, TRACE_CLOSED
            trace.updated_by_id, trace.updated_at = user.id, utcnow()
            record_change(trace, "close", user, [{"field": "@tracing_status", "old": before, "new": TRACE_CLOSED}],
                          reason)
            hooks.record_saved(trace, {"@status"})
    db.session.flush()
    record_audit("tracing_request.close", "tracing_request", request.id, user=user)


def reopen_tracing_request(request: TracingRequest, user, reason: str) -> None:
    ensure_not_anonymised(request)
    reason = (reason or "").strip()
    if request.status != STATUS_CLOSED:
        raise RecordError({"status": [_("This tracing request is open.")]})
    if not reason:
        raise RecordError({"reason": [_("Say why the tracing request is reopened.")]})
    request.status, request.updated_by_id, request.updated_at = STATUS_OPEN, user.id, utcnow()
    record_change(request, "reopen", user, [{"field": "@status", "old": STATUS_CLOSED, "new": STATUS_OPEN}], reason)
    for trace in request.traces:
        if trace.tracing_status == TRACE_CLOSED:
            trace.status, trace.tracing_status = STATUS_OPEN, TRACE_OPEN
            trace.updated_by_id, trace.updated_at = user.id, utcnow()
            record_change(trace, "reopen", user, [{"field": "@tracing_status", "old": TRACE_CLOSED,
                                                    "new": TRACE_OPEN}], reason)
            hooks.record_saved(trace, {"@status"})
    db.session.flush()
    record_audit("tracing_request.reopen", "tracing_request", request.id, user=user)


# The statuses a tracing officer sets by hand; match proposed, confirmed and reunified belong
# to the matching and verification workflow.
MANUAL_TRACE_STATUSES = (TRACE_OPEN, TRACE_IN_PROGRESS, TRACE_CLOSED)


def change_trace_status(trace: Trace, user, new_status: str, reason: str = "",
                        expected_version: int | None = None) -> None:
    """Set one trace's tracing status by hand: open, tracing in progress or closed.

    Closing a trace (e.g. this child was found, the others are still sought) and reopening
    it need a reason; a trace of a closed request cannot be reopened on its own.
    """
    reason = (reason or "").strip()
    before = trace.tracing_status
    if new_status not in MANUAL_TRACE_STATUSES:
        raise RecordError({"tracing_status": [_("This status is set by the matching and verification workflow.")]})
    if new_status == before:
        raise RecordError({"tracing_status": [_("The trace already has this status.")]})
    if before == TRACE_CLOSED and trace.tracing_request.status == STATUS_CLOSED:
        raise RecordError({"tracing_status": [_("This tracing request is closed; reopen it first.")]})
    if (new_status == TRACE_CLOSED or before == TRACE_CLOSED) and not reason:
        raise RecordError({"reason": [_("Say why the trace is closed or reopened.")]})
    check_version(trace, expected_version, {})
    trace.tracing_status = new_status
    trace.status = STATUS_CLOSED if new_status == TRACE_CLOSED else STATUS_OPEN
    trace.updated_by_id, trace.updated_at = user.id, utcnow()
    flush_with_version_check(trace, {})
    action = "close" if new_status == TRACE_CLOSED else "reopen" if before == TRACE_CLOSED else "update"
    record_change(trace, action, user, [{"field": "@tracing_status", "old": before, "new": new_status}],
                  reason or None)
    record_audit("trace.status_changed", "trace", trace.id, detail={"from": before, "to": new_status}, user=user)
    hooks.record_saved(trace, {"@tracing_status"})
