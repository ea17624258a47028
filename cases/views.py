"""Case pages: list and search, search-before-register, register, view, edit (with
conflict handling), close and reopen, approval requests (decisions: cases.approval_views)
and reassignment, one case or many; history, notes, flags and files come from
app.records.views.add_record_routes.
"""
from __future__ import annotations

import uuid

from app.records.filters import person_filters

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import asc, desc, exists, select
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional

from app.audit.operations import record_audit
from app.extensions import db
from app.listing import HTML_PER_PAGE, load_filters, page_number
from app.navigation import register_nav
from app.permissions import can, require, scope_filter
from app.records.attachments import readable_attachments, store_uploads
from app.records.models import STATUS_CLOSED, STATUS_OPEN, RecordFlag
from app.records.operations import EditConflict, RecordError, flags_of, notes_of
from app.records.search import search_records
from app.records.views import RecordKind, add_record_routes, conflict_rows, load
from cases import approvals
from cases import operations as ops
from cases.models import APPROVAL_CLOSURE, APPROVAL_TYPES, STAGES, Case

bp = Blueprint("cases", __name__, url_prefix="/cases", template_folder="templates")

KIND = RecordKind(model=Case, label=_l("case"), read=ops.CASES_READ, update=ops.CASES_UPDATE,
                  resolve_flags=ops.CASES_RESOLVE_FLAGS, show_endpoint="cases.show_case")
add_record_routes(bp, KIND)

register_nav("cases.list_cases", _l("Cases"), ops.CASES_READ, order=10,
             description=_l("Separated and unaccompanied children"))

STAGE_LABELS = {"new": _l("New"), "assessment": _l("Assessment"), "case_plan": _l("Case plan"),
                "services": _l("Services"), "closure": _l("Closure")}
STATUS_LABELS = {STATUS_OPEN: _l("Open"), STATUS_CLOSED: _l("Closed")}
SORTS = {
    "updated": desc(Case.updated_at), "created": desc(Case.created_at), "name": asc(Case.display_name),
    "age": asc(Case.age), "short_id": asc(Case.short_id),
}


