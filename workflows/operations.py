"""Referrals and transfers: request, approve, answer, complete, revoke.

Rules (issue #7, SECURITY.md S5/S6):
- Sharing a case needs the recorded consent to share with services (`consent_for_referral`
  on the case), or the override permission and a written reason.
- A referral waits for a supervisor of the requester's groups; nobody approves their own
  request, whatever their permissions. Once approved it reaches the recipient, who accepts
  or rejects it (with a reason), works on it and marks it done with a note. The requester
  can revoke it until it is accepted.
- The recipient sees only the shared sections (and of those only what their role may read),
  only while the referral is `sent` or `accepted`.
- A transfer moves ownership only when the recipient accepts it.

Every step is one conditional UPDATE on the status it starts from: two people acting on
the same referral at once cannot both win; the loser gets a WorkflowError (409). Each
operation writes a WorkflowEvent, the case's history, the audit trail and the notifications,
and only flushes: the view or API handler commits.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, or_, select, update

from app.audit.operations import record_audit
from app.db import utcnow
from app.extensions import db
from app.i18n import N_
from app.notifications.operations import notify, relative_url
from app.permissions import (
    ROLE_CASEWORKER,
    ROLE_SERVICE_PROVIDER,
    ROLE_SUPERVISOR,
    NotPermitted,
    can,
    register_permission,
)
from app.records.models import STATUS_OPEN
from app.records.operations import EditConflict, RecordError, flush_with_version_check, record_change
from app.records.retention import register_anonymiser
from app.records.views import ACTION_LABELS, RECORD_FIELD_LABELS, STATUS_VALUE_LABELS
from app.users.models import Agency, User
from workflows.models import (
    ACCEPTED,
    APPROVAL_REJECTED,
    BASIS_CONSENT,
    BASIS_OVERRIDE,
    DONE,
    PENDING_APPROVAL,
    REJECTED,
    REVOKED,
    SENT,
    TRANSFER_ACCEPTED,
    TRANSFER_CANCELLED,
    TRANSFER_PENDING,
    TRANSFER_REJECTED,
    Referral,
    Transfer,
    WorkflowEvent,
)

REFERRALS_CREATE = register_permission("referrals", "create", _l("Refer cases in one's scope to services"),
                                       (ROLE_CASEWORKER, ROLE_SUPERVISOR))
REFERRALS_APPROVE = register_permission(
    "referrals", "approve", _l("Approve or refuse referrals of cases in one's scope (never one's own)"),
    (ROLE_SUPERVISOR,))
REFERRALS_RECEIVE = register_permission(
    "referrals", "receive", _l("Receive referrals addressed to oneself or one's agency, and answer them"),
    (ROLE_SERVICE_PROVIDER, ROLE_CASEWORKER, ROLE_SUPERVISOR))
CONSENT_OVERRIDE = register_permission(
    "referrals", "override_consent",
    _l("Refer or transfer a case without recorded consent, giving the reason"), (ROLE_SUPERVISOR,))
TRANSFERS_CREATE = register_permission("transfers", "create", _l("Transfer cases in one's scope"),
                                       (ROLE_CASEWORKER, ROLE_SUPERVISOR))
TRANSFERS_RECEIVE = register_permission(
    "transfers", "receive", _l("Receive transferred cases addressed to oneself or one's agency"),
    (ROLE_CASEWORKER, ROLE_SUPERVISOR))

# The case history names these steps and values (app.records.views).
ACTION_LABELS.update({
    "referral_requested": _l("Referral requested"), "referral_approved": _l("Referral approved and sent"),
    "referral_approval_rejected": _l("Referral not approved"), "referral_accepted": _l("Referral accepted"),
    "referral_rejected": _l("Referral rejected by the service"), "referral_done": _l("Referral done"),
    "referral_revoked": _l("Referral revoked"), "transfer_requested": _l("Transfer requested"),
    "transfer_accepted": _l("Transfer accepted"), "transfer_rejected": _l("Transfer rejected"),
    "transfer_cancelled": _l("Transfer cancelled"),
})
RECORD_FIELD_LABELS.update({"@referral": _l("Referral"), "@transfer": _l("Transfer")})
TRANSFER_REQUESTED = "requested"  # the history's value for a pending transfer ("pending" means an approval)
REFERRAL_STATUS_LABELS = {
    PENDING_APPROVAL: _l("Waiting for approval"), APPROVAL_REJECTED: _l("Not approved"), SENT: _l("Sent"),
    ACCEPTED: _l("Accepted"), REJECTED: _l("Rejected"), DONE: _l("Done"), REVOKED: _l("Revoked"),
}
STATUS_VALUE_LABELS.update({**REFERRAL_STATUS_LABELS, TRANSFER_REQUESTED: _l("Requested"),
                            TRANSFER_CANCELLED: _l("Cancelled")})

# The case field that records consent to share with services (forms/config/default_config.json).
REFERRAL_CONSENT_FIELD = "consent_for_referral"
SERVICE_LOOKUP = "service_type"
TEXT_LIMIT = 4000


class WorkflowError(RecordError):
    """A refused step: 422 with field messages (bad input), or 409 (someone acted first, wrong state)."""


def _required_text(value, field: str, message) -> str:
    value = (value or "").strip()
    if not value:
        raise WorkflowError({field: [message]})
    if len(value) > TEXT_LIMIT:
        raise WorkflowError({field: [_l("Use at most %(n)s characters.", n=TEXT_LIMIT)]})
    return value


def _optional_text(value, field: str) -> str | None:
    value = (value or "").strip()
    if len(value) > TEXT_LIMIT:
        raise WorkflowError({field: [_l("Use at most %(n)s characters.", n=TEXT_LIMIT)]})
    return value or None


def _event(subject_type: str, subject_id: str, action: str, user, comment: str | None = None) -> None:
    db.session.add(WorkflowEvent(subject_type=subject_type, subject_id=subject_id, action=action,
                                 user_id=getattr(user, "id", None), at=utcnow(), comment=comment))


def events_of(subject_type: str, subject_id: str) -> list[WorkflowEvent]:
    return list(db.session.execute(select(WorkflowEvent).where(
        WorkflowEvent.subject_type == subject_type, WorkflowEvent.subject_id == subject_id)
        .order_by(WorkflowEvent.id)).scalars())


def _transition(model, row, from_statuses: tuple[str, ...], values: dict, lost_message) -> None:
    """Move `row` on from one of `from_statuses` in one conditional UPDATE; refuse (409) if it had moved."""
    result = db.session.execute(update(model).where(model.id == row.id, model.status.in_(from_statuses))
                                .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise WorkflowError({"status": [lost_message]}, status=409)
    db.session.refresh(row)


# --- consent (S6) -----------------------------------------------------------------------------------

def has_sharing_consent(case) -> bool:
    return bool((case.data or {}).get(REFERRAL_CONSENT_FIELD))


def _consent_basis(case, user, override_reason) -> tuple[str, str | None]:
    if has_sharing_consent(case):
        return BASIS_CONSENT, None
    reason = (override_reason or "").strip()
    if not can(user, CONSENT_OVERRIDE):
        raise WorkflowError({"consent": [_l(
            "The case has no recorded consent to share with services. Record the consent on the case first.")]})
    if not reason:
        raise WorkflowError({"override_reason": [_l(
            "The case has no recorded consent to share with services: say why it is shared anyway.")]})
    return BASIS_OVERRIDE, _optional_text(reason, "override_reason")


# --- who receives, who approves -----------------------------------------------------------------------

def _receivers(agency_id: int, user_id: int | None, permission: str) -> list[User]:
    """The users a referral or transfer reaches: the named user, or everyone of the agency who may receive."""
    query = select(User).where(User.is_active.is_(True))
    query = query.where(User.id == user_id) if user_id else query.where(User.agency_id == agency_id)
    return [user for user in db.session.execute(query).scalars() if can(user, permission)]


def _check_recipient(agency_id, user_id, permission: str, actor,
                     fields: tuple[str, str] = ("recipient_agency_id", "recipient_user_id")) -> tuple[Agency, User | None]:
    agency_field, user_field = fields
    agency = db.session.get(Agency, agency_id) if agency_id and agency_id > 0 else None
    if agency is None or not agency.is_active:
        raise WorkflowError({agency_field: [_l("Choose an active agency.")]})
    recipient = None
    if user_id:
        recipient = db.session.get(User, user_id) if user_id > 0 else None
        if (recipient is None or not recipient.is_active or recipient.agency_id != agency.id
                or not can(recipient, permission)):
            raise WorkflowError({user_field: [_l(
                "Choose an active user of that agency who may receive it, or leave it to the agency.")]})
        if recipient.id == actor.id:
            raise WorkflowError({user_field: [_l("You cannot send it to yourself.")]})
    elif not _receivers(agency.id, None, permission):
        raise WorkflowError({agency_field: [_l("Nobody in that agency can receive it yet.")]})
    return agency, recipient


def approvers_of(requester) -> list[User]:
    """Supervisors of the requester's active groups who may approve referrals (never the requester)."""
    group_ids = [group.id for group in requester.groups if group.is_active]
    if not group_ids:
        return []
    from app.users.models import UserGroup
    users = db.session.execute(select(User).where(
        User.is_active.is_(True), User.id != requester.id,
        User.groups.any(UserGroup.id.in_(group_ids)))).scalars()
    return [user for user in users if user.role and user.role.is_supervisor and can(user, REFERRALS_APPROVE)]


