"""JSON API for tracing requests and traces (/api/v1/tracing-requests..., /api/v1/traces...):
list, search, read, register (an inquirer with the children sought), add a
trace, update with the version, close and reopen a request; history, notes,
flags and files of both come from app.records.api.add_record_api_routes.

Same rules as the pages: every route loads its record through
get_in_scope_or_404 (403 without the permission, 404 out of scope, both
audited); lists and searches only ever query the caller's scope; `data` holds
only the fields the caller may read (S3); a body may carry only the keys its
schema lists (S4). Each handler parses, calls one operation (which audits),
and commits once.
"""
from __future__ import annotations

from app.records.filters import person_filters

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import asc, desc, exists, select
from sqlalchemy.orm import selectinload

from app.api import created, json_body, load_input
from app.audit.operations import record_audit
from app.extensions import db
from app.openapi import Items, Page, api_doc
from app.permissions import require, scope_filter
from app.records.api import (
    RecordApi,
    add_record_api_routes,
    conflict_response,
    form_errors,
    load_record,
    paginated,
    readable,
    record_errors,
)
from app.records.models import RecordFlag
from app.records.operations import EditConflict, RecordError
from app.records.schemas import RecordConflictSchema, RecordUpdateSchema
from app.records.search import search_records
from tracing import operations as ops
from tracing import schemas
from tracing.models import TRACE_CLOSED, Trace, TracingRequest

bp = Blueprint("tracing_api", __name__, url_prefix="/api/v1")

REQUESTS = RecordApi(model=TracingRequest, path="/tracing-requests", name="tracing_request",
                     label="tracing request", tag="Tracing requests", read=ops.TRACING_READ,
                     update=ops.TRACING_UPDATE, resolve_flags=ops.TRACING_RESOLVE_FLAGS)
TRACES = RecordApi(model=Trace, path="/traces", name="trace", label="trace", tag="Traces", read=ops.TRACING_READ,
                   update=ops.TRACING_UPDATE, resolve_flags=ops.TRACING_RESOLVE_FLAGS)
add_record_api_routes(bp, REQUESTS)
add_record_api_routes(bp, TRACES)

REQUEST_SORTS = {
    "updated": desc(TracingRequest.updated_at), "created": desc(TracingRequest.created_at),
    "name": asc(TracingRequest.display_name), "short_id": asc(TracingRequest.short_id),
    "inquiry_date": desc(TracingRequest.inquiry_date),
}
TRACE_SORTS = {
    "updated": desc(Trace.updated_at), "created": desc(Trace.created_at), "name": asc(Trace.display_name),
    "age": asc(Trace.age), "short_id": asc(Trace.short_id),
}


def _request_schema(many: bool = False) -> schemas.TracingRequestSchema:
    return schemas.TracingRequestSchema(many=many, readable=readable("tracing_request"),
                                        trace_readable=readable("trace"))


def _trace_schema(many: bool = False) -> schemas.TraceSchema:
    return schemas.TraceSchema(many=many, readable=readable("trace"))


def _flagged(model, record_type: str):
    return exists().where(RecordFlag.record_type == record_type, RecordFlag.record_id == model.id,
                          RecordFlag.resolved_at.is_(None))


def _audited_filters(args: dict) -> dict:
    return {key: value for key, value in args.items() if key not in ("q", "page", "per_page")}


# --- tracing requests ---------------------------------------------------------------------------------

def _filtered_requests(args: dict):
    query = select(TracingRequest).where(scope_filter(current_user, TracingRequest)).options(
        selectinload(TracingRequest.owner), selectinload(TracingRequest.agency),
        selectinload(TracingRequest.traces))
    if args.get("status"):
        query = query.where(TracingRequest.status == args["status"])
    if args.get("owner") == "me":
        query = query.where(TracingRequest.owner_id == current_user.id)
    if args.get("flagged") is not None:
        flagged = _flagged(TracingRequest, "tracing_request")
        query = query.where(flagged if args["flagged"] else ~flagged)
    if args.get("consent") is not None:
        query = query.where(TracingRequest.is_consent_for_tracing.is_(args["consent"]))
    return query


@bp.get("/tracing-requests")
@api_doc("List the tracing requests in the caller's scope", tags=(REQUESTS.tag,),
         query=schemas.TracingRequestListArgsSchema, responses={200: Page(schemas.TracingRequestSchema)},
         errors=(403, 422))
