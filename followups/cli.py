"""`flask followups ...`: the daily overdue notice (run it from cron) and rebuilding the task table."""
from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from app.extensions import db

followups_group = AppGroup("followups", help="Tasks derived from records: overdue notices, rebuild.")


@followups_group.command("notify-overdue")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Pretend today is this day (YYYY-MM-DD).")
def notify_overdue_command(today):
    """Tell each caseworker once about their newly overdue tasks (safe to run repeatedly)."""
    from app.jobs.operations import dispatch_committed_jobs
    from followups.operations import notify_overdue_tasks
    result = notify_overdue_tasks(today.date() if today else date.today())
    db.session.commit()
    dispatch_committed_jobs()  # the e-mails, when configured
    click.echo(f"{result['tasks']} newly overdue task(s); {result['users']} user(s) notified")


@followups_group.command("rebuild")
def rebuild_command():
    """Recompute every case's tasks from its data (after an upgrade, or to repair the table)."""
    from followups.operations import rebuild_all_tasks
    count = rebuild_all_tasks()
    db.session.commit()
    click.echo(f"tasks refreshed for {count} case(s)")
