"""Tracing pages: the list and search of tracing requests, registering an inquirer with
one or more children sought in one form, a request's page (inquirer, traces, notes,
flags, files), editing (with conflict handling), adding a child sought, closing and
reopening; and each trace's own page, edit and tracing status.

Two blueprints: `tracing` (/tracing, tracing requests) and `traces` (/traces, one sought
child each). History, notes, flags and files of both come from
app.records.views.add_record_routes.
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import asc, desc, exists, nulls_last, or_, select
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from app.audit.operations import record_audit
from app.extensions import db
from app.listing import HTML_PER_PAGE, load_filters, page_number
from app.navigation import register_nav
from app.permissions import can, require, scope_filter
from app.records.attachments import readable_attachments, store_uploads
from app.records.models import STATUS_CLOSED, STATUS_OPEN, RecordChange, RecordFlag
from app.records.operations import EditConflict, RecordError, flags_of, notes_of
from app.records.search import search_records
from app.records.values import NAME_TAGS
from app.records.views import RecordKind, add_record_routes, conflict_rows, load
from tracing import operations as ops
from tracing.models import (
    TRACE_CLOSED,
    TRACE_IN_PROGRESS,
    TRACE_MATCH_CONFIRMED,
    TRACE_MATCH_PROPOSED,
    TRACE_OPEN,
    TRACE_REUNIFIED,
    TRACE_STATUSES,
    Trace,
    TracingRequest,
)

bp = Blueprint("tracing", __name__, url_prefix="/tracing", template_folder="templates")
traces_bp = Blueprint("traces", __name__, url_prefix="/traces", template_folder="templates")


def _register_traces_blueprint(state) -> None:
    # The factory registers one `bp` per feature module; the traces pages come with it.
    state.app.register_blueprint(traces_bp)


bp.record_once(_register_traces_blueprint)


KIND = RecordKind(model=TracingRequest, label=_l("tracing request"), read=ops.TRACING_READ,
                  update=ops.TRACING_UPDATE, resolve_flags=ops.TRACING_RESOLVE_FLAGS,
                  show_endpoint="tracing.show_tracing_request")
TRACE_KIND = RecordKind(model=Trace, label=_l("trace"), read=ops.TRACING_READ, update=ops.TRACING_UPDATE,
                        resolve_flags=ops.TRACING_RESOLVE_FLAGS, show_endpoint="traces.show_trace")
add_record_routes(bp, KIND)
add_record_routes(traces_bp, TRACE_KIND)

register_nav("tracing.list_tracing_requests", _l("Tracing"), ops.TRACING_READ, order=20,
             description=_l("Relatives looking for children, and the children they look for"))

STATUS_LABELS = {STATUS_OPEN: _l("Open"), STATUS_CLOSED: _l("Closed")}
TRACE_STATUS_LABELS = {
    TRACE_OPEN: _l("Open"), TRACE_IN_PROGRESS: _l("Tracing in progress"), TRACE_MATCH_PROPOSED: _l("Match proposed"),
    TRACE_MATCH_CONFIRMED: _l("Match confirmed"), TRACE_REUNIFIED: _l("Reunified"), TRACE_CLOSED: _l("Closed"),
}
# A trace still being worked on: not yet reunified or closed.
FINISHED_TRACE_STATUSES = (TRACE_REUNIFIED, TRACE_CLOSED)
MAX_TRACES_PER_FORM = 20
SORTS = {
    "updated": (desc(TracingRequest.updated_at),), "created": (desc(TracingRequest.created_at),),
    "name": (asc(TracingRequest.display_name),),
    "inquiry_date": (nulls_last(desc(TracingRequest.inquiry_date)),),
    "short_id": (asc(TracingRequest.short_id),),
}


def _choices(*pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


ANY = ("", _l("Any"))


class TracingFilterForm(FlaskForm):
    # private: kept in the session, never in the URL
    q = StringField(_l("Short id, phone, inquirer's or child's name"))
    status = SelectField(_l("Request status"), default="", choices=_choices(
        ANY, (STATUS_OPEN, _l("Open")), (STATUS_CLOSED, _l("Closed"))))
    trace_status = SelectField(_l("A child sought is"), default="", choices=_choices(
        ANY, *((code, TRACE_STATUS_LABELS[code]) for code in TRACE_STATUSES)))
    open_traces = BooleanField(_l("Children still sought"))
    mine = BooleanField(_l("Only mine"))
    flagged = BooleanField(_l("Flagged"))
    consent = SelectField(_l("Consent for tracing"), default="", choices=_choices(
        ANY, ("yes", _l("Given")), ("no", _l("Not given"))))
    sort = SelectField(_l("Sort by"), default="updated", choices=_choices(
        ("updated", _l("Last updated")), ("created", _l("Registered")), ("name", _l("Inquirer's name")),
        ("inquiry_date", _l("Date of inquiry")), ("short_id", _l("Short id"))))


def _open_flag(record_type: str, record_id_column):
    return exists().where(RecordFlag.record_type == record_type, RecordFlag.record_id == record_id_column,
                          RecordFlag.resolved_at.is_(None))


def _filtered_query(values: dict):
    query = select(TracingRequest).where(scope_filter(current_user, TracingRequest))
    if values.get("status"):
        query = query.where(TracingRequest.status == values["status"])
    if values.get("trace_status"):
        query = query.where(exists().where(Trace.tracing_request_id == TracingRequest.id,
                                           Trace.tracing_status == values["trace_status"]))
    if values.get("open_traces"):
        query = query.where(exists().where(Trace.tracing_request_id == TracingRequest.id,
                                           Trace.tracing_status.notin_(FINISHED_TRACE_STATUSES)))
    if values.get("mine"):
        query = query.where(TracingRequest.owner_id == current_user.id)
    if values.get("flagged"):
        trace_flag = exists().where(RecordFlag.record_type == Trace.RECORD_TYPE, RecordFlag.record_id == Trace.id,
                                    RecordFlag.resolved_at.is_(None),
                                    Trace.tracing_request_id == TracingRequest.id)
        query = query.where(or_(_open_flag(TracingRequest.RECORD_TYPE, TracingRequest.id), trace_flag))
    if values.get("consent"):
        query = query.where(TracingRequest.is_consent_for_tracing.is_(values["consent"] == "yes"))
    return query.options(selectinload(TracingRequest.traces))


def _search(query, text: str, limit: int = 100) -> list[TracingRequest]:
    """Requests of `query` found by their own short id, phone or inquirer's name, or by a
    sought child's short id or name; short id hits first, then best matches of each kind."""
    compact = text.strip().lower().replace(" ", "")
    direct = search_records(TracingRequest, query, text, limit=limit)
    trace_query = select(Trace).where(scope_filter(current_user, Trace))
    if _summary_columns()["child_name"]:
        via_traces = search_records(Trace, trace_query, text, limit=limit)
    else:  # a role that may not read children's names does not find requests by them either
        via_traces = list(db.session.execute(trace_query.where(Trace.short_id.startswith(compact))
                                             .limit(limit)).scalars()) if len(compact) >= 4 else []
    wanted = list(dict.fromkeys(trace.tracing_request_id for trace in via_traces))
    reachable = {item.id: item for item in db.session.execute(
        query.where(TracingRequest.id.in_(wanted))).scalars()} if wanted else {}
    ranked: dict[str, tuple[tuple[int, int], TracingRequest]] = {}

    def offer(rank: tuple[int, int], item: TracingRequest) -> None:
        if item.id not in ranked or rank < ranked[item.id][0]:
            ranked[item.id] = (rank, item)

    for position, item in enumerate(direct):
        offer((0 if item.short_id.startswith(compact) else 1, position), item)
    for position, trace in enumerate(via_traces):
        item = reachable.get(trace.tracing_request_id)
        if item is not None:
            offer((0 if trace.short_id.startswith(compact) else 1, position), item)
    return [item for _rank, item in sorted(ranked.values(), key=lambda entry: entry[0])][:limit]


