"""A supervisor's dashboard and team page in the browser: light on slow links (under 100 KB on
first load), the funnel chart drawn as SVG under the strict CSP (no violation), in English
and Arabic (bars from the right edge), and the case page's "Print summary" gives a PDF."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAGE_BUDGET_BYTES = 100 * 1024


@pytest.fixture
def team_with_cases(app, committed, make):
    """Forms, a group with a caseworker and two supervisors (English, Arabic), 40 cases."""
    from app.extensions import db
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from tests.browser.conftest import PASSWORD, BrowserUser
    with app.test_request_context():
        load_default_configuration()
        agency = make.agency()
        group = make.group(agency=agency)
        caseworker = make.user("caseworker", agency=agency, groups=[group], full_name="Amina Yusuf")
        supervisors = {locale: make.user("supervisor", agency=agency, groups=[group], password=PASSWORD,
                                         locale=locale) for locale in ("en", "ar")}
        case_id = None
        for number in range(40):
            case = create_case(caseworker, {"name_first": f"Child{number}", "sex": ("female", "male")[number % 2],
                                            "age": number % 19, "risk_level": ("low", "high")[number % 3 == 0]})
            case.workflow_stage = ("new", "assessment", "case_plan", "services")[number % 4]
            case_id = case_id or case.id
        db.session.commit()
        world = {"case": case_id, **{locale: BrowserUser(str(user.id), user.username, user.full_name, PASSWORD)
                                     for locale, user in supervisors.items()}}
        db.session.remove()
    return world


def test_dashboard_is_light_and_draws_its_chart_within_the_csp(team_with_cases, new_page, log_in, page_weight):
    supervisor = team_with_cases["en"]
    page = new_page()
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    log_in(page, supervisor)
    page.locator("header nav.mainnav a", has_text="Dashboards").click()
    expect(page.locator("main h1")).to_have_text("Dashboards")
    expect(page.locator("svg.chart[data-chart=funnel] rect")).to_have_count(4)
    expect(page.locator("#table-stage tbody tr[data-key=assessment] a")).to_have_text("10")
    # The number opens the filtered list it counts.
    page.locator("#table-stage tbody tr[data-key=assessment] a").click()
    expect(page.locator("main")).to_contain_text("10 case(s)")
    page.goto("/team")
    expect(page.locator("main")).to_contain_text("Amina Yusuf")
    assert violations == []

    for path in ("/dashboards", "/team"):
        weight = page_weight(path, supervisor)
        print(weight)
        assert all(status == 200 for status, _url, _size in weight.responses), str(weight)
        assert 0 < weight.total_bytes < PAGE_BUDGET_BYTES, str(weight)


def test_arabic_dashboard_draws_bars_from_the_right_and_prints_a_summary(team_with_cases, new_page, log_in,
                                                                         live_server):
    supervisor = team_with_cases["ar"]
    page = new_page()
    log_in(page, supervisor)
    page.goto("/dashboards")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    chart = page.locator("svg.chart[data-chart=funnel]")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    # With nobody sought yet the bars are empty; the labels still stand at the right edge.
    for index in range(4):
        label = chart.locator("text.chart-label").nth(index).bounding_box()
        # Inside the chart (not cut off past its edge), ending at its right edge.
        assert box["x"] - 1 <= label["x"] and label["x"] + label["width"] <= box["x"] + box["width"] + 1, label
        assert label["x"] + label["width"] > box["x"] + box["width"] - 4, (label, box)
    # The case page's print link answers with the PDF.
    page.goto(f"/cases/{team_with_cases['case']}")
    href = page.locator("[data-print-summary]").get_attribute("href")
    response = page.request.get(live_server + href)
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF-")
