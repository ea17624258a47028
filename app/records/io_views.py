"""Import and export pages for cases and tracing requests (/records/...).

Import: upload a CSV or XLSX file, check it (dry run) or import it; the work runs as a
background job and its page shows progress, then the report (problems with line
numbers, or the counts). Export: choose format, layout and filters; a background job
writes the file, its page shows progress and then a download link. Jobs and files
belong to the user who asked: anyone else gets 404. Every step is permission-checked
(import needs the kind's import and create permissions, export its export permission)
and audited.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional

from app.audit.operations import record_audit, record_denial
from app.extensions import db
from app.jobs.models import OPEN_STATUSES, STATUS_DONE, STATUS_FAILED, STATUS_RUNNING, JobRecord
from app.jobs.operations import enqueue
from app.jobs.views import STATUS_LABELS
from app.navigation import register_nav
from app.permissions import can
from app.records import exporting, importing
from cases import operations as case_ops
from cases import tasks as case_tasks
from cases.models import STAGES
from tracing import operations as tracing_ops
from tracing import tasks as tracing_tasks
from tracing.models import TRACE_STATUSES

bp = Blueprint("records_io", __name__, url_prefix="/records")

register_nav("records_io.import_index", _l("Import"), case_ops.CASES_IMPORT, order=80,
             description=_l("Cases and tracing requests from CSV or XLSX files"))
register_nav("records_io.export_index", _l("Export"), case_ops.CASES_EXPORT, order=81,
             description=_l("Cases and tracing requests in your scope, as CSV or XLSX"))

RECENT_JOBS = 10
REFRESH_SECONDS = 2


@dataclass(frozen=True)
class IOKind:
    name: str                 # in URLs: "cases" or "tracing"
    label: object             # lazy translated plural
    record_type: str          # the main record's type (audit resource type)
    import_permission: str
    create_permission: str
    export_permission: str
    import_task: str
    export_task: str
    parts: tuple              # (record type, column prefix) of the forms in a file


KINDS = {
    "cases": IOKind("cases", _l("Cases"), "case", case_ops.CASES_IMPORT, case_ops.CASES_CREATE,
                    case_ops.CASES_EXPORT, case_tasks.IMPORT_CASES, case_tasks.EXPORT_CASES, (("case", ""),)),
    "tracing": IOKind("tracing", _l("Tracing requests"), "tracing_request", tracing_ops.TRACING_IMPORT,
                      tracing_ops.TRACING_CREATE, tracing_ops.TRACING_EXPORT, tracing_tasks.IMPORT_TRACING,
                      tracing_tasks.EXPORT_TRACING, (("tracing_request", ""), ("trace", importing.TRACE_PREFIX))),
}
IMPORT_TASKS = {kind.import_task: kind for kind in KINDS.values()}
EXPORT_TASKS = {kind.export_task: kind for kind in KINDS.values()}


def _kind_or_404(name: str) -> IOKind:
    kind = KINDS.get(name)
    if kind is None:
        abort(404)
    return kind


def _require_all(*permissions: str) -> None:
    for permission in permissions:
        if not can(current_user, permission):
            record_denial("permission_denied", detail={"permission": permission})
            abort(403)


def _own_job_or_404(job_id: int, tasks: dict) -> tuple[JobRecord, IOKind]:
    """A job of this page's kind that the current user asked for; anyone else's is "not found"."""
    job = db.session.get(JobRecord, job_id)
    if job is None or job.task not in tasks or job.created_by_id != current_user.id:
        record_denial("out_of_scope", resource_type="job", resource_id=str(job_id))
        abort(404)
    return job, tasks[job.task]


def _recent_jobs(task: str) -> list[JobRecord]:
    return list(db.session.execute(select(JobRecord).where(
        JobRecord.task == task, JobRecord.created_by_id == current_user.id
    ).order_by(JobRecord.id.desc()).limit(RECENT_JOBS)).scalars())


def _with_refresh(body, job: JobRecord):
    """Status pages reload themselves while the job is not finished (no script needed)."""
    response = make_response(body)
    if job.status in (*OPEN_STATUSES, STATUS_RUNNING):
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


def _enqueue(task: str, args: dict) -> JobRecord:
    job = enqueue(task, args, user=current_user, max_attempts=2)
    db.session.flush()
    job.args = {**job.args, "job_id": job.id}
    return job


# --- import ----------------------------------------------------------------------------------------------

TYPE_HINTS = {
    "text": _l("text"), "textarea": _l("text (several lines)"), "integer": _l("whole number"),
    "decimal": _l("number"), "date": _l("date, year-month-day (2016-03-25)"), "tick_box": _l("yes or no"),
    "select": _l("one option: its code or its label"), "radio": _l("one option: its code or its label"),
    "multi_select": _l("options separated by ;"), "location": _l("location code or name"),
    "phone": _l("phone number"), "subform": _l("rows as JSON"),
}


def import_columns(kind: IOKind) -> list[dict]:
    """The columns the current user may import, with how to write their values."""
    from forms.models import ATTACHMENT_TYPES
    from forms.operations import get_definition, writable_fields
    locale = str(get_locale() or "en")
    columns = []
    for record_type, prefix in kind.parts:
        definition = get_definition(record_type)
        writable = writable_fields(current_user, record_type)
        for item in definition.active_fields:
            if item.key not in writable or item.type in ATTACHMENT_TYPES:
                continue
            options = [o.code for o in item.options if not o.is_disabled] if item.is_choice else []
            columns.append({"name": prefix + item.key, "label": item.label(locale), "form": definition.label(locale),
                            "hint": TYPE_HINTS.get(item.type, item.type), "required": item.is_required,
                            "options": options})
            if item.approximate_key and item.approximate_key in writable:
                columns.append({"name": prefix + item.approximate_key, "form": definition.label(locale),
                                "label": _("%(label)s: approximate", label=item.label(locale)),
                                "hint": TYPE_HINTS["tick_box"], "required": False, "options": []})
    return columns


def _special_columns(kind: IOKind) -> list[tuple[str, object]]:
    if kind.name == "cases":
        return [(importing.SOURCE_ID, _l("Optional. The case's id in the system the file comes from: importing "
                                         "the file again updates the case instead of adding it twice."))]
    return [(importing.INQUIRY_REF, _l("Required. The inquiry's id in the system the file comes from: rows with "
                                       "the same inquiry_ref are the children one inquirer is looking for, and "
                                       "importing the file again updates that tracing request.")),
            (importing.TRACE_SOURCE_ID, _l("Optional. The trace's own id; without it a trace is known by its "
                                           "inquiry_ref and its place among that inquiry's rows (1, 2, ...)."))]


@bp.get("/import")
@login_required
def import_index():
    kinds = [kind for kind in KINDS.values() if can(current_user, kind.import_permission)]
    if not kinds:
        _require_all(case_ops.CASES_IMPORT)
    return render_template("records/io_index.html", mode="import", kinds=kinds,
                           allowed={k.name: can(current_user, k.create_permission) for k in kinds})


@bp.route("/<kind_name>/import", methods=["GET", "POST"])
@login_required
def import_page(kind_name: str):
    kind = _kind_or_404(kind_name)
    _require_all(kind.import_permission, kind.create_permission)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        upload = request.files.get("file")
        dry_run = request.form.get("action") != "import"
        content = upload.read() if upload is not None and upload.filename else b""
        try:
            if not content:
                raise importing.ImportRefused(_("Choose a CSV or XLSX file."))
            file_format = importing.file_format_of(upload.filename)
            (importing.check_xlsx_bytes if file_format == "xlsx" else importing.check_csv_bytes)(content)
        except importing.ImportRefused as refusal:
            errors["file"] = [refusal.message]
        else:
            token = secrets.token_hex(16)
            name = importing.upload_name(token, file_format)
            path = exporting.record_files_dir() / name
            with open(path, "xb") as handle:
                handle.write(content)
            path.chmod(0o600)
            job = _enqueue(kind.import_task, {"user_id": current_user.id, "upload": name,
                                              "file_format": file_format, "dry_run": dry_run})
            record_audit(f"{kind.record_type}.import_requested", kind.record_type, None, detail={
                "job_id": job.id, "format": file_format, "dry_run": dry_run, "bytes": len(content)})
            db.session.commit()
            return redirect(url_for(".import_status", job_id=job.id))
    exporting.purge_old_files()
    return render_template("records/import.html", kind=kind, errors=errors, columns=import_columns(kind),
                           specials=_special_columns(kind), jobs=_recent_jobs(kind.import_task),
                           separator=importing.MULTI_SEPARATOR, status_labels=STATUS_LABELS), 422 if errors else 200


@bp.get("/<kind_name>/import/template.csv")
@login_required
def import_template(kind_name: str):
    """A header row of every column the user may import (a file to fill in)."""
    import csv
    import io
    kind = _kind_or_404(kind_name)
    _require_all(kind.import_permission, kind.create_permission)
    names = [name for name, _hint in _special_columns(kind)] + [c["name"] for c in import_columns(kind)]
    buffer = io.StringIO()
    csv.writer(buffer).writerow(names)
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{kind.name}-import-template.csv"'})


@bp.get("/imports/<int:job_id>")
@login_required
def import_status(job_id: int):
    job, kind = _own_job_or_404(job_id, IMPORT_TASKS)
    report = importing.read_import_report(job.id) if job.status == STATUS_DONE else None
    body = render_template("records/import_status.html", job=job, kind=kind, report=report,
                           is_dry_run=bool(job.args.get("dry_run")), failed=job.status == STATUS_FAILED)
    return _with_refresh(body, job)


# --- export ----------------------------------------------------------------------------------------------

def _choices(*pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


ANY = ("", _l("Any"))
STAGE_LABELS = {"new": _l("New"), "assessment": _l("Assessment"), "case_plan": _l("Case plan"),
                "services": _l("Services"), "closure": _l("Closure")}
TRACE_STATUS_LABELS = {"open": _l("Open"), "in_progress": _l("Tracing in progress"),
                       "match_proposed": _l("Match proposed"), "match_confirmed": _l("Match confirmed"),
                       "reunified": _l("Reunified"), "closed": _l("Closed")}


class ExportForm(FlaskForm):
    file_format = SelectField(_l("Format"), default="xlsx", choices=_choices(
        ("xlsx", _l("Excel workbook (.xlsx)")), ("csv", _l("CSV, UTF-8 (.csv)"))))
    labels = BooleanField(_l("Field names and values in my language (a second header row; such a file cannot be "
                             "imported back)"))
    status = SelectField(_l("Status"), default="", choices=_choices(ANY, ("open", _l("Open")),
                                                                     ("closed", _l("Closed"))))
    stage = SelectField(_l("Stage"), default="", choices=_choices(ANY, *((s, STAGE_LABELS[s]) for s in STAGES)))
    tracing_status = SelectField(_l("Tracing status"), default="", choices=_choices(
        ANY, *((s, TRACE_STATUS_LABELS[s]) for s in TRACE_STATUSES)))
    sex = SelectField(_l("Sex"), default="", choices=_choices(
        ANY, ("female", _l("Female")), ("male", _l("Male")), ("other", _l("Other")), ("unknown", _l("Unknown"))))
    age_min = IntegerField(_l("Age from"), validators=[Optional(), NumberRange(0, 30)])
    age_max = IntegerField(_l("Age to"), validators=[Optional(), NumberRange(0, 30)])
    location = StringField(_l("Location code (its sub-locations included)"), validators=[Optional()])
    consent = SelectField(_l("Consent for tracing"), default="", choices=_choices(
        ANY, ("yes", _l("Given")), ("no", _l("Not given"))))
    flagged = BooleanField(_l("Only flagged records"))
    mine = BooleanField(_l("Only records I own"))


def _filters_of(form: ExportForm, kind: IOKind) -> dict:
    return {key: form[key].data for key in exporting.FILTER_KEYS[kind.name]
            if form[key].data not in (None, "", False)}


@bp.get("/export")
@login_required
def export_index():
    kinds = [kind for kind in KINDS.values() if can(current_user, kind.export_permission)]
    if not kinds:
        _require_all(case_ops.CASES_EXPORT)
    return render_template("records/io_index.html", mode="export", kinds=kinds,
                           allowed={k.name: True for k in kinds})


@bp.route("/<kind_name>/export", methods=["GET", "POST"])
@login_required
def export_page(kind_name: str):
    kind = _kind_or_404(kind_name)
    _require_all(kind.export_permission)
    form = ExportForm()
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                filters = exporting.clean_filters(kind.name, _filters_of(form, kind))
            except exporting.ExportRefused as refusal:
                form.form_errors.append(refusal.message)
            else:
                job = _enqueue(kind.export_task, {"user_id": current_user.id, "file_format": form.file_format.data,
                                                  "labels": bool(form.labels.data), "filters": filters})
                record_audit(f"{kind.record_type}.export_requested", kind.record_type, None, detail={
                    "job_id": job.id, "filters": filters, "format": form.file_format.data,
                    "labels": bool(form.labels.data)})
                db.session.commit()
                return redirect(url_for(".export_status", job_id=job.id))
        status = 422
    exporting.purge_old_files()
    return render_template("records/export.html", kind=kind, form=form, jobs=_recent_jobs(kind.export_task),
                           filter_keys=exporting.FILTER_KEYS[kind.name], status_labels=STATUS_LABELS), status


def _export_file(job: JobRecord):
    name = (job.progress or {}).get("file")
    if job.status != STATUS_DONE or not name:
        return None
    path = exporting.record_files_dir() / name
    expected = exporting.export_file_name(EXPORT_TASKS[job.task].name, job.id, job.args.get("file_format", ""))
    return path if name == expected and path.is_file() else None


@bp.get("/exports/<int:job_id>")
@login_required
def export_status(job_id: int):
    job, kind = _own_job_or_404(job_id, EXPORT_TASKS)
    body = render_template("records/export_status.html", job=job, kind=kind, has_file=_export_file(job) is not None,
                           failed=job.status == STATUS_FAILED)
    return _with_refresh(body, job)


@bp.get("/exports/<int:job_id>/download")
@login_required
def download_export(job_id: int):
    job, kind = _own_job_or_404(job_id, EXPORT_TASKS)
    _require_all(kind.export_permission)
    path = _export_file(job)
    if path is None:
        abort(404)
    rows = (job.progress or {}).get("rows")
    record_audit(f"{kind.record_type}.export_downloaded", kind.record_type, None,
                 detail={"job_id": job.id, "rows": rows, "format": job.args.get("file_format")})
    db.session.commit()
    file_format = job.args.get("file_format")
    mimetype = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if file_format == "xlsx"
                else "text/csv")
    stamp = job.finished_at.strftime("%Y%m%d-%H%M") if job.finished_at else str(job.id)
    return send_file(path, mimetype=mimetype, as_attachment=True, max_age=0,
                     download_name=f"{kind.name}-{stamp}.{file_format}")
