"""JSON API plumbing every kind of record shares (cases, tracing requests, traces).

`add_record_api_routes(bp, kind)` adds history, notes, flags and file download
routes to a module's API blueprint, the JSON twin of
app.records.views.add_record_routes. The helpers load a record through the
permission module (403 without the permission, 404 out of scope, both
audited), limit form values to the fields the caller may read (S3), turn form
and operation errors into 422 answers and edit conflicts into 409 answers (R1).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, g, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.api import InvalidInput, PageArgsSchema, created, json_body, load_input
from app.audit.operations import record_audit
from app.extensions import db
from app.openapi import Binary, Page, api_doc
from app.permissions import get_in_scope_or_404
from app.records import attachments as files
from app.records import schemas
from app.records.models import RecordChange, RecordFlag, RecordNote
from app.records.operations import RecordError, add_flag, add_note, resolve_flag


@dataclass(frozen=True)
class RecordApi:
    """How a module exposes one kind of record in the API."""

    model: type
    path: str       # URL part after /api/v1, e.g. "/cases"
    name: str       # endpoint prefix, e.g. "case"
    label: str      # for the document, e.g. "case"
    tag: str        # OpenAPI tag, e.g. "Cases"
    read: str
    update: str
    resolve_flags: str


# --- loading and showing ------------------------------------------------------------------------------

def load_record(kind: RecordApi, record_id, permission: str | None = None):
    return get_in_scope_or_404(kind.model, str(record_id), permission=permission or kind.read)


def readable(record_type: str) -> frozenset:
    from forms.operations import readable_fields
    return frozenset(readable_fields(current_user, record_type))


def readable_data(record, keys: frozenset | None = None) -> dict:
    keys = readable(record.RECORD_TYPE) if keys is None else keys
    return {key: value for key, value in (record.data or {}).items() if key in keys}


def paginated(query, dump, args: dict):
    """{items, page, per_page, pages, total} of `query`; `dump(rows)` gives the items' JSON."""
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False, max_per_page=100)
    return {"items": dump(page.items), "page": page.page, "per_page": page.per_page, "pages": page.pages,
            "total": page.total}


# --- errors -------------------------------------------------------------------------------------------

def form_errors(error, prefix: str = "data", with_traces: bool = False) -> InvalidInput:
    """FormValidationError from the forms engine, under the body key that held the values.

    A new tracing request also carries its traces (`with_traces`): "traces.1.name_first" becomes
    {"traces": {"1": {"name_first": [...]}}}, as the body's "traces" list is indexed.
    """
    nested: dict = {}
    for key, messages in error.errors.items():
        parts = key.split(".", 2)
        if with_traces and parts[0] == "traces" and len(parts) == 3 and parts[1].isdigit():
            nested.setdefault("traces", {}).setdefault(parts[1], {})[parts[2]] = messages
        else:
            nested.setdefault(prefix, {})[key] = messages
    return InvalidInput(nested)


def conflict_response(kind: RecordApi, record_id, permission: str, expected_version: int, sent: dict):
    """409 after an EditConflict: both versions, so the caller can decide and send again (R1).

    Whatever the failed save had done is rolled back first; showing the stored values is a view
    of the record, audited as one.
    """
    db.session.rollback()
    record = load_record(kind, record_id, permission)
    keys = readable(record.RECORD_TYPE)
    changed = sorted({change["field"] for row in db.session.execute(select(RecordChange).where(
        RecordChange.record_type == record.RECORD_TYPE, RecordChange.record_id == record.id,
        RecordChange.version > expected_version)).scalars() for change in row.changes
        if change["field"].startswith("@") or change["field"] in keys})
    record_audit(f"{record.RECORD_TYPE}.view", record.RECORD_TYPE, record.id, detail={"conflict": True})
    db.session.commit()
    body = schemas.RecordConflictSchema().dump({
        "error": {"status": 409, "message": _("Someone else saved this record first. Nothing of yours was "
                                              "saved: compare the values and send your change again with "
                                              "the current version."),
                  "reference": g.get("request_id", "")},
        "current_version": record.version, "fields": changed, "current": readable_data(record, keys),
        "yours": sent})
    return jsonify(body), 409


def record_errors(error: RecordError) -> InvalidInput:
    return InvalidInput(error.errors)


# --- history, notes, flags and files --------------------------------------------------------------------

def _users_by_id(ids) -> dict:
    from app.users.models import User
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return {user.id: user for user in db.session.execute(select(User).where(User.id.in_(wanted))).scalars()}


def history_items(record, rows: list[RecordChange]) -> list[dict]:
    """History rows as HistoryEntrySchema dicts, limited to fields the caller may read."""
    keys = readable(record.RECORD_TYPE)
    users = _users_by_id(row.user_id for row in rows)
    items = []
    for row in rows:
        changes = [c for c in row.changes or [] if c["field"].startswith("@") or c["field"] in keys]
        items.append({"id": row.id, "action": row.action, "at": row.at, "version": row.version,
                      "user": users.get(row.user_id), "comment": row.comment, "changes": changes,
                      "hidden_changes": len(row.changes or []) - len(changes)})
    return schemas.HistoryEntrySchema(many=True).dump(items)