def is_referral_recipient(user, referral: Referral) -> bool:
    """Whether `user` is who the referral is addressed to (once approved)."""
    if not can(user, REFERRALS_RECEIVE) or referral.approved_by_id is None or referral.status == APPROVAL_REJECTED:
        return False
    if referral.recipient_user_id is not None:
        return referral.recipient_user_id == user.id
    return user.agency_id == referral.recipient_agency_id


def received_referrals_clause(user):
    """SQL: the referrals that reached `user` (approved, addressed to them or to their agency)."""
    return and_(Referral.approved_by_id.is_not(None), Referral.status != APPROVAL_REJECTED,
                or_(Referral.recipient_user_id == user.id,
                    and_(Referral.recipient_user_id.is_(None), Referral.recipient_agency_id == user.agency_id)))


def is_transfer_recipient(user, transfer: Transfer) -> bool:
    if not can(user, TRANSFERS_RECEIVE):
        return False
    if transfer.to_user_id is not None:
        return transfer.to_user_id == user.id
    return user.agency_id == transfer.to_agency_id


def received_transfers_clause(user):
    return or_(Transfer.to_user_id == user.id,
               and_(Transfer.to_user_id.is_(None), Transfer.to_agency_id == user.agency_id))


# --- what a referral shares ---------------------------------------------------------------------------

