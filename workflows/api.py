"""JSON API of referrals and transfers, with the pages' rules (workflows.views):

- POST /api/v1/cases/<id>/referrals, /api/v1/cases/<id>/transfers: the case must be in the caller's
  scope (404) and they need the create permission (403); no consent and no override → 422.
- GET /api/v1/referrals?box=received|sent|approval, GET /api/v1/referrals/<id> (the recipient gets
  the shared sections while the referral is active, nothing else), POST .../approve, reject-approval,
  accept, reject, done, revoke. Approving one's own referral is 403 (S5); someone acting first is 409.
- GET /api/v1/transfers?box=received|sent, GET /api/v1/transfers/<id>, POST .../accept, reject, cancel.
"""
from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from marshmallow import Schema, fields, validate

from app.api import (
    InputSchema,
    InvalidInput,
    PageArgsSchema,
    created,
    integer,
    json_body,
    load_input,
    messages,
    text,
)
from app.audit.operations import record_audit
from app.extensions import db
from app.openapi import ErrorDetailSchema, Page, api_doc
from app.records.api import paginated
from workflows import operations as ops
from workflows import views
from workflows.models import REFERRAL_STATUSES, TRANSFER_STATUSES

bp = Blueprint("workflows_api", __name__, url_prefix="/api/v1")
TAGS = ("Referrals and transfers",)


# --- schemas ------------------------------------------------------------------------------------------

class ReferralInputSchema(InputSchema):
    service_type = fields.String(required=True, validate=validate.Length(max=64), error_messages=messages(),
                                 metadata={"description": "A code of the service_type lookup."})
    recipient_agency_id = integer(required=True, minimum=1)
    # Null: anyone of the agency who may receive referrals takes it on by accepting.
    recipient_user_id = integer(allow_none=True, minimum=1)
    sections = fields.List(fields.String(validate=validate.Length(max=100)), required=True,
                           validate=validate.Length(min=1, max=100, error=_l("Choose at least one section to share.")),
                           error_messages=messages(), metadata={"description": "Case form section keys to share."})
    reason = text(4000, required=True)
    override_reason = text(4000, allow_none=True)


class TransferInputSchema(InputSchema):
    to_agency_id = integer(required=True, minimum=1)
    to_user_id = integer(allow_none=True, minimum=1)
    reason = text(4000, required=True)
    override_reason = text(4000, allow_none=True)


class ReferralApprovalSchema(InputSchema):
    comment = text(4000, allow_none=True)


class ReferralRefusalSchema(InputSchema):
    comment = text(4000, required=True)


class WorkflowReasonSchema(InputSchema):
    reason = text(4000, required=True)


class WithdrawalSchema(InputSchema):
    reason = text(4000, allow_none=True)


class ServiceDoneSchema(InputSchema):
    note = text(4000, required=True)


class WorkflowEmptySchema(InputSchema):
    """No fields: send {}."""


class ReferralListArgsSchema(PageArgsSchema):
    box = fields.String(load_default="received", validate=validate.OneOf(
        ("received", "sent", "approval"), error=_l("Choose a listed value.")),
        metadata={"description": "received: addressed to me or my agency; sent: by me; approval: waiting "
                                 "for my approval (supervisors)."})


class TransferListArgsSchema(PageArgsSchema):
    box = fields.String(load_default="received", validate=validate.OneOf(
        ("received", "sent"), error=_l("Choose a listed value.")))


class WorkflowEventSchema(Schema):
    action = fields.String()
    at = fields.DateTime()
    user = fields.Function(lambda e: e.user.full_name if e.user else None,
                           metadata={"openapi": {"type": ["string", "null"]}})
    comment = fields.String(allow_none=True)


def _name(user):
    return user.full_name if user else None


NULLABLE_STRING = {"openapi": {"type": ["string", "null"]}}
STRING = {"openapi": {"type": "string"}}


