"""The audit trail browser (/admin/audit) and its CSV download.

Read-only by construction: this blueprint has no route that changes an entry
(S15); the only POST stores the browser's filter in its session. Looking at
the trail and downloading it are audited themselves, the download with its
filter and row count (S17).
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta, timezone

from flask import Blueprint, Response, abort, current_app, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from app.audit.models import OUTCOME_DENIED, OUTCOME_FAILURE, OUTCOME_SUCCESS, AuditEntry
from app.audit.operations import record_audit
from app.extensions import db
from app.listing import load_filters, page_number
from app.navigation import register_nav
from app.permissions import AUDIT_READ, ROLE_ADMINISTRATOR, register_permission, require

AUDIT_EXPORT = register_permission(
    "audit", "export", _l("Download the audit trail as CSV"), (ROLE_ADMINISTRATOR,), is_admin=True)

bp = Blueprint("audit_views", __name__, url_prefix="/admin/audit")

register_nav("audit_views.audit_trail", _l("Audit trail"), AUDIT_READ, section="admin", order=50,
             description=_l("Who did what, when and from where"))

PER_PAGE = 50
EXPORT_BATCH = 1000
FILTERS_KEY = "filters.audit"
PRIVATE_FIELDS = ("username",)
OUTCOME_LABELS = {OUTCOME_SUCCESS: _l("Success"), OUTCOME_DENIED: _l("Denied"), OUTCOME_FAILURE: _l("Failure")}
CSV_COLUMNS = ("id", "at", "user_id", "username", "action", "outcome", "resource_type", "resource_id",
               "address", "request_id", "detail")
# A spreadsheet runs a cell that starts with one of these as a formula (S18).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class AuditFilterForm(FlaskForm):
    # A username names a person: posted and kept in the session, never in the URL.
    username = StringField(_l("Username"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("Action starts with"), validators=[Optional(), Length(max=64)])
    outcome = SelectField(_l("Outcome"), default="", choices=[SelectChoice("", _l("All"))] + [
        SelectChoice(value, label) for value, label in OUTCOME_LABELS.items()])
    resource_type = StringField(_l("Resource type"), validators=[Optional(), Length(max=64)])
    resource_id = StringField(_l("Resource id"), validators=[Optional(), Length(max=64)])
    date_from = DateField(_l("From (UTC)"), validators=[Optional()])
    date_to = DateField(_l("To (UTC, inclusive)"), validators=[Optional()])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("Choose a date on or after the start date."))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def filtered_query(values: dict):
    """The entries matching the filters (no order, so it can be counted)."""
    query = select(AuditEntry)
    if values.get("username"):
        query = query.where(AuditEntry.username == values["username"].strip().lower())
    if values.get("action"):
        query = query.where(AuditEntry.action.startswith(values["action"].strip(), autoescape=True))
    if values.get("outcome"):
        query = query.where(AuditEntry.outcome == values["outcome"])
    if values.get("resource_type"):
        query = query.where(AuditEntry.resource_type == values["resource_type"].strip())
    if values.get("resource_id"):
        query = query.where(AuditEntry.resource_id == values["resource_id"].strip())
    if values.get("date_from"):
        query = query.where(AuditEntry.at >= _day_start(values["date_from"]))
    if values.get("date_to"):
        query = query.where(AuditEntry.at < _day_start(values["date_to"] + timedelta(days=1)))
    return query


def _newest_first(query):
    # Ids grow with every entry written: the newest first, whatever the clocks of the web servers say.
    return query.order_by(AuditEntry.id.desc())


def _filter_detail(values: dict) -> dict:
    """The filter as it is recorded in the audit entry of a view or download."""
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in sorted(values.items())}


def csv_safe(value) -> str:
    """A cell a spreadsheet shows as text: formula starters get a leading single quote (S18)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv_row(entry: AuditEntry) -> list[str]:
    detail = json.dumps(entry.detail or {}, sort_keys=True, ensure_ascii=False, default=str)
    values = (entry.id, entry.at.isoformat() if entry.at else "", entry.user_id, entry.username, entry.action,
              entry.outcome, entry.resource_type, entry.resource_id, entry.address, entry.request_id, detail)
    return [csv_safe(value) for value in values]


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _render(filters, page, status: int = 200):
    return render_template("admin/audit.html", filters=filters, page=page, outcome_labels=OUTCOME_LABELS,
                           export_permission=AUDIT_EXPORT), status


@bp.get("")
@require(AUDIT_READ)
def audit_trail():
    filters = load_filters(AuditFilterForm, FILTERS_KEY, private=PRIVATE_FIELDS)
    page = db.paginate(_newest_first(filtered_query(filters.values)), page=page_number(), per_page=PER_PAGE,
                       error_out=False)
    record_audit("audit.view", "audit_trail", None,
                 detail={"filters": _filter_detail(filters.values), "page": page.page, "rows": page.total})
    db.session.commit()
    return _render(filters, page, 200 if filters.is_valid else 422)


@bp.post("/search")
@require(AUDIT_READ)
def search():
    """The filter form posts here (its username must not travel in a URL), then the list shows."""
    filters = load_filters(AuditFilterForm, FILTERS_KEY, private=PRIVATE_FIELDS,
                           list_endpoint="audit_views.audit_trail")
    if filters.redirect:
        return filters.redirect
    return _render(filters, None, 422)


@bp.get("/export.csv")
@require(AUDIT_READ)
@require(AUDIT_EXPORT)
def export_csv():
    """Every entry matching the current filter, newest first, as CSV."""
    filters = load_filters(AuditFilterForm, FILTERS_KEY, private=PRIVATE_FIELDS)
    if not filters.is_valid:
        abort(422)
    # Rows written after this point (this download's own entry among them) are not part of it,
    # so the row count recorded below is exactly what the file holds.
    last_id = db.session.scalar(select(func.max(AuditEntry.id))) or 0
    query = filtered_query(filters.values).where(AuditEntry.id <= last_id)
    count = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    record_audit("audit.export", "audit_trail", None,
                 detail={"filters": _filter_detail(filters.values), "rows": count, "format": "csv"})
    db.session.commit()
    app = current_app._get_current_object()

    def generate():
        # Streamed in batches after the request has ended, so a large trail never sits in
        # memory whole; each batch is read in a short application context of its own.
        yield _csv_text([CSV_COLUMNS])
        below = last_id + 1
        while True:
            with app.app_context():
                batch = db.session.execute(_newest_first(query.where(AuditEntry.id < below))
                                           .limit(EXPORT_BATCH)).scalars().all()
                if not batch:
                    return
                below = batch[-1].id
                chunk = _csv_text(_csv_row(entry) for entry in batch)
            yield chunk

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="audit-trail-{stamp}.csv"'})
