"""Keeping `record_tasks` in step with saves, and the daily overdue notice as a job."""
from __future__ import annotations

from sqlalchemy import delete, event, inspect, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.jobs.operations import task
from app.records.hooks import on_record_saved
from app.records.models import STATUS_OPEN
from followups.operations import SOURCE_FIELDS, cases_reunified_through, notify_overdue_tasks, refresh_record_tasks

NOTIFY_OVERDUE = "followups.notify_overdue"


@on_record_saved
def _refresh_tasks(record, changed_fields: set[str]) -> None:
    """A case whose source fields or status changed gets its few task rows refreshed now, in the
    saving transaction (an indexed delete/insert: cheap, and never out of step). A trace whose
    tracing status changed may have gained or lost a reunification: its cases are refreshed."""
    if record.RECORD_TYPE == "case":
        if changed_fields & (SOURCE_FIELDS | {"@status"}):
            refresh_record_tasks(record)
    elif record.RECORD_TYPE == "trace" and "@tracing_status" in changed_fields:
        for case in cases_reunified_through(record):
            refresh_record_tasks(case)


@task(NOTIFY_OVERDUE)
def notify_overdue() -> None:
    """Daily: tell each caseworker once about newly overdue tasks (idempotent)."""
    notify_overdue_tasks()
    db.session.commit()


@event.listens_for(Session, "after_flush")
def _follow_the_case(session, _flush_context) -> None:
    """Keep the copied owner and agency in step, and drop the rows of cases that closed or went,
    whichever module did it (assignment, transfer, closure approval, retention): the attribute
    history is still there after the flush, and plain SQL on the connection does the rest."""
    from cases.models import Case
    from followups.models import RecordTask
    table = RecordTask.__table__
    gone = [obj.id for obj in session.deleted if isinstance(obj, Case)]
    for obj in session.dirty:
        if not isinstance(obj, Case):
            continue
        state = inspect(obj)
        if state.attrs.status.history.has_changes() and obj.status != STATUS_OPEN:
            gone.append(obj.id)
        elif any(state.attrs[name].history.has_changes() for name in ("owner_id", "agency_id", "owner", "agency")):
            session.connection().execute(update(table).where(
                table.c.record_type == "case", table.c.record_id == obj.id).values(
                owner_id=obj.owner_id, agency_id=obj.agency_id))
    if gone:
        session.connection().execute(delete(table).where(table.c.record_type == "case",
                                                         table.c.record_id.in_(gone)))
