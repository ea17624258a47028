"""Supervisor approval of a case's plan and of its closure (S5).

A caseworker asks (`request_approval`); the request waits in the approval queue of
the supervisors whose scope holds the case; one of them approves or rejects it with
a comment (`decide_approval`), or the requester cancels it while it waits
(`cancel_approval`). Approving a closure closes the case (cases.operations.close_case);
approving a case plan moves the case to the services stage.

Rules kept here, whatever page or API call asks:
- nobody decides a request they made, nor one on a case they own, whatever their role
  (403, audited); a supervisor outside the case's scope gets 404 (audited); one who sees the
  case only through something else (an accepted referral) gets 403;
- a request leaves `pending` exactly once, by a conditional UPDATE: of two supervisors
  deciding at once, one wins and the other is told someone decided first (409);
- one pending request per case and type (the case row is locked while checking);
- every request, decision and cancellation is audited and written into the case's history.

Which types are in use is an administrator's setting (`ApprovalSetting` rows, off when
absent). Operations flush; the view or API handler commits once.
"""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, false, select, true, update

from app.audit.operations import record_audit, record_denial
from app.db import utcnow
from app.extensions import db
from app.i18n import N_
from app.notifications.operations import relative_url
from app.permissions import NotPermitted, can, scope_filter
from app.records.models import STATUS_OPEN
from app.records.operations import EditConflict, RecordError, record_change
from app.records.retention import register_anonymiser
from app.records.views import ACTION_LABELS, RECORD_FIELD_LABELS, STATUS_VALUE_LABELS
from app.seeding import register_demo_seeder
from app.users.models import (
    SCOPE_AGENCY,
    SCOPE_ALL,
    SCOPE_GROUP,
    Role,
    RolePermission,
    User,
    UserGroup,
    user_groups,
)
from cases import operations as ops
from cases.models import (
    APPROVAL_APPROVED,
    APPROVAL_CANCELLED,
    APPROVAL_CASE_PLAN,
    APPROVAL_CLOSURE,
    APPROVAL_PENDING,
    APPROVAL_REJECTED,
    APPROVAL_TYPES,
    STAGE_CLOSURE,
    STAGE_SERVICES,
    ApprovalSetting,
    Case,
    CaseApproval,
    case_groups,
)

APPROVAL_TYPE_LABELS = {APPROVAL_CASE_PLAN: _l("Case plan"), APPROVAL_CLOSURE: _l("Closure")}
APPROVAL_STATUS_LABELS = {APPROVAL_PENDING: _l("Waiting for a supervisor"), APPROVAL_APPROVED: _l("Approved"),
                          APPROVAL_REJECTED: _l("Rejected"), APPROVAL_CANCELLED: _l("Cancelled")}

# Form fields that make up a case plan in the default case form (forms/config/default_config.json).
CASE_PLAN_FIELDS = ("case_plan_goals", "services")

# The case history shows these actions and record attributes by name (app.records.views).
ACTION_LABELS.update({
    "approval_requested": _l("Approval requested"), "approval_approved": _l("Approved by a supervisor"),
    "approval_rejected": _l("Rejected by a supervisor"), "approval_cancelled": _l("Approval request cancelled"),
    "assign": _l("Reassigned"),
})
RECORD_FIELD_LABELS.update({"@approval_case_plan": _l("Case plan approval"),
                            "@approval_closure": _l("Closure approval"), "@groups": _l("Teams")})
STATUS_VALUE_LABELS.update({APPROVAL_PENDING: _l("Waiting for a supervisor"), APPROVAL_APPROVED: _l("Approved"),
                            APPROVAL_REJECTED: _l("Rejected"), APPROVAL_CANCELLED: _l("Cancelled")})

# Notification messages (untranslated msgids: each reader sees them in their own language).
REQUESTED_MESSAGES = {
    APPROVAL_CASE_PLAN: N_("The case plan of case %(case)s awaits your approval"),
    APPROVAL_CLOSURE: N_("The closure of case %(case)s awaits your approval"),
}
DECIDED_MESSAGES = {
    (APPROVAL_CASE_PLAN, APPROVAL_APPROVED): N_("The case plan of case %(case)s is approved"),
    (APPROVAL_CASE_PLAN, APPROVAL_REJECTED): N_("The case plan of case %(case)s is not approved"),
    (APPROVAL_CLOSURE, APPROVAL_APPROVED): N_("The closure of case %(case)s is approved: the case is closed"),
    (APPROVAL_CLOSURE, APPROVAL_REJECTED): N_("The closure of case %(case)s is not approved"),
}


class ApprovalError(RecordError):
    """A refused request or decision, with field-level messages.

    `status` 422: bad input (no reason, no case plan, a type not in use); 409: the state
    forbids it (already pending, already decided, case closed).
    """


