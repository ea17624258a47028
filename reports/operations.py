"""Dashboards and the supervisor's team page: counts of the records in the user's scope.

Every number is computed with `scope_filter`, the same SQL clause as the lists, so a
dashboard never counts a record its reader could not open (S2), and every number that
a list page can show carries the list filters that show exactly those records (public
filters only: codes and fixed choices, never personal data, S22). Counts that come from
form values (sex, age, location, risk level) are shown only to roles that may read every
field feeding them (S3): a count by sex tells what the sex field holds.

Tables are plain data (`Table`, `Row`) so the HTML page, the CSV download and the JSON
API show the same numbers. Viewing and downloading are audited (S14).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import case as sql_case
from sqlalchemy import func, select

from app.audit.operations import record_audit
from app.extensions import db
from app.permissions import ROLE_SUPERVISOR, TEAM_READ, can, register_permission, scope_filter
from app.records.exporting import safe_cell
from app.records.models import STATUS_CLOSED, STATUS_OPEN

DASHBOARDS_READ = register_permission(
    "dashboards", "read", _l("See the dashboards: counts of the cases and children sought in one's scope"),
    (ROLE_SUPERVISOR,))

CASE_TABLES = ("status", "stage", "sex", "age", "location")
FUNNEL = "funnel"
TABLES = (*CASE_TABLES, FUNNEL)
STATUS_FILTERS = (STATUS_OPEN, STATUS_CLOSED)
# The matching tag whose fields feed each table's indexed column (app.records.values).
TABLE_TAGS = {"sex": "sex", "age": "age", "location": "location"}
# The field of the default case form holding the assessed risk (low, medium, high).
RISK_FIELD = "risk_level"
HIGH_RISK = "high"
# (code, label, list filters). Ages are estimates; a missing age has no list filter.
AGE_BANDS = (("0-4", _l("0 to 4 years"), {"age_min": 0, "age_max": 4}),
             ("5-11", _l("5 to 11 years"), {"age_min": 5, "age_max": 11}),
             ("12-17", _l("12 to 17 years"), {"age_min": 12, "age_max": 17}),
             ("18+", _l("18 years and over"), {"age_min": 18}),
             ("unknown", _l("Age not recorded"), None))
TABLE_TITLES = {
    "status": _l("Cases by status"), "stage": _l("Cases by workflow stage"), "sex": _l("Cases by sex"),
    "age": _l("Cases by age"), "location": _l("Cases by location"),
    FUNNEL: _l("Tracing: from children sought to reunification"),
}
NOT_RECORDED = _l("Not recorded")
# Sex codes the case list can filter on (cases.views.CaseFilterForm).
LISTED_SEX_CODES = ("female", "male", "other", "unknown")


@dataclass(frozen=True)
class Row:
    key: str | None           # the value counted; None: nothing recorded
    label: str
    count: int
    filters: dict | None = None   # list filters showing exactly these records; None: no list does


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    rows: list[Row]
    list_endpoint: str | None = None   # the list page the rows' filters apply to
    is_summable: bool = True           # False for the funnel: its rows are steps, not parts of a whole

    @property
    def total(self) -> int | None:
        return sum(row.count for row in self.rows) if self.is_summable else None


@dataclass
class MemberLoad:
    user_id: int
    full_name: str
    open_cases: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)
    high_risk: int | None = None  # None: the reader may not read the risk level


@dataclass
class TeamWorkload:
    members: list[MemberLoad]
    stages: Table                 # open cases in the reader's scope by stage, linked to the list
    shows_high_risk: bool


# --- what a user may see --------------------------------------------------------------------------

def tags_readable(user, record_type: str, *tags: str) -> bool:
    """True when `user` may read every field tagged with any of `tags` (an indexed copy or a name may
    come from any of them)."""
    from forms.operations import fields_with_matching_tag, readable_fields
    keys = [key for tag in tags for key in fields_with_matching_tag(record_type, tag)]
    readable = readable_fields(user, record_type)
    return bool(keys) and all(key in readable for key in keys)


def visible_tables(user) -> list[str]:
    """The dashboard tables `user` may see, in page order."""
    from cases.operations import CASES_READ
    from tracing.operations import TRACING_READ
    if not can(user, DASHBOARDS_READ):
        return []
    names = []
    if can(user, CASES_READ):
        names += [name for name in CASE_TABLES
                  if name not in TABLE_TAGS or tags_readable(user, "case", TABLE_TAGS[name])]
    if can(user, TRACING_READ):
        names.append(FUNNEL)
    return names


def _locale() -> str:
    from flask_babel import get_locale
    return str(get_locale() or "en")


# --- the case tables ----------------------------------------------------------------------------------

def _case_counts(user, column, status: str | None) -> dict:
    from cases.models import Case
    query = select(column, func.count()).where(scope_filter(user, Case))
    if status:
        query = query.where(Case.status == status)
    return dict(db.session.execute(query.group_by(column)).all())


def _with_status(filters: dict | None, status: str | None) -> dict | None:
    if filters is None:
        return None
    return {**filters, "status": status} if status else dict(filters)


def _status_table(user) -> Table:
    from cases.views import STATUS_LABELS
    from cases.models import Case
    counts = _case_counts(user, Case.status, None)
    rows = [Row(code, str(STATUS_LABELS[code]), counts.pop(code, 0), {"status": code}) for code in STATUS_FILTERS]
    rows += [Row(code, str(code), count) for code, count in sorted(counts.items(), key=lambda i: str(i[0]))]
    return Table("status", str(TABLE_TITLES["status"]), rows, "cases.list_cases")


def _stage_table(user, status: str | None) -> Table:
    from cases.models import STAGES, Case
    from cases.views import STAGE_LABELS
    counts = _case_counts(user, Case.workflow_stage, status)
    rows = [Row(code, str(STAGE_LABELS[code]), counts.pop(code, 0), _with_status({"stage": code}, status))
            for code in STAGES]
    rows += [Row(code, str(code), count) for code, count in sorted(counts.items(), key=lambda i: str(i[0]))]
    return Table("stage", str(TABLE_TITLES["stage"]), rows, "cases.list_cases")


def _sex_table(user, status: str | None) -> Table:
    from cases.models import Case
    from forms.operations import display_value, fields_with_matching_tag, get_definition
    counts = _case_counts(user, Case.sex, status)
    missing = counts.pop(None, 0) + counts.pop("", 0)
    key = fields_with_matching_tag("case", "sex")[0]
    locale = _locale()
    options = [option.code for option in get_definition("case").field(key).options]
    codes = options + sorted(code for code in counts if code not in options)
    rows = [Row(code, display_value("case", key, code, locale), counts.get(code, 0),
                _with_status({"sex": code}, status) if code in LISTED_SEX_CODES else None)
            for code in codes if code in counts or code in options]
    rows.append(Row(None, str(NOT_RECORDED), missing))
    return Table("sex", str(TABLE_TITLES["sex"]), rows, "cases.list_cases")


def _age_table(user, status: str | None) -> Table:
    from cases.models import Case
    band = sql_case((Case.age.is_(None), "unknown"), (Case.age < 5, "0-4"), (Case.age < 12, "5-11"),
                    (Case.age < 18, "12-17"), else_="18+")
    counts = _case_counts(user, band, status)
    rows = [Row(code, str(label), counts.get(code, 0), _with_status(filters, status))
            for code, label, filters in AGE_BANDS]
    return Table("age", str(TABLE_TITLES["age"]), rows, "cases.list_cases")


def _location_table(user, status: str | None) -> Table:
    """Cases by the top level of the location hierarchy (a country): the list's location
    filter takes the places below it, so each link shows exactly the number counted."""
    from cases.models import Case
    from forms.definitions import get_location, location_ancestors
    counts = _case_counts(user, Case.location_code, status)
    tops: dict[str, int] = {}
    missing = 0
    for code, count in counts.items():
        chain = location_ancestors(code) if code else []
        if chain:
            tops[chain[-1]] = tops.get(chain[-1], 0) + count
        else:
            missing += count  # no location, or a code no longer in the hierarchy
    locale = _locale()
    rows = sorted((Row(code, get_location(code).name(locale), count, _with_status({"location": code}, status))
                   for code, count in tops.items()), key=lambda row: (-row.count, row.label.casefold()))
    rows.append(Row(None, str(NOT_RECORDED), missing))
    return Table("location", str(TABLE_TITLES["location"]), rows, "cases.list_cases")


def case_table(user, name: str, status: str | None = None) -> Table:
    """One case table, counted in `user`'s scope; `status` (open, closed) narrows all but the status table."""
    if name == "status":
        return _status_table(user)
    builders = {"stage": _stage_table, "sex": _sex_table, "age": _age_table, "location": _location_table}
    return builders[name](user, status)


