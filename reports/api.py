"""JSON API of the reports (/api/v1): dashboard numbers, the team's workload, and the
printable summaries as PDF. Same permissions, scope and audit as the pages."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from app.api import load_input
from app.extensions import db
from app.openapi import Binary, api_doc
from app.permissions import TEAM_READ, get_in_scope_or_404, require
from reports import operations as ops
from reports import schemas
from reports.views import pdf_response

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1")
TAGS = ("Reports",)


def _table_json(table: ops.Table) -> dict:
    return {"name": table.name, "title": table.title, "total": table.total,
            "rows": [{"key": row.key, "label": row.label, "count": row.count, "filters": row.filters}
                     for row in table.rows]}


def _dashboard(names, status: str | None = None) -> dict:
    tables = ops.view_dashboard(current_user, status, names, channel="api")
    db.session.commit()
    return schemas.DashboardSchema().dump({"tables": [_table_json(table) for table in tables]})


@bp.get("/dashboards/cases")
@api_doc("Counts of the caller's cases by status, stage, sex, age band and location", tags=TAGS,
         query=schemas.DashboardArgsSchema, responses={200: schemas.DashboardSchema}, errors=(403, 422),
         description="Counted in the caller's scope. Each row carries the filters of GET /api/v1/cases "
                     "(and of the case list page) that list exactly the records it counts.")
@require(ops.DASHBOARDS_READ)
def cases_dashboard():
    args = load_input(schemas.DashboardArgsSchema(), request.args.to_dict())
    return jsonify(_dashboard(ops.CASE_TABLES, args["status"]))


@bp.get("/dashboards/tracing")
@api_doc("The tracing funnel: children still sought, proposals waiting, matches confirmed, reunified",
         tags=TAGS, responses={200: schemas.DashboardSchema}, errors=(403,),
         description="Counted in the caller's scope, linked to the tracing request list's filters.")
@require(ops.DASHBOARDS_READ)
def tracing_dashboard():
    return jsonify(_dashboard((ops.FUNNEL,)))


@bp.get("/dashboards/team")
@api_doc("Open cases of each member of the caller's groups, by stage and high risk", tags=TAGS,
         responses={200: schemas.TeamSchema}, errors=(403,))
@require(TEAM_READ)
def team_dashboard():
    workload = ops.view_team(current_user)
    db.session.commit()
    return jsonify(schemas.TeamSchema().dump({
        "members": [{"user_id": m.user_id, "full_name": m.full_name, "open_cases": m.open_cases,
                     "by_stage": m.by_stage, "high_risk": m.high_risk} for m in workload.members],
        "stages": _table_json(workload.stages)}))


@bp.get("/cases/<uuid:record_id>/summary.pdf")
@api_doc("The case's printable summary (PDF), with only what the caller may read", tags=TAGS + ("Cases",),
         responses={200: Binary(("application/pdf",))}, errors=(403, 404),
         description="In the caller's language (Arabic right to left). Audited as an export.")
@login_required
def case_summary(record_id):
    from cases.models import Case
    from cases.operations import CASES_READ
    case = get_in_scope_or_404(Case, str(record_id), permission=CASES_READ)
    printed = ops.print_case_summary(case, current_user)
    db.session.commit()
    return pdf_response(printed.pdf, f"case-{case.short_id}.pdf")


@bp.get("/tracing-requests/<uuid:record_id>/summary.pdf")
@api_doc("The tracing request's printable summary (PDF): the inquirer and each child sought",
         tags=TAGS + ("Tracing requests",), responses={200: Binary(("application/pdf",))}, errors=(403, 404),
         description="Only what the caller may read, in the caller's language. Audited as an export.")
@login_required
def tracing_request_summary(record_id):
    from tracing.models import TracingRequest
    from tracing.operations import TRACING_READ
    tracing_request = get_in_scope_or_404(TracingRequest, str(record_id), permission=TRACING_READ)
    printed = ops.print_tracing_request_summary(tracing_request, current_user)
    db.session.commit()
    return pdf_response(printed.pdf, f"tracing-request-{tracing_request.short_id}.pdf")