def shareable_sections(user) -> list:
    """Case form sections `user` may share: those they can read, without attachments-only sections."""
    from forms.definitions import access_for, get_definition
    definition = get_definition("case")
    access = access_for(definition, user)
    return [section for section in definition.sections
            if access.can_read_section(section) and not section.is_hidden]


def shared_access(referral: Referral, user):
    """The FormAccess of a recipient: the shared sections their role may read; photos and documents left out
    (files are served only to users with the case in scope)."""
    from forms.definitions import FormAccess, _field_keys, access_for, get_definition
    definition = get_definition("case")
    own = access_for(definition, user)
    sections = {key for key in referral.shared_sections if key in own.readable_sections}
    readable = set()
    for section in definition.sections:
        if section.key in sections:
            for item in section.all_fields:
                if item.holds_value and not item.is_attachment:
                    readable.update(_field_keys(item))
    return definition, FormAccess(frozenset(sections), frozenset(), frozenset(readable), frozenset())


def shared_values(referral: Referral, user) -> tuple[object, object, dict]:
    """(definition, access, values) the recipient may see now; nothing unless the referral is active."""
    definition, access = shared_access(referral, user)
    if not referral.is_active:
        from forms.definitions import FormAccess
        return definition, FormAccess(frozenset(), frozenset(), frozenset(), frozenset()), {}
    data = referral.case.data or {}
    return definition, access, {key: value for key, value in data.items() if key in access.readable}


