"""Cases: one separated or unaccompanied child each."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.records.models import RecordMixin
from app.users.models import UserGroup

# Workflow stages of a case (DOMAIN.md: new -> assessment -> case plan -> services -> closure).
STAGE_NEW = "new"
STAGE_ASSESSMENT = "assessment"
STAGE_CASE_PLAN = "case_plan"
STAGE_SERVICES = "services"
STAGE_CLOSURE = "closure"
STAGES = (STAGE_NEW, STAGE_ASSESSMENT, STAGE_CASE_PLAN, STAGE_SERVICES, STAGE_CLOSURE)

case_groups = Table(
    "case_groups",
    db.metadata,
    Column("case_id", ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Case(RecordMixin, db.Model):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_stage", "status", "workflow_stage"),
        Index("ix_cases_sex_age", "sex", "age"),
    )

    workflow_stage: Mapped[str] = mapped_column(String(32), default=STAGE_NEW)
    # Copies of a few form values, kept in step on every save, so lists filter and sort
    # on indexed columns at 100,000 records instead of reading JSON.
    display_name: Mapped[str] = mapped_column(String(300), default="")
    sex: Mapped[str | None] = mapped_column(String(16))
    age: Mapped[int | None] = mapped_column(Integer)
    location_code: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_digits: Mapped[str | None] = mapped_column(String(32), index=True)  # digits only, for search
    is_consent_for_tracing: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closure_reason: Mapped[str | None] = mapped_column(Text)

    groups: Mapped[list[UserGroup]] = relationship(secondary=case_groups)
    owner = relationship("User", foreign_keys="Case.owner_id")
    agency = relationship("Agency")

    RECORD_TYPE = "case"

    def __repr__(self) -> str:
        return f"<Case {self.short_id}>"


# Kinds of supervisor approval a case can need (DOMAIN.md: "case plan (approved)", "closure (approved)").
APPROVAL_CASE_PLAN = "case_plan"
APPROVAL_CLOSURE = "closure"
APPROVAL_TYPES = (APPROVAL_CASE_PLAN, APPROVAL_CLOSURE)

APPROVAL_PENDING = "pending"
APPROVAL_APPROVED = "approved"
APPROVAL_REJECTED = "rejected"
APPROVAL_CANCELLED = "cancelled"
APPROVAL_STATUSES = (APPROVAL_PENDING, APPROVAL_APPROVED, APPROVAL_REJECTED, APPROVAL_CANCELLED)


class ApprovalSetting(db.Model):
    """Whether one approval type is in use, as an administrator set it.

    A table rather than a config setting: administrators turn approvals on and off from
    the administration pages, the change reaches every web and worker process at once
    without a restart, and it is audited like every other administrative change. A type
    without a row is off, so upgrading an installation never starts blocking closures
    its caseworkers made the day before.
    """

    __tablename__ = "case_approval_settings"

    approval_type: Mapped[str] = mapped_column(String(32), primary_key=True)  # one of APPROVAL_TYPES
    is_required: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CaseApproval(db.Model):
    """One request for a supervisor's approval of a case's plan or closure, and its decision.

    `status` moves once from pending to approved, rejected or cancelled, by a conditional
    UPDATE: of two supervisors deciding at once, exactly one wins.
    """

    __tablename__ = "case_approvals"
    __table_args__ = (
        # The supervisors' queue: pending requests, oldest first.
        Index("ix_case_approvals_status_requested", "status", "requested_at"),
        Index("ix_case_approvals_case", "case_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    approval_type: Mapped[str] = mapped_column(String(32))  # one of APPROVAL_TYPES
    status: Mapped[str] = mapped_column(String(16), default=APPROVAL_PENDING)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Closure: why the case should close (becomes the closure reason). Case plan: optional note.
    request_note: Mapped[str | None] = mapped_column(Text)
    # The case version the request was made on: a plan changed since is visible to the approver.
    case_version: Mapped[int] = mapped_column(Integer)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # or who cancelled
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_comment: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship()
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def is_pending(self) -> bool:
        return self.status == APPROVAL_PENDING

    def __repr__(self) -> str:
        return f"<CaseApproval {self.id} {self.approval_type} {self.status}>"