@require(ops.TRACING_READ)
def list_tracing_requests():
    args = load_input(schemas.TracingRequestListArgsSchema(), request.args.to_dict())
    query = _filtered_requests(args).order_by(REQUEST_SORTS[args["sort"]], TracingRequest.id)
    body = paginated(query, lambda rows: _request_schema(many=True).dump(rows), args)
    record_audit("tracing_request.list", "tracing_request", None, detail={
        "filters": _audited_filters(args), "search": False, "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.post("/tracing-requests/search")
@api_doc("Search the caller's tracing requests by short id, phone or the inquirer's name",
         tags=(REQUESTS.tag,), body=schemas.TracingRequestSearchSchema,
         responses={200: Items(schemas.TracingRequestSchema)}, errors=(403, 422),
         description="The text travels in the body so names never appear in URLs or logs.")
@require(ops.TRACING_READ)
def search_tracing_requests():
    args = load_input(schemas.TracingRequestSearchSchema(), json_body())
    results = search_records(TracingRequest, _filtered_requests(args), args["q"], limit=args["limit"])
    record_audit("tracing_request.list", "tracing_request", None, detail={
        "filters": _audited_filters(args), "search": True, "shown": len(results)})
    db.session.commit()
    return jsonify({"items": _request_schema(many=True).dump(results)})


@bp.post("/tracing-requests")
@api_doc("Register a tracing request: the inquirer and the children they look for", tags=(REQUESTS.tag,),
         body=schemas.TracingRequestCreateSchema, responses={201: schemas.TracingRequestSchema},
         errors=(403, 422), response_headers={201: {"Location": "The new tracing request's URL."}},
         description="Errors in a child's values are reported under traces.<index>.")
@require(ops.TRACING_CREATE)
def create_tracing_request():
    from forms.operations import FormValidationError
    body = load_input(schemas.TracingRequestCreateSchema(), json_body())
    try:
        record = ops.create_tracing_request(current_user, body["data"], body["traces"],
                                            draft=body.get("draft", False))
    except FormValidationError as error:
        raise form_errors(error, with_traces=True) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return created(_request_schema().dump(record), url_for(".get_tracing_request", record_id=record.id))


@bp.get("/tracing-requests/<uuid:record_id>")
@api_doc("Read a tracing request with its traces", tags=(REQUESTS.tag,),
         responses={200: schemas.TracingRequestSchema}, errors=(403, 404))
@login_required
def get_tracing_request(record_id):
    record = load_record(REQUESTS, record_id)
    record_audit("tracing_request.view", "tracing_request", record.id,
                 detail={"traces": [trace.id for trace in record.traces]})
    db.session.commit()
    return jsonify(_request_schema().dump(record))


@bp.patch("/tracing-requests/<uuid:record_id>")
@api_doc("Change the inquirer's form values", tags=(REQUESTS.tag,), body=RecordUpdateSchema,
         responses={200: schemas.TracingRequestSchema}, errors=(403, 404, 409, 422),
         conflict=RecordConflictSchema,
         description="Send the `version` you read; if someone saved since, nothing is saved (409).")
@login_required
def update_tracing_request(record_id):
    from forms.operations import FormValidationError
    record = load_record(REQUESTS, record_id, ops.TRACING_UPDATE)
    body = load_input(RecordUpdateSchema(), json_body())
    try:
        ops.update_tracing_request(record, current_user, body["data"], body["version"],
                                   draft=body.get("draft", False))
    except EditConflict:
        return conflict_response(REQUESTS, record_id, ops.TRACING_UPDATE, body["version"], body["data"])
    except FormValidationError as error:
        raise form_errors(error) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_request_schema().dump(record))


@bp.post("/tracing-requests/<uuid:record_id>/traces")
@api_doc("Add a child sought to an open tracing request", tags=(REQUESTS.tag, TRACES.tag),
         body=schemas.TraceCreateSchema, responses={201: schemas.TraceSchema}, errors=(403, 404, 422),
         response_headers={201: {"Location": "The new trace's URL."}})
@login_required
def add_trace(record_id):
    from forms.operations import FormValidationError
    record = load_record(REQUESTS, record_id, ops.TRACING_UPDATE)
    body = load_input(schemas.TraceCreateSchema(), json_body())
    try:
        trace = ops.add_trace(record, current_user, body["data"], draft=body.get("draft", False))
    except FormValidationError as error:
        raise form_errors(error) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return created(_trace_schema().dump(trace), url_for(".get_trace", record_id=trace.id))


def _close_or_reopen(record_id, operation):
    record = load_record(REQUESTS, record_id, ops.TRACING_CLOSE)
    body = load_input(schemas.TracingRequestCloseSchema(), json_body())
    try:
        operation(record, current_user, body["reason"])
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_request_schema().dump(record))


@bp.post("/tracing-requests/<uuid:record_id>/close")
@api_doc("Close a tracing request and every trace in it, with the reason", tags=(REQUESTS.tag,),
         body=schemas.TracingRequestCloseSchema, responses={200: schemas.TracingRequestSchema},
         errors=(403, 404, 422))
@login_required
def close_tracing_request(record_id):
    return _close_or_reopen(record_id, ops.close_tracing_request)


@bp.post("/tracing-requests/<uuid:record_id>/reopen")
@api_doc("Reopen a closed tracing request (and its closed traces), with the reason", tags=(REQUESTS.tag,),
         body=schemas.TracingRequestCloseSchema, responses={200: schemas.TracingRequestSchema},
         errors=(403, 404, 422))
@login_required
def reopen_tracing_request(record_id):
    return _close_or_reopen(record_id, ops.reopen_tracing_request)


# --- traces -----------------------------------------------------------------------------------------

