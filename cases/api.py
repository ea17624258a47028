"""JSON API for cases (/api/v1/cases...): list, search, read, register, update with
the version, close and reopen; approvals of the case plan and closure
(request, queue, approve, reject, cancel), the approval types in use, and
reassignment of cases; history, notes, flags and files come from
app.records.api.add_record_api_routes.

Same rules as the pages: every route loads the case through
get_in_scope_or_404 (403 without the permission, 404 out of scope, both
audited); lists and searches only ever query the caller's scope; `data` holds
only the fields the caller may read (S3); a body may carry only the keys its
schema lists (S4). Not logged in: 401. Session callers send X-CSRFToken on
writes; API token callers need none. Each handler parses, calls one operation
(which audits), and commits once.
"""
from __future__ import annotations

from app.records.filters import person_filters

from flask import Blueprint, abort, g, jsonify, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import asc, desc, exists, select
from sqlalchemy.orm import selectinload

from app.api import InvalidInput, created, json_body, load_input
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
from cases import approvals
from cases import operations as ops
from cases import schemas
from cases.models import APPROVAL_PENDING, APPROVAL_TYPES, Case, CaseApproval

bp = Blueprint("cases_api", __name__, url_prefix="/api/v1")

KIND = RecordApi(model=Case, path="/cases", name="case", label="case", tag="Cases", read=ops.CASES_READ,
                 update=ops.CASES_UPDATE, resolve_flags=ops.CASES_RESOLVE_FLAGS)
add_record_api_routes(bp, KIND)
TAGS = (KIND.tag,)

SORTS = {
    "updated": desc(Case.updated_at), "created": desc(Case.created_at), "name": asc(Case.display_name),
    "age": asc(Case.age), "short_id": asc(Case.short_id),
}


def _dump(records) -> list[dict]:
    return schemas.CaseSchema(many=True, readable=readable("case")).dump(records)


def _dump_one(case: Case) -> dict:
    return schemas.CaseSchema(readable=readable("case")).dump(case)


def _filtered(args: dict):
    """The caller's cases matching the list filters (the HTML list's, by the same names)."""
    query = select(Case).where(scope_filter(current_user, Case)).options(
        selectinload(Case.owner), selectinload(Case.agency))
    if args.get("status"):
        query = query.where(Case.status == args["status"])
    if args.get("stage"):
        query = query.where(Case.workflow_stage == args["stage"])
    query = person_filters(query, Case, args)
    if args.get("owner") == "me":
        query = query.where(Case.owner_id == current_user.id)
    if args.get("flagged") is not None:
        flagged = exists().where(RecordFlag.record_type == "case", RecordFlag.record_id == Case.id,
                                 RecordFlag.resolved_at.is_(None))
        query = query.where(flagged if args["flagged"] else ~flagged)
    if args.get("consent") is not None:
        query = query.where(Case.is_consent_for_tracing.is_(args["consent"]))
    return query


def _audited_filters(args: dict) -> dict:
    return {key: value for key, value in args.items() if key not in ("q", "page", "per_page")}


@bp.get("/cases")
@api_doc("List the cases in the caller's scope", tags=TAGS, query=schemas.CaseListArgsSchema,
         responses={200: Page(schemas.CaseSchema)}, errors=(403, 422))
