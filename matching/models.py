"""Match proposals and the engine's settings.

A proposal pairs one trace (a child a relative looks for) with one case (a
registered child) that may be the same child. Unlike Primero, which computes
matches on demand and forgets them, every proposal is stored with its score,
its per-field explanation and the engine version that made it, and keeps the
decision people took on it.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, UTCDateTime, utcnow
from app.extensions import db

LIKELY = "likely"
POSSIBLE = "possible"

PENDING = "pending"
CONFIRMED = "confirmed"
REJECTED = "rejected"
SUPERSEDED = "superseded"   # no longer shown: the trace was matched elsewhere, or the score fell
PROPOSAL_STATUSES = (PENDING, CONFIRMED, REJECTED, SUPERSEDED)


class MatchingConfig(db.Model):
    """One version of the engine's settings; the newest row is in force.

    Every proposal records the version that scored it, so a change of weights
    or thresholds is visible on the proposals it produced.
    """

    __tablename__ = "matching_configs"

    id: Mapped[int] = mapped_column(primary_key=True)  # the engine version
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    likely_threshold: Mapped[float] = mapped_column(Float)    # probability at or above: "likely"
    possible_threshold: Mapped[float] = mapped_column(Float)  # below it: not proposed
    # {comparator: {level: [m, u]}} overriding the documented defaults, plus "prior" and "tf".
    parameters: Mapped[dict] = mapped_column(JSONType, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")


class MatchProposal(db.Model):
    __tablename__ = "match_proposals"
    __table_args__ = (
        UniqueConstraint("trace_id", "case_id"),
        Index("ix_match_proposals_status_probability", "status", "probability"),
        Index("ix_match_proposals_case_id", "case_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[str] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)         # match weight: sum of log2(m/u), plus the prior
    probability: Mapped[float] = mapped_column(Float)   # calibrated: engine.probability(score)
    likelihood: Mapped[str] = mapped_column(String(16))  # likely, possible
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # [{"comparator", "level", "weight", "similarity", "details"}], strongest evidence first.
    comparison: Mapped[list] = mapped_column(JSONType, default=list)
    engine_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who decided, when and why (the review queue fills these).
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(64))
    decision_note: Mapped[str | None] = mapped_column(Text)
    # The score when it was rejected: a re-proposal needs a relevant change AND a higher score.
    rejected_score: Mapped[float | None] = mapped_column(Float)
    # A reviewer's claim, so two people do not review the same proposal at once (it expires).
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    trace = relationship("Trace")
    case = relationship("Case")


class MatchDecision(db.Model):
    """Every decision on a proposal, in order (append-only): the system remembers."""

    __tablename__ = "match_decisions"
    __table_args__ = (Index("ix_match_decisions_proposal", "proposal_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("match_proposals.id", ondelete="CASCADE"))
    # confirm, reject, defer, undo, supersede, repropose, verify, verify_failed, reunify
    action: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)  # the proposal's score when decided

    user = relationship("User", lazy="selectin")


VERIFIED = "verified"
VERIFICATION_FAILED = "failed"
VERIFICATION_OUTCOMES = (VERIFIED, VERIFICATION_FAILED)
# How the match was verified (several may apply): DOMAIN.md "verification".
VERIFICATION_METHODS = ("child_interview", "inquirer_interview", "documents", "photo_recognition")


class MatchVerification(db.Model):
    """How a confirmed match was verified, by whom, when, and the outcome (append-only).

    A failed verification rejects the pair and sends the trace back to tracing; only a
    verified one lets the reunification be recorded.
    """

    __tablename__ = "match_verifications"
    __table_args__ = (Index("ix_match_verifications_proposal", "proposal_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("match_proposals.id", ondelete="CASCADE"))
    methods: Mapped[list] = mapped_column(JSONType, default=list)  # VERIFICATION_METHODS
    outcome: Mapped[str] = mapped_column(String(16))  # verified, failed
    note: Mapped[str | None] = mapped_column(Text)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    verified_by = relationship("User", lazy="selectin")


class MatchReunification(db.Model):
    """The child's return to the family after a verified match, and the follow-up visit due."""

    __tablename__ = "match_reunifications"
    __table_args__ = (Index("ix_match_reunifications_proposal", "proposal_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("match_proposals.id", ondelete="CASCADE"))
    verification_id: Mapped[int] = mapped_column(ForeignKey("match_verifications.id", ondelete="CASCADE"))
    reunified_on: Mapped[date] = mapped_column(Date)
    place: Mapped[str] = mapped_column(Text)
    with_whom: Mapped[str] = mapped_column(Text)
    follow_up_due: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recorded_by = relationship("User", lazy="selectin")