# --- referrals -----------------------------------------------------------------------------------------

def _service_codes() -> set[str]:
    from forms.definitions import lookup_options
    return {option.code for option in lookup_options(SERVICE_LOOKUP)}


def refer_case(case, user, *, service_type: str, recipient_agency_id: int | None, recipient_user_id: int | None,
               sections: list[str], reason: str, override_reason: str | None = None) -> Referral:
    """Ask for `case` to be referred to a service; it waits for a supervisor's approval.

    The caller has checked that the case is in `user`'s scope and that they may refer.
    """
    if case.status != STATUS_OPEN:
        raise WorkflowError({"case": [_l("Only an open case can be referred.")]}, status=409)
    errors: dict = {}
    if service_type not in _service_codes():
        errors["service_type"] = [_l("Choose a listed service.")]
    allowed = {section.key for section in shareable_sections(user)}
    chosen = [key for key in dict.fromkeys(sections or [])]
    if not chosen:
        errors["sections"] = [_l("Choose at least one section to share.")]
    elif any(key not in allowed for key in chosen):
        errors["sections"] = [_l("You can only share sections you can read.")]
    if not (reason or "").strip():
        errors["reason"] = [_l("Say what the child needs from the service.")]
    if errors:
        raise WorkflowError(errors)
    reason = _required_text(reason, "reason", _l("Say what the child needs from the service."))
    agency, recipient = _check_recipient(recipient_agency_id, recipient_user_id, REFERRALS_RECEIVE, user)
    basis, override = _consent_basis(case, user, override_reason)
    now = utcnow()
    referral = Referral(case_id=case.id, service_type=service_type, recipient_agency_id=agency.id,
                        recipient_user_id=recipient.id if recipient else None, shared_sections=chosen,
                        reason=reason, consent_basis=basis, override_reason=override, status=PENDING_APPROVAL,
                        requested_by_id=user.id, requested_at=now, updated_at=now)
    referral.case = case
    db.session.add(referral)
    db.session.flush()
    _event("referral", referral.id, "requested", user)  # the override reason stays on the sender's side
    record_change(case, "referral_requested", user, [
        {"field": "@referral", "old": None, "new": service_type}], override)
    record_audit("referral.request", "case", case.id, detail={
        "referral": referral.id, "service": service_type, "sections": chosen, "basis": basis,
        "agency": agency.id}, user=user)
    approvers = approvers_of(user)
    notify(approvers, "approval_requested", N_("Referral of case %(case)s awaits your approval"),
           {"case": case.short_id}, actor=user, record=case,
           url=relative_url("workflows.show_referral", referral_id=referral.id))
    return referral


def may_decide_approval(user, referral: Referral) -> bool:
    """Supervisors decide referrals of cases they supervise through their own role's scope, never
    their own requests nor referrals of cases they own (S5), as for case approvals."""
    from cases.approvals import supervises
    return (can(user, REFERRALS_APPROVE) and referral.requested_by_id != user.id
            and referral.case.owner_id != user.id and supervises(user, referral.case))