# --- which approval types are in use ---------------------------------------------------------------------

def approval_settings() -> dict[str, bool]:
    """{approval type: required?} for every known type (a type without a row is off)."""
    rows = {row.approval_type: row.is_required for row in db.session.scalars(select(ApprovalSetting))}
    return {code: bool(rows.get(code, False)) for code in APPROVAL_TYPES}


def approval_required(approval_type: str) -> bool:
    """Whether `approval_type` needs a supervisor's approval now."""
    row = db.session.get(ApprovalSetting, approval_type)
    return bool(row and row.is_required)


def set_approval_required(approval_type: str, is_required: bool, actor) -> bool:
    """Turn one approval type on or off (administrators). Returns whether anything changed.

    Requests already pending stay in the queue and can still be decided or cancelled.
    """
    if approval_type not in APPROVAL_TYPES:
        raise ApprovalError({"approval_type": [_("Unknown approval type.")]})
    row = db.session.get(ApprovalSetting, approval_type)
    if bool(row and row.is_required) == bool(is_required):
        return False
    if row is None:
        row = ApprovalSetting(approval_type=approval_type)
        db.session.add(row)
    row.is_required, row.updated_at, row.updated_by_id = bool(is_required), utcnow(), actor.id
    db.session.flush()
    record_audit("approval_settings.update", "approval_setting", approval_type,
                 detail={"is_required": bool(is_required)}, user=actor)
    return True


# --- reading ---------------------------------------------------------------------------------------------

def approvals_of(case: Case) -> list[CaseApproval]:
    """Every approval request on `case`, newest first."""
    return list(db.session.scalars(select(CaseApproval).where(CaseApproval.case_id == case.id)
                                   .order_by(CaseApproval.id.desc())))


def pending_approval(case: Case, approval_type: str) -> CaseApproval | None:
    return db.session.scalars(select(CaseApproval).where(
        CaseApproval.case_id == case.id, CaseApproval.approval_type == approval_type,
        CaseApproval.status == APPROVAL_PENDING)).first()


def has_case_plan(case: Case) -> bool:
    """A plan is written when it has goals or at least one service."""
    data = case.data or {}
    return any(data.get(key) not in (None, "", [], {}) for key in CASE_PLAN_FIELDS)


def is_own_work(approval: CaseApproval, user) -> bool:
    """Requests a user may not decide: those they made, and those on cases they own (S5)."""
    return approval.requested_by_id == user.id or approval.case.owner_id == user.id


def supervised_cases(user):
    """SQL clause: the cases `user` supervises through their role's own scope (their groups' cases,
    their agency's, or all). Visibility granted otherwise (e.g. an accepted referral, see
    app.permissions.register_scope_extension) lets one read a case, never decide on it."""
    scope = user.role.scope if user.role else None
    if scope == SCOPE_ALL:
        return true()
    if scope == SCOPE_AGENCY:
        return Case.agency_id == user.agency_id
    if scope == SCOPE_GROUP:
        group_ids = sorted(group.id for group in user.groups if group.is_active)
        return Case.groups.any(UserGroup.id.in_(group_ids)) if group_ids else false()
    return false()


def supervises(user, case: Case) -> bool:
    return db.session.execute(select(Case.id).where(Case.id == case.id, supervised_cases(user))).first() is not None


def approval_queue(user, approval_type: str | None = None):
    """A query for the pending requests `user` may decide: cases they supervise and may see, not
    their own requests or cases, oldest first."""
    query = (select(CaseApproval).join(Case, Case.id == CaseApproval.case_id)
             .where(CaseApproval.status == APPROVAL_PENDING, scope_filter(user, Case), supervised_cases(user),
                    CaseApproval.requested_by_id != user.id, Case.owner_id != user.id))
    if approval_type:
        query = query.where(CaseApproval.approval_type == approval_type)
    return query.order_by(CaseApproval.requested_at, CaseApproval.id)


def supervisors_of(case: Case) -> list[User]:
    """Active users in the case's (active) groups whose role may decide approvals."""
    in_case_groups = exists().where(
        user_groups.c.user_id == User.id, user_groups.c.group_id == case_groups.c.group_id,
        case_groups.c.case_id == case.id, UserGroup.id == case_groups.c.group_id, UserGroup.is_active.is_(True))
    may_approve = exists().where(RolePermission.role_id == Role.id, RolePermission.permission == ops.CASES_APPROVE)
    query = (select(User).join(Role, Role.id == User.role_id)
             .where(User.is_active.is_(True), User.id != case.owner_id, in_case_groups, may_approve)
             .order_by(User.id))
    return list(db.session.scalars(query))