def _summary_columns() -> dict[str, bool]:
    """Which summary values (names, sex, age) the user may see: those come from form fields,
    and a role that may not read those fields does not see them in lists either (S3)."""
    from forms.operations import fields_with_matching_tag, readable_fields

    def readable(record_type: str, tags) -> bool:
        keys = readable_fields(current_user, record_type)
        return any(key in keys for tag in tags for key in fields_with_matching_tag(record_type, tag))

    return {"inquirer_name": readable("tracing_request", ("inquirer_name", "full_name")),
            "child_name": readable("trace", NAME_TAGS), "sex": readable("trace", ("sex",)),
            "age": readable("trace", ("age",))}


def sex_label(value) -> str:
    from flask_babel import get_locale

    from forms.operations import display_value, fields_with_matching_tag
    keys = fields_with_matching_tag("trace", "sex")
    if not value or not keys:
        return value or ""
    return display_value("trace", keys[0], value, str(get_locale()))


def _labels() -> dict:
    return {"status_labels": STATUS_LABELS, "trace_status_labels": TRACE_STATUS_LABELS,
            "shown": _summary_columns(), "sex_label": sex_label}


# --- list ------------------------------------------------------------------------------------------

@bp.route("", methods=["GET", "POST"])
@require(ops.TRACING_READ)
def list_tracing_requests():
    filters = load_filters(TracingFilterForm, "filters.tracing", private=("q",))
    if filters.redirect:
        return filters.redirect
    query = _filtered_query(filters.values)
    searching = bool(filters.values.get("q"))
    if searching:
        results = _search(query, filters.values["q"])
        page = None
    else:
        order = SORTS.get(filters.values.get("sort"), SORTS["updated"])
        page = db.paginate(query.order_by(*order, TracingRequest.id), page=page_number(), per_page=HTML_PER_PAGE,
                           error_out=False)
        results = page.items
    record_audit("tracing_request.list", "tracing_request", None, detail={
        "filters": {k: v for k, v in filters.values.items() if k != "q"}, "search": searching,
        "shown": len(results)})
    db.session.commit()
    return render_template("tracing/list.html", filters=filters, page=page, requests=results, searching=searching,
                           can_create=can(current_user, ops.TRACING_CREATE),
                           **_labels()), 200 if filters.is_valid else 422


