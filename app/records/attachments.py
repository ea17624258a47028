"""Photos and documents on records (S21).

Files are checked by their content (magic bytes), not by the name or the
browser's claim, limited in size, stored outside the static folder under a
random name in UPLOAD_FOLDER, and served only through a scope-checked route
that audits every download.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from flask import current_app, send_file
from flask_babel import gettext as _
from sqlalchemy import select

from app.audit.operations import record_audit
from app.extensions import db
from app.records.models import RecordAttachment
from app.records.operations import RecordError, ensure_not_anonymised

PHOTO = "photo"
DOCUMENT = "document"

# (magic prefix, content type); WebP is RIFF....WEBP and checked separately.
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)
ALLOWED = {
    PHOTO: {"image/jpeg", "image/png", "image/webp"},
    DOCUMENT: {"image/jpeg", "image/png", "image/webp", "application/pdf"},
}


def sniff_content_type(head: bytes) -> str | None:
    for prefix, content_type in _SIGNATURES:
        if head.startswith(prefix):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def upload_root() -> Path:
    root = Path(current_app.config.get("UPLOAD_FOLDER") or Path(current_app.instance_path) / "uploads")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _path_for(storage_name: str) -> Path:
    # Two levels of fan-out keep directories small; the name is ours, never the user's.
    return upload_root() / storage_name[:2] / storage_name[2:4] / storage_name


def store_attachment(record, field_key: str, kind: str, upload, user) -> RecordAttachment:
    """Check and store one uploaded file (a werkzeug FileStorage) on `record`."""
    ensure_not_anonymised(record)
    limit = current_app.config["MAX_PHOTO_BYTES" if kind == PHOTO else "MAX_DOCUMENT_BYTES"]
    content = upload.stream.read(limit + 1)
    if not content:
        raise RecordError({field_key: [_("The file is empty.")]})
    if len(content) > limit:
        raise RecordError({field_key: [_("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024))]})
    content_type = sniff_content_type(content[:16])
    if content_type not in ALLOWED[kind]:
        allowed = "JPEG, PNG, WebP" + (", PDF" if kind == DOCUMENT else "")
        raise RecordError({field_key: [_("This kind of file is not accepted. Use %(types)s.", types=allowed)]})
    storage_name = secrets.token_hex(20)
    path = _path_for(storage_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
    original = os.path.basename((upload.filename or "file").replace("\\", "/"))[:255] or "file"
    attachment = RecordAttachment(
        record_type=record.RECORD_TYPE, record_id=record.id, field_key=field_key, kind=kind,
        storage_name=storage_name, original_name=original, content_type=content_type, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), uploaded_by_id=user.id)
    db.session.add(attachment)
    db.session.flush()
    record_audit(f"{record.RECORD_TYPE}.attachment_added", record.RECORD_TYPE, record.id,
                 detail={"attachment_id": attachment.id, "field": field_key, "size": len(content)}, user=user)
    return attachment


def attachments_of(record, include_deleted: bool = False) -> list[RecordAttachment]:
    query = select(RecordAttachment).where(RecordAttachment.record_type == record.RECORD_TYPE,
                                           RecordAttachment.record_id == record.id)
    if not include_deleted:
        query = query.where(RecordAttachment.is_deleted.is_(False))
    return list(db.session.execute(query.order_by(RecordAttachment.uploaded_at)).scalars())


def readable_attachments(record) -> list[RecordAttachment]:
    """The record's current files in fields the current user may read (S3)."""
    from flask_login import current_user

    from forms.operations import readable_fields
    readable = readable_fields(current_user, record.RECORD_TYPE)
    data = record.data or {}
    # Attachment fields hold lists of attachment ids; subforms hold lists of rows (dicts): skip those.
    held = {value for key in readable if isinstance(data.get(key), list)
            for value in data[key] if isinstance(value, str)}
    return [item for item in attachments_of(record) if item.field_key in readable and item.id in held]


def get_attachment_or_404(record, attachment_id: str) -> RecordAttachment:
    """A file of this record that its form data still holds (a file taken off the form is not served)."""
    from flask import abort
    attachment = db.session.execute(select(RecordAttachment).where(
        RecordAttachment.id == attachment_id, RecordAttachment.record_type == record.RECORD_TYPE,
        RecordAttachment.record_id == record.id, RecordAttachment.is_deleted.is_(False))).scalar_one_or_none()
    held = (record.data or {}).get(attachment.field_key) if attachment else None
    if attachment is None or attachment.id not in (held if isinstance(held, list) else [held]):
        abort(404)
    return attachment


def store_uploads(record, user, uploads) -> dict[str, list[str]]:
    """Store the files posted for the photo and document fields `user` may write.

    `uploads` is request.files. Returns {field_key: [new attachment ids]}. If one file is
    refused, the files already written by this call are deleted and RecordError is raised.
    """
    from forms.models import ATTACHMENT_TYPES
    from forms.operations import get_definition, writable_fields
    writable = writable_fields(user, record.RECORD_TYPE)
    stored: dict[str, list[str]] = {}
    written: list[Path] = []
    try:
        for item in get_definition(record.RECORD_TYPE).fields:
            if item.type not in ATTACHMENT_TYPES or item.key not in writable:
                continue
            for upload in uploads.getlist(item.key):
                if not upload or not upload.filename:
                    continue
                attachment = store_attachment(record, item.key, item.type, upload, user)
                written.append(_path_for(attachment.storage_name))
                stored.setdefault(item.key, []).append(attachment.id)
    except RecordError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return stored


def serve_attachment(record, attachment: RecordAttachment, user):
    """Send the file; the view has already checked the record is in the user's scope."""
    record_audit(f"{record.RECORD_TYPE}.attachment_downloaded", record.RECORD_TYPE, record.id,
                 detail={"attachment_id": attachment.id}, user=user)
    db.session.commit()
    inline = attachment.content_type.startswith("image/")
    response = send_file(_path_for(attachment.storage_name), mimetype=attachment.content_type,
                         as_attachment=not inline, download_name=attachment.original_name, max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "no-store"
    return response

