"""Exporting cases and tracing requests to CSV and XLSX (S2, S3, S17, S18).

An export holds only the records in the user's scope (`scope_filter`, the same SQL as
the lists) and only the fields the user may read (`readable_fields`: a section their
role may not see is absent, header included). Every text cell a spreadsheet would run
as a formula (starting with = + - @, a tab or a carriage return) gets a leading single
quote. The export needs its own permission (cases:export, tracing:export) and is audited
with its filter and row count.

Two layouts (README, "Import and export"):

* keys (default): one header row of field keys; values as stored (option codes, ISO
  dates, yes/no, multi-select codes separated by ";", subform rows as JSON), so the file
  can be edited and imported back.
* labels: the same header row, then a second header row with the field names in the
  user's language; values as the pages show them, in that language.

Cases give one row per case. Tracing requests give one row per trace, the inquirer's
columns repeated, as the import expects them.

Large exports run as background jobs (`run_export_job`): the file is written under the
instance folder, and only the user who asked for it can download it, through a
permission-checked and audited route (app.records.io_views).
"""
from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, exists, func, or_, select, update

from app.audit.operations import record_audit
from app.extensions import db
from app.permissions import can, scope_filter
from app.records.models import STATUS_CLOSED, STATUS_OPEN, RecordFlag

FORMATS = ("csv", "xlsx")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BATCH = 1000
MULTI_SEPARATOR = ";"
DEFAULT_KEEP_HOURS = 24

# Filters an export may carry (the list pages' filters, minus the private name search).
FILTER_KEYS = {
    "cases": ("status", "stage", "sex", "age_min", "age_max", "location", "consent", "flagged", "mine"),
    "tracing": ("status", "tracing_status", "sex", "age_min", "age_max", "location", "consent", "flagged", "mine"),
}

Progress = Callable[[int, int], None]


class ExportRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- cells ---------------------------------------------------------------------------------------------

