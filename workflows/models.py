"""Referrals and transfers: a case sent to a service, or handed to another caseworker or agency.

A referral shares chosen sections of one case with a recipient (a user, or any receiver
of an agency) for one service, after a supervisor's approval. A transfer hands the whole
case over: ownership moves only when the recipient accepts. Both keep every step as an
append-only event, besides the case's own history and the audit trail.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, UTCDateTime, new_uuid, utcnow
from app.extensions import db

# Referral statuses (issue #7): approval first, then the recipient's answer.
PENDING_APPROVAL = "pending_approval"
APPROVAL_REJECTED = "approval_rejected"
SENT = "sent"
ACCEPTED = "accepted"
REJECTED = "rejected"
DONE = "done"
REVOKED = "revoked"
REFERRAL_STATUSES = (PENDING_APPROVAL, APPROVAL_REJECTED, SENT, ACCEPTED, REJECTED, DONE, REVOKED)
# While a referral is active its recipient sees the shared sections; never before or after.
ACTIVE_REFERRAL_STATUSES = (SENT, ACCEPTED)

# Transfer statuses.
TRANSFER_PENDING = "pending"
TRANSFER_ACCEPTED = "accepted"
TRANSFER_REJECTED = "rejected"
TRANSFER_CANCELLED = "cancelled"
TRANSFER_STATUSES = (TRANSFER_PENDING, TRANSFER_ACCEPTED, TRANSFER_REJECTED, TRANSFER_CANCELLED)

# How the sharing is justified (S6): the recorded consent on the case, or an override with a reason.
BASIS_CONSENT = "consent"
BASIS_OVERRIDE = "override"


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_case", "case_id", "requested_at"),
        Index("ix_referrals_recipient_agency_status", "recipient_agency_id", "status"),
        Index("ix_referrals_recipient_user_status", "recipient_user_id", "status"),
        Index("ix_referrals_requested_by_status", "requested_by_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)  # opaque, used in URLs
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    service_type: Mapped[str] = mapped_column(String(64))  # a code of the service_type lookup
    # The recipient: one user, or (user empty) whoever of the agency accepts it first.
    recipient_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    shared_sections: Mapped[list] = mapped_column(JSONType, default=list)  # case form section keys
    reason: Mapped[str] = mapped_column(Text)  # what the child needs from the service
    consent_basis: Mapped[str] = mapped_column(String(16))
    override_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING_APPROVAL, index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # or who refused approval
    approval_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approval_comment: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # who accepted or rejected
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer_reason: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_note: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case = relationship("Case")
    recipient_agency = relationship("Agency")
    recipient_user = relationship("User", foreign_keys=[recipient_user_id])
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    approved_by = relationship("User", foreign_keys=[approved_by_id])
    answered_by = relationship("User", foreign_keys=[answered_by_id])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_REFERRAL_STATUSES


class Transfer(db.Model):
    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_case", "case_id", "requested_at"),
        Index("ix_transfers_to_agency_status", "to_agency_id", "status"),
        Index("ix_transfers_to_user_status", "to_user_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    from_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # the owner when it was requested
    to_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # empty: any receiver of the agency
    reason: Mapped[str] = mapped_column(Text)
    consent_basis: Mapped[str] = mapped_column(String(16))
    override_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TRANSFER_PENDING, index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer_reason: Mapped[str | None] = mapped_column(Text)

    case = relationship("Case")
    to_agency = relationship("Agency")
    to_user = relationship("User", foreign_keys=[to_user_id])
    from_user = relationship("User", foreign_keys=[from_user_id])
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    answered_by = relationship("User", foreign_keys=[answered_by_id])


class WorkflowEvent(db.Model):
    """One step of a referral or transfer (append-only): who did what, when, and why."""

    __tablename__ = "workflow_events"
    __table_args__ = (Index("ix_workflow_events_subject", "subject_type", "subject_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # referral, transfer
    subject_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)

    user = relationship("User")
