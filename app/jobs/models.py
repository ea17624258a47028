"""The job outbox: every job is a row first, a queue entry second.

`enqueue` writes the row in the caller's transaction, so a job exists exactly
when the work that asked for it was committed. Pushing to Redis happens after
the commit; if Redis is down the row simply waits (status `pending`) and the
sweeper pushes it once Redis answers again (R3). Rows also carry attempts,
the last error and the next retry time (R4).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import JSONType, UTCDateTime, utcnow
from app.extensions import db

STATUS_PENDING = "pending"    # waiting to be dispatched (new, Redis down, or waiting for a retry)
STATUS_QUEUED = "queued"      # pushed to rq, not started yet
STATUS_RUNNING = "running"
STATUS_DONE = "done"
STATUS_FAILED = "failed"      # out of attempts; an administrator can retry it
STATUSES = (STATUS_PENDING, STATUS_QUEUED, STATUS_RUNNING, STATUS_DONE, STATUS_FAILED)
OPEN_STATUSES = (STATUS_PENDING, STATUS_QUEUED)


class JobRecord(db.Model):
    __tablename__ = "job_records"
    __table_args__ = (
        Index("ix_job_records_status_due", "status", "run_after"),
        # At most one waiting job per dedupe key: saving a record five times
        # quickly queues its follow-up work once.
        Index("uq_job_records_open_dedupe_key", "dedupe_key", unique=True,
              postgresql_where=text("status IN ('pending', 'queued')"),
              sqlite_where=text("status IN ('pending', 'queued')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(100))  # registered task name
    args: Mapped[dict] = mapped_column(JSONType, default=dict)  # ids and plain values only
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=4)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)  # exception type and message, no traceback
    progress: Mapped[dict] = mapped_column(JSONType, default=dict)  # e.g. {"done": 10, "total": 100}
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