def add_record_api_routes(bp: Blueprint, kind: RecordApi) -> None:
    """History, notes, flags and files of `kind`, under {kind.path}/<id>/..."""
    type_ = kind.model.RECORD_TYPE
    base = f"{kind.path}/<uuid:record_id>"
    tags = (kind.tag,)

    @bp.get(f"{base}/history", endpoint=f"{kind.name}_history")
    @api_doc(f"History of a {kind.label}: field-level changes, newest first", tags=tags, query=PageArgsSchema,
             responses={200: Page(schemas.HistoryEntrySchema)}, errors=(403, 404, 422),
             description="Changes to fields the caller may not read are left out (counted in hidden_changes).")
    @login_required
    def history(record_id):
        record = load_record(kind, record_id)
        args = load_input(PageArgsSchema(), request.args.to_dict())
        query = select(RecordChange).where(RecordChange.record_type == type_, RecordChange.record_id == record.id
                                           ).order_by(RecordChange.id.desc())
        body = paginated(query, lambda rows: history_items(record, rows), args)
        record_audit(f"{type_}.history_viewed", type_, record.id)
        db.session.commit()
        return jsonify(body)

    @bp.get(f"{base}/notes", endpoint=f"{kind.name}_notes")
    @api_doc(f"Notes on a {kind.label}, newest first", tags=tags, query=PageArgsSchema,
             responses={200: Page(schemas.NoteSchema)}, errors=(403, 404, 422))
    @login_required
    def notes(record_id):
        record = load_record(kind, record_id)
        args = load_input(PageArgsSchema(), request.args.to_dict())
        query = select(RecordNote).where(RecordNote.record_type == type_, RecordNote.record_id == record.id
                                         ).order_by(RecordNote.id.desc())
        body = paginated(query, lambda rows: schemas.NoteSchema(many=True).dump(rows), args)
        record_audit(f"{type_}.notes_viewed", type_, record.id)
        db.session.commit()
        return jsonify(body)

    @bp.post(f"{base}/notes", endpoint=f"{kind.name}_add_note")
    @api_doc(f"Add a note to a {kind.label}", tags=tags, body=schemas.NoteCreateSchema,
             responses={201: schemas.NoteSchema}, errors=(403, 404, 422),
             description="Notes are append-only; concurrent notes never collide.")
    @login_required
    def add_note_(record_id):
        record = load_record(kind, record_id, kind.update)
        data = load_input(schemas.NoteCreateSchema(), json_body())
        try:
            note = add_note(record, current_user, data["body"], data.get("subject") or "")
        except RecordError as error:
            raise record_errors(error) from error
        db.session.commit()
        return created(schemas.NoteSchema().dump(note), url_for(f".{kind.name}_notes", record_id=record.id))

    @bp.get(f"{base}/flags", endpoint=f"{kind.name}_flags")
    @api_doc(f"Flags on a {kind.label}, newest first", tags=tags, query=PageArgsSchema,
             responses={200: Page(schemas.FlagSchema)}, errors=(403, 404, 422))
    @login_required
    def flags(record_id):
        record = load_record(kind, record_id)
        args = load_input(PageArgsSchema(), request.args.to_dict())
        query = select(RecordFlag).where(RecordFlag.record_type == type_, RecordFlag.record_id == record.id
                                         ).order_by(RecordFlag.id.desc())
        body = paginated(query, lambda rows: schemas.FlagSchema(many=True).dump(rows), args)
        record_audit(f"{type_}.flags_viewed", type_, record.id)
        db.session.commit()
        return jsonify(body)

    @bp.post(f"{base}/flags", endpoint=f"{kind.name}_add_flag")
    @api_doc(f"Flag a {kind.label} (e.g. possible duplicate, child at risk)", tags=tags,
             body=schemas.FlagCreateSchema, responses={201: schemas.FlagSchema}, errors=(403, 404, 422))
    @login_required
    def add_flag_(record_id):
        record = load_record(kind, record_id, kind.update)
        data = load_input(schemas.FlagCreateSchema(), json_body())
        try:
            flag = add_flag(record, current_user, data["reason"])
        except RecordError as error:
            raise record_errors(error) from error
        db.session.commit()
        return created(schemas.FlagSchema().dump(flag), url_for(f".{kind.name}_flags", record_id=record.id))

    @bp.post(f"{base}/flags/<int:flag_id>/resolve", endpoint=f"{kind.name}_resolve_flag")
    @api_doc(f"Resolve an open flag on a {kind.label}", tags=tags, body=schemas.FlagResolveSchema,
             responses={200: schemas.FlagSchema}, errors=(403, 404, 422),
             description="Needs the permission to resolve flags. Two resolving at once: one wins, the other "
                         "gets 422 on `flag`.")
    @login_required
    def resolve_flag_(record_id, flag_id: int):
        record = load_record(kind, record_id, kind.resolve_flags)
        data = load_input(schemas.FlagResolveSchema(), json_body())
        exists = db.session.scalar(select(RecordFlag.id).where(
            RecordFlag.id == flag_id, RecordFlag.record_type == type_, RecordFlag.record_id == record.id))
        if exists is None:
            abort(404)
        try:
            flag = resolve_flag(record, flag_id, current_user, data["resolution"])
        except RecordError as error:
            raise record_errors(error) from error
        db.session.commit()
        db.session.refresh(flag)
        return jsonify(schemas.FlagSchema().dump(flag))

    @bp.get(f"{base}/files/<uuid:file_id>", endpoint=f"{kind.name}_file")
    @api_doc(f"Download a photo or document of a {kind.label}", tags=tags,
             responses={200: Binary(("image/jpeg", "image/png", "image/webp", "application/pdf"))},
             errors=(403, 404),
             description="File ids are the values of the record's photo and document fields. A file of a "
                         "field the caller may not read is not found. Downloads are audited.")
    @login_required
    def file(record_id, file_id):
        from forms.operations import readable_fields
        record = load_record(kind, record_id)
        item = files.get_attachment_or_404(record, str(file_id))
        if item.field_key not in readable_fields(current_user, type_):
            abort(404)
        return files.serve_attachment(record, item, current_user)
