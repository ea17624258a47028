"""What `flask cases import|export` and `flask tracing import|export` share: finding the
acting user, progress bars, printing the report, readable errors instead of tracebacks."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext
from flask_babel import force_locale
from sqlalchemy import select

from app.extensions import db

MAX_PRINTED_PROBLEMS = 100
PHASE_LABELS = {"read": "Reading  ", "check": "Checking ", "write": "Writing  ", "export": "Exporting"}


def acting_user(username: str):
    from app.users.models import User
    user = db.session.execute(select(User).where(User.username == (username or "").strip().lower())
                              ).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"There is no user named {username!r}.")
    if not user.is_active:
        raise click.ClickException(f"User {user.username} is deactivated.")
    return user


class _Bars:
    """One click progress bar per phase of the import."""

    def __init__(self):
        self.bar = None
        self.phase = None
        self.shown = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.phase, self.shown = phase, 0
            self.bar = click.progressbar(length=max(total, 1), label=PHASE_LABELS.get(phase, phase),
                                         show_pos=True, show_eta=True)
            self.bar.__enter__()
        step = done - self.shown
        if step > 0:
            self.bar.update(step)
            self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def run_import(kind: str, file: str, username: str, dry_run: bool) -> None:
    from app.records.importing import ImportRefused, describe_problem, import_records
    user = acting_user(username)
    bars = _Bars()
    with force_locale(user.locale or "en"):
        try:
            report = import_records(kind, Path(file), user, dry_run=dry_run, progress=bars)
        except ImportRefused as refusal:
            db.session.rollback()
            bars.close()
            raise click.ClickException(refusal.message) from None
        except BaseException:
            db.session.rollback()
            bars.close()
            raise
        bars.close()
        if report.is_applied:
            db.session.commit()
        else:
            db.session.rollback()
        for warning in report.warnings:
            click.echo(f"Note: {warning}")
        if report.problems:
            click.echo(f"{len(report.problems)} problem(s) in {Path(file).name}; nothing was imported:", err=True)
            for problem in report.problems[:MAX_PRINTED_PROBLEMS]:
                click.echo("  " + describe_problem(problem), err=True)
            if len(report.problems) > MAX_PRINTED_PROBLEMS:
                click.echo(f"  ... and {len(report.problems) - MAX_PRINTED_PROBLEMS} more.", err=True)
            raise SystemExit(1)
    counts = report.counts()
    what = "Checked (dry run, nothing written)" if dry_run else "Imported"
    details = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in counts.items() if key != "problems")
    click.echo(f"{what} {report.rows} row(s) in {report.seconds:.1f} s ({details}).")
    if report.is_applied:
        run_follow_up_jobs()


def run_follow_up_jobs() -> None:
    """Dispatch the jobs the import queued (matching the new records).

    With Redis they go to the workers at once. Without it, jobs run in the process that
    committed them (app.jobs): here, with a progress bar. Interrupting leaves the rest
    pending; `flask jobs sweep` or the web process picks them up later.
    """
    from app.jobs.operations import _COMMITTED, dispatch_committed_jobs, run_job, uses_redis
    if uses_redis():
        queued = dispatch_committed_jobs()
        if queued:
            click.echo(f"{queued} follow-up job(s) (matching) sent to the workers.")
        return
    ids = sorted(db.session.info.pop(_COMMITTED, set()))  # what dispatch_committed_jobs would run
    if not ids:
        return
    click.echo(f"No REDIS_URL: running {len(ids)} follow-up job(s) (matching) here. Interrupt to leave them "
               "for later (`flask jobs sweep`).")
    with click.progressbar(ids, label="Matching ", show_pos=True, show_eta=True) as bar:
        for job_id in bar:
            run_job(job_id)


def run_export(kind: str, output: str, username: str, labels: bool, filters: dict) -> None:
    from app.records.exporting import ExportRefused, export_records
    user = acting_user(username)
    path = Path(output)
    file_format = path.suffix.lower().lstrip(".")
    if file_format not in ("csv", "xlsx"):
        raise click.ClickException("The output file must end in .csv or .xlsx.")
    bars = _Bars()
    with force_locale(user.locale or "en"):
        try:
            result = export_records(kind, user, path, file_format=file_format, labels=labels, filters=filters,
                                    progress=lambda done, total: bars("export", done, total))
        except ExportRefused as refusal:
            db.session.rollback()
            raise click.ClickException(refusal.message) from None
        finally:
            bars.close()
    db.session.commit()
    click.echo(f"Exported {result.rows} row(s) to {path} in {result.seconds:.1f} s.")


def filter_options(command):
    """The export filters as options (the list pages' filters)."""
    options = [
        click.option("--labels", is_flag=True,
                     help="Add a second header row with field names, and write values as text, in the user's "
                          "language (not re-importable)."),
        click.option("--status", type=click.Choice(["open", "closed"])),
        click.option("--sex"),
        click.option("--age-min", type=int),
        click.option("--age-max", type=int),
        click.option("--location", help="Location code (its sub-locations included)."),
        click.option("--consent", type=click.Choice(["yes", "no"])),
        click.option("--flagged", is_flag=True, help="Only records with an open flag."),
        click.option("--mine", is_flag=True, help="Only records the user owns."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group("records")
def records_group():
    """Commands on every kind of record (retention)."""


@records_group.command("anonymise")
@click.option("--dry-run", is_flag=True, help="Only count the records that are due; change nothing.")
@click.option("--as", "username", help="The administrator running it (written in the audit trail).")
@with_appcontext
def anonymise_command(dry_run: bool, username: str | None) -> None:
    """Anonymise closed records older than RETENTION_CLOSED_YEARS (app.records.retention)."""
    from flask import current_app

    from app.records.retention import retention_cutoff, run_retention
    user = acting_user(username) if username else None
    years = current_app.config["RETENTION_CLOSED_YEARS"]
    click.echo(f"Retention: {years} years; records closed before {retention_cutoff():%Y-%m-%d} are due.")
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label="Anonymising", show_pos=True)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        counts = run_retention(user, dry_run=dry_run, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    what = "Due (dry run, nothing changed)" if dry_run else "Anonymised"
    click.echo(f"{what}: " + ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in counts.items()) + ".")
