"""Operations shared by every kind of record: short ids, saving with optimistic
locking and field-level history, notes and flags.

They flush; the calling view commits. Record-specific modules (cases, tracing)
call these and add their own invariants.
"""
from __future__ import annotations

import secrets

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.audit.operations import record_audit
from app.db import utcnow
from app.extensions import db
from app.records.models import RecordChange, RecordFlag, RecordNote

# No 0/o, 1/l/i: short ids are read aloud on the phone and copied by hand.
SHORT_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
SHORT_ID_LENGTH = 7


class EditConflict(Exception):
    """Someone saved the record after the version the user started from (R1).

    `current` is the record as it is now; `theirs` holds the values the user tried to save.
    """

    def __init__(self, current, theirs: dict, fields: list[str]):
        super().__init__(f"version conflict on {current.RECORD_TYPE} {current.short_id}")
        self.current = current
        self.theirs = theirs
        self.fields = fields


class RecordError(Exception):
    """A refused record operation, with field-level messages.

    `status` 422: bad input; 409: the record's state forbids it now (someone acted first, closed...).
    """

    def __init__(self, errors: dict[str, list[str]], status: int = 422):
        super().__init__(errors)
        self.errors = errors
        self.status = status

    @property
    def message(self) -> str:
        return " ".join(str(m) for messages in self.errors.values() for m in messages)


def new_short_id(model) -> str:
    """A random short id not used by `model` yet."""
    for _attempt in range(20):
        candidate = "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))
        if not db.session.scalar(select(func.count()).where(model.short_id == candidate)):
            return candidate
    raise RuntimeError("could not find a free short id")  # 27 billion ids: practically unreachable


def diff_data(old: dict, new: dict) -> list[dict]:
    """Field-level differences between two data dicts, in key order."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after and not (_is_empty(before) and _is_empty(after)):
            changes.append({"field": key, "old": before, "new": after})
    return changes


def _is_empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def record_change(record, action: str, user, changes: list[dict], comment: str | None = None) -> RecordChange:
    row = RecordChange(record_type=record.RECORD_TYPE, record_id=record.id, action=action,
                       user_id=getattr(user, "id", None), version=record.version, changes=changes,
                       comment=comment)
    db.session.add(row)
    return row


def ensure_not_anonymised(record) -> None:
    """Refuse to change or reopen a record the retention job anonymised: what is left of it is statistics."""
    if getattr(record, "anonymised_at", None) is not None:
        raise RecordError({"status": [_("This record was anonymised under the retention rules: it can no "
                                        "longer be changed or reopened.")]})


def check_version(record, expected_version: int | None, theirs: dict) -> None:
    """Refuse a save based on an older version than the stored one."""
    if expected_version is not None and int(expected_version) != record.version:
        changed = _fields_changed_since(record, int(expected_version))
        raise EditConflict(record, theirs, changed)


def _fields_changed_since(record, version: int) -> list[str]:
    rows = db.session.execute(select(RecordChange.changes).where(
        RecordChange.record_type == record.RECORD_TYPE, RecordChange.record_id == record.id,
        RecordChange.version > version)).scalars()
    return sorted({change["field"] for changes in rows for change in changes})


def flush_with_version_check(record, theirs: dict) -> None:
    """Flush; a concurrent save that got in first (the row's version moved) becomes an EditConflict."""
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        current = db.session.get(type(record), record.id)
        raise EditConflict(current, theirs, []) from None


def add_note(record, user, body: str, subject: str = "") -> RecordNote:
    ensure_not_anonymised(record)
    body = (body or "").strip()
    if not body:
        raise RecordError({"body": [_("Write the note before saving it.")]})
    if len(body) > 20000:
        raise RecordError({"body": [_("A note can hold at most 20,000 characters.")]})
    note = RecordNote(record_type=record.RECORD_TYPE, record_id=record.id, author_id=user.id,
                      subject=(subject or "").strip()[:200], body=body)
    db.session.add(note)
    db.session.flush()
    record_audit(f"{record.RECORD_TYPE}.note_added", record.RECORD_TYPE, record.id,
                 detail={"note_id": note.id}, user=user)
    return note


def add_flag(record, user, reason: str) -> RecordFlag:
    ensure_not_anonymised(record)
    reason = (reason or "").strip()
    if not reason:
        raise RecordError({"reason": [_("Say why you flag this record.")]})
    flag = RecordFlag(record_type=record.RECORD_TYPE, record_id=record.id, reason=reason[:2000],
                      created_by_id=user.id)
    db.session.add(flag)
    db.session.flush()
    record_audit(f"{record.RECORD_TYPE}.flag_added", record.RECORD_TYPE, record.id,
                 detail={"flag_id": flag.id}, user=user)
    return flag


def resolve_flag(record, flag_id: int, user, resolution: str) -> RecordFlag:
    """Resolve an open flag. Two supervisors resolving at once: exactly one wins (R2)."""
    ensure_not_anonymised(record)
    resolution = (resolution or "").strip()
    if not resolution:
        raise RecordError({"resolution": [_("Say how the concern was resolved.")]})
    result = db.session.execute(update(RecordFlag).where(
        RecordFlag.id == flag_id, RecordFlag.record_type == record.RECORD_TYPE,
        RecordFlag.record_id == record.id, RecordFlag.resolved_at.is_(None),
    ).values(resolved_at=utcnow(), resolved_by_id=user.id, resolution=resolution[:2000]))
    if result.rowcount != 1:
        raise RecordError({"flag": [_("This flag is already resolved or does not exist.")]})
    record_audit(f"{record.RECORD_TYPE}.flag_resolved", record.RECORD_TYPE, record.id,
                 detail={"flag_id": flag_id}, user=user)
    return db.session.get(RecordFlag, flag_id)


def notes_of(record) -> list[RecordNote]:
    return list(db.session.execute(select(RecordNote).where(
        RecordNote.record_type == record.RECORD_TYPE, RecordNote.record_id == record.id
    ).order_by(RecordNote.id.desc())).scalars())


def flags_of(record) -> list[RecordFlag]:
    return list(db.session.execute(select(RecordFlag).where(
        RecordFlag.record_type == record.RECORD_TYPE, RecordFlag.record_id == record.id
    ).order_by(RecordFlag.id.desc())).scalars())


def history_of(record) -> list[RecordChange]:
    return list(db.session.execute(select(RecordChange).where(
        RecordChange.record_type == record.RECORD_TYPE, RecordChange.record_id == record.id
    ).order_by(RecordChange.id.desc())).scalars())


def insert_with_short_id(record, model) -> None:
    """Add a new record, retrying the short id if a concurrent insert took it."""
    for _attempt in range(5):
        with db.session.no_autoflush:  # the new record (maybe already in a collection) is not flushed early
            record.short_id = new_short_id(model)
        try:
            with db.session.begin_nested():
                db.session.add(record)
            return
        except IntegrityError:
            continue
    raise RuntimeError("could not store the record with a unique short id")