def _filtered_traces(args: dict):
    query = select(Trace).where(scope_filter(current_user, Trace)).options(
        selectinload(Trace.tracing_request).selectinload(TracingRequest.owner),
        selectinload(Trace.tracing_request).selectinload(TracingRequest.agency))
    if args.get("status"):
        query = query.where(Trace.status == args["status"])
    if args.get("tracing_status"):
        query = query.where(Trace.tracing_status == args["tracing_status"])
    query = person_filters(query, Trace, args)
    if args.get("owner") == "me":
        query = query.where(Trace.owner_id == current_user.id)
    if args.get("flagged") is not None:
        flagged = _flagged(Trace, "trace")
        query = query.where(flagged if args["flagged"] else ~flagged)
    if args.get("consent") is not None:
        query = query.where(Trace.tracing_request_id.in_(select(TracingRequest.id).where(
            TracingRequest.is_consent_for_tracing.is_(args["consent"]))))
    return query


@bp.get("/traces")
@api_doc("List the traces (children sought) in the caller's scope", tags=(TRACES.tag,),
         query=schemas.TraceListArgsSchema, responses={200: Page(schemas.TraceSchema)}, errors=(403, 422))
@require(ops.TRACING_READ)
def list_traces():
    args = load_input(schemas.TraceListArgsSchema(), request.args.to_dict())
    query = _filtered_traces(args).order_by(TRACE_SORTS[args["sort"]], Trace.id)
    body = paginated(query, lambda rows: _trace_schema(many=True).dump(rows), args)
    record_audit("trace.list", "trace", None, detail={"filters": _audited_filters(args), "search": False,
                                                       "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.post("/traces/search")
@api_doc("Search the caller's traces by short id or the sought child's name", tags=(TRACES.tag,),
         body=schemas.TraceSearchSchema, responses={200: Items(schemas.TraceSchema)}, errors=(403, 422),
         description="Names match across spellings. The text travels in the body so names never appear in "
                     "URLs or logs.")
@require(ops.TRACING_READ)
def search_traces():
    args = load_input(schemas.TraceSearchSchema(), json_body())
    results = search_records(Trace, _filtered_traces(args), args["q"], limit=args["limit"])
    record_audit("trace.list", "trace", None, detail={"filters": _audited_filters(args), "search": True,
                                                       "shown": len(results)})
    db.session.commit()
    return jsonify({"items": _trace_schema(many=True).dump(results)})


@bp.get("/traces/<uuid:record_id>")
@api_doc("Read a trace", tags=(TRACES.tag,), responses={200: schemas.TraceSchema}, errors=(403, 404))
@login_required
def get_trace(record_id):
    trace = load_record(TRACES, record_id)
    record_audit("trace.view", "trace", trace.id)
    db.session.commit()
    return jsonify(_trace_schema().dump(trace))


@bp.patch("/traces/<uuid:record_id>")
@api_doc("Change a sought child's form values", tags=(TRACES.tag,), body=RecordUpdateSchema,
         responses={200: schemas.TraceSchema}, errors=(403, 404, 409, 422), conflict=RecordConflictSchema,
         description="Send the `version` you read; if someone saved since, nothing is saved (409). The "
                     "tracing status is changed by the matching and reunification steps, not here.")
@login_required
def update_trace(record_id):
    from forms.operations import FormValidationError
    trace = load_record(TRACES, record_id, ops.TRACING_UPDATE)
    body = load_input(RecordUpdateSchema(), json_body())
    try:
        ops.update_trace(trace, current_user, body["data"], body["version"], draft=body.get("draft", False))
    except EditConflict:
        return conflict_response(TRACES, record_id, ops.TRACING_UPDATE, body["version"], body["data"])
    except FormValidationError as error:
        raise form_errors(error) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_trace_schema().dump(trace))


@bp.post("/traces/<uuid:record_id>/status")
@api_doc("Set a trace's tracing status by hand (open, in progress, closed)", tags=(TRACES.tag,),
         body=schemas.TraceStatusSchema, responses={200: schemas.TraceSchema}, errors=(403, 404, 409, 422),
         conflict=RecordConflictSchema,
         description="Closing and reopening a trace need the permission to close tracing requests and a "
                     "reason; starting or pausing tracing needs the permission to edit. Match proposed, "
                     "confirmed and reunified are set by the matching and verification workflow.")
@login_required
def change_trace_status(record_id):
    trace = load_record(TRACES, record_id)
    body = load_input(schemas.TraceStatusSchema(), json_body())
    closing_or_reopening = TRACE_CLOSED in (body["tracing_status"], trace.tracing_status)
    permission = ops.TRACING_CLOSE if closing_or_reopening else ops.TRACING_UPDATE
    trace = load_record(TRACES, record_id, permission)
    try:
        ops.change_trace_status(trace, current_user, body["tracing_status"], body.get("reason") or "",
                                expected_version=body.get("version"))
    except EditConflict:
        return conflict_response(TRACES, record_id, permission, body["version"],
                                 {key: body[key] for key in ("tracing_status", "reason") if key in body})
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_trace_schema().dump(trace))
