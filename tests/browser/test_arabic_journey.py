"""Issue #8's journeys in Arabic (right to left), in Chromium: a tracing officer registers a tracing
request with two children sought, sees the proposal in the queue and confirms it; a caseworker
refers the matched child and the supervisor approves the referral. (English: the match, referral,
records and dashboard journeys beside this file; printing in Arabic: test_dashboard_journey.)"""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def arabic_office(app, make, committed):
    from app.extensions import db
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from tests.conftest import PASSWORD
    with app.test_request_context():
        load_default_configuration()
        home, service = make.agency(), make.agency(name="Legal Aid Org")
        team = make.group(agency=home)
        people = {role: make.user(role, agency=home, groups=[team], locale="ar")
                  for role in ("caseworker", "supervisor", "tracing_officer")}
        make.user("service_provider", agency=service)
        case = create_case(people["caseworker"], {
            "name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9, "mother_name": "Amina Yusuf",
            "consent_for_tracing": True, "consent_for_referral": True,
            "date_of_separation": (date.today() - timedelta(days=730)).isoformat()})
        db.session.commit()
        names = {role: user.username for role, user in people.items()}
        names.update(case_id=case.id, service=service.name, password=PASSWORD)
        from flask_babel import force_locale, gettext
        with force_locale("ar"):  # the status labels as an Arabic reader sees them
            names["labels"] = {"pending": gettext("Waiting for approval"), "sent": gettext("Sent")}
        assert names["labels"]["pending"] != "Waiting for approval"
        db.session.remove()
    return names


def test_arabic_tracing_request_with_two_children_match_and_referral(arabic_office, new_page, live_server):
    from tests.browser.conftest import submit_login
    office = arabic_office
    officer = new_page()
    submit_login(officer, office["tracing_officer"], office["password"])
    expect(officer.locator("html")).to_have_attribute("dir", "rtl")
    officer.goto("/tracing/new")
    officer.locator("#f-relation_name").fill("Aminah Yousef")
    officer.locator("#f-relation").select_option("mother")
    officer.locator("#tab-inquiry").click()  # the form's sections are tabs
    officer.locator("#f-inquiry_date").fill(date.today().isoformat())
    officer.locator("#f-consent_for_tracing").check()
    officer.locator("#f-traces-0-name_first").fill("Mohamed")
    officer.locator("#f-traces-0-name_last").fill("Hasan")
    officer.locator("#f-traces-0-sex").select_option("male")
    officer.locator("#f-traces-0-age").fill("7")
    officer.locator("button[name=add_trace]").click()
    officer.locator("#f-traces-1-name_first").fill("Fatuma")
    officer.locator("#f-traces-1-name_last").fill("Hasan")
    officer.locator("#f-traces-1-sex").select_option("female")
    officer.locator("#f-traces-1-age").fill("5")
    officer.locator("main form button.button-primary[type=submit]").click()
    expect(officer).to_have_url(re.compile(r"/tracing/[0-9a-f-]{36}$"))
    expect(officer.locator("main")).to_contain_text("Fatuma")
    expect(officer.locator("main")).to_contain_text("Mohamed")

    officer.goto("/matches")
    rows = officer.locator("main table tbody tr")
    expect(rows).to_have_count(1)  # Mohamed meets Muhammad; Fatuma has no registered namesake
    rows.first.locator("a").first.click()
    officer.on("dialog", lambda dialog: dialog.accept())
    officer.locator("#confirm-form button[type=submit]").click()
    officer.goto("/matches")
    expect(officer.locator("main table tbody tr")).to_have_count(0)

    caseworker = new_page()
    submit_login(caseworker, office["caseworker"], office["password"])
    caseworker.goto(f"/cases/{office['case_id']}")
    expect(caseworker.locator("[data-unread-count]")).to_have_attribute("data-unread-count", "1")  # match confirmed
    caseworker.goto(f"/cases/{office['case_id']}/refer")
    caseworker.locator("#service_type").select_option("legal")
    caseworker.locator("#recipient_agency_id").select_option(label=office["service"])
    caseworker.locator("input[name=sections][value=basic_identity]").check()
    caseworker.locator("#reason").fill("شهادة ميلاد")
    caseworker.locator("main form button.button-primary").click()
    expect(caseworker.locator("[data-referral-status]")).to_have_text(office["labels"]["pending"])

    supervisor = new_page()
    submit_login(supervisor, office["supervisor"], office["password"])
    supervisor.goto("/approvals")
    supervisor.locator("#referral-approvals a").first.click()
    supervisor.locator("button[data-action=approve]").click()
    expect(supervisor.locator("[data-referral-status]")).to_have_text(office["labels"]["sent"])
    assert supervisor.evaluate("document.documentElement.dir") == "rtl"
