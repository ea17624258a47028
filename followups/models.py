"""The derived task table: one row per dated follow-up found in an open case's data.

Tasks are read from existing data (a case's planned services, its case plan review date,
its reunification follow-up, and recorded reunifications' follow-up visits). Listing
them by reading every case's JSON would load 100,000 documents per page view, so each
save refreshes this small table instead (see followups.operations.refresh_record_tasks),
and lists are plain indexed SQL on it. The case's owner and agency are copied here (kept
in step on every flush that changes them, whichever module moves the case: see
followups.tasks), and its groups are read through `case_groups`, so `scope_filter(user,
RecordTask)` applies the very rules that apply to the case. Only open cases have rows.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from app.db import JSONType
from app.extensions import db
from app.users.models import UserGroup
from cases.models import case_groups

KIND_SERVICE = "service_due"
KIND_CASE_PLAN_REVIEW = "case_plan_review"
KIND_FOLLOW_UP = "follow_up"
KIND_REUNIFICATION_FOLLOW_UP = "reunification_follow_up"
KINDS = (KIND_SERVICE, KIND_CASE_PLAN_REVIEW, KIND_FOLLOW_UP, KIND_REUNIFICATION_FOLLOW_UP)


class RecordTask(db.Model):
    __tablename__ = "record_tasks"
    __table_args__ = (
        # One row per task; its prefix (the selective record id first) is the index a record's refresh uses.
        UniqueConstraint("record_id", "record_type", "kind", "item_key"),
        # A caseworker's list (own scope), an agency's, everyone's: each an index range.
        Index("ix_record_tasks_owner_due", "owner_id", "due_on"),
        Index("ix_record_tasks_agency_due", "agency_id", "due_on"),
        Index("ix_record_tasks_due_on", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))  # KINDS
    # Which item of the record: a subform row's _id, a proposal id, or "" for a single date.
    item_key: Mapped[str] = mapped_column(String(64), default="")
    # The form field the task is read from: a user who may not read it does not see the task.
    source_field: Mapped[str] = mapped_column(String(64))
    due_on: Mapped[date] = mapped_column(Date)
    # Codes for the label (e.g. {"service_type": "health"}), never free text or names.
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Copies of the case's owner and agency (for scope_filter), kept in step on every flush.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    # When the owner was told it is overdue (the daily run tells each task once).
    overdue_notified_on: Mapped[date | None] = mapped_column(Date)

    # The case's groups, read live through case_groups: group scope is the case's own.
    groups: Mapped[list[UserGroup]] = relationship(
        secondary=case_groups, viewonly=True,
        primaryjoin=lambda: foreign(case_groups.c.case_id) == RecordTask.record_id,
        secondaryjoin=lambda: UserGroup.id == foreign(case_groups.c.group_id))