# --- the tracing funnel ---------------------------------------------------------------------------

def tracing_funnel(user) -> Table:
    """Children sought still open, proposals waiting for review, matches confirmed, children reunified."""
    from matching.models import PENDING, MatchProposal
    from matching.operations import MATCHES_REVIEW
    from matching.views import visible_proposals
    from tracing.models import TRACE_CLOSED, TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED, Trace
    counts = dict(db.session.execute(select(Trace.tracing_status, func.count()).where(
        scope_filter(user, Trace)).group_by(Trace.tracing_status)).all())
    still_sought = sum(count for status, count in counts.items() if status not in (TRACE_REUNIFIED, TRACE_CLOSED))
    pending = db.session.execute(select(func.count()).select_from(
        visible_proposals(user).where(MatchProposal.status == PENDING).subquery())).scalar_one()
    rows = [
        Row("sought", str(_l("Children still sought")), still_sought, {"open_traces": "y"}),
        # The review queue lists exactly the pending proposals in scope; a role that cannot review has no list.
        Row("pending", str(_l("Proposed matches waiting for review")), pending,
            {} if can(user, MATCHES_REVIEW) else None),
        Row("confirmed", str(_l("Matches confirmed, not yet reunified")), counts.get(TRACE_MATCH_CONFIRMED, 0),
            {"trace_status": TRACE_MATCH_CONFIRMED}),
        Row("reunified", str(_l("Children reunified")), counts.get(TRACE_REUNIFIED, 0),
            {"trace_status": TRACE_REUNIFIED}),
    ]
    return Table(FUNNEL, str(TABLE_TITLES[FUNNEL]), rows, "tracing.list_tracing_requests", is_summable=False)


