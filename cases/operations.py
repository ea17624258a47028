"""Operations on cases: register, update, close, reopen, assign.

Each validates the form data through the forms engine, keeps the indexed copies
of a few values in step, writes the field-level history and the audit entry,
and tells the record-saved hooks (the matching engine) what changed. They
flush; the view or API handler commits once.
"""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.audit.operations import record_audit
from app.db import new_uuid, utcnow
from app.permissions import (
    ROLE_ADMINISTRATOR,
    ROLE_CASEWORKER,
    ROLE_SUPERVISOR,
    ROLE_TRACING_OFFICER,
    register_permission,
)
from app.records import hooks
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from app.records.operations import (
    RecordError,
    check_version,
    diff_data,
    ensure_not_anonymised,
    flush_with_version_check,
    insert_with_short_id,
)
from app.records.operations import record_change as _record_change
from app.records.search import index_names
from app.records.values import denormalised_values
from cases.models import STAGE_CLOSURE, STAGE_NEW, Case

CASES_READ = register_permission("cases", "read", _l("See cases in one's scope"),
                                 (ROLE_CASEWORKER, ROLE_SUPERVISOR, ROLE_TRACING_OFFICER))
CASES_CREATE = register_permission("cases", "create", _l("Register cases"), (ROLE_CASEWORKER, ROLE_SUPERVISOR))
CASES_UPDATE = register_permission("cases", "update", _l("Edit cases, add notes and flags"),
                                   (ROLE_CASEWORKER, ROLE_SUPERVISOR))
CASES_CLOSE = register_permission("cases", "close", _l("Close and reopen cases"),
                                  (ROLE_CASEWORKER, ROLE_SUPERVISOR))
CASES_RESOLVE_FLAGS = register_permission("cases", "resolve_flags", _l("Resolve flags on cases"),
                                          (ROLE_SUPERVISOR,))
CASES_EXPORT = register_permission("cases", "export", _l("Export cases in bulk (CSV, XLSX)"), (ROLE_SUPERVISOR,))
CASES_IMPORT = register_permission("cases", "import", _l("Import cases from CSV or XLSX"),
                                   (ROLE_SUPERVISOR, ROLE_ADMINISTRATOR))
CASES_REQUEST_APPROVAL = register_permission("cases", "request_approval",
                                             _l("Ask a supervisor to approve a case plan or a closure"),
                                             (ROLE_CASEWORKER, ROLE_SUPERVISOR))
CASES_APPROVE = register_permission("cases", "approve",
                                    _l("Approve or reject case plans and closures of others' cases in one's scope"),
                                    (ROLE_SUPERVISOR,))
CASES_ASSIGN = register_permission("cases", "assign", _l("Reassign cases in one's scope to another caseworker"),
                                   (ROLE_SUPERVISOR,))
APPROVALS_CONFIGURE = register_permission("approvals", "configure",
                                          _l("Choose which case approvals are required"),
                                          (ROLE_ADMINISTRATOR,), is_admin=True)

CONSENT_FIELD = "consent_for_tracing"


def _apply_values(case: Case, data: dict) -> None:
    """Store the form values and keep the indexed copies in step (name keys: index_names)."""
    case.data = data
    values = denormalised_values("case", data)
    case.display_name = values["display_name"]
    case.sex = values["sex"]
    case.age = values["age"]
    case.location_code = values["location_code"]
    case.phone_digits = values["phone_digits"]
    case.is_consent_for_tracing = bool(data.get(CONSENT_FIELD))


def create_case(user, data: dict, *, draft: bool = False, source_id: str | None = None,
                action: str = "create") -> Case:
    """Register a child. The case belongs to `user`, their agency and their groups."""
    from forms.operations import validate_record_data
    cleaned = validate_record_data("case", data, user, draft=draft)
    case = Case(id=new_uuid(), owner_id=user.id, agency_id=user.agency_id, created_by_id=user.id,
                updated_by_id=user.id, workflow_stage=STAGE_NEW, status=STATUS_OPEN, source_id=source_id)
    case.groups = list(user.groups)
    _apply_values(case, cleaned)
    insert_with_short_id(case, Case)
    index_names(case)
    _record_change(case, action, user, diff_data({}, cleaned))
    record_audit(f"case.{action}", "case", case.id, detail={"fields": sorted(cleaned)}, user=user)
    hooks.record_saved(case, set(cleaned))
    return case