def safe_cell(value):
    """A cell value a spreadsheet shows as it is: numbers stay numbers; text that a
    spreadsheet would run as a formula gets a leading single quote (S18)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _CsvWriter:
    def __init__(self, path: Path):
        # The byte-order mark makes spreadsheets read the file as UTF-8 (Arabic and Ge'ez names).
        self.handle = open(path, "w", newline="", encoding="utf-8-sig")
        self.writer = csv.writer(self.handle)

    def row(self, values: list) -> None:
        self.writer.writerow(values)

    def close(self) -> None:
        self.handle.close()


class _XlsxWriter:
    def __init__(self, path: Path, title: str, right_to_left: bool):
        from openpyxl import Workbook
        self.path = path
        self.workbook = Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet(title=title[:31])
        if right_to_left:
            self.sheet.sheet_view.rightToLeft = True

    def row(self, values: list) -> None:
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        self.sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in values])

    def close(self) -> None:
        self.workbook.save(self.path)
        self.workbook.close()


# --- columns -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportColumn:
    key: str                          # header in the first row
    label: str                        # header in the second row (labels layout)
    value: Callable[[object, str], object]  # (row source, locale) -> raw value


def _stored_value(item, value):
    """A stored form value as the import reads it back."""
    from forms.models import MULTI_SELECT, SUBFORM, TICK_BOX
    if value is None or value == "" or value == []:
        return None
    if item is None:  # a date's approximate flag
        return "yes" if value is True else "no"
    if item.type == TICK_BOX:
        return "yes" if value is True else "no"
    if item.type == MULTI_SELECT and isinstance(value, list):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    if item.type == SUBFORM:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return str(value)


def _shown_value(item, value, locale: str):
    """A stored form value as the pages show it, in `locale`."""
    from forms.models import SUBFORM
    from forms.operations import format_value
    if value is None or value == "" or value == []:
        return None
    if item is None:
        with force_locale(locale):
            return _("Yes") if value is True else _("No")
    if item.type == SUBFORM and isinstance(value, list):
        lines = []
        for row in value:
            if not isinstance(row, dict):
                continue
            parts = []
            for sub in item.subfields:
                text = format_value(sub, row.get(sub.key), locale) if sub.holds_value else ""
                if text:
                    parts.append(f"{sub.label(locale)}: {text}")
            lines.append("; ".join(parts))
        return "\n".join(lines)
    return format_value(item, value, locale)


def field_columns(record_type: str, user, *, labels: bool, locale: str, prefix: str = "",
                  data_of: Callable[[object], dict] = lambda record: record.data) -> list[ExportColumn]:
    """One column per field `user` may read (hidden fields included; files and removed fields left out)."""
    from forms.models import ATTACHMENT_TYPES
    from forms.operations import access_for, get_definition
    definition = get_definition(record_type)
    access = access_for(definition, user)
    columns = []
    for section in definition.sections:
        if section.key not in access.readable_sections:
            continue
        for item in section.fields:
            if not item.holds_value or item.type in ATTACHMENT_TYPES or item.key not in access.readable:
                continue
            columns.append(_field_column(item, item.key, item.label(locale), prefix, labels, data_of))
            if item.approximate_key and item.approximate_key in access.readable:
                with force_locale(locale):
                    label = _("%(label)s: approximate", label=item.label(locale))
                columns.append(_field_column(None, item.approximate_key, label, prefix, labels, data_of))
    return columns


def _field_column(item, key: str, label: str, prefix: str, labels: bool, data_of) -> ExportColumn:
    if labels:
        def value(source, locale, item=item, key=key):
            return _shown_value(item, (data_of(source) or {}).get(key), locale)
    else:
        def value(source, locale, item=item, key=key):
            return _stored_value(item, (data_of(source) or {}).get(key))
    return ExportColumn(prefix + key, label, value)


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else ""


# --- filters ---------------------------------------------------------------------------------------------

def clean_filters(kind: str, raw: dict) -> dict:
    """Check an export filter (from the export page, the CLI or a job's arguments)."""
    from cases.models import STAGES
    from tracing.models import TRACE_STATUSES
    cleaned: dict = {}
    for key, value in (raw or {}).items():
        if value in (None, "", False):
            continue
        if key not in FILTER_KEYS[kind]:
            raise ExportRefused(_("Unknown filter: %(name)s.", name=key))
        if key == "status" and value not in (STATUS_OPEN, STATUS_CLOSED):
            raise ExportRefused(_("Status is open or closed."))
        if key == "stage" and value not in STAGES:
            raise ExportRefused(_("Unknown stage."))
        if key == "tracing_status" and value not in TRACE_STATUSES:
            raise ExportRefused(_("Unknown tracing status."))
        if key == "consent" and value not in ("yes", "no"):
            raise ExportRefused(_("Consent is yes or no."))
        if key in ("age_min", "age_max"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ExportRefused(_("Ages are whole numbers.")) from None
            if not 0 <= value <= 30:
                raise ExportRefused(_("Ages go from 0 to 30."))
        if key in ("flagged", "mine"):
            value = bool(value)
        if key in ("sex", "location"):
            value = str(value)[:64]
        cleaned[key] = value
    return cleaned


def _flagged(record_type: str, model):
    return exists().where(RecordFlag.record_type == record_type, RecordFlag.record_id == model.id,
                          RecordFlag.resolved_at.is_(None))


def _filtered(query, filters: dict, user, *, record_model, child_model=None):
    """Apply export filters. `record_model` holds status/consent/flags/owner; the child model
    (traces) or the record itself holds sex, age and location."""
    from app.records.filters import person_filters
    person = child_model or record_model
    if filters.get("status"):
        query = query.where(record_model.status == filters["status"])
    if filters.get("stage"):
        query = query.where(record_model.workflow_stage == filters["stage"])
    if filters.get("tracing_status"):
        query = query.where(child_model.tracing_status == filters["tracing_status"])
    query = person_filters(query, person, filters)
    if filters.get("consent"):
        query = query.where(record_model.is_consent_for_tracing.is_(filters["consent"] == "yes"))
    if filters.get("flagged"):
        query = query.where(_flagged(record_model.RECORD_TYPE, record_model))
    if filters.get("mine"):
        query = query.where(record_model.owner_id == user.id)
    return query


def _batches(query, order_model) -> Iterator[list]:
    """The query's rows in batches, by (created_at, id) keyset: no offset scans, no long cursor."""
    last = None
    while True:
        page = query
        if last is not None:
            page = page.where(or_(order_model.created_at > last[0],
                                  and_(order_model.created_at == last[0], order_model.id > last[1])))
        rows = db.session.execute(page.order_by(order_model.created_at, order_model.id).limit(BATCH)).all()
        if not rows:
            return
        key = rows[-1][0]
        last = (key.created_at, key.id)  # read now: the consumer may commit (expiring) and expunge the rows
        yield rows


class _Usernames:
    """Owner usernames by id, read once per batch."""

    def __init__(self):
        self.names: dict[int, str] = {}

    def load(self, ids) -> None:
        from app.users.models import User
        missing = {i for i in ids if i is not None and i not in self.names}
        if missing:
            self.names.update(db.session.execute(select(User.id, User.username).where(User.id.in_(missing))).all())


# --- the two kinds ---------------------------------------------------------------------------------------

class _CaseExport:
    kind = "cases"
    record_type = "case"
    title = "cases"

    def __init__(self, user, filters: dict, labels: bool, locale: str):
        from cases.models import Case
        from cases.operations import CASES_EXPORT
        self.model, self.permission = Case, CASES_EXPORT
        self.user, self.filters, self.labels, self.locale = user, filters, labels, locale
        self.usernames = _Usernames()

    def query(self):
        query = select(self.model).where(scope_filter(self.user, self.model))
        return _filtered(query, self.filters, self.user, record_model=self.model)

    def columns(self) -> list[ExportColumn]:
        with force_locale(self.locale):
            record = [
                ExportColumn("short_id", _("Short id"), lambda c, _l: c.short_id),
                ExportColumn("source_id", _("Source id"), lambda c, _l: c.source_id),
                ExportColumn("status", _("Status"), lambda c, _l: c.status),
                ExportColumn("workflow_stage", _("Stage"), lambda c, _l: c.workflow_stage),
                ExportColumn("owner", _("Owner"), lambda c, _l: self.usernames.names.get(c.owner_id)),
                ExportColumn("created_at", _("Registered (UTC)"), lambda c, _l: _iso(c.created_at)),
                ExportColumn("updated_at", _("Last updated (UTC)"), lambda c, _l: _iso(c.updated_at)),
            ]
        return record + field_columns("case", self.user, labels=self.labels, locale=self.locale)

    def rows(self) -> Iterator[list]:
        for batch in _batches(self.query(), self.model):
            self.usernames.load(row[0].owner_id for row in batch)
            yield [row[0] for row in batch]
            for row in batch:
                db.session.expunge(row[0])

    def count(self) -> int:
        return db.session.scalar(select(func.count()).select_from(self.query().subquery())) or 0


class _TracingExport:
    kind = "tracing"
    record_type = "tracing_request"
    title = "tracing"

    def __init__(self, user, filters: dict, labels: bool, locale: str):
        from tracing.models import Trace, TracingRequest
        from tracing.operations import TRACING_EXPORT
        self.model, self.trace_model, self.permission = TracingRequest, Trace, TRACING_EXPORT
        self.user, self.filters, self.labels, self.locale = user, filters, labels, locale
        self.usernames = _Usernames()

    def query(self):
        Trace, TracingRequest = self.trace_model, self.model
        query = (select(Trace, TracingRequest).join(TracingRequest, Trace.tracing_request_id == TracingRequest.id)
                 .where(scope_filter(self.user, TracingRequest)))
        return _filtered(query, self.filters, self.user, record_model=TracingRequest, child_model=Trace)

    def columns(self) -> list[ExportColumn]:
        with force_locale(self.locale):
            request = [
                ExportColumn("inquiry_ref", _("Inquiry reference (source id)"), lambda r, _l: r[1].source_id),
                ExportColumn("request_short_id", _("Tracing request"), lambda r, _l: r[1].short_id),
                ExportColumn("request_status", _("Status"), lambda r, _l: r[1].status),
                ExportColumn("owner", _("Owner"), lambda r, _l: self.usernames.names.get(r[1].owner_id)),
                ExportColumn("created_at", _("Registered (UTC)"), lambda r, _l: _iso(r[1].created_at)),
                ExportColumn("updated_at", _("Last updated (UTC)"), lambda r, _l: _iso(r[1].updated_at)),
            ]
            trace = [
                ExportColumn("trace.short_id", _("Trace"), lambda r, _l: r[0].short_id),
                ExportColumn("trace.source_id", _("Trace source id"), lambda r, _l: r[0].source_id),
                ExportColumn("trace.tracing_status", _("Tracing status"), lambda r, _l: r[0].tracing_status),
            ]
        return (request
                + field_columns("tracing_request", self.user, labels=self.labels, locale=self.locale,
                                data_of=lambda r: r[1].data)
                + trace
                + field_columns("trace", self.user, labels=self.labels, locale=self.locale, prefix="trace.",
                                data_of=lambda r: r[0].data))

    def rows(self) -> Iterator[list]:
        for batch in _batches(self.query(), self.trace_model):
            self.usernames.load(row[1].owner_id for row in batch)
            yield [(row[0], row[1]) for row in batch]
            for trace, request in batch:
                db.session.expunge(trace)
                if request in db.session:
                    db.session.expunge(request)

    def count(self) -> int:
        return db.session.scalar(select(func.count()).select_from(self.query().subquery())) or 0


EXPORTS = {"cases": _CaseExport, "tracing": _TracingExport}


def _locale_of(user) -> str:
    languages = current_app.config.get("LANGUAGES") or {"en": "English"}
    return user.locale if getattr(user, "locale", None) in languages else "en"


@dataclass
class ExportResult:
    rows: int
    seconds: float


def export_records(kind: str, user, path: str | Path, *, file_format: str = "csv", labels: bool = False,
                   filters: dict | None = None, progress: Progress | None = None) -> ExportResult:
    """Write the records of `kind` ("cases" or "tracing") that `user` may see to `path`.

    Refused (ExportRefused) without the export permission. The file is written under a
    temporary name and renamed when complete; the audit entry (filter, row count, format)
    is added to the session, and the caller commits.
    """
    started = time.monotonic()
    if file_format not in FORMATS:
        raise ExportRefused(_("Export as csv or xlsx."))
    filters = clean_filters(kind, filters or {})
    locale = _locale_of(user)
    exporter = EXPORTS[kind](user, filters, labels, locale)
    if user is None or not user.is_active or not can(user, exporter.permission):
        raise ExportRefused(_("You may not export these records: your role lacks %(permission)s.",
                              permission=exporter.permission))
    path = Path(path)
    columns = exporter.columns()
    total = exporter.count()
    temporary = path.with_name(path.name + ".part")
    writer = (_XlsxWriter(temporary, exporter.title, locale in current_app.config.get("RTL_LANGUAGES", ()))
              if file_format == "xlsx" else _CsvWriter(temporary))
    written = 0
    try:
        writer.row([safe_cell(column.key) for column in columns])
        if labels:
            writer.row([safe_cell(column.label) for column in columns])
        for batch in exporter.rows():
            for source in batch:
                writer.row([safe_cell(column.value(source, locale)) for column in columns])
            written += len(batch)
            if progress:
                progress(written, max(total, written))
        writer.close()
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    record_audit(f"{exporter.record_type}.export", exporter.record_type, None, user=user, detail={
        "filters": filters, "rows": written, "format": file_format, "labels": labels})
    db.session.flush()
    return ExportResult(written, time.monotonic() - started)


# --- files of background imports and exports ----------------------------------------------------------------

def record_files_dir() -> Path:
    """Where export files, uploaded import files and import reports wait (outside static, 0700)."""
    folder = Path(current_app.config.get("RECORD_FILES_FOLDER") or os.environ.get("RECORD_FILES_FOLDER")
                  or Path(current_app.instance_path) / "record_files")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def export_file_name(kind: str, job_id: int, file_format: str) -> str:
    return f"{kind}-export-{int(job_id)}.{file_format}"


def purge_old_files(now: float | None = None) -> int:
    """Delete exports, uploads and reports older than RECORD_FILES_KEEP_HOURS (default 24)."""
    keep = float(current_app.config.get("RECORD_FILES_KEEP_HOURS") or os.environ.get("RECORD_FILES_KEEP_HOURS")
                 or DEFAULT_KEEP_HOURS) * 3600
    now = now or time.time()
    removed = 0
    for path in record_files_dir().iterdir():
        try:
            if path.is_file() and now - path.stat().st_mtime > keep:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def set_job_result(job_id: int | None, values: dict, *, separate_connection: bool = False) -> None:
    """Store progress and outcome on the job row (shown on the status pages).

    `separate_connection` writes (on PostgreSQL) outside the job's transaction, so a long
    import can show its progress before it commits; SQLite allows one writer at a time,
    so there the row is updated with the job's own transaction.
    """
    from app.jobs.models import JobRecord
    if not job_id:
        return
    statement = update(JobRecord).where(JobRecord.id == job_id).values(progress=values)
    if separate_connection:
        if db.engine.dialect.name != "postgresql":
            return
        with db.engine.begin() as connection:
            connection.execute(statement)
        return
    db.session.execute(statement)


def run_export_job(kind: str, *, user_id: int, job_id: int | None, file_format: str, labels: bool,
                   filters: dict) -> None:
    """The body of the cases.export and tracing.export tasks. Idempotent: a second run
    writes the same file again."""
    from app.users.models import User
    user = db.session.get(User, user_id)
    path = record_files_dir() / export_file_name(kind, job_id or 0, file_format)

    def progress(done: int, total: int) -> None:
        set_job_result(job_id, {"done": done, "total": total})
        db.session.commit()  # progress only: an export writes nothing else until its audit entry

    try:
        with force_locale(_locale_of(user)):
            result = export_records(kind, user, path, file_format=file_format, labels=labels, filters=filters,
                                    progress=progress)
    except ExportRefused as refusal:
        db.session.rollback()
        set_job_result(job_id, {"done": 0, "total": 0, "refused": refusal.message})
        db.session.commit()
        return
    set_job_result(job_id, {"done": result.rows, "total": result.rows, "rows": result.rows,
                            "file": path.name, "format": file_format})
    db.session.commit()
    purge_old_files()