def _ensure_still_shareable(referral: Referral) -> None:
    """Consent and an open case are checked again when the referral goes out (S6): either may have
    changed while it waited."""
    case = referral.case
    if case.status != STATUS_OPEN:
        raise WorkflowError({"case": [_l("The case was closed: the referral can no longer go out.")]}, status=409)
    if referral.consent_basis != BASIS_OVERRIDE and not has_sharing_consent(case):
        raise WorkflowError({"consent": [_l(
            "The consent to share with services was withdrawn from the case: the referral can no longer go out.")]},
            status=409)


def approve_referral(referral: Referral, user, comment: str | None = None) -> None:
    """A supervisor lets the referral go to its recipient (never their own request or case: S5)."""
    if not may_decide_approval(user, referral):
        raise NotPermitted("referral.approve", "referral", referral.id)
    comment = _optional_text(comment, "comment")
    _ensure_still_shareable(referral)
    now = utcnow()
    _transition(Referral, referral, (PENDING_APPROVAL,), {
        "status": SENT, "approved_by_id": user.id, "approval_decided_at": now, "approval_comment": comment,
        "updated_at": now}, _l("Someone else decided on this referral first."))
    _event("referral", referral.id, "approved", user, comment)
    record_change(referral.case, "referral_approved", user, [
        {"field": "@referral", "old": PENDING_APPROVAL, "new": SENT}], comment)
    record_audit("referral.approve", "case", referral.case_id, detail={"referral": referral.id}, user=user)
    url = relative_url("workflows.show_referral", referral_id=referral.id)
    params = {"case": referral.case.short_id}
    notify(_receivers(referral.recipient_agency_id, referral.recipient_user_id, REFERRALS_RECEIVE),
           "referral_received", N_("A referral of case %(case)s was sent to you"), params, actor=user, url=url)
    notify([referral.requested_by], "approval_decided",
           N_("Your referral of case %(case)s was approved and sent"), params, actor=user,
           record=referral.case, url=url)


def reject_referral_approval(referral: Referral, user, comment: str) -> None:
    """A supervisor refuses to let the referral go, saying why."""
    if not may_decide_approval(user, referral):
        raise NotPermitted("referral.approve", "referral", referral.id)
    comment = _required_text(comment, "comment", _l("Say why the referral is not approved."))
    now = utcnow()
    _transition(Referral, referral, (PENDING_APPROVAL,), {
        "status": APPROVAL_REJECTED, "approved_by_id": user.id, "approval_decided_at": now,
        "approval_comment": comment, "updated_at": now}, _l("Someone else decided on this referral first."))
    _event("referral", referral.id, "approval_rejected", user, comment)
    record_change(referral.case, "referral_approval_rejected", user, [
        {"field": "@referral", "old": PENDING_APPROVAL, "new": APPROVAL_REJECTED}], comment)
    record_audit("referral.approval_reject", "case", referral.case_id, detail={"referral": referral.id},
                 user=user)
    notify([referral.requested_by], "approval_decided",
           N_("Your referral of case %(case)s was not approved"), {"case": referral.case.short_id},
           actor=user, record=referral.case,
           url=relative_url("workflows.show_referral", referral_id=referral.id))


def _answer_params(referral: Referral) -> tuple[dict, str]:
    return ({"case": referral.case.short_id},
            relative_url("workflows.show_referral", referral_id=referral.id))


def accept_referral(referral: Referral, user) -> None:
    """The recipient takes the referral on (an agency-wide referral becomes theirs)."""
    if not is_referral_recipient(user, referral):
        raise NotPermitted("referral.accept", "referral", referral.id)
    _ensure_still_shareable(referral)
    now = utcnow()
    _transition(Referral, referral, (SENT,), {
        "status": ACCEPTED, "answered_by_id": user.id, "answered_at": now, "updated_at": now,
        "recipient_user_id": referral.recipient_user_id or user.id},
        _l("This referral is no longer waiting for an answer."))
    _event("referral", referral.id, "accepted", user)
    record_change(referral.case, "referral_accepted", user, [{"field": "@referral", "old": SENT, "new": ACCEPTED}])
    record_audit("referral.accept", "case", referral.case_id, detail={"referral": referral.id}, user=user)
    params, url = _answer_params(referral)
    notify([referral.requested_by], "referral_answered", N_("Your referral of case %(case)s was accepted"),
           params, actor=user, record=referral.case, url=url)


