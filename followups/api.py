"""JSON API of tasks: GET /api/v1/tasks?due=overdue|soon, with the page's rules (scope, readable sections)."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.api import load_input
from app.audit.operations import record_audit
from app.extensions import db
from app.i18n import current_language
from app.openapi import Page, api_doc
from app.permissions import require
from app.records.api import paginated
from followups import operations as ops
from followups.schemas import TaskListArgsSchema, TaskSchema
from followups.views import task_items

bp = Blueprint("followups_api", __name__, url_prefix="/api/v1")


@bp.get("/tasks")
@api_doc("Overdue or due-soon tasks of the open cases in the caller's scope", tags=("Tasks",),
         query=TaskListArgsSchema, responses={200: Page(TaskSchema)}, errors=(403, 422),
         description="Follow-ups and service due dates read from case data: planned or in-progress services, "
                     "the case plan review, the reunification follow-up. Grouped by caseworker, soonest first; "
                     "tasks from sections the caller may not read are left out.")
@require(ops.TASKS_READ)
def list_tasks():
    args = load_input(TaskListArgsSchema(), request.args.to_dict())
    today = date.today()
    locale, _direction = current_language()
    query = ops.ordered(ops.task_query(current_user, args["due"], today))
    body = paginated(query, lambda tasks: TaskSchema(many=True).dump(task_items(tasks, locale, today)), args)
    record_audit("tasks.list", "case", None, detail={"due": args["due"], "shown": len(body["items"])})
    db.session.commit()
    return jsonify(body)