ROW_ENDPOINTS = {("funnel", "pending"): "matches.queue"}


def row_endpoint(table: Table, row: Row) -> str | None:
    """The list page a row links to (None when no list shows exactly its records)."""
    if row.filters is None:
        return None
    return ROW_ENDPOINTS.get((table.name, row.key), table.list_endpoint)


def dashboard_tables(user, status: str | None = None, names: Iterable[str] | None = None) -> list[Table]:
    """The tables `user` may see (or those of `names` among them), counted in their scope."""
    wanted = visible_tables(user)
    if names is not None:
        wanted = [name for name in wanted if name in set(names)]
    return [tracing_funnel(user) if name == FUNNEL else case_table(user, name, status) for name in wanted]


def view_dashboard(user, status: str | None = None, names: Iterable[str] | None = None,
                   channel: str = "page") -> list[Table]:
    """The dashboard's tables for `user`; audited with the tables shown and the filter (S14)."""
    tables = dashboard_tables(user, status, names)
    record_audit("dashboard.view", "dashboard", None, user=user, detail={
        "tables": [table.name for table in tables], "status": status, "channel": channel})
    return tables


# --- CSV -----------------------------------------------------------------------------------------

def table_csv(table: Table) -> str:
    """The table as CSV: a header, one row per value, then the total. Every text cell is
    neutralised (S18): a location or option label an administrator typed as "=..." stays text."""
    from flask_babel import gettext as _
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(_("Value")), safe_cell(_("Code")), safe_cell(_("Count"))])
    for row in table.rows:
        writer.writerow([safe_cell(row.label), safe_cell(row.key), row.count])
    if table.total is not None:
        writer.writerow([safe_cell(_("Total")), "", table.total])
    # The byte-order mark makes spreadsheets read the file as UTF-8 (Arabic place names).
    return "\ufeff" + out.getvalue()


def export_dashboard_table(user, name: str, status: str | None = None) -> tuple[Table, str] | None:
    """One dashboard table as CSV, audited with its name, filter and row count; None if the
    user may not see that table (absent, as on the page: S3)."""
    tables = dashboard_tables(user, status, [name])
    if not tables:
        return None
    table = tables[0]
    record_audit("dashboard.export", "dashboard", None, user=user, detail={
        "table": name, "status": status, "rows": len(table.rows), "format": "csv"})
    return table, table_csv(table)


# --- the team page ------------------------------------------------------------------------------------