def load_approval(approval_id: int, permission: str, user) -> CaseApproval:
    """The approval request, if `user` holds `permission` (else 403) and its case is in their
    scope (else 404, like a missing one); both refusals audited."""
    from flask import abort

    from app.permissions import get_in_scope_or_404
    if not can(user, permission):
        record_denial("permission_denied", resource_type="case_approvals", resource_id=str(approval_id),
                      detail={"permission": permission})
        abort(403)
    approval = db.session.get(CaseApproval, approval_id)
    if approval is None:
        record_denial("out_of_scope", resource_type="case_approvals", resource_id=str(approval_id),
                      detail={"permission": permission})
        abort(404)
    get_in_scope_or_404(Case, approval.case_id, user=user, permission=permission)
    return approval


# --- requests and decisions --------------------------------------------------------------------------------

def request_approval(case: Case, user, approval_type: str, note: str = "") -> CaseApproval:
    """Ask the supervisors of the case's groups to approve its plan or its closure.

    Closure needs the reason (it becomes the closure reason once approved); a case plan
    needs a written plan. A second request of the same type while one waits is refused (409).
    """
    note = (note or "").strip()
    if approval_type not in APPROVAL_TYPES:
        raise ApprovalError({"approval_type": [_("Unknown approval type.")]})
    if not approval_required(approval_type):
        raise ApprovalError({"approval_type": [
            _("%(type)s approval is not in use: an administrator has turned it off.",
              type=APPROVAL_TYPE_LABELS[approval_type])]})
    if approval_type == APPROVAL_CLOSURE and not note:
        raise ApprovalError({"note": [_("Say why the case should be closed.")]})
    if len(note) > 2000:
        raise ApprovalError({"note": [_("Use at most 2000 characters.")]})
    if approval_type == APPROVAL_CASE_PLAN and not has_case_plan(case):
        raise ApprovalError({"approval_type": [
            _("Write the case plan (its goals or services) before asking for its approval.")]})
    # The case row lock makes the "one pending request per type" check hold between two requests at once.
    db.session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    if case.status != STATUS_OPEN:
        raise ApprovalError({"approval_type": [_("This case is closed.")]}, status=409)
    if pending_approval(case, approval_type) is not None:
        raise ApprovalError({"approval_type": [
            _("A %(type)s approval request for this case is already waiting for a supervisor.",
              type=str(APPROVAL_TYPE_LABELS[approval_type]).lower())]}, status=409)
    approval = CaseApproval(case_id=case.id, approval_type=approval_type, status=APPROVAL_PENDING,
                            requested_by_id=user.id, requested_at=utcnow(), request_note=note or None,
                            case_version=case.version)
    db.session.add(approval)
    db.session.flush()
    record_change(case, "approval_requested", user,
                  [{"field": f"@approval_{approval_type}", "old": None, "new": APPROVAL_PENDING}], note or None)
    record_audit("case.approval_requested", "case", case.id,
                 detail={"approval_id": approval.id, "approval_type": approval_type}, user=user)
    _notify(supervisors_of(case), "approval_requested", REQUESTED_MESSAGES[approval_type], case, user,
            relative_url("approvals.queue"))
    return approval


def decide_approval(approval: CaseApproval, user, approve: bool, comment: str = "") -> CaseApproval:
    """Approve or reject a pending request (supervisors in the case's scope).

    Rejecting needs a comment. Approving a closure closes the case with the requested reason;
    approving a case plan moves the case to the services stage.
    """
    comment = (comment or "").strip()
    if is_own_work(approval, user):
        raise NotPermitted("approval.self_decision", "case_approval", approval.id)
    if not supervises(user, approval.case):
        raise NotPermitted("approval.not_supervisor", "case_approval", approval.id)
    if not approve and not comment:
        raise ApprovalError({"comment": [_("Say why the request is not approved.")]})
    if len(comment) > 2000:
        raise ApprovalError({"comment": [_("Use at most 2000 characters.")]})
    status = APPROVAL_APPROVED if approve else APPROVAL_REJECTED
    _leave_pending(approval, user, status, comment)
    case = approval.case
    changes = [{"field": f"@approval_{approval.approval_type}", "old": APPROVAL_PENDING, "new": status}]
    try:
        if approve and approval.approval_type == APPROVAL_CLOSURE:
            ops.close_case(case, user, approval.request_note or "", approved=approval)
        if approve and approval.approval_type == APPROVAL_CASE_PLAN:
            changes += _start_services(case, user)
    except RecordError as error:
        raise ApprovalError(error.errors, status=409) from error
    except EditConflict:  # someone saved the case at this moment: a 409 to retry, never a 500 (R1)
        raise ApprovalError({"case": [_("Someone saved the case at the same moment: try again.")]},
                            status=409) from None
    record_change(case, f"approval_{status}", user, changes, comment or None)
    record_audit(f"case.approval_{status}", "case", case.id,
                 detail={"approval_id": approval.id, "approval_type": approval.approval_type}, user=user)
    _notify([approval.requested_by], "approval_decided", DECIDED_MESSAGES[(approval.approval_type, status)],
            case, user, relative_url("cases.show_case", record_id=case.id) + "#approvals")
    return approval