# --- register: the inquirer and every child sought in one form -------------------------------------

class PrefixedFiles:
    """request.files seen through one trace's prefix, for store_uploads (which reads field keys)."""

    def __init__(self, files, prefix: str):
        self.files, self.prefix = files, prefix

    def getlist(self, key: str):
        return self.files.getlist(self.prefix + key)


def _trace_prefix(index: int) -> str:
    return f"traces.{index}."


def _slot_number(raw: str) -> int | None:
    return int(raw) if re.fullmatch(r"[0-9]{1,3}", raw or "") else None


def _posted_trace_slots() -> list[int]:
    """The trace forms the page held, in order (each carries a hidden "trace" input)."""
    slots = []
    for raw in request.form.getlist("trace"):
        slot = _slot_number(raw)
        if slot is None:
            abort(400)
        if slot not in slots:
            slots.append(slot)
    if len(slots) > MAX_TRACES_PER_FORM:
        abort(400)
    return slots


def _split_errors(errors: dict, count: int) -> tuple[dict, list[dict], dict]:
    """Errors of the inquirer's form, of each trace form (keys kept prefixed) and of the whole."""
    request_errors, general = {}, {}
    trace_errors: list[dict] = [{} for _ in range(count)]
    for key, messages in errors.items():
        if key.startswith("traces."):
            index = key.split(".")[1]
            if index.isdigit() and int(index) < count:
                trace_errors[int(index)][key] = messages
                continue
            general[key] = messages
        elif key == "_record" or key in ("traces", "status"):
            general[key] = messages
        else:
            request_errors[key] = messages
    return request_errors, trace_errors, general


