"""Tasks derived from record data: what is overdue and what is due soon, for whom.

Sources (all existing data; nothing new to type):
- a case's planned or in-progress services (case plan subform `services`: service_due_date),
- the case plan's next review (`case_plan_review_date`),
- the reunification follow-up visit (`follow_up_date`, reunification section),
- the follow-up due date recorded with a reunification (matching), until the case's own
  follow-up date is entered, which then replaces it.
Only open cases have tasks.

Why a derived table (`record_tasks`) rather than reading JSON: at 100,000 cases a task
list would otherwise read every case's document on each page view, and JSON queries differ
between SQLite and PostgreSQL (subform arrays especially). Each save that touches a source
field refreshes the case's few rows (indexed deletes and inserts, no I/O beyond the database),
inside the saving transaction, so the table is never out of step with what was committed.
The rows carry the case's owner and agency (kept in step by a flush listener whichever
module reassigns or transfers the case) and reach its groups through `case_groups`, so lists
are `scope_filter(user, RecordTask)` on indexed columns, without reading the wide cases
table. `flask followups rebuild` fills the table for records saved before it existed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, false, func, insert, select, update

from app.audit.operations import record_audit
from app.extensions import db
from app.i18n import N_
from app.permissions import ROLE_CASEWORKER, ROLE_SUPERVISOR, can, register_permission, scope_filter
from app.records.models import STATUS_OPEN
from followups.models import (
    KIND_CASE_PLAN_REVIEW,
    KIND_FOLLOW_UP,
    KIND_REUNIFICATION_FOLLOW_UP,
    KIND_SERVICE,
    RecordTask,
)

TASKS_READ = register_permission("tasks", "read", _l("See the overdue and due-soon tasks of cases in one's scope"),
                                 (ROLE_CASEWORKER, ROLE_SUPERVISOR))

OVERDUE = "overdue"
SOON = "soon"
DUE_CHOICES = (OVERDUE, SOON)
OPEN_SERVICE_STATUSES = ("planned", "in_progress")
# The form fields each source is read from (whoever may not read them does not see the task).
SERVICES_FIELD = "services"
REVIEW_FIELD = "case_plan_review_date"
FOLLOW_UP_FIELD = "follow_up_date"
SOURCE_FIELDS = {SERVICES_FIELD, REVIEW_FIELD, FOLLOW_UP_FIELD}
KIND_LABELS = {
    KIND_SERVICE: _l("Service due"),
    KIND_CASE_PLAN_REVIEW: _l("Case plan review"),
    KIND_FOLLOW_UP: _l("Reunification follow-up visit"),
    KIND_REUNIFICATION_FOLLOW_UP: _l("Follow-up after reunification"),
}


@dataclass(frozen=True)
class TaskSpec:
    kind: str
    item_key: str
    source_field: str
    due_on: date
    params: dict

    @property
    def identity(self) -> tuple:
        return (self.kind, self.item_key, self.due_on, tuple(sorted(self.params.items())))


def _as_date(value) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def tasks_of_case(case, reunifications: dict | None = None) -> list[TaskSpec]:
    """The tasks a case's data holds now (none when it is not open).

    `reunifications` ({case id: {proposal id: follow-up due}}) saves a query per case in batches.
    """
    if case.status != STATUS_OPEN:
        return []
    data = case.data or {}
    found: list[TaskSpec] = []
    rows = data.get(SERVICES_FIELD)
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict) or row.get("service_status") not in OPEN_SERVICE_STATUSES:
            continue
        due = _as_date(row.get("service_due_date"))
        if due is None:
            continue
        # The row's own id keeps the task (and its "already told" mark) when rows above it change.
        key = str(row.get("_id") or f"row{index}")[:64]
        found.append(TaskSpec(KIND_SERVICE, key, SERVICES_FIELD, due,
                              {"service_type": str(row.get("service_type") or "")}))
    review = _as_date(data.get(REVIEW_FIELD))
    if review is not None:
        found.append(TaskSpec(KIND_CASE_PLAN_REVIEW, "", REVIEW_FIELD, review, {}))
    follow_up = _as_date(data.get(FOLLOW_UP_FIELD))
    if follow_up is not None:
        found.append(TaskSpec(KIND_FOLLOW_UP, "", FOLLOW_UP_FIELD, follow_up, {}))
    else:
        # The follow-up due date recorded with the reunification, until the form's own date is entered.
        if reunifications is None:
            reunifications = reunification_follow_ups([case.id])
        for proposal_id, due in reunifications.get(case.id, {}).items():
            found.append(TaskSpec(KIND_REUNIFICATION_FOLLOW_UP, str(proposal_id), FOLLOW_UP_FIELD, due, {}))
    return found


def reunification_follow_ups(case_ids: list[str]) -> dict[str, dict[int, date]]:
    """{case id: {proposal id: follow-up due}} of the confirmed matches' latest reunifications."""
    from matching.models import CONFIRMED, MatchProposal, MatchReunification
    found: dict[str, dict[int, date]] = {}
    if not case_ids:
        return found
    rows = db.session.execute(
        select(MatchProposal.case_id, MatchReunification.proposal_id, MatchReunification.follow_up_due)
        .join(MatchProposal, MatchProposal.id == MatchReunification.proposal_id)
        .where(MatchProposal.case_id.in_(case_ids), MatchProposal.status == CONFIRMED)
        .order_by(MatchReunification.id)).all()
    for case_id, proposal_id, due in rows:
        found.setdefault(case_id, {})[proposal_id] = due  # the latest one wins
    return found