def team_members(user) -> list:
    """Active users of the active groups `user` belongs to (the supervisor included), by name."""
    from app.users.models import User, UserGroup, user_groups
    group_ids = [group.id for group in user.groups if group.is_active]
    if not group_ids:
        return []
    query = (select(User).join(user_groups, user_groups.c.user_id == User.id)
             .join(UserGroup, UserGroup.id == user_groups.c.group_id)
             .where(UserGroup.id.in_(group_ids), User.is_active.is_(True)).distinct())
    return sorted(db.session.execute(query).scalars(), key=lambda member: member.full_name.casefold())


def risk_readable(user) -> bool:
    from forms.operations import get_definition, readable_fields
    return get_definition("case").field(RISK_FIELD) is not None and RISK_FIELD in readable_fields(user, "case")


def team_workload(user) -> TeamWorkload:
    """For each member of `user`'s groups: their open cases in `user`'s scope, by stage, and
    how many are assessed high risk (when `user` may read the risk level)."""
    from cases.models import STAGES, Case
    members = team_members(user)
    shows_risk = risk_readable(user)
    loads = {member.id: MemberLoad(member.id, member.full_name, by_stage={stage: 0 for stage in STAGES},
                                   high_risk=0 if shows_risk else None) for member in members}
    if loads:
        in_scope = (scope_filter(user, Case), Case.status == STATUS_OPEN, Case.owner_id.in_(list(loads)))
        for owner_id, stage, count in db.session.execute(
                select(Case.owner_id, Case.workflow_stage, func.count()).where(*in_scope)
                .group_by(Case.owner_id, Case.workflow_stage)):
            loads[owner_id].by_stage[stage] = loads[owner_id].by_stage.get(stage, 0) + count
            loads[owner_id].open_cases += count
        if shows_risk:
            for owner_id, count in db.session.execute(
                    select(Case.owner_id, func.count()).where(
                        *in_scope, Case.data[RISK_FIELD].as_string() == HIGH_RISK).group_by(Case.owner_id)):
                loads[owner_id].high_risk = count
    return TeamWorkload(list(loads.values()), _stage_table(user, STATUS_OPEN), shows_risk)


def view_team(user) -> TeamWorkload:
    """The team page's numbers for a supervisor; audited (S14)."""
    if not can(user, TEAM_READ):
        from app.permissions import NotPermitted
        raise NotPermitted("permission_denied", "team")
    workload = team_workload(user)
    record_audit("team.view", "team", None, user=user, detail={"members": len(workload.members)})
    return workload


# --- printable summaries --------------------------------------------------------------------------

def print_case_summary(case, user):
    """The case's summary as PDF, with only what `user` may read; audited as an export (S14).

    The caller has loaded the case with get_in_scope_or_404 (S1)."""
    from app.records.values import NAME_TAGS
    from cases.views import STAGE_LABELS, STATUS_LABELS
    from forms.operations import get_definition
    from reports.printing import readable_photos, render_summary
    printed = render_summary(
        "reports/case_summary.pdf.html", case=case, definition=get_definition("case"),
        photos=readable_photos(case), show_name=tags_readable(user, "case", *NAME_TAGS),
        stage_labels=STAGE_LABELS, status_labels=STATUS_LABELS)
    record_audit("case.summary_printed", "case", case.id, user=user, detail={
        "format": "pdf", "photos": list(printed.photos), "bytes": len(printed.pdf)})
    return printed


def print_tracing_request_summary(tracing_request, user):
    """The tracing request's summary (the inquirer and each child sought) as PDF, with only
    what `user` may read; audited as an export (S14). The caller has scope-checked it (S1)."""
    from app.records.values import NAME_TAGS
    from forms.operations import get_definition
    from reports.printing import readable_photos, render_summary
    from tracing.views import STATUS_LABELS, TRACE_STATUS_LABELS
    traces = [{"trace": trace, "photos": readable_photos(trace)} for trace in tracing_request.traces]
    printed = render_summary(
        "reports/tracing_summary.pdf.html", tracing_request=tracing_request,
        definition=get_definition("tracing_request"), trace_definition=get_definition("trace"),
        photos=readable_photos(tracing_request), traces=traces,
        show_inquirer_name=tags_readable(user, "tracing_request", "inquirer_name", "full_name"),
        show_child_name=tags_readable(user, "trace", *NAME_TAGS),
        status_labels=STATUS_LABELS, trace_status_labels=TRACE_STATUS_LABELS)
    record_audit("tracing_request.summary_printed", "tracing_request", tracing_request.id, user=user, detail={
        "format": "pdf", "traces": [entry["trace"].id for entry in traces], "photos": list(printed.photos),
        "bytes": len(printed.pdf)})
    return printed