@require(ops.CASES_READ)
def list_cases():
    args = load_input(schemas.CaseListArgsSchema(), request.args.to_dict())
    query = _filtered(args).order_by(SORTS[args["sort"]], Case.id)
    body = paginated(query, _dump, args)
    record_audit("case.list", "case", None, detail={"filters": _audited_filters(args), "search": False,
                                                     "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.post("/cases/search")
@api_doc("Search the caller's cases by short id, phone or name", tags=TAGS, body=schemas.CaseSearchSchema,
         responses={200: Items(schemas.CaseSchema)}, errors=(403, 422),
         description="Names match across spellings (Mohamed finds Muhammad). Best matches first. The text "
                     "travels in the body so names never appear in URLs or logs.")
@require(ops.CASES_READ)
def search_cases():
    args = load_input(schemas.CaseSearchSchema(), json_body())
    results = search_records(Case, _filtered(args), args["q"], limit=args["limit"])
    record_audit("case.list", "case", None, detail={"filters": _audited_filters(args), "search": True,
                                                     "shown": len(results)})
    db.session.commit()
    return jsonify({"items": _dump(results)})


@bp.post("/cases")
@api_doc("Register a child", tags=TAGS, body=schemas.CaseCreateSchema, responses={201: schemas.CaseSchema},
         errors=(403, 422), response_headers={201: {"Location": "The new case's URL."}},
         description="The case belongs to the caller, their agency and their groups. Search first "
                     "(POST /api/v1/cases/search) so the same child is not registered twice.")
@require(ops.CASES_CREATE)
def create_case():
    from forms.operations import FormValidationError
    body = load_input(schemas.CaseCreateSchema(), json_body())
    try:
        case = ops.create_case(current_user, body["data"], draft=body.get("draft", False))
    except FormValidationError as error:
        raise form_errors(error) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return created(_dump_one(case), url_for(".get_case", record_id=case.id))


@bp.get("/cases/<uuid:record_id>")
@api_doc("Read a case", tags=TAGS, responses={200: schemas.CaseSchema}, errors=(403, 404))
@login_required
def get_case(record_id):
    case = load_record(KIND, record_id)
    record_audit("case.view", "case", case.id)
    db.session.commit()
    return jsonify(_dump_one(case))


@bp.patch("/cases/<uuid:record_id>")
@api_doc("Change a case's form values", tags=TAGS, body=RecordUpdateSchema, responses={200: schemas.CaseSchema},
         errors=(403, 404, 409, 422), conflict=RecordConflictSchema,
         description="Send the `version` you read. If someone saved the case since, nothing is saved and the "
                     "answer is 409 with both versions. Fields not sent keep their values.")
@login_required
def update_case(record_id):
    from forms.operations import FormValidationError
    case = load_record(KIND, record_id, ops.CASES_UPDATE)
    body = load_input(RecordUpdateSchema(), json_body())
    try:
        ops.update_case(case, current_user, body["data"], body["version"], draft=body.get("draft", False))
    except EditConflict:
        return conflict_response(KIND, record_id, ops.CASES_UPDATE, body["version"], body["data"])
    except FormValidationError as error:
        raise form_errors(error) from error
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_dump_one(case))


def _close_or_reopen(record_id, operation):
    case = load_record(KIND, record_id, ops.CASES_CLOSE)
    body = load_input(schemas.CaseCloseSchema(), json_body())
    try:
        operation(case, current_user, body["reason"], expected_version=body.get("version"))
    except EditConflict:
        return conflict_response(KIND, record_id, ops.CASES_CLOSE, body["version"], {"reason": body["reason"]})
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(_dump_one(case))


@bp.post("/cases/<uuid:record_id>/close")
@api_doc("Close a case, with the reason", tags=TAGS, body=schemas.CaseCloseSchema,
         responses={200: schemas.CaseSchema}, errors=(403, 404, 409, 422), conflict=RecordConflictSchema)
@login_required
def close_case(record_id):
    return _close_or_reopen(record_id, ops.close_case)


@bp.post("/cases/<uuid:record_id>/reopen")
@api_doc("Reopen a closed case, with the reason", tags=TAGS, body=schemas.CaseCloseSchema,
         responses={200: schemas.CaseSchema}, errors=(403, 404, 409, 422), conflict=RecordConflictSchema)
@login_required
def reopen_case(record_id):
    return _close_or_reopen(record_id, ops.reopen_case)


# --- approvals ---------------------------------------------------------------------------------------------

APPROVAL_TAGS = ("Approvals",)


def _approval_refused(error: approvals.ApprovalError):
    """422 with field messages for bad input; 409 with one message when the state forbids it."""
    db.session.rollback()
    if error.status == 422:
        raise InvalidInput(error.errors) from error
    body = schemas.CaseApprovalConflictSchema().dump({"error": {"status": 409, "message": error.message,
                                                           "reference": g.get("request_id", "")}})
    return jsonify(body), 409


@bp.get("/cases/<uuid:record_id>/approvals")
@api_doc("List a case's approval requests, newest first", tags=APPROVAL_TAGS,
         responses={200: Items(schemas.CaseApprovalSchema)}, errors=(403, 404))
@login_required
def list_case_approvals(record_id):
    case = load_record(KIND, record_id)
    record_audit("case.approvals_view", "case", case.id)
    db.session.commit()
    return jsonify({"items": schemas.CaseApprovalSchema(many=True).dump(approvals.approvals_of(case))})


@bp.post("/cases/<uuid:record_id>/approvals")
@api_doc("Ask a supervisor to approve the case plan or the closure", tags=APPROVAL_TAGS,
         body=schemas.CaseApprovalRequestSchema, responses={201: schemas.CaseApprovalSchema}, errors=(403, 404, 409, 422),
         conflict=schemas.CaseApprovalConflictSchema,
         description="The supervisors of the case's groups are notified. 422: the type is not in use, a "
                     "closure without `note`, or a case plan not written yet. 409: a request of the same "
                     "type is already waiting, or the case is closed.")
@login_required
def request_case_approval(record_id):
    case = load_record(KIND, record_id, ops.CASES_REQUEST_APPROVAL)
    body = load_input(schemas.CaseApprovalRequestSchema(), json_body())
    try:
        approval = approvals.request_approval(case, current_user, body["approval_type"], body.get("note", ""))
    except approvals.ApprovalError as error:
        return _approval_refused(error)
    db.session.commit()
    return created(schemas.CaseApprovalSchema().dump(approval), url_for(".list_case_approvals", record_id=case.id))


@bp.get("/approvals")
@api_doc("The approval queue: requests on cases in the caller's scope", tags=APPROVAL_TAGS,
         query=schemas.CaseApprovalListArgsSchema, responses={200: Page(schemas.CaseApprovalSchema)}, errors=(403, 422),
         description="status=pending (the default) lists what the caller may decide, oldest first: never "
                     "their own requests nor requests on cases they own. Other statuses list decided "
                     "requests in the caller's scope, newest first.")
@require(ops.CASES_APPROVE)
def list_approvals():
    args = load_input(schemas.CaseApprovalListArgsSchema(), request.args.to_dict())
    if args["status"] == APPROVAL_PENDING:
        query = approvals.approval_queue(current_user, args.get("type"))
    else:
        query = (select(CaseApproval).join(Case, Case.id == CaseApproval.case_id)
                 .where(CaseApproval.status == args["status"], scope_filter(current_user, Case))
                 .order_by(CaseApproval.decided_at.desc(), CaseApproval.id.desc()))
        if args.get("type"):
            query = query.where(CaseApproval.approval_type == args["type"])
    body = paginated(query, lambda items: schemas.CaseApprovalSchema(many=True).dump(items), args)
    record_audit("case.approvals_list", "case_approval", None, detail={
        "status": args["status"], "type": args.get("type"), "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


def _decide(approval_id: int, permission: str, operation, body_schema):
    approval = approvals.load_approval(approval_id, permission, current_user)
    body = load_input(body_schema(), json_body())
    try:
        operation(approval, body)
    except approvals.ApprovalError as error:
        return _approval_refused(error)
    db.session.commit()
    return jsonify(schemas.CaseApprovalSchema().dump(approval))


DECISION_DOC = ("403: the caller made the request or owns the case (nobody approves their own work), or "
                "lacks the permission. 404: the case is outside the caller's scope. 409: someone decided "
                "first, or the requester cancelled.")


@bp.post("/approvals/<int:approval_id>/approve")
@api_doc("Approve a waiting request", tags=APPROVAL_TAGS, body=schemas.CaseApprovalDecisionSchema,
         responses={200: schemas.CaseApprovalSchema}, errors=(403, 404, 409, 422), conflict=schemas.CaseApprovalConflictSchema,
         description="A closure closes the case with the requested reason; a case plan moves the case to "
                     "the services stage. " + DECISION_DOC)
@login_required
def approve_approval(approval_id):
    return _decide(approval_id, ops.CASES_APPROVE, lambda approval, body: approvals.decide_approval(
        approval, current_user, True, body.get("comment", "")), schemas.CaseApprovalDecisionSchema)


@bp.post("/approvals/<int:approval_id>/reject")
@api_doc("Reject a waiting request, saying why", tags=APPROVAL_TAGS, body=schemas.CaseApprovalDecisionSchema,
         responses={200: schemas.CaseApprovalSchema}, errors=(403, 404, 409, 422), conflict=schemas.CaseApprovalConflictSchema,
         description="`comment` is required. " + DECISION_DOC)
@login_required
def reject_approval(approval_id):
    return _decide(approval_id, ops.CASES_APPROVE, lambda approval, body: approvals.decide_approval(
        approval, current_user, False, body.get("comment", "")), schemas.CaseApprovalDecisionSchema)


@bp.post("/approvals/<int:approval_id>/cancel")
@api_doc("Cancel one's own waiting request", tags=APPROVAL_TAGS, body=schemas.CaseApprovalCancelSchema,
         responses={200: schemas.CaseApprovalSchema}, errors=(403, 404, 409), conflict=schemas.CaseApprovalConflictSchema,
         description="Only the requester may cancel (403 for anyone else); 409 once it is decided.")
@login_required
def cancel_approval(approval_id):
    return _decide(approval_id, ops.CASES_REQUEST_APPROVAL,
                   lambda approval, body: approvals.cancel_approval(approval, current_user),
                   schemas.CaseApprovalCancelSchema)


@bp.get("/approval-types")
@api_doc("The approval types and whether each is in use", tags=APPROVAL_TAGS,
         responses={200: Items(schemas.CaseApprovalTypeSchema)})
@login_required
def list_approval_types():
    settings = approvals.approval_settings()
    return jsonify({"items": schemas.CaseApprovalTypeSchema(many=True).dump(
        [{"approval_type": code, "is_required": settings[code]} for code in APPROVAL_TYPES])})


@bp.patch("/approval-types/<approval_type>")
@api_doc("Turn an approval type on or off", tags=APPROVAL_TAGS, body=schemas.CaseApprovalTypeUpdateSchema,
         responses={200: schemas.CaseApprovalTypeSchema}, errors=(403, 404, 422), session_only=True,
         description="Administrators, with a browser session. Requests already waiting stay decidable.")
@require(ops.APPROVALS_CONFIGURE)
def update_approval_type(approval_type):
    if approval_type not in APPROVAL_TYPES:
        abort(404)
    body = load_input(schemas.CaseApprovalTypeUpdateSchema(), json_body())
    approvals.set_approval_required(approval_type, body["is_required"], current_user)
    db.session.commit()
    return jsonify(schemas.CaseApprovalTypeSchema().dump({"approval_type": approval_type,
                                                      "is_required": approvals.approval_required(approval_type)}))


# --- assignment --------------------------------------------------------------------------------------------

@bp.post("/cases/assign")
@api_doc("Reassign cases to another user of the caller's teams", tags=TAGS, body=schemas.CaseAssignSchema,
         responses={200: schemas.CaseAssignResultSchema}, errors=(403, 404, 422),
         description="All or none: if any case is missing or outside the caller's scope the answer is 404 "
                     "and nothing changes. The cases take the new owner's groups; the new owner is notified.")
@require(ops.CASES_ASSIGN)
def assign_cases():
    from app.users.models import User
    body = load_input(schemas.CaseAssignSchema(), json_body())
    cases = ops.cases_in_scope_or_404(current_user, [str(i) for i in body["case_ids"]], ops.CASES_ASSIGN)
    new_owner = db.session.get(User, body["owner_id"])
    try:
        moved = ops.assign_cases(cases, new_owner, current_user, body.get("note", ""))
    except RecordError as error:
        raise record_errors(error) from error
    db.session.commit()
    return jsonify(schemas.CaseAssignResultSchema().dump({"assigned": len(moved), "case_ids": [c.id for c in moved]}))
