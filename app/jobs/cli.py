"""`flask worker` and `flask jobs ...`."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.models import STATUS_FAILED, JobRecord


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked process (isolation over speed).")
@with_appcontext
def worker_command(burst: bool, fork: bool) -> None:
    """Run a background worker on REDIS_URL (start as many as you need, on any machine)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException(
            "REDIS_URL is not set: jobs run inside the web process, no worker is needed.")
    from app.jobs.worker import run_worker
    run_worker(burst=burst, fork=fork)


@click.group("jobs")
def jobs_group() -> None:
    """Inspect and recover background jobs."""


@jobs_group.command("sweep")
@with_appcontext
def sweep_command() -> None:
    """Dispatch pending jobs now (for example after Redis came back)."""
    from app.jobs.operations import sweep
    result = sweep()
    click.echo(", ".join(f"{key}: {value}" for key, value in result.items()))


@jobs_group.command("status")
@with_appcontext
def status_command() -> None:
    """Count jobs by task and status."""
    rows = db.session.execute(
        select(JobRecord.task, JobRecord.status, func.count()).group_by(JobRecord.task, JobRecord.status)
        .order_by(JobRecord.task, JobRecord.status)).all()
    if not rows:
        click.echo("No jobs.")
    for task_name, status, count in rows:
        click.echo(f"{task_name:40} {status:10} {count}")


@jobs_group.command("retry-failed")
@with_appcontext
def retry_failed_command() -> None:
    """Give every failed job a fresh set of attempts."""
    from app.jobs.operations import dispatch_committed_jobs, retry_job
    ids = db.session.execute(select(JobRecord.id).where(JobRecord.status == STATUS_FAILED)).scalars().all()
    for job_id in ids:
        retry_job(job_id, None)
    db.session.commit()
    dispatch_committed_jobs()
    click.echo(f"{len(ids)} failed job(s) queued again.")
