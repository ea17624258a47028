"""The shell every page shares, in a real browser: log in, navigation per role,
language and direction, log out, escaping under CSP (S19) and page weight."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAGE_BUDGET_BYTES = 100 * 1024  # slow, expensive links in the field: every page stays under 100 KB


def _nav_links(page) -> list[tuple[str, str]]:
    links = page.locator("header nav.mainnav a")
    return [(links.nth(i).get_attribute("href"), links.nth(i).text_content().strip())
            for i in range(links.count())]


def _card_urls(page) -> list[str]:
    cards = page.locator("main ul.cards a")
    return [cards.nth(i).get_attribute("href") for i in range(cards.count())]


def test_each_role_logs_in_through_the_form_and_sees_its_own_navigation(new_page, make_user, log_in):
    caseworker = make_user("caseworker")
    administrator = make_user("administrator")
    # What the server says each one may see; the browser must show exactly that.
    assert administrator.navigation["admin"], "the administrator has no admin navigation entries"
    assert caseworker.navigation["admin"] == [], "a caseworker is offered admin entries"

    shown = {}
    for user in (caseworker, administrator):
        page = new_page()
        log_in(page, user)
        expect(page.locator("main h1")).to_contain_text(user.full_name)
        expected = user.navigation["work"] + user.navigation["admin"]
        shown[user.username] = _nav_links(page)
        assert shown[user.username] == expected
        assert _card_urls(page) == [url for url, _label in expected]

    admin_urls = {url for url, _label in administrator.navigation["admin"]}
    assert admin_urls <= {url for url, _label in shown[administrator.username]}
    assert not admin_urls & {url for url, _label in shown[caseworker.username]}


def test_language_selector_switches_language_and_direction(page, make_user, log_in, live_server):
    log_in(page, make_user("caseworker"))
    html = page.locator("html")
    selector = page.locator("header .language-form select[name=locale]")
    expect(html).to_have_attribute("lang", "en")
    expect(html).to_have_attribute("dir", "ltr")
    # With JavaScript the select sends itself; the fallback button is hidden.
    expect(page.locator("header .language-form button[type=submit]")).to_be_hidden()

    with page.expect_navigation():
        selector.select_option("ar")
    expect(page).to_have_url(f"{live_server}/")
    expect(html).to_have_attribute("lang", "ar")
    expect(html).to_have_attribute("dir", "rtl")
    page.reload()  # remembered, not a one-off
    expect(html).to_have_attribute("dir", "rtl")

    with page.expect_navigation():
        selector.select_option("fr")
    expect(html).to_have_attribute("lang", "fr")
    expect(html).to_have_attribute("dir", "ltr")
    expect(selector).to_have_value("fr")


def test_language_selector_works_without_javascript(new_page, live_server):
    page = new_page(java_script_enabled=False)
    page.goto("/login")
    button = page.locator("header .language-form button[type=submit]")
    expect(button).to_be_visible()
    page.locator("header .language-form select[name=locale]").select_option("ar")
    with page.expect_navigation():
        button.click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")


def test_wrong_password_stays_on_login_and_logout_ends_the_session(page, make_user, log_in, submit_login,
                                                                   live_server):
    user = make_user("caseworker")
    response = submit_login(page, user.username, "not the right passphrase")
    assert response.status == 401
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("main .form-errors")).to_have_text("Unknown username or wrong password.")
    expect(page.locator("header nav.mainnav")).to_have_count(0)

    log_in(page, user)
    home = page.reload()
    assert "no-store" in home.headers["cache-control"]
    expect(page.locator("main h1")).to_contain_text(user.full_name)

    with page.expect_navigation():
        page.locator("header form[action$='/logout'] button[type=submit]").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("header nav.mainnav")).to_have_count(0)

    # Back to the home page's history entry: the browser must ask the server again
    # (no-store), and the ended session sends it to the login page.
    page.go_back()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator("main form input[name=password]")).to_be_visible()
    assert user.full_name not in page.content()
    expect(page.locator("header nav.mainnav")).to_have_count(0)


def test_s19_hostile_full_name_is_shown_as_text_and_nothing_runs(page, make_user, log_in, live_server):
    hostile = "<img src=x onerror=alert(1)>\u202eevil<script>alert(2)</script>"
    user = make_user("caseworker", full_name=hostile)
    dialogs, console_errors, page_errors = [], [], []

    def _on_dialog(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", _on_dialog)
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    log_in(page, user)
    home = page.reload(wait_until="networkidle")
    assert "script-src 'self'" in home.headers["content-security-policy"]

    assert page.locator("header .user-link").text_content() == hostile
    assert hostile in page.locator("main h1").text_content()
    # The markup in the name stayed text: no element was made from it.
    assert page.locator("img").count() == 0
    scripts = page.locator("script")
    assert [scripts.nth(i).get_attribute("src").split("?")[0] for i in range(scripts.count())] == [
        "/static/js/app.js"]
    # Our own script ran under the CSP (it marks the document), and nothing else did.
    expect(page.locator("html")).to_have_class(re.compile(r"(^|\s)js(\s|$)"))
    assert dialogs == []
    assert page_errors == []
    csp_errors = [text for text in console_errors if "Content Security Policy" in text]
    assert csp_errors == [], "CSP blocked something (our /static files must never be blocked)"


def test_login_page_first_load_is_under_the_page_budget(page_weight):
    weight = page_weight("/login")
    print(weight)
    assert weight.url.endswith("/login")
    # The page, its stylesheet and its script were all counted.
    urls = [url for _status, url, _size in weight.responses]
    assert any("/static/css/app.css" in url for url in urls)
    assert any("/static/js/app.js" in url for url in urls)
    assert all(status == 200 for status, _url, _size in weight.responses), str(weight)
    assert 0 < weight.total_bytes < PAGE_BUDGET_BYTES, str(weight)
