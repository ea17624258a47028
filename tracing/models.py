"""Tracing requests (an inquirer looking for children) and their traces (one per child sought)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from app.extensions import db
from app.records.models import RecordMixin
from app.users.models import UserGroup

# Trace statuses (DOMAIN.md: open -> in progress -> match proposed -> confirmed -> reunified -> closed).
TRACE_OPEN = "open"
TRACE_IN_PROGRESS = "in_progress"
TRACE_MATCH_PROPOSED = "match_proposed"
TRACE_MATCH_CONFIRMED = "match_confirmed"
TRACE_REUNIFIED = "reunified"
TRACE_CLOSED = "closed"
TRACE_STATUSES = (TRACE_OPEN, TRACE_IN_PROGRESS, TRACE_MATCH_PROPOSED, TRACE_MATCH_CONFIRMED,
                  TRACE_REUNIFIED, TRACE_CLOSED)

tracing_request_groups = Table(
    "tracing_request_groups",
    db.metadata,
    Column("tracing_request_id", ForeignKey("tracing_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class TracingRequest(RecordMixin, db.Model):
    """The inquirer's registration. Its data holds the inquirer's form values."""

    __tablename__ = "tracing_requests"

    display_name: Mapped[str] = mapped_column(String(300), default="")  # the inquirer's name
    phone_digits: Mapped[str | None] = mapped_column(String(32), index=True)
    inquiry_date: Mapped[date | None] = mapped_column(Date)
    is_consent_for_tracing: Mapped[bool] = mapped_column(default=False)

    groups: Mapped[list[UserGroup]] = relationship(secondary=tracing_request_groups)
    traces: Mapped[list["Trace"]] = relationship(back_populates="tracing_request", order_by="Trace.created_at")
    owner = relationship("User", foreign_keys="TracingRequest.owner_id")
    agency = relationship("Agency")

    RECORD_TYPE = "tracing_request"


class Trace(RecordMixin, db.Model):
    """One child sought. Owner, agency and groups follow the tracing request (kept in step)."""

    __tablename__ = "traces"
    __table_args__ = (Index("ix_traces_sex_age", "sex", "age"),)

    tracing_request_id: Mapped[str] = mapped_column(ForeignKey("tracing_requests.id", ondelete="CASCADE"),
                                                    index=True)
    tracing_status: Mapped[str] = mapped_column(String(32), default=TRACE_OPEN, index=True)
    display_name: Mapped[str] = mapped_column(String(300), default="")  # the sought child's name
    sex: Mapped[str | None] = mapped_column(String(16))
    age: Mapped[int | None] = mapped_column(Integer)
    location_code: Mapped[str | None] = mapped_column(String(64), index=True)

    tracing_request: Mapped[TracingRequest] = relationship(back_populates="traces")
    # The tracing request's groups give a trace its group scope.
    groups: Mapped[list[UserGroup]] = relationship(
        secondary=tracing_request_groups, viewonly=True,
        primaryjoin=lambda: foreign(tracing_request_groups.c.tracing_request_id) == Trace.tracing_request_id,
        secondaryjoin=lambda: UserGroup.id == foreign(tracing_request_groups.c.group_id))

    RECORD_TYPE = "trace"
