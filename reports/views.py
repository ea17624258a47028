"""Report pages: dashboards (with CSV downloads), the supervisor's team page, and the
printable PDF summaries of a case and of a tracing request.

Every view parses, authorizes, calls one operation (which audits) and commits once.
Records are loaded with get_in_scope_or_404 (403 without the permission, 404 out of
scope, both audited: S1); numbers come from reports.operations (scope_filter: S2).
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.listing import load_filters
from app.navigation import navigation_for, register_nav
from app.permissions import TEAM_READ, get_in_scope_or_404, require
from reports import demo  # noqa: F401  (moves the demo cases along the workflow in `flask seed demo`)
from reports import operations as ops

bp = Blueprint("reports", __name__, template_folder="templates")

register_nav("reports.dashboard", _l("Dashboards"), ops.DASHBOARDS_READ, order=40,
             description=_l("Counts of cases and children sought in your scope, with downloads"))
register_nav("reports.team", _l("Team"), TEAM_READ, order=41,
             description=_l("Open cases of each member of your groups, by stage and risk"))

# Pages of other modules the team page points to when the user has them in their menu.
TEAM_WORK_PATHS = ("/approvals", "/tasks")


class DashboardFilterForm(FlaskForm):
    status = SelectField(_l("Cases"), default="", choices=[
        SelectChoice("", _l("Open and closed")), SelectChoice("open", _l("Open only")),
        SelectChoice("closed", _l("Closed only"))])


def row_url(table: ops.Table, row: ops.Row) -> str | None:
    endpoint = ops.row_endpoint(table, row)
    return url_for(endpoint, **row.filters) if endpoint else None


def bar_chart(table: ops.Table, rtl: bool, width: int = 640) -> dict:
    """Geometry of a horizontal bar chart of `table`, drawn as inline SVG by the template.

    Only presentation attributes (x, y, width) and classes: the CSP forbids inline style.
    Right to left, bars grow from the right edge. Text is anchored at its "start", which
    the page's direction (inherited by the SVG) turns into the right edge in Arabic.
    """
    top = max((row.count for row in table.rows), default=0) or 1
    label_height, bar_height, gap = 18, 18, 14
    step = label_height + bar_height + gap
    usable = width - 60  # room for the count after the longest bar
    bars = []
    for index, row in enumerate(table.rows):
        y = index * step
        length = max(round(usable * row.count / top), 2 if row.count else 0)
        bars.append({
            "row": row, "index": index, "label_y": y + 13, "bar_y": y + label_height, "height": bar_height,
            "width": length, "x": width - length if rtl else 0,
            "label_x": width if rtl else 0,
            "count_x": width - length - 6 if rtl else length + 6, "count_y": y + label_height + 14,
        })
    return {"width": width, "height": max(step * len(table.rows) - gap, step), "bars": bars}


@bp.get("/dashboards")
@require(ops.DASHBOARDS_READ)
def dashboard():
    filters = load_filters(DashboardFilterForm, "filters.dashboards")
    status = filters.values.get("status")
    tables = ops.view_dashboard(current_user, status)
    db.session.commit()
    from app.i18n import current_language
    funnel = next((table for table in tables if table.name == ops.FUNNEL), None)
    chart = bar_chart(funnel, current_language()[1] == "rtl") if funnel else None
    return render_template("reports/dashboard.html", filters=filters, status=status, tables=tables,
                           chart=chart, row_url=row_url), 200 if filters.is_valid else 422


@bp.get("/dashboards/<name>.csv")
@require(ops.DASHBOARDS_READ)
def dashboard_csv(name: str):
    if name not in ops.TABLES:
        abort(404)
    filters = load_filters(DashboardFilterForm, "filters.dashboards")
    if not filters.is_valid:
        abort(422)
    exported = ops.export_dashboard_table(current_user, name, filters.values.get("status"))
    if exported is None:  # a table this role may not see is absent, as on the page (S3)
        abort(404)
    db.session.commit()
    _table, text = exported
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="dashboard-{name}.csv"'
    return response


@bp.get("/team")
@require(TEAM_READ)
def team():
    workload = ops.view_team(current_user)
    db.session.commit()
    work_links = [item for section in navigation_for(current_user).values() for item in section
                  if item["url"].startswith(TEAM_WORK_PATHS)]
    from cases.models import STAGES
    from cases.views import STAGE_LABELS
    return render_template("reports/team.html", workload=workload, stages=STAGES, stage_labels=STAGE_LABELS,
                           work_links=work_links, row_url=row_url)


def pdf_response(pdf: bytes, filename: str) -> Response:
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/cases/<uuid:record_id>/summary.pdf")
@login_required
def case_summary(record_id):
    from cases.models import Case
    from cases.operations import CASES_READ
    case = get_in_scope_or_404(Case, str(record_id), permission=CASES_READ)
    printed = ops.print_case_summary(case, current_user)
    db.session.commit()
    return pdf_response(printed.pdf, f"case-{case.short_id}.pdf")


@bp.get("/tracing/requests/<uuid:record_id>/summary.pdf")
@login_required
def tracing_request_summary(record_id):
    from tracing.models import TracingRequest
    from tracing.operations import TRACING_READ
    tracing_request = get_in_scope_or_404(TracingRequest, str(record_id), permission=TRACING_READ)
    printed = ops.print_tracing_request_summary(tracing_request, current_user)
    db.session.commit()
    return pdf_response(printed.pdf, f"tracing-request-{tracing_request.short_id}.pdf")
