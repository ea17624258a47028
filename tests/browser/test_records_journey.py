"""A caseworker registers a child in the browser, in Arabic (right to left), through the
configurable form; the case page shows it, the page stays light."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def forms_loaded(app, committed):
    from app.extensions import db
    from forms.operations import load_default_configuration
    with app.app_context():
        load_default_configuration()
        db.session.commit()
        db.session.remove()


def test_caseworker_registers_a_child_in_arabic(forms_loaded, new_page, make_user, log_in, page_weight):
    caseworker = make_user("caseworker", locale="ar")
    page = new_page()
    log_in(page, caseworker)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.goto("/cases/new")
    page.locator("#search-name").fill("Muhammad Hassan")
    page.locator("main form[action='/cases/new'] button[type=submit]").click()
    page.locator("main form[action='/cases/register'] button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    # The form renders with Arabic labels and is prefilled from the search.
    expect(page.locator("#f-name_first")).to_have_value("Muhammad")
    expect(page.locator("main")).not_to_contain_text("حفظ شخص آخر")  # no conflict box on a new record
    label = page.locator("label[for=f-name_first]").text_content()
    assert any("\u0600" <= ch <= "\u06ff" for ch in label), label
    page.locator("#f-sex").select_option("male")
    page.locator("#f-age").fill("9")
    page.locator("main form[enctype] button[type=submit]").first.click()
    expect(page).to_have_url(__import__("re").compile(r"/cases/[0-9a-f-]{36}$"))
    expect(page.locator("main h1")).to_contain_text("Muhammad")
    weight = page_weight("/cases/register", caseworker)
    print(weight)
    assert weight.total_bytes < 100 * 1024, str(weight)