def _identity(row: RecordTask) -> tuple:
    return (row.kind, row.item_key, row.due_on, tuple(sorted((row.params or {}).items())))


def refresh_record_tasks(case) -> None:
    """Bring a case's rows in `record_tasks` in step with its data (only flushes).

    Unchanged tasks keep their row, so a task already reported overdue is not reported again.
    """
    refresh_many_record_tasks([case])


def refresh_many_record_tasks(cases: list) -> int:
    """`refresh_record_tasks` for many cases with a fixed number of statements (rebuilds, imports).
    Returns the number of rows written."""
    if not cases:
        return 0
    ids = [case.id for case in cases]
    reunifications = reunification_follow_ups(ids)
    existing: dict[str, list] = {}
    for row in db.session.execute(select(RecordTask.id, RecordTask.record_id, RecordTask.kind, RecordTask.item_key,
                                         RecordTask.due_on, RecordTask.params, RecordTask.owner_id,
                                         RecordTask.agency_id).where(
            RecordTask.record_type == "case", RecordTask.record_id.in_(ids))).all():
        existing.setdefault(row.record_id, []).append(row)
    stale_ids: list[int] = []
    moved: list = []
    new_rows: list[dict] = []
    for case in cases:
        wanted = {spec.identity: spec for spec in tasks_of_case(case, reunifications)}
        kept: set[tuple] = set()
        for row in existing.get(case.id, []):
            identity = _identity(row)
            if identity in wanted and identity not in kept:
                kept.add(identity)
                if (row.owner_id, row.agency_id) != (case.owner_id, case.agency_id):
                    moved.append(case)
            else:
                stale_ids.append(row.id)
        new_rows += [{"record_type": case.RECORD_TYPE, "record_id": case.id, "kind": spec.kind,
                      "item_key": spec.item_key, "source_field": spec.source_field, "due_on": spec.due_on,
                      "params": spec.params, "owner_id": case.owner_id, "agency_id": case.agency_id}
                     for identity, spec in wanted.items() if identity not in kept]
    db.session.flush()
    for case in {case.id: case for case in moved}.values():
        db.session.execute(update(RecordTask).where(
            RecordTask.record_type == case.RECORD_TYPE, RecordTask.record_id == case.id).values(
            owner_id=case.owner_id, agency_id=case.agency_id).execution_options(synchronize_session=False))
    if stale_ids:
        # Deleted first: the unique (record, kind, item) slot is free before the new row comes.
        db.session.execute(delete(RecordTask).where(RecordTask.id.in_(stale_ids))
                           .execution_options(synchronize_session=False))
    if new_rows:
        db.session.execute(insert(RecordTask), new_rows)
    return len(new_rows)


def cases_reunified_through(trace) -> list:
    """The cases whose reunification with this trace was recorded (their follow-up is a task)."""
    from cases.models import Case
    from matching.models import MatchProposal, MatchReunification
    return db.session.execute(select(Case).join(MatchProposal, MatchProposal.case_id == Case.id).join(
        MatchReunification, MatchReunification.proposal_id == MatchProposal.id).where(
        MatchProposal.trace_id == trace.id).distinct()).scalars().all()