def update_case(case: Case, user, data: dict, expected_version: int | None, *, draft: bool = False,
                action: str = "update") -> list[dict]:
    """Save new form values over `case`. Returns the field-level changes (none: nothing saved).

    Raises EditConflict if someone saved since `expected_version` (R1).
    """
    ensure_not_anonymised(case)
    from forms.operations import validate_record_data
    check_version(case, expected_version, data)
    cleaned = validate_record_data("case", data, user, existing=case.data, draft=draft)
    changes = diff_data(case.data or {}, cleaned)
    if not changes:
        return []
    _apply_values(case, cleaned)
    case.updated_by_id, case.updated_at = user.id, utcnow()
    flush_with_version_check(case, data)
    index_names(case)
    _record_change(case, action, user, changes)
    record_audit(f"case.{action}", "case", case.id, detail={"fields": [c["field"] for c in changes]}, user=user)
    hooks.record_saved(case, {c["field"] for c in changes})
    return changes


def close_case(case: Case, user, reason: str, expected_version: int | None = None, *, approved=None) -> None:
    """Close the case with the reason. While closures need a supervisor's approval (an
    administrator's setting), only an approved request (`approved`, from
    cases.approvals.decide_approval) closes a case."""
    from cases.approvals import approval_required
    from cases.models import APPROVAL_CLOSURE
    reason = (reason or "").strip()
    if case.status == STATUS_CLOSED:
        raise RecordError({"status": [_("This case is already closed.")]})
    if approved is None and approval_required(APPROVAL_CLOSURE):
        raise RecordError({"status": [_("Closing a case needs a supervisor's approval: ask for it in the "
                                        "case's Approvals panel.")]})
    if not reason:
        raise RecordError({"reason": [_("Say why the case is closed.")]})
    check_version(case, expected_version, {})
    before = {"@status": case.status, "@workflow_stage": case.workflow_stage}
    case.status, case.workflow_stage = STATUS_CLOSED, STAGE_CLOSURE
    case.closed_at, case.closure_reason = utcnow(), reason[:2000]
    case.updated_by_id, case.updated_at = user.id, utcnow()
    flush_with_version_check(case, {})
    _record_change(case, "close", user, diff_data(before, {"@status": case.status,
                                                          "@workflow_stage": case.workflow_stage}), reason)
    record_audit("case.close", "case", case.id, user=user)
    hooks.record_saved(case, {"@status"})


def reopen_case(case: Case, user, reason: str, expected_version: int | None = None) -> None:
    ensure_not_anonymised(case)
    reason = (reason or "").strip()
    if case.status != STATUS_CLOSED:
        raise RecordError({"status": [_("This case is open.")]})
    if not reason:
        raise RecordError({"reason": [_("Say why the case is reopened.")]})
    check_version(case, expected_version, {})
    case.status, case.workflow_stage = STATUS_OPEN, STAGE_NEW
    case.closed_at, case.closure_reason = None, None
    case.updated_by_id, case.updated_at = user.id, utcnow()
    flush_with_version_check(case, {})
    _record_change(case, "reopen", user, [{"field": "@status", "old": STATUS_CLOSED, "new": STATUS_OPEN}], reason)
    record_audit("case.reopen", "case", case.id, user=user)
    hooks.record_saved(case, {"@status"})


# --- assignment -------------------------------------------------------------------------------------------

