"""The tasks page (/tasks): overdue and due-soon tasks of the cases in one's scope.

A caseworker sees their own cases' tasks; a supervisor sees their groups' cases, grouped by
caseworker. Tasks read from a section the role may not read never show.
"""
from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.audit.operations import record_audit
from app.extensions import db
from app.i18n import current_language
from app.listing import page_number
from app.navigation import register_nav
from app.permissions import require
from app.users.models import User
from followups import operations as ops

bp = Blueprint("followups", __name__, url_prefix="/tasks", template_folder="templates")

register_nav("followups.tasks_page", _l("Tasks"), ops.TASKS_READ, order=12,
             description=_l("Follow-ups and services that are overdue or due soon"))

DUE_LABELS = {ops.OVERDUE: _l("Overdue"), ops.SOON: _l("Due soon")}
PER_PAGE = 50


def task_items(tasks, locale: str, today: date) -> list[dict]:
    """Plain dicts for pages and the API: the record by short id, the task in words, the owner."""
    from cases.models import Case
    case_ids = {task.record_id for task in tasks}
    short_ids = dict(db.session.execute(select(Case.id, Case.short_id).where(Case.id.in_(case_ids))).all()
                     ) if case_ids else {}
    owner_ids = {task.owner_id for task in tasks}
    owners = dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(owner_ids))).all()
                  ) if owner_ids else {}
    return [{"task": task, "record_type": task.record_type, "record_id": task.record_id,
             "record_short_id": short_ids[task.record_id], "kind": task.kind,
             "description": ops.describe(task, locale), "due_on": task.due_on,
             "days": (task.due_on - today).days, "owner_id": task.owner_id,
             "owner_name": owners.get(task.owner_id)}
            for task in tasks if task.record_id in short_ids]


def due_argument() -> str:
    due = request.args.get("due", ops.OVERDUE)
    return due if due in ops.DUE_CHOICES else ops.OVERDUE


@bp.get("")
@require(ops.TASKS_READ)
def tasks_page():
    due = due_argument()
    today = date.today()
    locale, _direction = current_language()
    counts = ops.task_counts(current_user, today)
    page = db.paginate(ops.ordered(ops.task_query(current_user, due, today)), page=page_number(),
                       per_page=PER_PAGE, error_out=False, count=False)
    page.total = counts[due]  # the tab's count is the list's total: counted once, not twice
    items = task_items(page.items, locale, today)
    groups: list[dict] = []
    for item in items:
        if not groups or groups[-1]["owner_id"] != item["owner_id"]:
            groups.append({"owner_id": item["owner_id"], "owner_name": item["owner_name"], "items": []})
        groups[-1]["items"].append(item)
    # Headings per caseworker only where the list reaches beyond one's own cases (supervisors).
    show_owners = any(group["owner_id"] != current_user.id for group in groups)
    record_audit("tasks.list", "case", None, detail={"due": due, "shown": len(items)})
    db.session.commit()
    return render_template("followups/tasks.html", due=due, due_labels=DUE_LABELS, page=page, groups=groups,
                           show_owners=show_owners, counts=counts,
                           days=ops.due_soon_days())