def _attach_request_uploads(tracing_request: TracingRequest) -> None:
    stored = store_uploads(tracing_request, current_user, request.files)
    if stored:
        data = {key: list(tracing_request.data.get(key) or []) + ids for key, ids in stored.items()}
        ops.update_tracing_request(tracing_request, current_user, data, expected_version=None, action="attach")


def _attach_trace_uploads(trace: Trace, files) -> None:
    stored = store_uploads(trace, current_user, files)
    if stored:
        data = {key: list(trace.data.get(key) or []) + ids for key, ids in stored.items()}
        ops.update_trace(trace, current_user, data, expected_version=None, action="attach")


def _traces_in_order_created(tracing_request: TracingRequest) -> list[Trace]:
    """The request's traces in the order they were registered, i.e. the order of the forms.

    Told by their "create" history rows (ids follow insertion), not by timestamps that
    may tie: a child's photo must never land on a sibling's record.
    """
    traces = {trace.id: trace for trace in tracing_request.traces}
    order = db.session.execute(select(RecordChange.record_id).where(
        RecordChange.record_type == Trace.RECORD_TYPE, RecordChange.record_id.in_(sorted(traces)),
        RecordChange.action == "create").order_by(RecordChange.id)).scalars()
    return [traces[record_id] for record_id in order]


@bp.route("/new", methods=["GET", "POST"])
@require(ops.TRACING_CREATE)
def new_tracing_request():
    """Register an inquirer and the children they look for. "Add another child" and "Remove"
    are submit buttons that show the form again with one form more or less: no JavaScript needed."""
    from forms.operations import FormValidationError, get_definition, parse_form_data
    request_definition = get_definition("tracing_request")
    values, traces, errors, status = {}, [{}], {}, 200
    if request.method == "POST":
        values = parse_form_data("tracing_request", request.form, current_user)
        slots = _posted_trace_slots()
        traces = [parse_form_data("trace", request.form, current_user, prefix=_trace_prefix(slot))
                  for slot in slots]
        if "add_trace" in request.form:
            if len(traces) < MAX_TRACES_PER_FORM:
                traces.append({})
            else:
                errors, status = {"traces": [_("At most %(n)d children can be registered at once; add more "
                                               "to the request once it is saved.", n=MAX_TRACES_PER_FORM)]}, 422
        elif "remove_trace" in request.form:
            remove = _slot_number(request.form.get("remove_trace", ""))
            if remove in slots and len(traces) > 1:
                traces.pop(slots.index(remove))
        else:
            try:
                tracing_request = ops.create_tracing_request(current_user, values, traces,
                                                             draft=bool(request.form.get("draft")))
                _attach_request_uploads(tracing_request)
                for index, (slot, trace) in enumerate(zip(slots, _traces_in_order_created(tracing_request),
                                                          strict=True)):
                    try:
                        _attach_trace_uploads(trace, PrefixedFiles(request.files, _trace_prefix(slot)))
                    except RecordError as error:  # a refused file: report it on that child's form
                        raise RecordError({_trace_prefix(index) + key: messages
                                           for key, messages in error.errors.items()}) from None
            except (FormValidationError, RecordError) as error:
                db.session.rollback()
                errors, status = error.errors, 422
            else:
                db.session.commit()
                flash(_("Tracing request %(id)s is registered with %(n)d child(ren) sought.",
                        id=tracing_request.short_id, n=len(tracing_request.traces)), "success")
                return redirect(url_for(".show_tracing_request", record_id=tracing_request.id))
    request_errors, trace_errors, general = _split_errors(errors, len(traces))
    return render_template("tracing/new.html", request_definition=request_definition,
                           trace_definition=get_definition("trace"), values=values, traces=traces,
                           request_errors=request_errors, trace_errors=trace_errors, general_errors=general,
                           trace_prefix=_trace_prefix, max_traces=MAX_TRACES_PER_FORM,
                           can_draft=request_definition.is_draft_allowed), status


# --- one tracing request -----------------------------------------------------------------------------