def rebuild_all_tasks(batch: int = 1000) -> int:
    """Refresh every case's tasks (after an upgrade, or to repair), in batches that each commit.
    Returns the number of cases read."""
    from cases.models import Case
    db.session.execute(delete(RecordTask).where(RecordTask.record_type == "case", ~RecordTask.record_id.in_(
        select(Case.id))))
    done, last_id = 0, ""
    while True:
        cases = db.session.execute(select(Case).where(Case.id > last_id).order_by(Case.id).limit(batch)
                                   ).scalars().all()
        if not cases:
            return done
        refresh_many_record_tasks(cases)
        done += len(cases)
        last_id = cases[-1].id
        db.session.commit()  # the identity map holds committed rows weakly: memory stays flat


# --- lists -------------------------------------------------------------------------------------------

def due_soon_days() -> int:
    return max(0, int(current_app.config.get("TASKS_DUE_SOON_DAYS", 7)))


def _readable_sources(user) -> list[str]:
    from forms.definitions import readable_fields
    return sorted(SOURCE_FIELDS & readable_fields(user, "case"))


def task_query(user, due: str, today: date | None = None, days: int | None = None):
    """The tasks `user` may see: in open cases of their scope (`scope_filter`, the case's own
    rules), read from fields they may read; overdue (before today) or due soon (today .. today
    + days)."""
    from cases.operations import CASES_READ
    today = today or date.today()
    days = due_soon_days() if days is None else days
    readable = _readable_sources(user)
    query = select(RecordTask).where(RecordTask.record_type == "case", scope_filter(user, RecordTask))
    if not (can(user, TASKS_READ) and can(user, CASES_READ)) or not readable:
        query = query.where(false())
    else:
        query = query.where(RecordTask.source_field.in_(readable))
    if due == OVERDUE:
        query = query.where(RecordTask.due_on < today)
    else:
        query = query.where(RecordTask.due_on >= today, RecordTask.due_on <= today + timedelta(days=days))
    return query


def ordered(query):
    """Grouped by caseworker (for a supervisor's list), then soonest first."""
    return query.order_by(RecordTask.owner_id, RecordTask.due_on, RecordTask.id)


def task_counts(user, today: date | None = None) -> dict[str, int]:
    counts = {}
    for due in DUE_CHOICES:
        inner = task_query(user, due, today).with_only_columns(RecordTask.id)
        counts[due] = db.session.execute(select(func.count()).select_from(inner.subquery())).scalar_one()
    return counts


def describe(task: RecordTask, locale: str) -> str:
    """The task in words, in `locale` (service type from its lookup)."""
    from flask_babel import gettext
    from forms.definitions import display_value
    if task.kind == KIND_SERVICE:
        service = display_value("case", "services.service_type", (task.params or {}).get("service_type"), locale)
        return gettext("Service due: %(service)s", service=service) if service else str(KIND_LABELS[KIND_SERVICE])
    return str(KIND_LABELS.get(task.kind, task.kind))


# --- telling caseworkers about newly overdue tasks -------------------------------------------------------

def notify_overdue_tasks(today: date | None = None) -> dict[str, int]:
    """Tell each owner once about their tasks that became overdue and nobody told them about yet.

    Idempotent: each task is marked when reported, so running it twice a day (or after a
    crash) tells nobody twice. Only flushes; the caller commits.
    """
    from app.notifications.operations import notify, relative_url
    from app.users.models import User
    today = today or date.today()
    rows = db.session.execute(
        select(RecordTask.id, RecordTask.owner_id, RecordTask.source_field)
        .where(RecordTask.due_on < today, RecordTask.overdue_notified_on.is_(None))
        .order_by(RecordTask.owner_id, RecordTask.id)).all()
    by_owner: dict[int, list] = {}
    for row in rows:
        by_owner.setdefault(row.owner_id, []).append(row)
    told = 0
    url = relative_url("followups.tasks_page", due=OVERDUE)
    for owner_id, tasks in by_owner.items():
        owner = db.session.get(User, owner_id)
        readable = set(_readable_sources(owner)) if owner is not None else set()
        visible = [task for task in tasks if task.source_field in readable]
        if visible and owner is not None and can(owner, TASKS_READ):
            notify([owner], "tasks_overdue", N_("%(count)s of your tasks became overdue"),
                   {"count": str(len(visible))}, url=url)
            told += 1
    ids = [row.id for row in rows]
    # All marked, even those not shown to their owner, so a later change of role does not flood them.
    for start in range(0, len(ids), 1000):
        db.session.execute(update(RecordTask).where(RecordTask.id.in_(ids[start:start + 1000])).values(
            overdue_notified_on=today).execution_options(synchronize_session=False))
    record_audit("tasks.notify_overdue", "record_task", None, detail={"tasks": len(rows), "users": told})
    return {"tasks": len(rows), "users": told}