def decline_referral(referral: Referral, user, reason: str) -> None:
    """The recipient turns the referral down, saying why."""
    if not is_referral_recipient(user, referral):
        raise NotPermitted("referral.reject", "referral", referral.id)
    reason = _required_text(reason, "reason", _l("Say why the referral is rejected."))
    now = utcnow()
    _transition(Referral, referral, (SENT,), {
        "status": REJECTED, "answered_by_id": user.id, "answered_at": now, "answer_reason": reason,
        "updated_at": now}, _l("This referral is no longer waiting for an answer."))
    _event("referral", referral.id, "rejected", user, reason)
    record_change(referral.case, "referral_rejected", user, [{"field": "@referral", "old": SENT, "new": REJECTED}],
                  reason)
    record_audit("referral.reject", "case", referral.case_id, detail={"referral": referral.id}, user=user)
    params, url = _answer_params(referral)
    notify([referral.requested_by], "referral_answered", N_("Your referral of case %(case)s was rejected"),
           params, actor=user, record=referral.case, url=url)


def complete_referral(referral: Referral, user, note: str) -> None:
    """The recipient who accepted the referral reports the service done."""
    if not is_referral_recipient(user, referral) or referral.answered_by_id not in (None, user.id):
        raise NotPermitted("referral.done", "referral", referral.id)
    note = _required_text(note, "note", _l("Say what was done."))
    now = utcnow()
    _transition(Referral, referral, (ACCEPTED,), {
        "status": DONE, "done_at": now, "done_note": note, "updated_at": now},
        _l("Only an accepted referral can be marked done."))
    _event("referral", referral.id, "done", user, note)
    record_change(referral.case, "referral_done", user, [{"field": "@referral", "old": ACCEPTED, "new": DONE}], note)
    record_audit("referral.done", "case", referral.case_id, detail={"referral": referral.id}, user=user)
    params, url = _answer_params(referral)
    notify([referral.requested_by], "referral_answered", N_("The referral of case %(case)s is done"),
           params, actor=user, record=referral.case, url=url)


def revoke_referral(referral: Referral, user, reason: str) -> None:
    """The requester withdraws the referral before it is accepted."""
    if referral.requested_by_id != user.id:
        raise NotPermitted("referral.revoke", "referral", referral.id)
    reason = _required_text(reason, "reason", _l("Say why the referral is revoked."))
    was_sent = referral.status == SENT
    now = utcnow()
    _transition(Referral, referral, (PENDING_APPROVAL, SENT), {
        "status": REVOKED, "revoked_at": now, "revoke_reason": reason, "updated_at": now},
        _l("Only a referral that is not yet accepted can be revoked."))
    _event("referral", referral.id, "revoked", user, reason)
    record_change(referral.case, "referral_revoked", user, [
        {"field": "@referral", "old": SENT if was_sent else PENDING_APPROVAL, "new": REVOKED}], reason)
    record_audit("referral.revoke", "case", referral.case_id, detail={"referral": referral.id}, user=user)
    if was_sent:
        params, url = _answer_params(referral)
        notify(_receivers(referral.recipient_agency_id, referral.recipient_user_id, REFERRALS_RECEIVE),
               "referral_revoked", N_("The referral of case %(case)s was withdrawn"), params, actor=user, url=url)


# --- transfers -----------------------------------------------------------------------------------------