@bp.get("/<uuid:record_id>")
@login_required
def show_tracing_request(record_id):
    from forms.operations import get_definition
    tracing_request = load(KIND, str(record_id))
    record_audit("tracing_request.view", "tracing_request", tracing_request.id)
    db.session.commit()
    return render_template("tracing/show.html", tracing_request=tracing_request,
                           definition=get_definition("tracing_request"), traces=tracing_request.traces,
                           notes=notes_of(tracing_request), flags=flags_of(tracing_request),
                           files=readable_attachments(tracing_request),
                           can_update=can(current_user, ops.TRACING_UPDATE),
                           can_close=can(current_user, ops.TRACING_CLOSE),
                           can_resolve=can(current_user, ops.TRACING_RESOLVE_FLAGS), **_labels())


def _posted_version() -> int:
    try:
        return int(request.form.get("version", ""))
    except ValueError:
        abort(400)


def _edit(kind: RecordKind, record_id, update, attach, labels: dict):
    """The edit page of a tracing request or a trace: save with the version the user started
    from; if someone saved in between, show both values and keep the user's input (R1)."""
    from forms.operations import FormValidationError, get_definition, parse_form_data
    record_type = kind.model.RECORD_TYPE
    record = load(kind, str(record_id), ops.TRACING_UPDATE)
    definition = get_definition(record_type)
    values, errors, status, conflict, version = record.data, {}, 200, None, record.version
    if request.method == "POST":
        values = parse_form_data(record_type, request.form, current_user)
        version = _posted_version()
        try:
            changes = update(record, current_user, values, version, draft=bool(request.form.get("draft")))
            attach(record)
        except EditConflict as error:
            db.session.rollback()
            current = load(kind, str(record_id), ops.TRACING_UPDATE)
            conflict = conflict_rows(record_type, definition, current.data, values, error.fields)
            # Their input stays in the form; saving again now applies it over the new version.
            version, status = current.version, 409
            record = current
        except (FormValidationError, RecordError) as error:
            db.session.rollback()
            errors, status = error.errors, 422
        else:
            db.session.commit()
            if changes:
                flash(labels["saved"] % {"id": record.short_id}, "success")
            else:
                flash(_("Nothing was changed."), "info")
            return redirect(url_for(kind.show_endpoint, record_id=record.id))
    return render_template("tracing/edit.html", kind=kind, record=record, definition=definition, values=values,
                           errors=errors, version=version, conflict=conflict, title=labels["title"],
                           action=url_for(request.endpoint, record_id=record.id),
                           cancel=url_for(kind.show_endpoint, record_id=record.id),
                           can_draft=definition.is_draft_allowed), status


