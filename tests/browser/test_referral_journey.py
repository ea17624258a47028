"""Issue #7's journey in Chromium: a caseworker refers a case, the supervisor approves it, the
service provider in another agency sees only the shared sections, accepts and completes it;
the caseworker is notified at each step."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SECRET_MOTHER = "Rukiya-Not-Shared"


@pytest.fixture
def referral_team(app, make, committed):
    from app.extensions import db
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from tests.conftest import PASSWORD
    with app.test_request_context():
        load_default_configuration()
        home, service = make.agency(name="Home Agency"), make.agency(name="Legal Aid Org")
        team = make.group(agency=home)
        caseworker = make.user("caseworker", agency=home, groups=[team])
        supervisor = make.user("supervisor", agency=home, groups=[team])
        provider = make.user("service_provider", agency=service)
        case = create_case(caseworker, {"name_first": "Nadia", "name_last": "Osman", "sex": "female", "age": 12,
                                        "mother_name": SECRET_MOTHER, "consent_for_referral": True})
        db.session.commit()
        names = {"caseworker": caseworker.username, "supervisor": supervisor.username,
                 "provider": provider.username, "case_id": case.id, "service_name": service.name,
                 "password": PASSWORD}
        db.session.remove()
    return names


def unread(page) -> int:
    badge = page.locator("[data-unread-count]")
    return int(badge.get_attribute("data-unread-count")) if badge.count() else 0


def test_refer_approve_accept_complete_in_the_browser(referral_team, new_page):
    from tests.browser.conftest import submit_login
    team = referral_team
    caseworker = new_page()
    submit_login(caseworker, team["caseworker"], team["password"])
    caseworker.goto(f"/cases/{team['case_id']}")
    caseworker.get_by_role("link", name="Refer to a service").click()
    caseworker.locator("#service_type").select_option("legal")
    caseworker.locator("#recipient_agency_id").select_option(label=team["service_name"])
    caseworker.locator("input[name=sections][value=basic_identity]").check()
    caseworker.locator("#reason").fill("Needs a birth certificate")
    caseworker.get_by_role("button", name="Ask for approval").click()
    expect(caseworker.locator("[data-referral-status]")).to_have_text("Waiting for approval")
    referral_url = caseworker.url

    supervisor = new_page()
    submit_login(supervisor, team["supervisor"], team["password"])
    assert unread(supervisor) == 1
    supervisor.goto("/approvals")
    supervisor.locator("#referral-approvals a").first.click()
    supervisor.locator("button[data-action=approve]").click()
    expect(supervisor.locator("[data-referral-status]")).to_have_text("Sent")

    provider = new_page()
    submit_login(provider, team["provider"], team["password"])
    assert unread(provider) == 1
    provider.goto("/referrals")
    provider.locator("main table tbody tr a").first.click()
    shared = provider.locator("#shared")
    expect(shared).to_contain_text("Nadia")
    assert SECRET_MOTHER not in provider.content()  # the family section was not shared
    provider.locator("button[data-action=accept]").click()
    expect(provider.locator("[data-referral-status]")).to_have_text("Accepted")
    provider.locator("#done-note").fill("Certificate obtained at the civil registry")
    provider.locator("button[data-action=done]").click()
    expect(provider.locator("[data-referral-status]")).to_have_text("Done")
    expect(provider.locator("#shared")).to_contain_text("only while the referral is active")

    caseworker.goto("/notifications")
    # approved, accepted, done: one notification per step
    assert unread(caseworker) == 3
    expect(caseworker.locator("main")).to_contain_text("was approved and sent")
    expect(caseworker.locator("main")).to_contain_text("was accepted")
    expect(caseworker.locator("main")).to_contain_text("is done")
    caseworker.goto(referral_url)
    expect(caseworker.locator("#steps li")).to_have_count(4)