def assignable_users(actor) -> list:
    """Who `actor` may hand cases to: active users of the actor's agency who may work on cases
    and who are in one of the actor's active groups (any user of the agency for an actor whose
    role reaches the whole agency). Moving a case to another agency is a transfer, not this."""
    from sqlalchemy import exists, select

    from app.users.models import SCOPE_AGENCY, SCOPE_ALL, Role, RolePermission, User, UserGroup, user_groups
    from app.extensions import db
    may_work = exists().where(RolePermission.role_id == Role.id, RolePermission.permission == CASES_UPDATE)
    query = (select(User).join(Role, Role.id == User.role_id)
             .where(User.is_active.is_(True), User.agency_id == actor.agency_id, may_work))
    if actor.role is None or actor.role.scope not in (SCOPE_AGENCY, SCOPE_ALL):
        group_ids = [group.id for group in actor.groups if group.is_active]
        query = query.where(exists().where(user_groups.c.user_id == User.id, user_groups.c.group_id.in_(group_ids),
                                           UserGroup.id == user_groups.c.group_id))
    return list(db.session.scalars(query.order_by(User.full_name, User.id)))


def cases_in_scope_or_404(actor, case_ids, permission: str) -> list[Case]:
    """Load every case named (locked for update), or refuse them all: 403 without the permission,
    404 if any is missing or outside the actor's scope (which ones is not said); both audited."""
    from flask import abort
    from sqlalchemy import select

    from app.audit.operations import record_denial
    from app.extensions import db
    from app.permissions import can, scope_filter
    if not can(actor, permission):
        record_denial("permission_denied", resource_type="cases", detail={"permission": permission})
        abort(403)
    wanted = sorted(set(case_ids))
    found = list(db.session.scalars(select(Case).where(Case.id.in_(wanted), scope_filter(actor, Case))
                                    .order_by(Case.id).with_for_update()))
    if len(found) != len(wanted):
        record_denial("out_of_scope", resource_type="cases", detail={
            "permission": permission, "asked": len(wanted), "out_of_scope": len(wanted) - len(found)})
        abort(404)
    return found


def assign_cases(cases: list[Case], new_owner, actor, note: str = "") -> list[Case]:
    """Give `cases` to `new_owner` (one of `assignable_users(actor)`), all or none.

    The case's groups become the new owner's groups: "group" scope means the team of the
    person responsible, so the new owner's supervisors see and approve the case from now on.
    Each case's history and the audit trail record the move; the new owner is notified.
    Cases already owned by `new_owner` are left as they are (and not counted).
    """
    from app.i18n import N_
    from app.notifications.operations import notify
    from app.notifications.operations import relative_url
    note = (note or "").strip()
    if not cases:
        raise RecordError({"case_ids": [_("Choose at least one case.")]})
    if new_owner is None or new_owner.id not in {user.id for user in assignable_users(actor)}:
        raise RecordError({"owner_id": [_("Choose someone from your teams who works on cases.")]})
    if len(note) > 2000:
        raise RecordError({"note": [_("Use at most 2000 characters.")]})
    new_groups = [group for group in new_owner.groups if group.is_active]
    moved = []
    for case in cases:
        if case.owner_id == new_owner.id:
            continue
        old_owner_id = case.owner_id
        before = {"@owner": case.owner.username if case.owner else None, "@groups": _codes(case.groups)}
        case.owner, case.groups = new_owner, list(new_groups)
        case.updated_by_id, case.updated_at = actor.id, utcnow()
        flush_with_version_check(case, {})
        _record_change(case, "assign", actor, diff_data(before, {
            "@owner": new_owner.username, "@groups": _codes(new_groups)}), note or None)
        record_audit("case.assign", "case", case.id, detail={"from": old_owner_id, "to": new_owner.id}, user=actor)
        moved.append(case)
    if len(moved) == 1:
        notify([new_owner], "case_assigned", N_("Case %(case)s is assigned to you"), {"case": moved[0].short_id},
               actor=actor, record=moved[0], url=relative_url("cases.show_case", record_id=moved[0].id))
    elif moved:
        notify([new_owner], "case_assigned", N_("%(count)s cases are assigned to you"), {"count": str(len(moved))},
               actor=actor, url=relative_url("cases.list_cases"))
    return moved


def _codes(groups) -> str:
    return ", ".join(sorted(group.code for group in groups))
