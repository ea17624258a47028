"""Cases: one separated or unaccompanied child each."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime
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
