"""Pages every kind of record has, added to a module's blueprint by `add_record_routes`:
history, notes, flags and attachments. Each loads the record through the
permission module (403 without the permission, 404 out of scope, both audited).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.audit.operations import record_audit
from app.extensions import db
from app.permissions import can, get_in_scope_or_404
from app.records import attachments as files
from app.records.operations import RecordError, add_flag, add_note, history_of, resolve_flag


@dataclass(frozen=True)
class RecordKind:
    """How a module names its record and which permissions guard which action."""

    model: type
    label: object            # lazy translated singular, e.g. "case"
    read: str
    update: str
    resolve_flags: str
    show_endpoint: str       # e.g. "cases.show_case": the record page to come back to


def load(kind: RecordKind, record_id: str, permission: str | None = None):
    return get_in_scope_or_404(kind.model, record_id, permission=permission or kind.read)


def _back(kind: RecordKind, record, anchor: str = ""):
    return redirect(url_for(kind.show_endpoint, record_id=record.id) + anchor)


def history_rows(kind: RecordKind, record):
    """History entries with their authors, newest first, limited to fields the user may read."""
    from forms.operations import readable_fields
    from app.users.models import User
    readable = readable_fields(current_user, record.RECORD_TYPE)
    rows = history_of(record)
    authors = {user.id: user for user in db.session.query(User).filter(
        User.id.in_({row.user_id for row in rows if row.user_id}))} if rows else {}
    shown = []
    for row in rows:
        changes = [c for c in row.changes if c["field"].startswith("@") or c["field"] in readable]
        shown.append({"row": row, "author": authors.get(row.user_id), "changes": changes,
                      "hidden": len(row.changes) - len(changes)})
    return shown


def add_record_routes(bp: Blueprint, kind: RecordKind) -> None:
    type_ = kind.model.RECORD_TYPE

    @bp.get("/<uuid:record_id>/history", endpoint="history")
    @login_required
    def history(record_id):
        record = load(kind, str(record_id))
        record_audit(f"{type_}.history_viewed", type_, record.id)
        db.session.commit()
        return render_template("records/history.html", kind=kind, record=record,
                               rows=history_rows(kind, record), record_type=type_)

    @bp.post("/<uuid:record_id>/notes", endpoint="add_note")
    @login_required
    def note(record_id):
        record = load(kind, str(record_id), kind.update)
        try:
            add_note(record, current_user, request.form.get("body", ""), request.form.get("subject", ""))
        except RecordError as error:
            db.session.rollback()
            for messages in error.errors.values():
                for message in messages:
                    flash(message, "error")
            return _back(kind, record, "#notes")
        db.session.commit()
        flash(_("The note is saved."), "success")
        return _back(kind, record, "#notes")

    @bp.post("/<uuid:record_id>/flags", endpoint="add_flag")
    @login_required
    def flag(record_id):
        record = load(kind, str(record_id), kind.update)
        try:
            add_flag(record, current_user, request.form.get("reason", ""))
        except RecordError as error:
            db.session.rollback()
            flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
            return _back(kind, record, "#flags")
        db.session.commit()
        flash(_("The record is flagged."), "success")
        return _back(kind, record, "#flags")

    @bp.post("/<uuid:record_id>/flags/<int:flag_id>/resolve", endpoint="resolve_flag")
    @login_required
    def resolve(record_id, flag_id: int):
        record = load(kind, str(record_id), kind.resolve_flags)
        try:
            resolve_flag(record, flag_id, current_user, request.form.get("resolution", ""))
        except RecordError as error:
            db.session.rollback()
            flash(" ".join(m for ms in error.errors.values() for m in ms), "error")
            return _back(kind, record, "#flags")
        db.session.commit()
        flash(_("The flag is resolved."), "success")
        return _back(kind, record, "#flags")

    @bp.get("/<uuid:record_id>/files/<uuid:attachment_id>", endpoint="attachment")
    @login_required
    def attachment(record_id, attachment_id):
        record = load(kind, str(record_id))
        item = files.get_attachment_or_404(record, str(attachment_id))
        _check_field_readable(record, item.field_key)
        return files.serve_attachment(record, item, current_user)



def conflict_rows(record_type: str, definition, stored: dict, theirs: dict, changed_fields: list[str]) -> list[dict]:
    """The fields where the stored value (saved by someone else) differs from what this user sent."""
    from flask_babel import get_locale

    from forms.operations import display_value
    locale = str(get_locale())
    rows = []
    for key in sorted(set(theirs) | set(changed_fields)):
        if key.startswith("@") or definition.field(key) is None:
            continue
        if stored.get(key) != theirs.get(key) and (key in changed_fields or not changed_fields):
            rows.append({"label": definition.field(key).label(locale),
                         "stored": display_value(record_type, key, stored.get(key), locale),
                         "theirs": display_value(record_type, key, theirs.get(key), locale)})
    return rows


def _check_field_readable(record, field_key: str) -> None:
    """A file belongs to a form field; a role that may not read that field gets nothing (S3)."""
    from forms.operations import readable_fields
    if field_key not in readable_fields(current_user, record.RECORD_TYPE):
        abort(404)


def may(permission: str) -> bool:
    return can(current_user, permission)


# --- template helpers for history pages ---------------------------------------------------

from flask_babel import lazy_gettext as _l  # noqa: E402

ACTION_LABELS = {
    "create": _l("Registered"), "update": _l("Changed"), "attach": _l("Files added"), "close": _l("Closed"),
    "reopen": _l("Reopened"), "import": _l("Imported"), "import_update": _l("Updated by import"),
    "match_proposed": _l("Match proposed by the matching engine"), "match_confirmed": _l("Match confirmed"),
    "match_undone": _l("Match confirmation undone"),
}
RECORD_FIELD_LABELS = {"@status": _l("Status"), "@workflow_stage": _l("Stage"),
                       "@tracing_status": _l("Tracing status"), "@owner": _l("Owner"),
                       "@matched_case": _l("Matched case"), "@matched_trace": _l("Matched trace")}


def history_action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


def history_field_label(record_type: str, key: str, locale: str) -> str:
    from forms.operations import get_definition
    if key in RECORD_FIELD_LABELS:
        return str(RECORD_FIELD_LABELS[key])
    item = get_definition(record_type).field(key)
    return item.label(locale) if item else key


STATUS_VALUE_LABELS = {
    "open": _l("Open"), "closed": _l("Closed"), "in_progress": _l("Tracing in progress"),
    "match_proposed": _l("Match proposed"), "match_confirmed": _l("Match confirmed"),
    "reunified": _l("Reunified"), "new": _l("New"), "assessment": _l("Assessment"), "case_plan": _l("Case plan"),
    "services": _l("Services"), "closure": _l("Closure"),
}


def history_value(record_type: str, key: str, value, locale: str) -> str:
    from forms.operations import display_value
    if key.startswith("@"):
        return "" if value is None else str(STATUS_VALUE_LABELS.get(value, value))
    return display_value(record_type, key, value, locale)


def init_record_templates(app) -> None:
    app.jinja_env.globals.update(history_action_label=history_action_label,
                                 history_field_label=history_field_label, history_value=history_value)
