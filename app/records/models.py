"""What every child-protection record shares: identity, ownership, versioning,
history, notes, flags and attachments.

Cases (cases/), tracing requests and traces (tracing/) are "records". Each
record table mixes in `RecordMixin`; the side tables here are keyed by
(record_type, record_id) so history, notes, flags and attachments work the
same for every kind of record.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.db import JSONType, UTCDateTime, new_uuid, utcnow
from app.extensions import db

STATUS_OPEN = "open"
STATUS_CLOSED = "closed"


class RecordMixin:
    """Columns every record has. `version` is SQLAlchemy's optimistic lock: an UPDATE
    that finds another version in the row fails instead of overwriting (R1)."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # Seven characters, shown everywhere people talk about the record ("case 7kq2m9x").
    short_id: Mapped[str] = mapped_column(String(12), unique=True)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)  # form values, keyed by field key
    status: Mapped[str] = mapped_column(String(16), default=STATUS_OPEN, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Identifier in the system a record was imported from; makes re-import idempotent (R5).
    source_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Moves with every change of the row, even one that does not set it (a trace's tracing status
    # set by the matching engine): the matching indexes (matching.index) find changes by it.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, index=True)
    # Set when the retention job (app.records.retention) replaced the personal fields of this closed
    # record; what is left are statistics (sex, age band, location level, status, dates).
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr
    def owner_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("users.id"), index=True)

    @declared_attr
    def agency_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("agencies.id"), index=True)

    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("users.id"))

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("users.id"))

    @declared_attr.directive
    def __mapper_args__(cls):
        return {"version_id_col": cls.version}


class RecordChange(db.Model):
    """One save of one record: the field-level diff, who, when (S14)."""

    __tablename__ = "record_changes"
    __table_args__ = (Index("ix_record_changes_record", "record_type", "record_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))  # create, update, close, reopen, import, ...
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer)  # the record version this change produced
    # [{"field": key, "old": value, "new": value}]; record attributes use "@status" etc.
    changes: Mapped[list] = mapped_column(JSONType, default=list)
    comment: Mapped[str | None] = mapped_column(Text)  # e.g. the reason for closing


class RecordNote(db.Model):
    """An append-only note on a record; concurrent notes never collide (R2)."""

    __tablename__ = "record_notes"
    __table_args__ = (Index("ix_record_notes_record", "record_type", "record_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)

    author = relationship("User", lazy="selectin")


class RecordFlag(db.Model):
    """A warning on a record ("possible duplicate", "child at risk") until a supervisor resolves it."""

    __tablename__ = "record_flags"
    __table_args__ = (Index("ix_record_flags_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)

    created_by = relationship("User", foreign_keys=[created_by_id], lazy="selectin")
    resolved_by = relationship("User", foreign_keys=[resolved_by_id], lazy="selectin")

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class RecordAttachment(db.Model):
    """A photo or document stored outside the static folder under a random name (S21)."""

    __tablename__ = "record_attachments"
    __table_args__ = (Index("ix_record_attachments_record", "record_type", "record_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    field_key: Mapped[str] = mapped_column(String(64))  # the photo or document field it belongs to
    kind: Mapped[str] = mapped_column(String(16))        # photo, document
    storage_name: Mapped[str] = mapped_column(String(80), unique=True)  # random; never the user's name
    original_name: Mapped[str] = mapped_column(String(255))  # shown, never used as a path or in a URL
    content_type: Mapped[str] = mapped_column(String(100))   # detected from the content
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class RecordKey(db.Model):
    """Search and blocking keys of a record, e.g. the phonetic keys of every name token.

    Kept in step on every save. Name search ("Mohamed" finds "Muhammad") and the
    matching engine's candidate retrieval look records up by key through the
    (record_type, kind, key) index instead of scanning every record.
    """

    __tablename__ = "record_keys"
    __table_args__ = (
        Index("ix_record_keys_lookup", "record_type", "kind", "key"),
        Index("ix_record_keys_record", "record_type", "record_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # "name", and kinds the matching engine adds
    key: Mapped[str] = mapped_column(String(64))
