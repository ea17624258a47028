"""Field offices work over slow links: registration still completes on a throttled "slow 3G"
connection, every main page stays under 100 KB on first load (no photos), no page asks
anything of another host, and static files are cached for a year under a content hash."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.extensions import db
from cases.models import Case
from tests.browser.conftest import _new_context, submit_login

pytestmark = pytest.mark.browser

PAGE_BUDGET = 100 * 1024
# Chrome DevTools' "Slow 3G" preset: 2 s round trip, 500 kbit/s x 0.8 = 50,000 bytes/s each way.
SLOW_3G = {"offline": False, "latency": 2000, "downloadThroughput": 50_000, "uploadThroughput": 50_000}
SLOW_TIMEOUT_MS = 90_000
YEAR = 365 * 24 * 3600


@pytest.fixture
def field_office(app, committed, make_user):
    """The shipped forms, a caseworker with 30 cases, a tracing officer with a request, an administrator
    and a supervisor."""
    from app.users.models import User
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from tracing.operations import create_tracing_request
    with app.app_context():
        load_default_configuration()
        db.session.commit()
        db.session.remove()
    caseworker = make_user("caseworker")
    officer = make_user("tracing_officer")
    admin = make_user("administrator")
    supervisor = make_user("supervisor")
    with app.test_request_context():
        worker_row = db.session.get(User, int(caseworker.id))
        # More than a page of cases (25 rows), so the list pages are measured full.
        people = (("Amina", "Yusuf", "female"), ("Deng", "Garang", "male"), ("Xasan", "Cabdi", "male"),
                  ("Nyakim", "Gatluak", "female"), ("Faadumo", "Warsame", "female"), ("Kabila", "Mwamba", "male"))
        case_ids = [create_case(worker_row, {"name_first": first, "name_last": f"{last} {number}", "sex": sex,
                                             "age": 3 + number % 14, "consent_for_tracing": True,
                                             "separation_details": "Separated at the border crossing. " * 20}).id
                    for number in range(30) for first, last, sex in [people[number % len(people)]]]
        officer_row = db.session.get(User, int(officer.id))
        request_id = create_tracing_request(
            officer_row, {"relation_name": "Halima Yusuf", "relation": "mother", "inquiry_date": "2024-03-02",
                          "consent_for_tracing": True},
            [{"name_first": "Amina", "name_last": "Yusuf", "sex": "female", "age": 8}]).id
        db.session.commit()
        db.session.remove()
    return {"caseworker": caseworker, "officer": officer, "admin": admin, "supervisor": supervisor,
            "case_id": case_ids[0],
            "request_id": request_id}


def test_caseworker_registers_a_case_over_slow_3g(app, field_office, new_page, live_server):
    page = new_page()
    page.set_default_timeout(SLOW_TIMEOUT_MS)
    page.set_default_navigation_timeout(SLOW_TIMEOUT_MS)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW_3G)
    started = time.monotonic()
    caseworker = field_office["caseworker"]
    submit_login(page, caseworker.username, caseworker.password)
    expect(page).to_have_url(f"{live_server}/", timeout=SLOW_TIMEOUT_MS)
    page.goto("/cases/new")
    page.locator("#search-name").fill("Ayaan Maxamed")
    page.locator("main form[action='/cases/new'] button[type=submit]").click()
    page.locator("main form[action='/cases/register'] button[type=submit]").click()
    expect(page.locator("#f-name_first")).to_have_value("Ayaan", timeout=SLOW_TIMEOUT_MS)
    page.locator("#f-sex").select_option("female")
    page.locator("#f-age").fill("7")
    page.locator("main form[enctype] button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/cases/[0-9a-f-]{36}$"), timeout=SLOW_TIMEOUT_MS)
    expect(page.locator("main h1")).to_contain_text("Ayaan", timeout=SLOW_TIMEOUT_MS)
    elapsed = time.monotonic() - started
    print(f"slow 3G: logged in and registered a case in {elapsed:.1f} s")
    # Six round trips of 2 s at least (login, home, search, form, save, case page): the link was throttled.
    assert elapsed > 10
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id)).where(Case.display_name == "Ayaan Maxamed")) == 1
        db.session.remove()


@dataclass
class FirstLoad:
    path: str
    total_bytes: int
    responses: list[tuple[int, str, int, str]]  # (status, url, body bytes, cache-control)
    external: list[str]

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.total_bytes} bytes in {len(self.responses)} responses"]
        lines += [f"  {size:>8}  {status}  {url}  [{cache}]" for status, url, size, cache in self.responses]
        return "\n".join(lines)


def first_load(browser, live_server, path: str, storage_state=None) -> FirstLoad:
    """Load `path` in a fresh context (empty cache): every response's size and caching, and any
    request for another host (refused, so a page that needs the internet fails here too)."""
    context = _new_context(browser, live_server, storage_state=storage_state)
    external: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(live_server) or url.startswith("data:"):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    context.route("**/*", guard)
    try:
        page = context.new_page()
        seen = []
        page.on("response", lambda response: seen.append(response))
        response = page.goto(path, wait_until="networkidle")
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        responses = []
        for item in seen:
            size = 0 if 300 <= item.status < 400 else len(item.body())
            responses.append((item.status, item.url, size, item.headers.get("cache-control", "")))
        return FirstLoad(path, sum(size for _s, _u, size, _c in responses), responses, external)
    finally:
        context.close()


def logged_in_state(browser, live_server, user):
    context = _new_context(browser, live_server)
    try:
        page = context.new_page()
        submit_login(page, user.username, user.password)
        assert page.url == f"{live_server}/", f"login failed for {user.username}"
        return context.storage_state()
    finally:
        context.close()


def test_main_pages_are_light_cached_and_local(field_office, browser, live_server):
    pages = {
        None: ["/login"],
        "caseworker": ["/", "/cases", f"/cases/{field_office['case_id']}", "/cases/new", "/cases/register",
                       f"/cases/{field_office['case_id']}/refer", f"/cases/{field_office['case_id']}/transfer",
                       "/referrals", "/transfers", "/notifications", "/tasks"],
        "supervisor": ["/approvals", "/dashboards", "/team", "/referrals?box=approval"],
        "officer": ["/tracing", f"/tracing/{field_office['request_id']}", "/matches"],
        "admin": ["/admin/users", "/admin/roles", "/admin/groups", "/admin/agencies", "/admin/audit",
                  "/admin/jobs", "/admin/forms", "/admin/lookups", "/admin/locations", "/admin/matching",
                  "/admin/retention", "/approvals/settings"],
    }
    report, problems = [], []
    for who, paths in pages.items():
        state = logged_in_state(browser, live_server, field_office[who]) if who else None
        for path in paths:
            load = first_load(browser, live_server, path, state)
            report.append(f"{load.total_bytes:>7} B  {len(load.responses):>2} responses  {path}")
            if load.total_bytes >= PAGE_BUDGET:
                problems.append(f"over {PAGE_BUDGET} bytes:\n{load}")
            if load.external:
                problems.append(f"{path} asked another host for {load.external}")
            for status, url, _size, cache in load.responses:
                if "/static/" in url:
                    age = re.search(r"max-age=(\d+)", cache)
                    if not ("v=" in url and age and int(age.group(1)) >= YEAR):
                        problems.append(f"{url} is not cached for a year under a content hash: {cache!r}")
                elif url.rstrip("/").endswith(path.rstrip("/")) and status == 200 and "no-store" not in cache:
                    problems.append(f"{path} may be cached: {cache!r}")
    print("first load without photos:\n" + "\n".join(report))
    assert not problems, "\n".join(problems)
