"""JSON API of the match review queue (/api/v1/matches): list the queue, read a comparison,
claim, confirm, reject, defer, undo.

Same rules as the pages (matching.views): matches:review for everything, matches:undo to
undo; a proposal is reachable when its trace or its case is in the caller's scope (404
otherwise, audited); the comparison holds only the matching-tagged fields the caller may
read (S3); every read of a comparison is audited ("match.view"). A lost race (someone
decided first, or holds the claim) is 409; a missing reason or note is 422.
"""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import selectinload

from app.api import InputSchema, InvalidInput, PageArgsSchema, json_body, load_input, messages, text
from app.audit.operations import record_audit
from app.extensions import db
from app.openapi import ErrorDetailSchema, Page, api_doc
from app.permissions import require
from app.records.api import paginated
from matching import operations as ops
from matching import views as review
from matching.models import LIKELY, PENDING, POSSIBLE, MatchProposal

bp = Blueprint("matching_api", __name__, url_prefix="/api/v1")
TAGS = ("Matches",)


# --- schemas -----------------------------------------------------------------------------------------

class MatchListArgsSchema(PageArgsSchema):
    """Filters of the queue (the page's, by the same names)."""

    likelihood = fields.String(validate=validate.OneOf((LIKELY, POSSIBLE), error=_l("Choose a listed value.")))
    sex = fields.String(validate=validate.OneOf(("female", "male", "other", "unknown"),
                                                error=_l("Choose a listed value.")))
    age_min = fields.Integer(validate=validate.Range(min=0, max=30, error=_l("Use a number from {min} to {max}.")),
                             error_messages=messages(invalid=_l("Enter a whole number.")))
    age_max = fields.Integer(validate=validate.Range(min=0, max=30, error=_l("Use a number from {min} to {max}.")),
                             error_messages=messages(invalid=_l("Enter a whole number.")))
    agency = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), data_key="agency_id",
                            error_messages=messages(invalid=_l("Enter a whole number.")))
    since = fields.Date(error_messages=messages(invalid=_l("Enter a date (YYYY-MM-DD).")),
                        metadata={"description": "Proposed on or after this day."})


class MatchSummarySchema(Schema):
    """One proposal as the queue shows it; names only where the caller may read them."""

    id = fields.Integer()
    trace_id = fields.String()
    case_id = fields.String()
    trace_short_id = fields.String()
    case_short_id = fields.String()
    trace_name = fields.String(allow_none=True)
    case_name = fields.String(allow_none=True)
    probability = fields.Float()
    likelihood = fields.String(validate=validate.OneOf((LIKELY, POSSIBLE)))
    status = fields.String(validate=validate.OneOf(("pending", "confirmed", "rejected", "superseded")))
    claimed_by = fields.String(allow_none=True, metadata={"description": "Who holds the claim, if anyone."})
    created_at = fields.DateTime()


class ComparedValueSchema(Schema):
    key = fields.String()
    label = fields.String()
    value = fields.String()


class ComparisonRowSchema(Schema):
    tag = fields.String(metadata={"description": "The matching tag of the fields compared."})
    label = fields.String()
    trace = fields.Nested(ComparedValueSchema, many=True)
    case = fields.Nested(ComparedValueSchema, many=True)
    mark = fields.String(validate=validate.OneOf(("exact", "similar", "different", "missing")))
    level = fields.String(allow_none=True)


class InquirerComparisonSchema(Schema):
    inquirer = fields.Nested(ComparedValueSchema, many=True)
    family = fields.Nested(ComparedValueSchema, many=True)
    mark = fields.String(validate=validate.OneOf(("exact", "similar", "different", "missing")))
    level = fields.String(allow_none=True)