def cancel_approval(approval: CaseApproval, user) -> CaseApproval:
    """The requester takes back a request that is still waiting."""
    if approval.requested_by_id != user.id:
        raise NotPermitted("approval.cancel_others", "case_approval", approval.id)
    _leave_pending(approval, user, APPROVAL_CANCELLED, None)
    case = approval.case
    record_change(case, "approval_cancelled", user, [
        {"field": f"@approval_{approval.approval_type}", "old": APPROVAL_PENDING, "new": APPROVAL_CANCELLED}])
    record_audit("case.approval_cancelled", "case", case.id,
                 detail={"approval_id": approval.id, "approval_type": approval.approval_type}, user=user)
    return approval


def _leave_pending(approval: CaseApproval, user, status: str, comment: str | None) -> None:
    """Move the request out of pending atomically: a second decider finds no pending row."""
    result = db.session.execute(update(CaseApproval).where(
        CaseApproval.id == approval.id, CaseApproval.status == APPROVAL_PENDING,
    ).values(status=status, decided_by_id=user.id, decided_at=utcnow(), decision_comment=comment or None)
        .execution_options(synchronize_session=False))
    db.session.refresh(approval)
    if result.rowcount != 1:
        if approval.status == APPROVAL_CANCELLED:
            message = _("The request was cancelled by the person who made it.")
        else:
            message = _("Someone else decided this request first: it is %(status)s.",
                        status=str(APPROVAL_STATUS_LABELS[approval.status]).lower())
        raise ApprovalError({"status": [message]}, status=409)


def _start_services(case: Case, user) -> list[dict]:
    """An approved plan moves an open case on to services (from any earlier stage)."""
    if case.status != STATUS_OPEN or case.workflow_stage in (STAGE_SERVICES, STAGE_CLOSURE):
        return []
    before = case.workflow_stage
    case.workflow_stage, case.updated_by_id, case.updated_at = STAGE_SERVICES, user.id, utcnow()
    from app.records.operations import flush_with_version_check
    flush_with_version_check(case, {})
    return [{"field": "@workflow_stage", "old": before, "new": STAGE_SERVICES}]


def _notify(recipients, kind: str, message: str, case: Case, actor, url: str) -> None:
    from app.notifications.operations import notify
    notify([r for r in recipients if r is not None], kind, message, {"case": case.short_id},
           actor=actor, record=case, url=url)



# --- demo data ---------------------------------------------------------------------------------------------

def seed_demo_approvals() -> str:
    """Demo seeder (after the demo records): both approvals on, unless an administrator already chose,
    and one closure request by the demo caseworker waiting in the demo supervisor's queue."""
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(("admin", "caseworker"))))}
    if "admin" not in users or "caseworker" not in users:
        return "Case approvals: demo users missing, nothing done."
    if db.session.scalar(select(ApprovalSetting.approval_type).limit(1)) is None:
        for approval_type in APPROVAL_TYPES:
            set_approval_required(approval_type, True, users["admin"])
    if db.session.scalar(select(CaseApproval.id).limit(1)) is not None:
        return "Case approvals: already in place."
    worker = users["caseworker"]
    case = db.session.scalars(select(Case).where(Case.owner_id == worker.id, Case.status == STATUS_OPEN)
                              .order_by(Case.short_id).limit(1)).first()
    if case is None or not approval_required(APPROVAL_CLOSURE):
        return "Case approvals: settings in place, no demo request."
    request_approval(case, worker, APPROVAL_CLOSURE, "Reunified with the family; follow-up visit done.")
    return f"Case approvals: closure of case {case.short_id} waits for the supervisor."


register_demo_seeder(80, seed_demo_approvals)


# --- retention ---------------------------------------------------------------------------------------------

def anonymise_approvals(record_type: str, record_ids: list[str]) -> None:
    """Retention (app.records.retention): clear what approval requests and decisions of anonymised
    cases said; their types, statuses and dates stay for the counts."""
    if record_type != "case" or not record_ids:
        return
    db.session.execute(update(CaseApproval).where(CaseApproval.case_id.in_(record_ids)).values(
        request_note=None, decision_comment=None).execution_options(synchronize_session=False))


register_anonymiser(anonymise_approvals)
