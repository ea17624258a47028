"""Operations on cases: register, update, close, reopen.

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


def close_case(case: Case, user, reason: str, expected_version: int | None = None) -> None:
    reason = (reason or "").strip()
    if case.status == STATUS_CLOSED:
        raise RecordError({"status": [_("This case is already closed.")]})
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