class DecisionEntrySchema(Schema):
    action = fields.String()
    at = fields.DateTime()
    user = fields.Function(lambda d: d.user.full_name if d.user else None, metadata={
        "openapi": {"type": ["string", "null"]}})
    reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class MatchComparisonSchema(Schema):
    """A proposal with its side-by-side comparison and its decisions."""

    proposal = fields.Nested(MatchSummarySchema)
    rows = fields.Nested(ComparisonRowSchema, many=True)
    explanations = fields.List(fields.String())
    inquirer = fields.Nested(InquirerComparisonSchema, allow_none=True)
    decisions = fields.Nested(DecisionEntrySchema, many=True)


class MatchConflictSchema(Schema):
    """409: someone decided first, or another reviewer holds the claim."""

    error = fields.Nested(ErrorDetailSchema)


class ConfirmSchema(InputSchema):
    note = text(4000)


class RejectSchema(InputSchema):
    reason = fields.String(required=True, validate=validate.OneOf(
        tuple(ops.REJECTION_REASONS), error=_l("Choose a listed value.")), error_messages=messages())
    note = text(4000)


class DeferSchema(InputSchema):
    note = text(4000, required=True)


class UndoSchema(InputSchema):
    reason = text(4000, required=True)


class EmptySchema(InputSchema):
    """No fields: send {}."""


# --- helpers ------------------------------------------------------------------------------------------

def _summary(proposals: list[MatchProposal]) -> list[dict]:
    items = review.queue_items(proposals, current_user)
    return [{"id": i["id"], "trace_id": i["proposal"].trace_id, "case_id": i["proposal"].case_id,
             "trace_short_id": i["trace_short_id"], "case_short_id": i["case_short_id"],
             "trace_name": i["trace_name"], "case_name": i["case_name"],
             "probability": i["proposal"].probability, "likelihood": i["likelihood"],
             "status": i["proposal"].status, "claimed_by": i["claimed_by"], "created_at": i["created_at"]}
            for i in items]


def _summary_one(proposal: MatchProposal) -> dict:
    return MatchSummarySchema().dump(_summary([proposal])[0])


def _conflict(message: str):
    body = MatchConflictSchema().dump({"error": {"status": 409, "message": message,
                                                 "reference": g.get("request_id", "")}})
    return jsonify(body), 409


def _decide(proposal_id: int, permission: str, operation, field: str):
    proposal = review.load_proposal(proposal_id, permission=permission)
    try:
        operation(proposal)
    except ops.DecisionError as error:
        db.session.rollback()
        if error.status == 422:
            raise InvalidInput({field: [error.message]}) from error
        return _conflict(error.message)
    db.session.commit()
    return jsonify(_summary_one(proposal))


def _filters(args: dict) -> dict:
    return {key: args[key] for key in ("likelihood", "sex", "age_min", "age_max", "agency", "since") if key in args}


# --- routes -------------------------------------------------------------------------------------------

@bp.get("/matches")
@api_doc("The match review queue: pending proposals in the caller's scope, best first", tags=TAGS,
         query=MatchListArgsSchema, responses={200: Page(MatchSummarySchema)}, errors=(403, 422),
         description="A proposal is listed when its trace or its case is in the caller's scope.")
