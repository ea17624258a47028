"""The background jobs page: counts, list, detail and retry of failed jobs (R4)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.db import utcnow
from app.extensions import db
from app.jobs.models import JobRecord
from app.jobs.operations import dispatch_committed_jobs, enqueue, set_progress, sweep, task

# Whether tests.admin_flaky fails; a test turns it off to play "the cause was fixed".
FLAKY = {"fail": True, "runs": 0}


@task("tests.admin_flaky")
def admin_flaky(case_id: str) -> None:
    FLAKY["runs"] += 1
    if FLAKY["fail"]:
        raise ConnectionError("the matching service did not answer")


@pytest.fixture(autouse=True)
def _reset_flaky():
    FLAKY.update(fail=True, runs=0)
    yield
    FLAKY.update(fail=True, runs=0)


@pytest.fixture
def admin(login_as):
    return login_as("administrator")


def job(job_id: int) -> JobRecord:
    db.session.expire_all()
    return db.session.get(JobRecord, job_id)


def run_until_settled(job_id: int) -> JobRecord:
    """Let the sweeper give the job every attempt it has, as if the backoff had passed."""
    later = utcnow()
    for _ in range(10):
        row = job(job_id)
        if row.status in ("done", "failed"):
            return row
        later += timedelta(hours=1)
        sweep(now=later)
    return job(job_id)


def test_failing_job_ends_failed_and_the_retry_button_runs_it_again(admin):
    web, admin_user = admin
    row = enqueue("tests.admin_flaky", {"case_id": "case-1"}, max_attempts=3)
    db.session.commit()
    dispatch_committed_jobs()
    assert job(row.id).status == "pending" and job(row.id).attempts == 1  # waiting for its retry
    failed = run_until_settled(row.id)
    assert (failed.status, failed.attempts, FLAKY["runs"]) == ("failed", 3, 3)
    assert failed.last_error.startswith("builtins.ConnectionError at test_jobs_page.py")  # never the message

    listing = web.get("/admin/jobs?status=failed").get_data(as_text=True)
    assert f'href="/admin/jobs/{row.id}"' in listing
    detail = web.get(f"/admin/jobs/{row.id}").get_data(as_text=True)
    assert "3 of 3" in detail and "builtins.ConnectionError" in detail and "did not answer" not in detail
    assert f'action="/admin/jobs/{row.id}/retry"' in detail

    FLAKY["fail"] = False  # the cause is fixed
    response = web.form(f"/admin/jobs/{row.id}/retry")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/jobs/{row.id}")
    done = job(row.id)
    assert (done.status, done.attempts, done.last_error, FLAKY["runs"]) == ("done", 1, None, 4)
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "job.retry")).scalar_one()
    assert (entry.user_id, entry.resource_id, entry.detail) == (admin_user.id, str(row.id),
                                                                {"task": "tests.admin_flaky"})
    assert f'action="/admin/jobs/{row.id}/retry"' not in web.get(f"/admin/jobs/{row.id}").get_data(as_text=True)


def test_a_retry_that_fails_again_comes_back_with_fresh_attempts(admin):
    web, _ = admin
    row = enqueue("tests.admin_flaky", {"case_id": "case-2"}, max_attempts=1)
    db.session.commit()
    dispatch_committed_jobs()
    assert job(row.id).status == "failed"
    assert web.form(f"/admin/jobs/{row.id}/retry").status_code == 302
    again = job(row.id)
    assert (again.status, again.attempts, FLAKY["runs"]) == ("failed", 1, 2)


def test_only_failed_jobs_can_be_retried(admin):
    web, _ = admin
    FLAKY["fail"] = False
    row = enqueue("tests.admin_flaky", {"case_id": "case-3"})
    db.session.commit()
    dispatch_committed_jobs()
    assert job(row.id).status == "done"
    response = web.form(f"/admin/jobs/{row.id}/retry")
    assert response.status_code == 302
    assert "Only failed jobs can be retried." in web.get(response.headers["Location"]).get_data(as_text=True)
    assert (job(row.id).status, FLAKY["runs"]) == ("done", 1)
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "job.retry")) is None
    assert web.form("/admin/jobs/999999/retry").status_code == 404
    assert web.get("/admin/jobs/999999").status_code == 404


def test_retry_needs_the_csrf_token(admin):
    web, _ = admin
    row = enqueue("tests.admin_flaky", {"case_id": "case-4"}, max_attempts=1)
    db.session.commit()
    dispatch_committed_jobs()
    assert web.post(f"/admin/jobs/{row.id}/retry").status_code == 400
    assert job(row.id).status == "failed"


def test_counts_filters_and_progress(admin):
    web, _ = admin
    rows = []
    for status in ("pending", "pending", "done", "failed"):
        record = JobRecord(task="tests.admin_counts", args={"case_id": "x"}, status=status)
        db.session.add(record)
        rows.append(record)
    other = JobRecord(task="tests.admin_other", args={}, status="failed")
    db.session.add(other)
    db.session.flush()
    set_progress(rows[0].id, 30, 120)
    db.session.commit()

    html = web.get("/admin/jobs").get_data(as_text=True)
    counts = dict((label, int(n)) for n, label in re.findall(r"<strong>(\d+)</strong> <span>(\w+)</span>", html))
    total = {s: db.session.scalar(select(func.count(JobRecord.id)).where(JobRecord.status == s))
             for s in ("pending", "queued", "running", "done", "failed")}
    assert counts == {"Pending": total["pending"], "Queued": total["queued"], "Running": total["running"],
                      "Done": total["done"], "Failed": total["failed"]}

    def listed(query):
        page = web.get(f"/admin/jobs?{query}")
        assert page.status_code == 200
        return {int(n) for n in re.findall(r'<a href="/admin/jobs/(\d+)">', page.get_data(as_text=True))}

    assert listed("task=tests.admin_counts") == {r.id for r in rows}
    assert listed("task=tests.admin_counts&status=pending") == {rows[0].id, rows[1].id}
    assert other.id in listed("status=failed") and rows[0].id not in listed("status=failed")
    assert web.get("/admin/jobs?status=exploded").status_code == 422

    detail = web.get(f"/admin/jobs/{rows[0].id}").get_data(as_text=True)
    assert '<progress value="30" max="120">' in detail and "30 of 120" in detail
    assert "case_id" in detail  # argument names, not their values
    assert f'action="/admin/jobs/{rows[0].id}/retry"' not in detail


def test_caseworkers_and_anonymous_users_are_refused(login_as, client):
    row = JobRecord(task="tests.admin_counts", args={}, status="failed")
    db.session.add(row)
    db.session.commit()
    web, _ = login_as("caseworker")
    for path in ("/admin/jobs", f"/admin/jobs/{row.id}"):
        assert web.get(path).status_code == 403
        assert client.get(path).status_code == 302
    assert web.form(f"/admin/jobs/{row.id}/retry").status_code == 403
    assert job(row.id).status == "failed"
