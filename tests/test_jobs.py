"""The job outbox: in-process, through Redis, with Redis down, retries, dedupe (R3, R4)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.models import JobRecord
from app.jobs.operations import dispatch_committed_jobs, enqueue, run_job, sweep, task

CALLS: list[dict] = []


@task("tests.record_call")
def record_call(value: int) -> None:
    """Idempotent: appends a marker row keyed by value (through the audit trail)."""
    from app.audit.models import AuditEntry
    from app.audit.operations import record_audit
    exists = db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "tests.job_effect", AuditEntry.resource_id == str(value)))
    if not exists:
        record_audit("tests.job_effect", "test", value)
    CALLS.append({"value": value})


SEEN_DEFINITIONS: list = []


@task("tests.read_definition")
def read_definition() -> None:
    from forms.definitions import get_definition
    SEEN_DEFINITIONS.append(get_definition("case"))


@task("tests.always_fails")
def always_fails() -> None:
    raise RuntimeError("boom")


def effects(value) -> int:
    from app.audit.models import AuditEntry
    return db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "tests.job_effect", AuditEntry.resource_id == str(value)))


def job(job_id) -> JobRecord:
    db.session.expire_all()
    return db.session.get(JobRecord, job_id)


def test_in_process_job_runs_after_commit(app):
    with app.test_request_context():
        row = enqueue("tests.record_call", {"value": 1})
        assert job(row.id).status == "pending"
        db.session.commit()
        assert dispatch_committed_jobs() == 1
        assert job(row.id).status == "done"
        assert effects(1) == 1


def test_rolled_back_work_queues_no_job(app):
    with app.test_request_context():
        row = enqueue("tests.record_call", {"value": 2})
        job_id = row.id
        db.session.rollback()
        assert dispatch_committed_jobs() == 0
        assert db.session.get(JobRecord, job_id) is None


def test_running_a_job_twice_has_the_same_effect(app):
    with app.app_context():
        row = enqueue("tests.record_call", {"value": 3})
        db.session.commit()
        db.session.info.pop("jobs_committed", None)
        assert run_job(row.id) == "done"
        assert run_job(row.id) is None  # already done: not claimed again
        assert effects(3) == 1


def test_dedupe_key_reuses_the_waiting_job(app):
    with app.app_context():
        first = enqueue("tests.record_call", {"value": 4}, dedupe_key="record:4")
        second = enqueue("tests.record_call", {"value": 4}, dedupe_key="record:4")
        assert first.id == second.id
        assert db.session.scalar(select(func.count(JobRecord.id)).where(JobRecord.dedupe_key == "record:4")) == 1


def test_failing_job_retries_with_backoff_then_stays_failed(app):
    with app.app_context():
        row = enqueue("tests.always_fails", {}, max_attempts=3)
        db.session.commit()
        db.session.info.pop("jobs_committed", None)
        assert run_job(row.id) == "pending"
        first = job(row.id)
        assert first.attempts == 1 and "RuntimeError at test_jobs.py" in first.last_error and "boom" not in first.last_error
        assert first.run_after > first.started_at  # waits before the next attempt
        assert sweep()["due"] == 0  # not due yet
        for expected in ("pending", "failed"):
            db.session.execute(JobRecord.__table__.update().where(JobRecord.id == row.id).values(
                run_after=first.started_at))
            db.session.commit()
            assert run_job(row.id) == expected
        final = job(row.id)
        assert final.status == "failed" and final.attempts == 3


def test_redis_queue_and_worker_run_the_job(app, redis_jobs):
    from rq import SimpleWorker
    with app.test_request_context():
        row = enqueue("tests.record_call", {"value": 5})
        db.session.commit()
        assert dispatch_committed_jobs() == 1
        assert job(row.id).status == "queued"
        assert redis_jobs.count == 1
        SimpleWorker([redis_jobs], connection=redis_jobs.connection).work(burst=True)
        assert job(row.id).status == "done"
        assert effects(5) == 1


def test_redis_down_save_succeeds_and_job_runs_when_back(app, redis_down, caplog):
    with app.test_request_context():
        row = enqueue("tests.record_call", {"value": 6})
        db.session.commit()
        assert dispatch_committed_jobs() == 0  # nothing raised: the save stands
        assert job(row.id).status == "pending"
        assert "Redis unavailable" in caplog.text


def test_pending_job_is_swept_into_redis_once_it_is_back(app, redis_jobs):
    from rq import SimpleWorker
    with app.app_context():
        url = app.config["REDIS_URL"]
        app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
        row = enqueue("tests.record_call", {"value": 7})
        db.session.commit()
        dispatch_committed_jobs()
        assert job(row.id).status == "pending"
        app.config["REDIS_URL"] = url  # Redis is back
        assert sweep()["dispatched"] >= 1
        assert job(row.id).status == "queued"
        SimpleWorker([redis_jobs], connection=redis_jobs.connection).work(burst=True)
        assert job(row.id).status == "done"
        assert effects(7) == 1


def test_unknown_task_is_refused(app):
    with app.app_context(), pytest.raises(KeyError):
        enqueue("tests.no_such_task", {})


def test_a_worker_job_never_sees_definitions_cached_before_it(app, redis_jobs):
    """A worker lives in one app context for hours; what one job cached (form definitions)
    must not be what the next job reads after an administrator changed the forms."""
    from flask import g
    from rq import SimpleWorker

    from forms.definitions import _DEFINITIONS_KEY
    with app.test_request_context():
        g.setdefault(_DEFINITIONS_KEY, {})["case"] = "stale"  # as left by an earlier job
        row = enqueue("tests.read_definition", {})
        db.session.commit()
        dispatch_committed_jobs()
        SimpleWorker([redis_jobs], connection=redis_jobs.connection).work(burst=True)
        assert job(row.id).status == "done"
        assert SEEN_DEFINITIONS and SEEN_DEFINITIONS[-1] != "stale"