@require(ops.MATCHES_REVIEW)
def list_matches():
    args = load_input(MatchListArgsSchema(), request.args.to_dict())
    query = review.queue_order(review.filtered_queue(current_user, _filters(args))).options(
        selectinload(MatchProposal.trace), selectinload(MatchProposal.case))
    body = paginated(query, lambda rows: MatchSummarySchema(many=True).dump(_summary(rows)), args)
    record_audit("match.list", "match_proposal", None, detail={
        "filters": {k: str(v) for k, v in _filters(args).items()}, "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)


@bp.get("/matches/<int:proposal_id>")
@api_doc("Read a proposal with its side-by-side comparison", tags=TAGS,
         responses={200: MatchComparisonSchema}, errors=(403, 404),
         description="Only the fields tagged for matching that the caller may read; audited. Reading does "
                     "not claim: POST .../claim does.")
@require(ops.MATCHES_REVIEW)
def get_match(proposal_id: int):
    proposal = review.load_proposal(proposal_id)
    comparison = review.build_comparison(proposal, current_user)
    body = MatchComparisonSchema().dump({
        "proposal": _summary([proposal])[0], "rows": comparison["rows"],
        "explanations": [str(sentence) for sentence in comparison["explanations"]],
        "inquirer": comparison["inquirer"], "decisions": review.decisions_of(proposal)})
    record_audit("match.view", "match_proposal", proposal.id,
                 detail={"trace": proposal.trace_id, "case": proposal.case_id})
    db.session.commit()
    return jsonify(body)


@bp.post("/matches/<int:proposal_id>/claim")
@api_doc("Hold a pending proposal for review (the claim expires)", tags=TAGS, body=EmptySchema,
         responses={200: MatchSummarySchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema)
@require(ops.MATCHES_REVIEW)
def claim_match(proposal_id: int):
    proposal = review.load_proposal(proposal_id)
    load_input(EmptySchema(), json_body())
    if proposal.status != PENDING:
        return _conflict(str(_l("Someone else decided this proposal first.")))
    if not ops.claim_proposal(proposal, current_user):
        db.session.rollback()
        return _conflict(str(_l("Another reviewer is working on this proposal.")))
    db.session.commit()
    return jsonify(_summary_one(proposal))


@bp.post("/matches/<int:proposal_id>/confirm")
@api_doc("Confirm: the registered child is the child sought", tags=TAGS, body=ConfirmSchema,
         responses={200: MatchSummarySchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema,
         description="The trace's other pending proposals are superseded; the trace becomes match_confirmed.")
@require(ops.MATCHES_REVIEW)
def confirm_match(proposal_id: int):
    body = load_input(ConfirmSchema(), json_body())
    return _decide(proposal_id, ops.MATCHES_REVIEW,
                   lambda p: ops.confirm_match(p, current_user, body.get("note") or ""), "note")


@bp.post("/matches/<int:proposal_id>/reject")
@api_doc("Reject: not the child sought, with a reason", tags=TAGS, body=RejectSchema,
         responses={200: MatchSummarySchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema,
         description="Reason `other` needs a note.")
@require(ops.MATCHES_REVIEW)
def reject_match(proposal_id: int):
    body = load_input(RejectSchema(), json_body())
    field = "note" if body["reason"] == "other" else "reason"
    return _decide(proposal_id, ops.MATCHES_REVIEW,
                   lambda p: ops.reject_match(p, current_user, body["reason"], body.get("note") or ""), field)


@bp.post("/matches/<int:proposal_id>/defer")
@api_doc("Defer: leave the proposal pending with a note (releases the claim)", tags=TAGS, body=DeferSchema,
         responses={200: MatchSummarySchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema)
@require(ops.MATCHES_REVIEW)
def defer_match(proposal_id: int):
    body = load_input(DeferSchema(), json_body())
    return _decide(proposal_id, ops.MATCHES_REVIEW, lambda p: ops.defer_match(p, current_user, body["note"]),
                   "note")


@bp.post("/matches/<int:proposal_id>/undo")
@api_doc("Undo a confirmation or rejection (supervisors), with the reason", tags=TAGS, body=UndoSchema,
         responses={200: MatchSummarySchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema)
@require(ops.MATCHES_UNDO)
def undo_match(proposal_id: int):
    body = load_input(UndoSchema(), json_body())
    return _decide(proposal_id, ops.MATCHES_UNDO, lambda p: ops.undo_decision(p, current_user, body["reason"]),
                   "reason")


# --- after confirmation: verification and reunification ---------------------------------------------

class VerificationInputSchema(InputSchema):
    methods = fields.List(fields.String(validate=validate.OneOf(
        ops.VERIFICATION_METHODS, error=_l("Choose a listed value."))), required=True,
        validate=validate.Length(min=1, error=_l("Choose how the match was verified.")),
        error_messages=messages(), metadata={"description": "How: one or more of " + ", ".join(
            ops.VERIFICATION_METHODS) + "."})
    outcome = fields.String(required=True, validate=validate.OneOf(
        ops.VERIFICATION_OUTCOMES, error=_l("Choose a listed value.")), error_messages=messages())
    note = text(4000)


class VerificationSchema(Schema):
    """A recorded verification of a confirmed match."""

    id = fields.Integer()
    proposal_id = fields.Integer()
    methods = fields.List(fields.String(validate=validate.OneOf(ops.VERIFICATION_METHODS)))
    outcome = fields.String(validate=validate.OneOf(ops.VERIFICATION_OUTCOMES))
    note = fields.String(allow_none=True)
    verified_by = fields.Function(lambda v: v.verified_by.full_name if v.verified_by else None, metadata={
        "openapi": {"type": ["string", "null"]}})
    verified_at = fields.DateTime()
    proposal_status = fields.String(validate=validate.OneOf(("confirmed", "rejected")), metadata={
        "description": "The proposal's status afterwards (rejected after a failed verification)."})


class ReunificationInputSchema(InputSchema):
    reunified_on = fields.Date(required=True, error_messages=messages(invalid=_l("Enter a date (YYYY-MM-DD).")))
    place = text(500, required=True)
    with_whom = text(500, required=True)
    follow_up_due = fields.Date(required=True, error_messages=messages(invalid=_l("Enter a date (YYYY-MM-DD).")))


class ReunificationSchema(Schema):
    """A recorded reunification; the trace is then reunified."""

    id = fields.Integer()
    proposal_id = fields.Integer()
    verification_id = fields.Integer()
    reunified_on = fields.Date()
    place = fields.String()
    with_whom = fields.String()
    follow_up_due = fields.Date()
    recorded_by = fields.Function(lambda r: r.recorded_by.full_name if r.recorded_by else None, metadata={
        "openapi": {"type": ["string", "null"]}})
    recorded_at = fields.DateTime()


def _follow_up(proposal_id: int, operation, schema: Schema, extra=None):
    """Run a verification/reunification operation: 201 with the row, 409 or 422 when refused."""
    proposal = review.load_proposal(proposal_id)
    try:
        row = operation(proposal)
    except ops.FollowUpError as error:
        db.session.rollback()
        if error.status == 422:
            raise InvalidInput(error.errors) from error
        return _conflict(" ".join(str(m) for field_messages in error.errors.values() for m in field_messages))
    db.session.commit()
    body = schema.dump(row)
    body.update(extra(proposal) if extra else {})
    return jsonify(body), 201


@bp.post("/matches/<int:proposal_id>/verification")
@api_doc("Record the verification of a confirmed match", tags=TAGS, body=VerificationInputSchema,
         responses={201: VerificationSchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema,
         description="Outcome `failed` (with a note) rejects the pair and sends the trace back to tracing "
                     "(in_progress); `verified` lets the reunification be recorded. 409 when the proposal "
                     "is not confirmed or is already verified.")
@require(ops.MATCHES_REVIEW)
def verify_match(proposal_id: int):
    body = load_input(VerificationInputSchema(), json_body())
    return _follow_up(proposal_id, lambda p: ops.verify_match(
        p, current_user, body["methods"], body["outcome"], body.get("note") or ""), VerificationSchema(),
        lambda p: {"proposal_status": p.status})


@bp.post("/matches/<int:proposal_id>/reunification")
@api_doc("Record the reunification of a verified match", tags=TAGS, body=ReunificationInputSchema,
         responses={201: ReunificationSchema}, errors=(403, 404, 409, 422), conflict=MatchConflictSchema,
         description="Only after a `verified` verification; the trace becomes reunified and can then be "
                     "closed. 409 when not verified or already recorded.")
@require(ops.MATCHES_REVIEW)
def reunify_match(proposal_id: int):
    body = load_input(ReunificationInputSchema(), json_body())
    return _follow_up(proposal_id, lambda p: ops.record_reunification(
        p, current_user, body["reunified_on"], body["place"], body["with_whom"], body["follow_up_due"]),
        ReunificationSchema())