@bp.route("/<uuid:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit_tracing_request(record_id):
    return _edit(KIND, record_id, ops.update_tracing_request, _attach_request_uploads,
                 {"title": _("Edit tracing request"), "saved": _("Tracing request %(id)s is saved.")})


@bp.route("/<uuid:record_id>/traces/new", methods=["GET", "POST"])
@login_required
def add_trace(record_id):
    """Add one more child sought to an existing request."""
    from forms.operations import FormValidationError, get_definition, parse_form_data
    tracing_request = load(KIND, str(record_id), ops.TRACING_UPDATE)
    definition = get_definition("trace")
    values, errors, status = {}, {}, 200
    if request.method == "POST":
        values = parse_form_data("trace", request.form, current_user)
        try:
            trace = ops.add_trace(tracing_request, current_user, values)
            _attach_trace_uploads(trace, request.files)
        except (FormValidationError, RecordError) as error:
            db.session.rollback()
            errors, status = error.errors, 422
        else:
            db.session.commit()
            flash(_("Child sought %(id)s is added to tracing request %(request)s.", id=trace.short_id,
                    request=tracing_request.short_id), "success")
            return redirect(url_for(".show_tracing_request", record_id=tracing_request.id) + "#traces")
    general = {key: messages for key, messages in errors.items() if key == "status"}
    return render_template("tracing/add_trace.html", tracing_request=tracing_request, definition=definition,
                           values=values, errors={k: v for k, v in errors.items() if k not in general},
                           general_errors=general), status


def _change_request_status(record_id, operation, done_message: str):
    tracing_request = load(KIND, str(record_id), ops.TRACING_CLOSE)
    try:
        operation(tracing_request, current_user, request.form.get("reason", ""))
    except RecordError as error:
        db.session.rollback()
        flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
        return redirect(url_for(".show_tracing_request", record_id=tracing_request.id) + "#status")
    db.session.commit()
    flash(done_message % {"id": tracing_request.short_id}, "success")
    return redirect(url_for(".show_tracing_request", record_id=tracing_request.id))


@bp.post("/<uuid:record_id>/close")
@login_required
def close_tracing_request(record_id):
    return _change_request_status(record_id, ops.close_tracing_request, _("Tracing request %(id)s is closed."))


@bp.post("/<uuid:record_id>/reopen")
@login_required
def reopen_tracing_request(record_id):
    return _change_request_status(record_id, ops.reopen_tracing_request, _("Tracing request %(id)s is reopened."))


# --- one trace (one child sought) ---------------------------------------------------------------------

def _status_choices(trace: Trace) -> list[str]:
    """The statuses the current user may set by hand on this trace now (closing and
    reopening need the close permission, the others the update permission)."""
    if trace.tracing_status == TRACE_CLOSED and trace.tracing_request.status == STATUS_CLOSED:
        return []
    may_close, may_update = can(current_user, ops.TRACING_CLOSE), can(current_user, ops.TRACING_UPDATE)
    return [code for code in ops.MANUAL_TRACE_STATUSES if code != trace.tracing_status
            and (may_close if TRACE_CLOSED in (code, trace.tracing_status) else may_update)]


@traces_bp.get("/<uuid:record_id>")
@login_required
def show_trace(record_id):
    from forms.operations import get_definition
    trace = load(TRACE_KIND, str(record_id))
    record_audit("trace.view", "trace", trace.id)
    db.session.commit()
    return render_template("tracing/trace.html", trace=trace, tracing_request=trace.tracing_request,
                           definition=get_definition("trace"), notes=notes_of(trace), flags=flags_of(trace),
                           files=readable_attachments(trace), status_choices=_status_choices(trace),
                           can_update=can(current_user, ops.TRACING_UPDATE),
                           can_close=can(current_user, ops.TRACING_CLOSE),
                           can_resolve=can(current_user, ops.TRACING_RESOLVE_FLAGS), **_labels())


@traces_bp.route("/<uuid:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit_trace(record_id):
    return _edit(TRACE_KIND, record_id, ops.update_trace, lambda trace: _attach_trace_uploads(trace, request.files),
                 {"title": _("Edit child sought"), "saved": _("Child sought %(id)s is saved.")})


@traces_bp.post("/<uuid:record_id>/status")
@login_required
def change_trace_status(record_id):
    """Open, tracing in progress or closed, set by hand. Closing and reopening need the close
    permission (as for requests); starting and pausing tracing needs the update permission."""
    new_status = request.form.get("tracing_status", "")
    trace = load(TRACE_KIND, str(record_id))
    permission = ops.TRACING_CLOSE if TRACE_CLOSED in (new_status, trace.tracing_status) else ops.TRACING_UPDATE
    trace = load(TRACE_KIND, str(record_id), permission)
    try:
        ops.change_trace_status(trace, current_user, new_status, request.form.get("reason", ""),
                                expected_version=_posted_version())
    except EditConflict:
        db.session.rollback()
        flash(_("Someone else changed this child's record meanwhile; check its status and try again."), "error")
        return redirect(url_for(".show_trace", record_id=record_id) + "#tracing-status")
    except RecordError as error:
        db.session.rollback()
        flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
        return redirect(url_for(".show_trace", record_id=trace.id) + "#tracing-status")
    db.session.commit()
    flash(_("Child sought %(id)s: %(status)s.", id=trace.short_id,
            status=TRACE_STATUS_LABELS.get(trace.tracing_status, trace.tracing_status)), "success")
    return redirect(url_for(".show_trace", record_id=trace.id))
