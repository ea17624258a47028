"""A tracing officer opens the queue, confirms one proposal and rejects another in the
browser; the decisions stick after a full re-match."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def two_searches(app, make, committed):
    """Two tracing requests, each with a proposal to decide."""
    from app.extensions import db
    from app.jobs.operations import dispatch_committed_jobs
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from tracing.operations import create_tracing_request
    separated = (date.today() - timedelta(days=730)).isoformat()
    with app.test_request_context():
        load_default_configuration()
        agency = make.agency()
        officer = make.user("tracing_officer", agency=agency)
        caseworker = make.user("caseworker", agency=agency)
        for first, last, mother in (("Muhammad", "Hassan", "Amina Yusuf"), ("Fatuma", "Abdi", "Hawa Ali")):
            create_case(caseworker, {"name_first": first, "name_last": last, "sex": "male" if first[0] == "M" else "female",
                                     "age": 9, "mother_name": mother, "consent_for_tracing": True})
        for first, last, sex, mother in (("Mohamed", "Hasan", "male", "Aminah Yousef"),
                                         ("Faadumo", "Cabdi", "female", "Xawa Cali")):
            create_tracing_request(officer, {"relation_name": mother, "relation": "mother",
                                             "inquiry_date": date.today().isoformat(), "consent_for_tracing": True},
                                   [{"name_first": first, "name_last": last, "sex": sex, "age": 7,
                                     "date_of_separation": separated}])
        db.session.commit()
        dispatch_committed_jobs()
        username = officer.username
        db.session.remove()
    return username


def test_officer_confirms_and_rejects_in_the_browser_and_decisions_stick(app, two_searches, new_page, live_server):
    from sqlalchemy import select

    from app.extensions import db
    from matching.models import MatchProposal
    from tests.conftest import PASSWORD
    from tests.browser.conftest import submit_login
    page = new_page()
    submit_login(page, two_searches, PASSWORD)
    page.goto("/matches")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(2)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm button asks first
    rows.first.locator("a").first.click()
    page.locator("button.button-primary", has_text="Confirm").click()
    expect(page.locator(".flash").first).to_be_visible()
    page.goto("/matches")
    expect(page.locator("main table tbody tr")).to_have_count(1)
    page.locator("main table tbody tr a").first.click()
    page.locator("#reject-reason").select_option("different_child")
    page.locator("button.button-danger", has_text="Reject").click()
    page.goto("/matches")
    expect(page.locator("main table tbody tr")).to_have_count(0)
    result = app.test_cli_runner().invoke(args=["matching", "run"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        statuses = sorted(db.session.execute(select(MatchProposal.status)).scalars())
        db.session.remove()
    assert statuses == ["confirmed", "rejected"]