def request_transfer(case, user, *, to_agency_id: int | None, to_user_id: int | None, reason: str,
                     override_reason: str | None = None) -> Transfer:
    """Offer the whole case to another caseworker or agency; ownership moves when they accept."""
    if case.status != STATUS_OPEN:
        raise WorkflowError({"case": [_l("Only an open case can be transferred.")]}, status=409)
    reason = _required_text(reason, "reason", _l("Say why the case is transferred."))
    agency, recipient = _check_recipient(to_agency_id, to_user_id, TRANSFERS_RECEIVE, user,
                                         ("to_agency_id", "to_user_id"))
    if recipient is not None and recipient.id == case.owner_id:
        raise WorkflowError({"to_user_id": [_l("This user already owns the case.")]})
    from cases.models import Case
    db.session.execute(select(Case.id).where(Case.id == case.id).with_for_update())  # serialise the check
    pending = db.session.execute(select(Transfer.id).where(
        Transfer.case_id == case.id, Transfer.status == TRANSFER_PENDING)).first()
    if pending:
        raise WorkflowError({"case": [_l("A transfer of this case is already waiting for an answer.")]}, status=409)
    basis, override = _consent_basis(case, user, override_reason)
    transfer = Transfer(case_id=case.id, from_user_id=case.owner_id, to_agency_id=agency.id,
                        to_user_id=recipient.id if recipient else None, reason=reason, consent_basis=basis,
                        override_reason=override, status=TRANSFER_PENDING, requested_by_id=user.id,
                        requested_at=utcnow())
    transfer.case = case
    db.session.add(transfer)
    db.session.flush()
    _event("transfer", transfer.id, "requested", user)
    record_change(case, "transfer_requested", user, [{"field": "@transfer", "old": None, "new": TRANSFER_REQUESTED}],
                  reason)
    record_audit("transfer.request", "case", case.id, detail={
        "transfer": transfer.id, "agency": agency.id, "basis": basis}, user=user)
    notify(_receivers(agency.id, transfer.to_user_id, TRANSFERS_RECEIVE), "transfer_received",
           N_("Case %(case)s is being transferred to you"), {"case": case.short_id}, actor=user,
           url=relative_url("workflows.show_transfer", transfer_id=transfer.id))
    return transfer


def accept_transfer(transfer: Transfer, user) -> None:
    """The recipient takes the case: it becomes theirs, with their agency and groups."""
    if not is_transfer_recipient(user, transfer):
        raise NotPermitted("transfer.accept", "transfer", transfer.id)
    case = transfer.case
    if case.status != STATUS_OPEN:
        raise WorkflowError({"case": [_l("Only an open case can be transferred.")]}, status=409)
    if case.owner_id != transfer.from_user_id:
        raise WorkflowError({"case": [_l(
            "The case changed hands since this transfer was offered: ask its caseworker to offer it again.")]},
            status=409)
    now = utcnow()
    _transition(Transfer, transfer, (TRANSFER_PENDING,), {
        "status": TRANSFER_ACCEPTED, "answered_by_id": user.id, "answered_at": now},
        _l("This transfer is no longer waiting for an answer."))
    previous_owner = case.owner
    before = {"@owner": previous_owner.full_name if previous_owner else None}
    case.owner_id, case.agency_id = user.id, user.agency_id
    case.groups = [group for group in user.groups if group.is_active]
    case.updated_by_id, case.updated_at = user.id, now
    try:
        flush_with_version_check(case, {})  # the version moves: an edit based on the old one now conflicts (R1)
    except EditConflict:
        raise WorkflowError({"case": [_l("Someone saved the case at the same moment: try again.")]},
                            status=409) from None
    _event("transfer", transfer.id, "accepted", user)
    record_change(case, "transfer_accepted", user, [{"field": "@owner", "old": before["@owner"],
                                                     "new": user.full_name}])
    record_audit("transfer.accept", "case", case.id, detail={
        "transfer": transfer.id, "from_user": transfer.from_user_id, "agency": user.agency_id}, user=user)
    notify([transfer.requested_by, previous_owner], "transfer_answered",
           N_("The transfer of case %(case)s was accepted"), {"case": case.short_id}, actor=user,
           url=relative_url("workflows.show_transfer", transfer_id=transfer.id))


