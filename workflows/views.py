"""Referral and transfer pages.

- /cases/<id>/refer, /cases/<id>/transfer: the forms on a case in the user's scope.
- /referrals: received (addressed to me or my agency), sent (by me), and, for supervisors,
  the referrals waiting for their approval; /referrals/<id>: one referral with its steps
  and the actions the reader may take. The recipient sees the shared sections there, and
  only there, only while the referral is active.
- /transfers and /transfers/<id>: the same for transfers.

Who may open a referral or transfer: whoever asked for it, its recipient (a referral once
approved), or anyone with the case in scope (cases:read). Anyone else gets 404, audited.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app.audit.operations import record_audit, record_denial
from app.extensions import db
from app.listing import HTML_PER_PAGE, page_number
from app.navigation import register_nav
from app.permissions import can, is_in_scope, scope_filter
from app.users.models import Agency, User
from cases.approval_views import register_approval_panel
from cases.models import Case
from cases.operations import CASES_READ
from workflows import demo  # noqa: F401  (registers the demo referrals with `flask seed demo`)
from workflows import operations as ops
from workflows.models import (
    ACCEPTED,
    PENDING_APPROVAL,
    SENT,
    TRANSFER_ACCEPTED,
    TRANSFER_CANCELLED,
    TRANSFER_PENDING,
    TRANSFER_REJECTED,
    Referral,
    Transfer,
)

bp = Blueprint("workflows", __name__, template_folder="templates")

register_nav("workflows.list_referrals", _l("Referrals"), ops.REFERRALS_RECEIVE, order=40,
             description=_l("Referrals sent, received and waiting for approval"))
register_nav("workflows.list_transfers", _l("Transfers"), ops.TRANSFERS_RECEIVE, order=45,
             description=_l("Cases handed to you or by you"))

REFERRAL_STATUS_LABELS = ops.REFERRAL_STATUS_LABELS
TRANSFER_STATUS_LABELS = {
    TRANSFER_PENDING: _l("Waiting for an answer"), TRANSFER_ACCEPTED: _l("Accepted"),
    TRANSFER_REJECTED: _l("Rejected"), TRANSFER_CANCELLED: _l("Cancelled"),
}
EVENT_LABELS = {
    "requested": _l("Requested"), "approved": _l("Approved"), "approval_rejected": _l("Not approved"),
    "accepted": _l("Accepted"), "rejected": _l("Rejected"), "done": _l("Done"), "revoked": _l("Revoked"),
    "cancelled": _l("Cancelled"),
}
BASIS_LABELS = {"consent": _l("Recorded consent"), "override": _l("Shared without consent (override)")}


def service_label(code: str) -> str:
    from forms.definitions import lookup_options
    from app.i18n import current_language
    locale = current_language()[0]
    for option in lookup_options(ops.SERVICE_LOOKUP):
        if option.code == code:
            return option.label(locale)
    return code


def _template_globals() -> dict:
    return {"referral_status_labels": REFERRAL_STATUS_LABELS, "transfer_status_labels": TRANSFER_STATUS_LABELS,
            "event_labels": EVENT_LABELS, "basis_labels": BASIS_LABELS, "service_label": service_label}


@bp.app_context_processor
def _workflow_helpers():
    return {"workflow_panel_for": case_panel, **_template_globals()}


# --- loading with scope -----------------------------------------------------------------------------

def sees_case(user, case) -> bool:
    return can(user, CASES_READ) and is_in_scope(user, case)


def load_referral(referral_id, *, approver: bool = False) -> Referral:
    """The referral if the user is its recipient or has its case in scope; 404 (audited) otherwise.

    `approver`: the caller must also be allowed to approve referrals of the case (403 without the permission).
    """
    referral = db.session.get(Referral, str(referral_id))
    if approver and not can(current_user, ops.REFERRALS_APPROVE):
        record_denial("permission_denied", "referral", str(referral_id), detail={"permission": ops.REFERRALS_APPROVE})
        abort(403)
    if referral is not None:
        if approver and sees_case(current_user, referral.case):
            return referral
        if not approver and (referral.requested_by_id == current_user.id
                             or ops.is_referral_recipient(current_user, referral)
                             or sees_case(current_user, referral.case)):
            return referral
    record_denial("out_of_scope", "referral", str(referral_id))
    abort(404)


@dataclass(frozen=True)
class StepView:
    """A step as one reader may see it."""
    action: str
    at: object
    user: object
    comment: str | None


# What the receiving side may read of the steps: its own answers. The sender's reasons and the
# supervisor's comments stay with those who have the case in scope (they can be the most sensitive
# text of a case: who is suspected, why consent was overridden).
RECIPIENT_SIDE_STEPS = {"accepted", "rejected", "done"}


def steps_for(subject_type: str, subject_id: str, reader_sees_case: bool) -> list[StepView]:
    return [StepView(e.action, e.at, e.user,
                     e.comment if reader_sees_case or e.action in RECIPIENT_SIDE_STEPS else None)
            for e in ops.events_of(subject_type, subject_id)]


def load_transfer(transfer_id) -> Transfer:
    transfer = db.session.get(Transfer, str(transfer_id))
    if transfer is not None and (current_user.id in (transfer.requested_by_id, transfer.from_user_id)
                                 or ops.is_transfer_recipient(current_user, transfer)
                                 or sees_case(current_user, transfer.case)):
        return transfer
    record_denial("out_of_scope", "transfer", str(transfer_id))
    abort(404)


def load_case(case_id, permission: str) -> Case:
    from app.permissions import get_in_scope_or_404
    case = get_in_scope_or_404(Case, str(case_id), permission=CASES_READ)
    if not can(current_user, permission):
        record_denial("permission_denied", "case", case.id, detail={"permission": permission})
        abort(403)
    return case


# --- the case panel -----------------------------------------------------------------------------------

def case_panel(case) -> dict:
    """Referrals and transfers of one case, for its page (the reader has the case in scope)."""
    referrals = db.session.execute(select(Referral).where(Referral.case_id == case.id)
                                   .order_by(Referral.requested_at.desc())).scalars().all()
    transfers = db.session.execute(select(Transfer).where(Transfer.case_id == case.id)
                                   .order_by(Transfer.requested_at.desc())).scalars().all()
    return {"referrals": referrals, "transfers": transfers,
            "can_refer": case.status == "open" and can(current_user, ops.REFERRALS_CREATE),
            "can_transfer": case.status == "open" and can(current_user, ops.TRANSFERS_CREATE),
            "has_consent": ops.has_sharing_consent(case)}


# --- forms --------------------------------------------------------------------------------------------

def _int_or_none(value):
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return -1  # answered as "choose a listed ..." by the operation


def _recipient_choices(permission: str) -> tuple[list, list]:
    agencies = db.session.execute(select(Agency).where(Agency.is_active.is_(True)).order_by(Agency.name)).scalars()
    users = db.session.execute(select(User).where(User.is_active.is_(True)).options(selectinload(User.agency))
                               .order_by(User.full_name)).scalars()
    return list(agencies), [u for u in users if can(u, permission) and u.id != current_user.id]


@bp.route("/cases/<uuid:case_id>/refer", methods=["GET", "POST"])
@login_required
def refer_case(case_id):
    case = load_case(case_id, ops.REFERRALS_CREATE)
    sections = ops.shareable_sections(current_user)
    values = {"sections": [], "service_type": "", "reason": "", "recipient_agency_id": "", "recipient_user_id": "",
              "override_reason": ""}
    errors, status = {}, 200
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in values}
        values["sections"] = request.form.getlist("sections")
        try:
            referral = ops.refer_case(
                case, current_user, service_type=values["service_type"],
                recipient_agency_id=_int_or_none(values["recipient_agency_id"]),
                recipient_user_id=_int_or_none(values["recipient_user_id"]), sections=values["sections"],
                reason=values["reason"], override_reason=values["override_reason"])
        except ops.WorkflowError as error:
            db.session.rollback()
            errors, status = error.errors, error.status
            case = load_case(case_id, ops.REFERRALS_CREATE)
        else:
            db.session.commit()
            flash(_("The referral is waiting for a supervisor's approval."), "success")
            return redirect(url_for(".show_referral", referral_id=referral.id))
    from forms.definitions import lookup_options
    agencies, users = _recipient_choices(ops.REFERRALS_RECEIVE)
    return render_template("workflows/refer.html", case=case, sections=sections, values=values, errors=errors,
                           services=lookup_options(ops.SERVICE_LOOKUP), agencies=agencies, users=users,
                           has_consent=ops.has_sharing_consent(case),
                           can_override=can(current_user, ops.CONSENT_OVERRIDE)), status


@bp.route("/cases/<uuid:case_id>/transfer", methods=["GET", "POST"])
@login_required
def transfer_case(case_id):
    case = load_case(case_id, ops.TRANSFERS_CREATE)
    values = {"reason": "", "to_agency_id": "", "to_user_id": "", "override_reason": ""}
    errors, status = {}, 200
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in values}
        try:
            transfer = ops.request_transfer(
                case, current_user, to_agency_id=_int_or_none(values["to_agency_id"]),
                to_user_id=_int_or_none(values["to_user_id"]), reason=values["reason"],
                override_reason=values["override_reason"])
        except ops.WorkflowError as error:
            db.session.rollback()
            errors, status = error.errors, error.status
            case = load_case(case_id, ops.TRANSFERS_CREATE)
        else:
            db.session.commit()
            flash(_("The transfer is waiting for the recipient's answer."), "success")
            return redirect(url_for(".show_transfer", transfer_id=transfer.id))
    agencies, users = _recipient_choices(ops.TRANSFERS_RECEIVE)
    return render_template("workflows/transfer.html", case=case, values=values, errors=errors, agencies=agencies,
                           users=users, has_consent=ops.has_sharing_consent(case),
                           can_override=can(current_user, ops.CONSENT_OVERRIDE)), status


# --- referral lists and page --------------------------------------------------------------------------

BOXES = ("received", "sent", "approval")


def referral_box_query(user, box: str):
    query = select(Referral).options(selectinload(Referral.case), selectinload(Referral.recipient_agency),
                                     selectinload(Referral.recipient_user), selectinload(Referral.requested_by),
                                     selectinload(Referral.approved_by), selectinload(Referral.answered_by))
    if box == "sent":
        return query.where(Referral.requested_by_id == user.id).order_by(Referral.requested_at.desc())
    if box == "approval":
        if not can(user, ops.REFERRALS_APPROVE) or not can(user, CASES_READ):
            return None
        from cases.approvals import supervised_cases
        decidable = select(Case.id).where(scope_filter(user, Case), supervised_cases(user), Case.owner_id != user.id)
        return (query.where(Referral.status == PENDING_APPROVAL, Referral.requested_by_id != user.id,
                            Referral.case_id.in_(decidable)).order_by(Referral.requested_at))
    if not can(user, ops.REFERRALS_RECEIVE):
        return None
    return query.where(ops.received_referrals_clause(user)).order_by(Referral.updated_at.desc())


@bp.get("/referrals")
@login_required
def list_referrals():
    box = request.args.get("box", "received")
    if box not in BOXES:
        abort(404)
    query = referral_box_query(current_user, box)
    if query is None:
        abort(403)
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    record_audit("referral.list", "referral", None, detail={"box": box, "shown": len(page.items)})
    db.session.commit()
    return render_template("workflows/referrals.html", page=page, box=box,
                           may_approve=can(current_user, ops.REFERRALS_APPROVE))


def referral_actions(referral: Referral, user) -> set[str]:
    """What `user` may do to `referral` now (the operations check again)."""
    actions = set()
    is_requester = referral.requested_by_id == user.id
    if referral.status == PENDING_APPROVAL and ops.may_decide_approval(user, referral):
        actions.update({"approve", "reject_approval"})
    if ops.is_referral_recipient(user, referral):
        if referral.status == SENT:
            actions.update({"accept", "reject"})
        if referral.status == ACCEPTED and referral.answered_by_id in (None, user.id):
            actions.add("done")
    if is_requester and referral.status in (PENDING_APPROVAL, SENT):
        actions.add("revoke")
    return actions


@bp.get("/referrals/<uuid:referral_id>")
@login_required
def show_referral(referral_id):
    referral = load_referral(referral_id)
    is_recipient = ops.is_referral_recipient(current_user, referral)
    definition, access, values = (None, None, {})
    if is_recipient:
        definition, access, values = ops.shared_values(referral, current_user)
        record_audit("referral.view_shared", "case", referral.case_id, detail={
            "referral": referral.id, "sections": sorted(access.readable_sections)})
    else:
        record_audit("referral.view", "case", referral.case_id, detail={"referral": referral.id})
    db.session.commit()
    in_scope = sees_case(current_user, referral.case)
    return render_template("workflows/referral.html", referral=referral, is_recipient=is_recipient,
                           sees_case=in_scope, definition=definition,
                           access=access, values=values, actions=referral_actions(referral, current_user),
                           events=steps_for("referral", referral.id, in_scope or
                                            referral.requested_by_id == current_user.id), errors={})


REFERRAL_ACTIONS = {
    "approve": (lambda r, form: ops.approve_referral(r, current_user, form.get("comment")),
                _l("The referral is approved and sent."), True),
    "reject-approval": (lambda r, form: ops.reject_referral_approval(r, current_user, form.get("comment")),
                        _l("The referral is not approved."), True),
    "accept": (lambda r, form: ops.accept_referral(r, current_user), _l("You accepted the referral."), False),
    "reject": (lambda r, form: ops.decline_referral(r, current_user, form.get("reason")),
               _l("You rejected the referral."), False),
    "done": (lambda r, form: ops.complete_referral(r, current_user, form.get("note")),
             _l("The referral is marked done."), False),
    "revoke": (lambda r, form: ops.revoke_referral(r, current_user, form.get("reason")),
               _l("The referral is revoked."), False),
}


@bp.post("/referrals/<uuid:referral_id>/<action>")
@login_required
def act_on_referral(referral_id, action):
    if action not in REFERRAL_ACTIONS:
        abort(404)
    operation, done_message, needs_approver = REFERRAL_ACTIONS[action]
    referral = load_referral(referral_id, approver=needs_approver)
    try:
        operation(referral, request.form)
    except ops.WorkflowError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".show_referral", referral_id=referral_id)), 303
    db.session.commit()
    flash(str(done_message), "success")
    return redirect(url_for(".show_referral", referral_id=referral_id)), 303


# --- transfers ----------------------------------------------------------------------------------------

def transfer_box_query(user, box: str):
    query = select(Transfer).options(selectinload(Transfer.case), selectinload(Transfer.to_agency),
                                     selectinload(Transfer.to_user), selectinload(Transfer.from_user),
                                     selectinload(Transfer.requested_by), selectinload(Transfer.answered_by))
    if box == "sent":
        return query.where(or_(Transfer.requested_by_id == user.id, Transfer.from_user_id == user.id)) \
            .order_by(Transfer.requested_at.desc())
    if not can(user, ops.TRANSFERS_RECEIVE):
        return None
    return query.where(ops.received_transfers_clause(user)).order_by(Transfer.requested_at.desc())


@bp.get("/transfers")
@login_required
def list_transfers():
    box = request.args.get("box", "received")
    if box not in ("received", "sent"):
        abort(404)
    query = transfer_box_query(current_user, box)
    if query is None:
        abort(403)
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    record_audit("transfer.list", "transfer", None, detail={"box": box, "shown": len(page.items)})
    db.session.commit()
    return render_template("workflows/transfers.html", page=page, box=box)


def transfer_actions(transfer: Transfer, user) -> set[str]:
    actions = set()
    if transfer.status == TRANSFER_PENDING:
        if ops.is_transfer_recipient(user, transfer):
            actions.update({"accept", "reject"})
        if user.id in (transfer.requested_by_id, transfer.case.owner_id):
            actions.add("cancel")
    return actions


def transfer_summary(transfer: Transfer) -> dict:
    """What a recipient may know of the case before accepting: short id, sex and age, nothing else."""
    from app.i18n import current_language
    from forms.definitions import display_value
    case = transfer.case
    sex = display_value("case", "sex", case.sex, current_language()[0]) if case.sex else None
    return {"short_id": case.short_id, "sex": sex, "age": case.age}


@bp.get("/transfers/<uuid:transfer_id>")
@login_required
def show_transfer(transfer_id):
    transfer = load_transfer(transfer_id)
    record_audit("transfer.view", "case", transfer.case_id, detail={"transfer": transfer.id})
    db.session.commit()
    in_scope = sees_case(current_user, transfer.case)
    return render_template("workflows/transfer_show.html", transfer=transfer,
                           summary=transfer_summary(transfer), sees_case=in_scope,
                           actions=transfer_actions(transfer, current_user),
                           events=steps_for("transfer", transfer.id, in_scope or
                                            current_user.id in (transfer.requested_by_id, transfer.from_user_id)))


TRANSFER_ACTIONS = {
    "accept": (lambda t, form: ops.accept_transfer(t, current_user), _l("The case is now yours.")),
    "reject": (lambda t, form: ops.decline_transfer(t, current_user, form.get("reason")),
               _l("You rejected the transfer.")),
    "cancel": (lambda t, form: ops.cancel_transfer(t, current_user, form.get("reason")),
               _l("The transfer is cancelled.")),
}


@bp.post("/transfers/<uuid:transfer_id>/<action>")
@login_required
def act_on_transfer(transfer_id, action):
    if action not in TRANSFER_ACTIONS:
        abort(404)
    operation, done_message = TRANSFER_ACTIONS[action]
    transfer = load_transfer(transfer_id)
    try:
        operation(transfer, request.form)
    except ops.WorkflowError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".show_transfer", transfer_id=transfer_id)), 303
    db.session.commit()
    flash(str(done_message), "success")
    if action == "accept":
        return redirect(url_for("cases.show_case", record_id=transfer.case_id)), 303
    return redirect(url_for(".show_transfer", transfer_id=transfer_id)), 303


def pending_referral_approvals(user) -> list[Referral]:
    """For the supervisors' approval queue (/approvals): referrals waiting for this user's decision."""
    query = referral_box_query(user, "approval")
    return [] if query is None else list(db.session.execute(query.limit(200)).scalars())



def _approval_panel_context(user) -> dict:
    return {"referrals": pending_referral_approvals(user)}


register_approval_panel("workflows/_approval_queue.html", _approval_panel_context, ops.REFERRALS_APPROVE, order=20)
