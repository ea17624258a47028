"""Enqueue, dispatch, run and sweep jobs.

Life of a job:
1. `enqueue(...)` adds a `JobRecord` (status pending) to the caller's transaction.
2. When that transaction commits, the record's id is remembered on the session;
   `dispatch_committed_jobs()` (called after each request, and by CLI commands
   and jobs after they commit) pushes it to rq and marks it queued, or, with
   no REDIS_URL, runs it right away in this process.
3. If Redis does not answer, the record stays pending; `sweep()` (run by
   every `flask worker` every few seconds, and by `flask jobs sweep`) pushes
   it later. Nothing is lost, the user's save never fails (R3).
4. `run_job(id)` claims the record atomically (so a job pushed twice runs
   once), calls the task, and records success, or the error with a retry
   time; after `max_attempts` the job stays `failed` for an administrator (R4).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from flask import current_app, has_request_context
from sqlalchemy import event, literal, select, update
from sqlalchemy.exc import IntegrityError

from app.db import utcnow
from app.extensions import db
from app.jobs.models import (
    OPEN_STATUSES,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_QUEUED,
    STATUS_RUNNING,
    JobRecord,
)

log = logging.getLogger(__name__)

TASKS: dict[str, Callable[..., object]] = {}
JOB_TIMEOUT_SECONDS = 3600             # rq stops a job after this long
STALE_RUNNING = timedelta(seconds=2 * JOB_TIMEOUT_SECONDS)  # a running job older than this lost its worker
LOST_QUEUED = timedelta(minutes=10)     # a queued job older than this may have been lost by Redis
SWEEP_BATCH = 500
_NEW, _COMMITTED = "jobs_new", "jobs_committed"


def task(name: str):
    """Register a job function under a stable name. It receives keyword arguments
    that are ids and plain values, never ORM objects, and must be idempotent."""

    def decorator(fn):
        if name in TASKS and TASKS[name] is not fn:
            raise ValueError(f"task {name} registered twice")
        TASKS[name] = fn
        fn.task_name = name
        return fn

    return decorator


def enqueue(task_name: str, args: dict | None = None, dedupe_key: str | None = None,
            user=None, max_attempts: int | None = None) -> JobRecord:
    """Ask for `task_name(**args)` to run after the current transaction commits.

    With a `dedupe_key`, a job with the same key that is still waiting is reused.
    """
    if task_name not in TASKS:
        raise KeyError(f"unknown task {task_name!r}")
    if dedupe_key:
        existing = _open_job(dedupe_key)
        if existing is not None:
            return existing
    row = JobRecord(task=task_name, args=args or {}, dedupe_key=dedupe_key,
                    max_attempts=max_attempts or current_app.config["JOB_MAX_ATTEMPTS"],
                    created_by_id=getattr(user, "id", None))
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        # Another transaction queued the same key between our check and insert.
        existing = _open_job(dedupe_key)
        if existing is None:
            raise
        return existing
    db.session.info.setdefault(_NEW, set()).add(row.id)
    return row


def _open_job(dedupe_key: str) -> JobRecord | None:
    # The statuses are written into the SQL (not bound) so that PostgreSQL's cached plan can use the
    # partial unique index on open jobs; with bound statuses it scans every pending job, which makes
    # a bulk import (one enqueue per record) quadratic.
    open_statuses = [literal(status, literal_execute=True) for status in OPEN_STATUSES]
    return db.session.execute(select(JobRecord).where(
        JobRecord.dedupe_key == dedupe_key, JobRecord.status.in_(open_statuses))).scalars().first()


def _after_commit(session):
    new = session.info.pop(_NEW, None)
    if new:
        session.info.setdefault(_COMMITTED, set()).update(new)


def _after_rollback(session):
    # Only a rollback of the whole transaction forgets the jobs it queued.
    if not session.in_transaction():
        session.info.pop(_NEW, None)


def install_session_hooks() -> None:
    if not event.contains(db.session, "after_commit", _after_commit):
        event.listen(db.session, "after_commit", _after_commit)
        event.listen(db.session, "after_soft_rollback", lambda session, tx: _after_rollback(session))


def uses_redis() -> bool:
    return bool(current_app.config.get("REDIS_URL"))


def redis_connection():
    from redis import Redis
    return Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=5)


def rq_queue(connection=None):
    from rq import Queue
    return Queue(current_app.config["RQ_QUEUE"], connection=connection or redis_connection())


def dispatch_committed_jobs() -> int:
    """Send the jobs committed by this session to their runner. Returns how many left."""
    ids = sorted(db.session.info.pop(_COMMITTED, set()))
    if not ids:
        return 0
    return _dispatch(ids)


def _dispatch(ids: list[int]) -> int:
    if not uses_redis():
        for job_id in ids:
            run_job(job_id)
        return len(ids)
    pushed: list[int] = []
    try:
        queue = rq_queue()
        for job_id in ids:
            queue.enqueue("app.jobs.worker.perform", job_id, job_id=f"cpims-{job_id}-{int(time.time())}",
                          result_ttl=0, failure_ttl=86400, job_timeout=JOB_TIMEOUT_SECONDS)
            pushed.append(job_id)
    except Exception as exc:  # RedisError, connection refused, timeout
        log.warning("Redis unavailable (%s: %s); %d job(s) stay pending until it is back",
                    type(exc).__name__, exc, len(ids) - len(pushed))
    if pushed:
        # In slices: a bulk import queues one job per record, and a statement takes at most 65,535 parameters.
        for start in range(0, len(pushed), 1000):
            db.session.execute(update(JobRecord).where(
                JobRecord.id.in_(pushed[start:start + 1000]), JobRecord.status == STATUS_PENDING
            ).values(status=STATUS_QUEUED, queued_at=utcnow()))
        db.session.commit()
    return len(pushed)


def run_job(job_id: int) -> str | None:
    """Run one job if nobody else has; returns the status it ended in (None: not ours)."""
    now = utcnow()
    claimed = db.session.execute(update(JobRecord).where(
        JobRecord.id == job_id, JobRecord.status.in_(OPEN_STATUSES)
    ).values(status=STATUS_RUNNING, started_at=now, attempts=JobRecord.attempts + 1))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    row = db.session.get(JobRecord, job_id)
    fn = TASKS.get(row.task)
    try:
        if fn is None:
            raise LookupError(f"unknown task {row.task}")
        fn(**row.args)
        row = db.session.get(JobRecord, job_id)
        row.status, row.finished_at, row.last_error = STATUS_DONE, utcnow(), None
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        row = db.session.get(JobRecord, job_id)
        row.last_error = describe_error(exc)
        if row.attempts >= row.max_attempts:
            row.status, row.finished_at = STATUS_FAILED, utcnow()
        else:
            backoff = current_app.config["JOB_BACKOFF_SECONDS"]
            delay = backoff[min(row.attempts - 1, len(backoff) - 1)]
            row.status, row.run_after = STATUS_PENDING, utcnow() + timedelta(seconds=delay)
        db.session.commit()
        log.error("job %s (%s) attempt %s failed: %s", job_id, row.task, row.attempts,
                  type(exc).__name__)
    dispatch_committed_jobs()
    return row.status


def describe_error(exc: BaseException) -> str:
    """The error's type and where it was raised, never its message: messages can carry
    the personal data the job was working on (S16)."""
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__module__}.{type(exc).__qualname__}{where}"[:500]


def sweep(now=None) -> dict[str, int]:
    """Recover stale or lost jobs and dispatch the due pending ones. Safe to run anywhere, often."""
    now = now or utcnow()
    stale = db.session.execute(update(JobRecord).where(
        JobRecord.status == STATUS_RUNNING, JobRecord.started_at < now - STALE_RUNNING
    ).values(status=STATUS_PENDING, run_after=now)).rowcount or 0
    lost = 0
    if uses_redis():
        lost = _requeue_lost(now)
    due_query = (select(JobRecord.id)
                 .where(JobRecord.status == STATUS_PENDING, JobRecord.run_after <= now)
                 .order_by(JobRecord.id).limit(SWEEP_BATCH))
    if db.engine.dialect.name == "postgresql":
        due_query = due_query.with_for_update(skip_locked=True)
    due = list(db.session.execute(due_query).scalars())
    db.session.commit()
    dispatched = _dispatch(due) if due else 0
    return {"stale": stale, "lost": lost, "due": len(due), "dispatched": dispatched}


def _requeue_lost(now) -> int:
    """Queued rows whose rq job no longer exists in Redis (Redis restarted) go back to pending."""
    from rq.job import Job
    rows = db.session.execute(select(JobRecord.id).where(
        JobRecord.status == STATUS_QUEUED, JobRecord.queued_at < now - LOST_QUEUED
    ).limit(SWEEP_BATCH)).scalars().all()
    if not rows:
        return 0
    try:
        connection = redis_connection()
        queue = rq_queue(connection)
        waiting = {job.args[0] for job in queue.jobs if job.args}
        executing = set()
        for job_id in queue.started_job_registry.get_job_ids():
            job = Job.fetch(job_id, connection=connection)
            if job.args:
                executing.add(job.args[0])
    except Exception as exc:
        log.warning("Redis unavailable while sweeping (%s)", type(exc).__name__)
        return 0
    lost = [job_id for job_id in rows if job_id not in waiting and job_id not in executing]
    if lost:
        db.session.execute(update(JobRecord).where(
            JobRecord.id.in_(lost), JobRecord.status == STATUS_QUEUED).values(status=STATUS_PENDING, run_after=now))
    return len(lost)


def retry_job(job_id: int, user) -> JobRecord:
    """An administrator gives a failed job a fresh set of attempts."""
    from app.audit.operations import record_audit
    row = db.session.get(JobRecord, job_id)
    if row is None or row.status != STATUS_FAILED:
        raise ValueError("only failed jobs can be retried")
    row.status, row.attempts, row.run_after, row.finished_at = STATUS_PENDING, 0, utcnow(), None
    db.session.info.setdefault(_NEW, set()).add(row.id)
    record_audit("job.retry", "job", row.id, detail={"task": row.task}, user=user)
    return row


def set_progress(job_id: int, done: int, total: int) -> None:
    """Report progress of a long job (shown to administrators)."""
    db.session.execute(update(JobRecord).where(JobRecord.id == job_id).values(
        progress={"done": done, "total": total}))


_last_inline_sweep = 0.0


def maybe_sweep_inline() -> None:
    """Without Redis, retries of failed in-process jobs run from web requests, at most every 30 s."""
    global _last_inline_sweep
    if uses_redis() or not has_request_context():
        return
    if time.monotonic() - _last_inline_sweep < 30:
        return
    _last_inline_sweep = time.monotonic()
    sweep()
