"""One notification: something that happened that one user should know about."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, UTCDateTime, utcnow
from app.extensions import db


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # The unread count in every page header and the unread list read this index only.
        Index("ix_notifications_user_read_created", "user_id", "read_at", "created_at"),
        # The inbox, newest first, one page at a time without sorting a user's whole history.
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the recipient
    kind: Mapped[str] = mapped_column(String(64))  # e.g. "match_confirmed"
    # An untranslated msgid with %(name)s placeholders: translated when shown, in the reader's language.
    message: Mapped[str] = mapped_column(Text)
    # Plain strings only (short ids, codes), never names: they also go into e-mails.
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    record_type: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(36))
    url: Mapped[str | None] = mapped_column(String(500))  # relative, same-site
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the e-mail went out, so a retried job never sends it twice.
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Who did it (a colleague's name is shown in the inbox, never put in an e-mail).
    actor = relationship("User", foreign_keys=[actor_id], lazy="selectin")

    def __repr__(self) -> str:
        return f"<Notification {self.id} {self.kind}>"