def decline_transfer(transfer: Transfer, user, reason: str) -> None:
    """The recipient turns the case down; it stays where it is."""
    if not is_transfer_recipient(user, transfer):
        raise NotPermitted("transfer.reject", "transfer", transfer.id)
    reason = _required_text(reason, "reason", _l("Say why the transfer is rejected."))
    _transition(Transfer, transfer, (TRANSFER_PENDING,), {
        "status": TRANSFER_REJECTED, "answered_by_id": user.id, "answered_at": utcnow(), "answer_reason": reason},
        _l("This transfer is no longer waiting for an answer."))
    _event("transfer", transfer.id, "rejected", user, reason)
    record_change(transfer.case, "transfer_rejected", user, [
        {"field": "@transfer", "old": TRANSFER_REQUESTED, "new": TRANSFER_REJECTED}], reason)
    record_audit("transfer.reject", "case", transfer.case_id, detail={"transfer": transfer.id}, user=user)
    notify([transfer.requested_by], "transfer_answered", N_("The transfer of case %(case)s was rejected"),
           {"case": transfer.case.short_id}, actor=user,
           url=relative_url("workflows.show_transfer", transfer_id=transfer.id))


def cancel_transfer(transfer: Transfer, user, reason: str | None = None) -> None:
    """The requester (or the case's owner) withdraws a transfer that has no answer yet."""
    if user.id not in (transfer.requested_by_id, transfer.case.owner_id):
        raise NotPermitted("transfer.cancel", "transfer", transfer.id)
    reason = _optional_text(reason, "reason")
    _transition(Transfer, transfer, (TRANSFER_PENDING,), {
        "status": TRANSFER_CANCELLED, "answered_at": utcnow(), "answer_reason": reason},
        _l("This transfer is no longer waiting for an answer."))
    _event("transfer", transfer.id, "cancelled", user, reason)
    record_change(transfer.case, "transfer_cancelled", user, [
        {"field": "@transfer", "old": TRANSFER_REQUESTED, "new": TRANSFER_CANCELLED}], reason)
    record_audit("transfer.cancel", "case", transfer.case_id, detail={"transfer": transfer.id}, user=user)
    notify(_receivers(transfer.to_agency_id, transfer.to_user_id, TRANSFERS_RECEIVE), "transfer_answered",
           N_("The transfer of case %(case)s was withdrawn"), {"case": transfer.case.short_id}, actor=user,
           url=relative_url("workflows.show_transfer", transfer_id=transfer.id))


# --- retention -----------------------------------------------------------------------------------------

def anonymise_workflows(record_type: str, record_ids: list[str]) -> None:
    """Retention (app.records.retention): clear the free text of the referrals and transfers of
    anonymised cases. Statuses, service types and dates stay, for the counts."""
    if record_type != "case" or not record_ids:
        return
    referral_ids = select(Referral.id).where(Referral.case_id.in_(record_ids))
    transfer_ids = select(Transfer.id).where(Transfer.case_id.in_(record_ids))
    db.session.execute(update(Referral).where(Referral.case_id.in_(record_ids)).values(
        reason="", override_reason=None, approval_comment=None, answer_reason=None, done_note=None,
        revoke_reason=None).execution_options(synchronize_session=False))
    db.session.execute(update(Transfer).where(Transfer.case_id.in_(record_ids)).values(
        reason="", override_reason=None, answer_reason=None).execution_options(synchronize_session=False))
    db.session.execute(update(WorkflowEvent).where(or_(
        and_(WorkflowEvent.subject_type == "referral", WorkflowEvent.subject_id.in_(referral_ids)),
        and_(WorkflowEvent.subject_type == "transfer", WorkflowEvent.subject_id.in_(transfer_ids))))
        .values(comment=None).execution_options(synchronize_session=False))


register_anonymiser(anonymise_workflows)
