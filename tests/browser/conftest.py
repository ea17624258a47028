"""Browser tests: the real app served on a local port, driven by the system Chromium.

Playwright only drives the Chromium the machine already has (/usr/bin/chromium, or
CHROMIUM_PATH); it never downloads a browser. The machine has no internet, so the
flags below stop Chromium from trying to reach Google's services.

Every browser test runs in `committed` mode: the server thread has its own database
connections and only sees committed rows; the data is truncated afterwards.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server


CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a browser-test passphrase"
TIMEOUT_MS = 10_000  # a local server answers in milliseconds; fail fast instead of hanging

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts"
_PAGES = pytest.StashKey[list]()


# --- the live server -------------------------------------------------------------------------

class _QuietRequestHandler(WSGIRequestHandler):
    """No access log lines in the test output; errors are still reported."""

    def log_request(self, code="-", size="-"):
        pass


@pytest.fixture(scope="session")
def live_server(app):
    """The session's app served on 127.0.0.1 on a free port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        # Close the pooled connections the server threads opened, rather than leaving
        # them for the garbage collector (a ResourceWarning, which is an error here).
        from app.extensions import db
        with app.app_context():
            db.engine.dispose()


# --- the browser ---------------------------------------------------------------------------

def _chromium_or_skip() -> str:
    if os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK):
        return CHROMIUM_PATH
    reason = (f"no Chromium at {CHROMIUM_PATH}: install the system package (apt-get install chromium) "
              "or set CHROMIUM_PATH")
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    executable = _chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def _new_context(browser, base_url, **options):
    context = browser.new_context(base_url=base_url, locale="en", **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def new_page(request, browser, live_server, committed):
    """new_page(java_script_enabled=False, ...) -> a page in its own fresh context.

    Pages made here are screenshotted if the test fails, and closed afterwards.
    """
    contexts = []

    def _new_page(**options):
        context = _new_context(browser, live_server, **options)
        contexts.append(context)
        page = context.new_page()
        request.node.stash.setdefault(_PAGES, []).append(page)
        return page

    yield _new_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """A page in a fresh browser context (empty cookies and cache), locale en."""
    return new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, save what the browser showed to test-artifacts/<test name>.png."""
    report = yield
    if report.when == "call" and report.failed:
        for index, page in enumerate(item.stash.get(_PAGES, [])):
            if page.is_closed():
                continue
            name = re.sub(r"[^\w.-]+", "_", item.name) + (f"-{index + 1}" if index else "")
            path = ARTIFACTS_DIR / f"{name}.png"
            try:
                ARTIFACTS_DIR.mkdir(exist_ok=True)
                page.screenshot(path=str(path), full_page=True)
            except Exception as error:  # the test's own failure is what matters
                report.sections.append(("screenshot", f"could not save {path}: {error}"))
            else:
                report.sections.append(("screenshot", f"saved {path} (at {page.url})"))
    return report


# --- users and logging in ------------------------------------------------------------------

@dataclass(frozen=True)
class BrowserUser:
    """What a browser test needs to know about a committed user, as plain values."""
    id: str
    username: str
    full_name: str
    password: str
    navigation: dict = field(default_factory=dict)  # section -> [(url, label)], from navigation_for


@pytest.fixture
def make_user(app, make, committed):
    """make_user("administrator", full_name=...) -> BrowserUser, committed for the server to see.

    Plain values are copied out and the session is closed before the browser runs:
    an open SQLite transaction here would hold the write lock the server needs.
    """
    from app.extensions import db
    from app.navigation import navigation_for

    def _make_user(role="caseworker", password=PASSWORD, **kwargs):
        with app.test_request_context():
            user = make.user(role, password=password, **kwargs)
            db.session.commit()
            navigation = {section: [(item["url"], str(item["label"])) for item in items]
                          for section, items in navigation_for(user).items()}
            snapshot = BrowserUser(str(user.id), user.username, user.full_name, password, navigation)
            db.session.rollback()
        return snapshot

    return _make_user


def submit_login(page, username: str, password: str):
    """Fill in and send the real login form; returns the response the navigation ended on
    (the login page's own answer on failure, the home page after a successful login)."""
    page.goto("/login")
    form = page.locator("main form[method=post]")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    with page.expect_navigation() as navigation:
        form.locator("button[type=submit]").click()
    return navigation.value


@pytest.fixture(name="submit_login")
def submit_login_fixture():
    """submit_login(page, username, password) -> the response the navigation ended on."""
    return submit_login


@pytest.fixture
def log_in(live_server):
    """log_in(page, user) logs in through the form and checks the home page was reached."""
    from playwright.sync_api import expect

    def _log_in(page, user: BrowserUser):
        submit_login(page, user.username, user.password)
        expect(page).to_have_url(f"{live_server}/")
        return page

    return _log_in


# --- page weight ---------------------------------------------------------------------------

@dataclass
class PageWeight:
    """Bytes a page transferred on first load, with an empty cache."""
    url: str
    responses: list[tuple[int, str, int]]  # (status, url, body bytes)

    @property
    def total_bytes(self) -> int:
        return sum(size for _status, _url, size in self.responses)

    def __str__(self) -> str:
        lines = [f"{self.url}: {self.total_bytes} bytes in {len(self.responses)} responses"]
        lines += [f"  {size:>8}  {status}  {url}" for status, url, size in self.responses]
        return "\n".join(lines)


@pytest.fixture
def page_weight(browser, live_server, committed):
    """page_weight("/path", user=None) -> PageWeight for a first visit in a fresh context.

    With a user, the login happens in another context whose session cookie is copied
    over, so the login page's CSS and JS are not already cached when measuring.
    Body sizes are decoded sizes: an upper bound of what a compressed transfer costs.
    """
    def _measure(path: str, user: BrowserUser | None = None) -> PageWeight:
        storage_state = None
        if user is not None:
            login_context = _new_context(browser, live_server)
            try:
                login_page = login_context.new_page()
                submit_login(login_page, user.username, user.password)
                assert login_page.url == f"{live_server}/", f"login failed for {user.username}"
                storage_state = login_context.storage_state()
            finally:
                login_context.close()
        context = _new_context(browser, live_server, storage_state=storage_state)
        try:
            measured_page = context.new_page()
            seen = []
            measured_page.on("response", lambda response: seen.append(response))
            measured_page.goto(path, wait_until="networkidle")
            responses = []
            for response in seen:
                if 300 <= response.status < 400:
                    size = 0  # a redirect has no body
                else:
                    size = len(response.body())
                responses.append((response.status, response.url, size))
            return PageWeight(measured_page.url, responses)
        finally:
            context.close()

    return _measure