def _choices(*pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


ANY = ("", _l("Any"))


class CaseFilterForm(FlaskForm):
    q = StringField(_l("Short id, phone or name"))  # private: kept in the session, never in the URL
    status = SelectField(_l("Status"), default="", choices=_choices(
        ANY, (STATUS_OPEN, _l("Open")), (STATUS_CLOSED, _l("Closed"))))
    stage = SelectField(_l("Stage"), default="", choices=_choices(ANY, *((s, STAGE_LABELS[s]) for s in STAGES)))
    sex = SelectField(_l("Sex"), default="", choices=_choices(
        ANY, ("female", _l("Female")), ("male", _l("Male")), ("other", _l("Other")), ("unknown", _l("Unknown"))))
    age_min = IntegerField(_l("Age from"), validators=[Optional(), NumberRange(0, 30)])
    age_max = IntegerField(_l("Age to"), validators=[Optional(), NumberRange(0, 30)])
    location = StringField(_l("Location code"), validators=[Optional()])
    mine = BooleanField(_l("Only mine"))
    flagged = BooleanField(_l("Flagged"))
    consent = SelectField(_l("Consent for tracing"), default="", choices=_choices(
        ANY, ("yes", _l("Given")), ("no", _l("Not given"))))
    sort = SelectField(_l("Sort by"), default="updated", choices=_choices(
        ("updated", _l("Last updated")), ("created", _l("Registered")), ("name", _l("Name")), ("age", _l("Age")),
        ("short_id", _l("Short id"))))


def _filtered_query(values: dict):
    query = select(Case).where(scope_filter(current_user, Case))
    if values.get("status"):
        query = query.where(Case.status == values["status"])
    if values.get("stage"):
        query = query.where(Case.workflow_stage == values["stage"])
    query = person_filters(query, Case, values)
    if values.get("mine"):
        query = query.where(Case.owner_id == current_user.id)
    if values.get("flagged"):
        query = query.where(exists().where(RecordFlag.record_type == "case", RecordFlag.record_id == Case.id,
                                           RecordFlag.resolved_at.is_(None)))
    if values.get("consent"):
        query = query.where(Case.is_consent_for_tracing.is_(values["consent"] == "yes"))
    return query


@bp.route("", methods=["GET", "POST"])
@require(ops.CASES_READ)
def list_cases():
    filters = load_filters(CaseFilterForm, "filters.cases", private=("q",))
    if filters.redirect:
        return filters.redirect
    query = _filtered_query(filters.values)
    searching = bool(filters.values.get("q"))
    if searching:
        results = search_records(Case, query, filters.values["q"], limit=100)
        page = None
    else:
        query = query.order_by(SORTS.get(filters.values.get("sort"), SORTS["updated"]), Case.id)
        page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
        results = page.items
    record_audit("case.list", "case", None, detail={
        "filters": {k: v for k, v in filters.values.items() if k != "q"}, "search": searching,
        "shown": len(results)})
    db.session.commit()
    can_assign = can(current_user, ops.CASES_ASSIGN)
    return render_template("cases/list.html", filters=filters, page=page, cases=results, searching=searching,
                           stage_labels=STAGE_LABELS, status_labels=STATUS_LABELS,
                           can_create=can(current_user, ops.CASES_CREATE), can_assign=can_assign,
                           assignees=ops.assignable_users(current_user) if can_assign else []
                           ), 200 if filters.is_valid else 422


@bp.route("/new", methods=["GET", "POST"])
@require(ops.CASES_CREATE)
def new_case():
    """Step 1: search before you register, so the same child is not registered twice."""
    name = (request.form.get("name") or "").strip() if request.method == "POST" else ""
    similar = []
    if name:
        similar = search_records(Case, select(Case).where(scope_filter(current_user, Case)), name, limit=20)
        record_audit("case.duplicate_search", "case", None, detail={"shown": len(similar)})
        db.session.commit()
    return render_template("cases/new.html", name=name, similar=similar, searched=bool(name),
                           stage_labels=STAGE_LABELS, status_labels=STATUS_LABELS)


def _prefill_from_search(name: str) -> dict:
    """Put the searched name into the first given and family name fields of a new case."""
    from forms.operations import fields_with_matching_tag
    parts = name.split()
    values = {}
    given = fields_with_matching_tag("case", "given_name")
    family = fields_with_matching_tag("case", "family_name")
    if parts and given:
        values[given[0]] = parts[0]
    if len(parts) > 1 and family:
        values[family[0]] = " ".join(parts[1:])
    return values


@bp.route("/register", methods=["GET", "POST"])
@require(ops.CASES_CREATE)
def register_case():
    """Step 2: the registration form."""
    from forms.operations import FormValidationError, get_definition, parse_form_data
    definition = get_definition("case")
    values, errors, status = {}, {}, 200
    if request.method == "POST" and request.form.get("step") == "form":
        values = parse_form_data("case", request.form, current_user)
        try:
            case = ops.create_case(current_user, values, draft=bool(request.form.get("draft")))
            _attach_uploads(case)
        except FormValidationError as error:
            db.session.rollback()
            errors, status = error.errors, 422
        except RecordError as error:
            db.session.rollback()
            errors, status = error.errors, 422
        else:
            db.session.commit()
            flash(_("Case %(id)s is registered.", id=case.short_id), "success")
            return redirect(url_for(".show_case", record_id=case.id))
    elif request.method == "POST":
        values = _prefill_from_search(request.form.get("name", ""))
    return render_template("cases/form.html", definition=definition, values=values, errors=errors, case=None,
                           conflict=None, can_draft=definition.is_draft_allowed), status


def _attach_uploads(case: Case) -> None:
    stored = store_uploads(case, current_user, request.files)
    if stored:
        data = {key: list(case.data.get(key) or []) + ids for key, ids in stored.items()}
        ops.update_case(case, current_user, data, expected_version=None, action="attach")


@bp.get("/<uuid:record_id>")
@login_required
def show_case(record_id):
    from forms.operations import get_definition
    case = load(KIND, str(record_id))
    record_audit("case.view", "case", case.id)
    db.session.commit()
    can_assign = can(current_user, ops.CASES_ASSIGN)
    return render_template("cases/show.html", case=case, definition=get_definition("case"),
                           notes=notes_of(case), flags=flags_of(case), files=readable_attachments(case),
                           stage_labels=STAGE_LABELS, status_labels=STATUS_LABELS,
                           can_update=can(current_user, ops.CASES_UPDATE),
                           can_close=can(current_user, ops.CASES_CLOSE),
                           can_resolve=can(current_user, ops.CASES_RESOLVE_FLAGS),
                           approval_panel=_approval_panel(case), can_assign=can_assign,
                           assignees=ops.assignable_users(current_user) if can_assign else [])


def _approval_panel(case: Case) -> dict:
    """What the case page's Approvals panel shows and offers to the current user."""
    settings = approvals.approval_settings()
    items = approvals.approvals_of(case)
    pending = {item.approval_type for item in items if item.is_pending}
    may_request = can(current_user, ops.CASES_REQUEST_APPROVAL) and case.status == "open"
    return {
        "requests": items, "settings": settings, "type_labels": approvals.APPROVAL_TYPE_LABELS,
        "status_labels": approvals.APPROVAL_STATUS_LABELS,
        "requestable": [code for code in APPROVAL_TYPES if may_request and settings[code] and code not in pending],
        "has_case_plan": approvals.has_case_plan(case),
        "closure_needs_approval": settings[APPROVAL_CLOSURE],
        "may_decide": can(current_user, ops.CASES_APPROVE),
    }


@bp.route("/<uuid:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit_case(record_id):
    from forms.operations import FormValidationError, get_definition, parse_form_data
    case = load(KIND, str(record_id), ops.CASES_UPDATE)
    definition = get_definition("case")
    values, errors, status, conflict = case.data, {}, 200, None
    version = case.version
    if request.method == "POST":
        values = parse_form_data("case", request.form, current_user)
        try:
            version = int(request.form.get("version", ""))
        except ValueError:
            abort(400)
        try:
            changes = ops.update_case(case, current_user, values, version, draft=bool(request.form.get("draft")))
            _attach_uploads(case)
        except EditConflict as error:
            db.session.rollback()
            current = load(KIND, str(record_id), ops.CASES_UPDATE)
            conflict = conflict_rows("case", definition, current.data, values, error.fields)
            # Their input stays in the form; saving again now applies it over the new version.
            version, status = current.version, 409
        except (FormValidationError, RecordError) as error:
            db.session.rollback()
            errors, status = error.errors, 422
        else:
            db.session.commit()
            flash(_("Case %(id)s is saved.", id=case.short_id) if changes else _("Nothing was changed."),
                  "success" if changes else "info")
            return redirect(url_for(".show_case", record_id=case.id))
    return render_template("cases/form.html", definition=definition, values=values, errors=errors, case=case,
                           version=version, conflict=conflict, can_draft=definition.is_draft_allowed), status


@bp.post("/<uuid:record_id>/close")
@login_required
def close_case(record_id):
    case = load(KIND, str(record_id), ops.CASES_CLOSE)
    try:
        ops.close_case(case, current_user, request.form.get("reason", ""))
    except RecordError as error:
        db.session.rollback()
        flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
        return redirect(url_for(".show_case", record_id=case.id))
    db.session.commit()
    flash(_("Case %(id)s is closed.", id=case.short_id), "success")
    return redirect(url_for(".show_case", record_id=case.id))


@bp.post("/<uuid:record_id>/reopen")
@login_required
def reopen_case(record_id):
    case = load(KIND, str(record_id), ops.CASES_CLOSE)
    try:
        ops.reopen_case(case, current_user, request.form.get("reason", ""))
    except RecordError as error:
        db.session.rollback()
        flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
        return redirect(url_for(".show_case", record_id=case.id))
    db.session.commit()
    flash(_("Case %(id)s is reopened.", id=case.short_id), "success")
    return redirect(url_for(".show_case", record_id=case.id))


@bp.post("/<uuid:record_id>/approvals")
@login_required
def request_approval(record_id):
    case = load(KIND, str(record_id), ops.CASES_REQUEST_APPROVAL)
    approval_type = request.form.get("approval_type", "")
    try:
        approvals.request_approval(case, current_user, approval_type, request.form.get("note", ""))
    except approvals.ApprovalError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".show_case", record_id=case.id) + "#approvals")
    db.session.commit()
    flash(_("Your request is in the supervisors' approval queue."), "success")
    return redirect(url_for(".show_case", record_id=case.id) + "#approvals")