class ReferralSchema(Schema):
    id = fields.String()
    case_id = fields.String(metadata={"description": "Usable only by callers who have the case in scope."})
    case_short_id = fields.Function(lambda r: r.case.short_id, metadata=STRING)
    service_type = fields.String()
    status = fields.String(validate=validate.OneOf(REFERRAL_STATUSES))
    recipient_agency_id = fields.Integer()
    recipient_agency = fields.Function(lambda r: r.recipient_agency.name, metadata=STRING)
    recipient_user_id = fields.Integer(allow_none=True)
    recipient_user = fields.Function(lambda r: _name(r.recipient_user), metadata=NULLABLE_STRING)
    shared_sections = fields.List(fields.String())
    reason = fields.String()
    requested_by = fields.Function(lambda r: _name(r.requested_by), metadata=NULLABLE_STRING)
    requested_at = fields.DateTime()
    approved_by = fields.Function(lambda r: _name(r.approved_by), metadata=NULLABLE_STRING)
    approval_decided_at = fields.DateTime(allow_none=True)
    answered_by = fields.Function(lambda r: _name(r.answered_by), metadata=NULLABLE_STRING)
    answered_at = fields.DateTime(allow_none=True)
    answer_reason = fields.String(allow_none=True)
    done_at = fields.DateTime(allow_none=True)
    done_note = fields.String(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class ReferralDetailSchema(ReferralSchema):
    approval_comment = fields.String(allow_none=True, metadata={"description": "Only for the sender's side."})
    revoke_reason = fields.String(allow_none=True, metadata={"description": "Only for the sender's side."})
    consent_basis = fields.String(allow_none=True, validate=validate.OneOf(("consent", "override")), metadata={
        "description": "Only for callers with the case in scope."})
    override_reason = fields.String(allow_none=True)
    shared_data = fields.Dict(allow_none=True, metadata={
        "description": "For the recipient while the referral is sent or accepted: the values of the shared "
                       "sections their role may read (no files). Null otherwise."})
    events = fields.Nested(WorkflowEventSchema, many=True)


class TransferSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    case_short_id = fields.Function(lambda t: t.case.short_id, metadata=STRING)
    status = fields.String(validate=validate.OneOf(TRANSFER_STATUSES))
    from_user = fields.Function(lambda t: _name(t.from_user), metadata=NULLABLE_STRING)
    to_agency_id = fields.Integer()
    to_agency = fields.Function(lambda t: t.to_agency.name, metadata=STRING)
    to_user_id = fields.Integer(allow_none=True)
    to_user = fields.Function(lambda t: _name(t.to_user), metadata=NULLABLE_STRING)
    reason = fields.String()
    requested_by = fields.Function(lambda t: _name(t.requested_by), metadata=NULLABLE_STRING)
    requested_at = fields.DateTime()
    answered_by = fields.Function(lambda t: _name(t.answered_by), metadata=NULLABLE_STRING)
    answered_at = fields.DateTime(allow_none=True)
    answer_reason = fields.String(allow_none=True)


class TransferDetailSchema(TransferSchema):
    events = fields.Nested(WorkflowEventSchema, many=True)


class WorkflowConflictSchema(Schema):
    """409: someone acted first, or the referral/transfer is no longer in a state that allows this."""

    error = fields.Nested(ErrorDetailSchema)


# --- helpers ------------------------------------------------------------------------------------------

def _conflict(message: str):
    body = WorkflowConflictSchema().dump({"error": {"status": 409, "message": message,
                                                    "reference": g.get("request_id", "")}})
    return jsonify(body), 409


def _referral_detail(referral) -> dict:
    sender_side = views.sees_case(current_user, referral.case) or referral.requested_by_id == current_user.id
    body = ReferralSchema().dump(referral)
    body.update(events=WorkflowEventSchema(many=True).dump(views.steps_for("referral", referral.id, sender_side)),
                consent_basis=None, override_reason=None, approval_comment=None, revoke_reason=None,
                shared_data=None)
    if sender_side:
        body.update(consent_basis=referral.consent_basis, override_reason=referral.override_reason,
                    approval_comment=referral.approval_comment, revoke_reason=referral.revoke_reason)
    if ops.is_referral_recipient(current_user, referral) and referral.is_active:
        body["shared_data"] = ops.shared_values(referral, current_user)[2]
    return body


def _run(operation, on_success):
    try:
        operation()
    except ops.WorkflowError as error:
        db.session.rollback()
        if error.status == 409:
            return _conflict(error.message)
        raise InvalidInput({k: [str(m) for m in v] for k, v in error.errors.items()}) from error
    db.session.commit()
    return on_success()


# --- referrals ----------------------------------------------------------------------------------------

@bp.post("/cases/<uuid:case_id>/referrals")
@api_doc("Refer a case to a service (it waits for a supervisor's approval)", tags=TAGS, body=ReferralInputSchema,
         responses={201: ReferralDetailSchema}, errors=(403, 404, 409, 422), conflict=WorkflowConflictSchema,
         description="Needs the case's recorded consent to share with services, or the override permission "
                     "and `override_reason`. Only sections the caller can read may be shared.")
@login_required
def create_referral(case_id):
    case = views.load_case(case_id, ops.REFERRALS_CREATE)
    body = load_input(ReferralInputSchema(), json_body())
    holder = {}

    def operation():
        holder["referral"] = ops.refer_case(
            case, current_user, service_type=body["service_type"], recipient_agency_id=body["recipient_agency_id"],
            recipient_user_id=body.get("recipient_user_id"), sections=body["sections"], reason=body["reason"],
            override_reason=body.get("override_reason"))

    return _run(operation, lambda: created(_referral_detail(holder["referral"]),
                                           f"/api/v1/referrals/{holder['referral'].id}"))


@bp.get("/referrals")
@api_doc("Referrals received, sent, or waiting for the caller's approval", tags=TAGS,
         query=ReferralListArgsSchema, responses={200: Page(ReferralSchema)}, errors=(403, 422))
@login_required
def list_referrals():
    args = load_input(ReferralListArgsSchema(), request.args.to_dict())
    query = views.referral_box_query(current_user, args["box"])
    if query is None:
        abort(403)
    body = paginated(query, lambda rows: ReferralSchema(many=True).dump(rows), args)
    record_audit("referral.list", "referral", None, detail={"box": args["box"], "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.get("/referrals/<uuid:referral_id>")
@api_doc("Read a referral (the recipient also gets the shared sections while it is active)", tags=TAGS,
         responses={200: ReferralDetailSchema}, errors=(404,))
@login_required
def get_referral(referral_id):
    referral = views.load_referral(referral_id)
    body = _referral_detail(referral)
    record_audit("referral.view_shared" if body["shared_data"] is not None else "referral.view", "case",
                 referral.case_id, detail={"referral": referral.id})
    db.session.commit()
    return jsonify(body)


def _referral_action(referral_id, schema, operation, *, approver=False):
    referral = views.load_referral(referral_id, approver=approver)
    body = load_input(schema, json_body())
    return _run(lambda: operation(referral, body), lambda: jsonify(_referral_detail(referral)))


REFERRAL_DOC = {"tags": TAGS, "responses": {200: ReferralDetailSchema}, "errors": (403, 404, 409, 422),
                "conflict": WorkflowConflictSchema}


@bp.post("/referrals/<uuid:referral_id>/approve")
@api_doc("Approve a referral and send it to its recipient (supervisors; never one's own)", body=ReferralApprovalSchema,
         **REFERRAL_DOC)
@login_required
def approve_referral(referral_id):
    return _referral_action(referral_id, ReferralApprovalSchema(),
                            lambda r, b: ops.approve_referral(r, current_user, b.get("comment")), approver=True)


@bp.post("/referrals/<uuid:referral_id>/reject-approval")
@api_doc("Refuse to approve a referral, with a comment (supervisors; never one's own)",
         body=ReferralRefusalSchema, **REFERRAL_DOC)
@login_required
def reject_referral_approval(referral_id):
    return _referral_action(referral_id, ReferralRefusalSchema(),
                            lambda r, b: ops.reject_referral_approval(r, current_user, b["comment"]), approver=True)


@bp.post("/referrals/<uuid:referral_id>/accept")
@api_doc("Accept a referral addressed to the caller or their agency", body=WorkflowEmptySchema, **REFERRAL_DOC)
@login_required
def accept_referral(referral_id):
    return _referral_action(referral_id, WorkflowEmptySchema(), lambda r, b: ops.accept_referral(r, current_user))


@bp.post("/referrals/<uuid:referral_id>/reject")
@api_doc("Reject a referral addressed to the caller or their agency, with the reason", body=WorkflowReasonSchema,
         **REFERRAL_DOC)
@login_required
def reject_referral(referral_id):
    return _referral_action(referral_id, WorkflowReasonSchema(),
                            lambda r, b: ops.decline_referral(r, current_user, b["reason"]))


@bp.post("/referrals/<uuid:referral_id>/done")
@api_doc("Report an accepted referral done, with a note", body=ServiceDoneSchema, **REFERRAL_DOC)
@login_required
def complete_referral(referral_id):
    return _referral_action(referral_id, ServiceDoneSchema(), lambda r, b: ops.complete_referral(r, current_user, b["note"]))


@bp.post("/referrals/<uuid:referral_id>/revoke")
@api_doc("Revoke one's referral before it is accepted, with the reason", body=WorkflowReasonSchema, **REFERRAL_DOC)
@login_required
def revoke_referral(referral_id):
    return _referral_action(referral_id, WorkflowReasonSchema(),
                            lambda r, b: ops.revoke_referral(r, current_user, b["reason"]))


# --- transfers ----------------------------------------------------------------------------------------

def _transfer_detail(transfer) -> dict:
    sender_side = (views.sees_case(current_user, transfer.case)
                   or current_user.id in (transfer.requested_by_id, transfer.from_user_id))
    body = TransferSchema().dump(transfer)
    body["events"] = WorkflowEventSchema(many=True).dump(views.steps_for("transfer", transfer.id, sender_side))
    return body


@bp.post("/cases/<uuid:case_id>/transfers")
@api_doc("Offer a case to another caseworker or agency (ownership moves when they accept)", tags=TAGS,
         body=TransferInputSchema, responses={201: TransferDetailSchema}, errors=(403, 404, 409, 422),
         conflict=WorkflowConflictSchema,
         description="Needs the recorded consent to share, or the override permission and `override_reason`. "
                     "409 when a transfer of the case is already waiting.")
@login_required
def create_transfer(case_id):
    case = views.load_case(case_id, ops.TRANSFERS_CREATE)
    body = load_input(TransferInputSchema(), json_body())
    holder = {}

    def operation():
        holder["transfer"] = ops.request_transfer(
            case, current_user, to_agency_id=body["to_agency_id"], to_user_id=body.get("to_user_id"),
            reason=body["reason"], override_reason=body.get("override_reason"))

    return _run(operation, lambda: created(_transfer_detail(holder["transfer"]),
                                           f"/api/v1/transfers/{holder['transfer'].id}"))


@bp.get("/transfers")
@api_doc("Transfers received by the caller (or their agency) or sent by them", tags=TAGS,
         query=TransferListArgsSchema, responses={200: Page(TransferSchema)}, errors=(403, 422))
@login_required
def list_transfers():
    args = load_input(TransferListArgsSchema(), request.args.to_dict())
    query = views.transfer_box_query(current_user, args["box"])
    if query is None:
        abort(403)
    body = paginated(query, lambda rows: TransferSchema(many=True).dump(rows), args)
    record_audit("transfer.list", "transfer", None, detail={"box": args["box"], "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.get("/transfers/<uuid:transfer_id>")
@api_doc("Read a transfer", tags=TAGS, responses={200: TransferDetailSchema}, errors=(404,))
@login_required
def get_transfer(transfer_id):
    transfer = views.load_transfer(transfer_id)
    record_audit("transfer.view", "case", transfer.case_id, detail={"transfer": transfer.id})
    db.session.commit()
    return jsonify(_transfer_detail(transfer))


def _transfer_action(transfer_id, schema, operation):
    transfer = views.load_transfer(transfer_id)
    body = load_input(schema, json_body())
    return _run(lambda: operation(transfer, body), lambda: jsonify(_transfer_detail(transfer)))


TRANSFER_DOC = {"tags": TAGS, "responses": {200: TransferDetailSchema}, "errors": (403, 404, 409, 422),
                "conflict": WorkflowConflictSchema}


@bp.post("/transfers/<uuid:transfer_id>/accept")
@api_doc("Accept a transfer: the case becomes the caller's", body=WorkflowEmptySchema, **TRANSFER_DOC)
@login_required
def accept_transfer(transfer_id):
    return _transfer_action(transfer_id, WorkflowEmptySchema(), lambda t, b: ops.accept_transfer(t, current_user))


@bp.post("/transfers/<uuid:transfer_id>/reject")
@api_doc("Reject a transfer, with the reason (the case stays where it is)", body=WorkflowReasonSchema, **TRANSFER_DOC)
@login_required
def reject_transfer(transfer_id):
    return _transfer_action(transfer_id, WorkflowReasonSchema(),
                            lambda t, b: ops.decline_transfer(t, current_user, b["reason"]))


@bp.post("/transfers/<uuid:transfer_id>/cancel")
@api_doc("Withdraw a transfer that has no answer yet (requester or owner)", body=WithdrawalSchema,
         **TRANSFER_DOC)
@login_required
def cancel_transfer(transfer_id):
    return _transfer_action(transfer_id, WithdrawalSchema(),
                            lambda t, b: ops.cancel_transfer(t, current_user, b.get("reason")))