def _assign(case_ids: list[str]):
    """Reassign the cases (all or none) to the chosen user; True when done."""
    from app.users.models import User
    cases = ops.cases_in_scope_or_404(current_user, case_ids, ops.CASES_ASSIGN)
    try:
        owner_id = int(request.form.get("owner_id", ""))
    except ValueError:
        owner_id = 0
    new_owner = db.session.get(User, owner_id) if 0 < owner_id < 2**31 else None
    try:
        moved = ops.assign_cases(cases, new_owner, current_user, request.form.get("note", ""))
    except RecordError as error:
        db.session.rollback()
        flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
        return False
    db.session.commit()
    if moved:
        flash(_("%(n)d case(s) reassigned to %(name)s.", n=len(moved), name=new_owner.full_name), "success")
    else:
        flash(_("Nothing was changed: %(name)s already has these cases.", name=new_owner.full_name), "info")
    return True


@bp.post("/<uuid:record_id>/assign")
@login_required
def assign_case(record_id):
    case = load(KIND, str(record_id), ops.CASES_ASSIGN)
    _assign([case.id])
    return redirect(url_for(".show_case", record_id=case.id) + "#assign")


MAX_ASSIGN = 500


@bp.post("/assign")
@require(ops.CASES_ASSIGN)
def assign_cases():
    """The case list's checkboxes: many cases to one user, all or none."""
    chosen = request.form.getlist("case_ids")
    try:
        case_ids = [str(uuid.UUID(value)) for value in chosen]
    except ValueError:
        abort(400)
    if not case_ids:
        flash(_("Choose at least one case."), "error")
        return redirect(url_for(".list_cases"))
    if len(case_ids) > MAX_ASSIGN:  # the same bound as the API: one request locks every case it moves
        flash(_("Reassign at most %(n)d cases at a time.", n=MAX_ASSIGN), "error")
        return redirect(url_for(".list_cases"))
    _assign(case_ids)
    return redirect(url_for(".list_cases"))
