"""The records API (/api/v1/cases, /api/v1/tracing-requests, /api/v1/traces): register, read,
update with the version (409 with both values), close and reopen, history, notes, flags,
files, lists and searches; scope on every route (S1, S2), unreadable sections absent from
every answer (S3), no mass assignment (S4), session and token authentication (S7)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEntry
from app.extensions import db
from app.records.models import RecordChange, RecordFlag
from app.records.operations import add_flag
from cases.models import Case
from cases.operations import create_case
from tests.test_api_tokens import make_token
from tracing.models import Trace, TracingRequest
from tracing.operations import create_tracing_request

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SENTINEL = "SENTINEL-protection-7f3a"
CHILD = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9, "consent_for_tracing": True}
INQUIRER = {"relation_name": "Halima Yusuf", "relation": "mother", "relation_phone": "+254 712 345 678",
            "inquiry_date": "2024-03-02", "consent_for_tracing": True}
AISHA = {"name_first": "Aisha", "name_last": "Yusuf", "sex": "female", "age": 7}
OMAR = {"name_first": "Omar", "name_last": "Yusuf", "sex": "male", "age": 10}
UNKNOWN = ["Unknown field."]


@pytest.fixture(autouse=True)
def default_forms(app):
    from flask import has_app_context

    from forms.operations import load_default_configuration
    if has_app_context():
        load_default_configuration()
        db.session.commit()
        return
    with app.app_context():  # a `committed` test: no test transaction, no context yet
        load_default_configuration()
        db.session.commit()
        db.session.remove()


class Api:
    """An API caller: a logged-in browser (cookie + X-CSRFToken) or a client with a Bearer token."""

    def __init__(self, client, headers: dict):
        self.client, self.headers = client, headers

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path, body=None):
        return self.client.post(path, json=body, headers=self.headers)

    def patch(self, path, body=None):
        return self.client.patch(path, json=body, headers=self.headers)

    def call(self, method: str, path: str, body=None):
        return getattr(self, method.lower())(path, body) if method != "GET" else self.get(path)


def session_api(web) -> Api:
    return Api(web.client, {"X-CSRFToken": web.csrf_token("/")})


def anonymous_api(app) -> Api:
    from tests.conftest import WebClient
    web = WebClient(app.test_client())
    return Api(web.client, {"X-CSRFToken": web.csrf_token("/login")})


@pytest.fixture
def api_as(login_as):
    def _api(role="caseworker", **kwargs):
        web, user = login_as(role, **kwargs)
        return session_api(web), user
    return _api


@pytest.fixture
def team(make):
    agency = make.agency()
    group = make.group(agency=agency)
    db.session.commit()
    return agency, group


def fresh(model, record_id):
    db.session.expire_all()
    return db.session.get(model, record_id)


def audit_count(action: str, resource_id=None, outcome: str | None = None) -> int:
    query = select(func.count(AuditEntry.id)).where(AuditEntry.action == action)
    if resource_id is not None:
        query = query.where(AuditEntry.resource_id == str(resource_id))
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    return db.session.scalar(query)


def new_case(user, **data) -> Case:
    case = create_case(user, {**CHILD, **data})
    db.session.commit()
    return case


def new_request(user, *children: dict, **inquirer) -> TracingRequest:
    record = create_tracing_request(user, {**INQUIRER, **inquirer}, traces=list(children or (AISHA,)))
    db.session.commit()
    return record


def record_routes(base: str, flag_id: int, prefix: str) -> list[tuple[str, str, dict | None, str]]:
    """Every route of one record (method, path, body, permission needed), as app.records.api adds them.
    `prefix` names the permissions: "cases" or "tracing"."""
    read, update, resolve = f"{prefix}:read", f"{prefix}:update", f"{prefix}:resolve_flags"
    return [
        ("GET", base, None, read),
        ("PATCH", base, {"version": 1, "data": {"name_first": "X"}}, update),
        ("GET", f"{base}/history", None, read),
        ("GET", f"{base}/notes", None, read),
        ("POST", f"{base}/notes", {"body": "a note"}, update),
        ("GET", f"{base}/flags", None, read),
        ("POST", f"{base}/flags", {"reason": "at risk"}, update),
        ("POST", f"{base}/flags/{flag_id}/resolve", {"resolution": "ok"}, resolve),
        ("GET", f"{base}/files/00000000-0000-4000-8000-000000000000", None, read),
    ]


def expect_refused(api, user, routes) -> int:
    """Each route answers 404 (out of scope) if the user holds its permission, else 403. Returns the 404s."""
    from app.permissions import can
    not_found = 0
    for method, path, body, permission in routes:
        expected = 404 if can(user, permission) else 403
        not_found += expected == 404
        assert api.call(method, path, body).status_code == expected, (method, path, expected)
    return not_found


# --- cases: the whole life of a record -----------------------------------------------------------------

def test_caseworker_registers_reads_updates_and_sees_history(api_as):
    api, user = api_as("caseworker")
    response = api.post("/api/v1/cases", {"data": CHILD})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/cases/{body['id']}")
    assert body["owner"]["id"] == user.id and body["agency"]["id"] == user.agency_id
    assert body["status"] == "open" and body["workflow_stage"] == "new" and body["version"] == 1
    assert len(body["short_id"]) == 7 and body["data"]["name_first"] == "Muhammad"
    case = fresh(Case, body["id"])
    assert case.display_name == "Muhammad Hassan" and case.is_consent_for_tracing

    read = api.get(f"/api/v1/cases/{case.id}")
    assert read.status_code == 200 and read.get_json()["data"]["age"] == 9
    assert read.headers["Cache-Control"] == "no-store"
    assert audit_count("case.view", case.id) == 1

    response = api.patch(f"/api/v1/cases/{case.id}", {"version": 1, "data": {"age": 10}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"] == 2 and response.get_json()["data"]["age"] == 10
    assert response.get_json()["data"]["name_first"] == "Muhammad"  # fields not sent keep their values
    # Nothing changed: nothing saved, the version stays.
    same = api.patch(f"/api/v1/cases/{case.id}", {"version": 2, "data": {"age": 10}})
    assert same.status_code == 200 and same.get_json()["version"] == 2
    # A field sent empty is cleared.
    cleared = api.patch(f"/api/v1/cases/{case.id}", {"version": 2, "data": {"name_last": None}})
    assert cleared.status_code == 200 and "name_last" not in cleared.get_json()["data"]

    history = api.get(f"/api/v1/cases/{case.id}/history").get_json()
    assert [row["action"] for row in history["items"]] == ["update", "update", "create"]
    assert history["items"][1]["changes"] == [{"field": "age", "old": 9, "new": 10}]
    assert history["items"][0]["user"]["username"] == user.username
    assert history["total"] == 3 and audit_count("case.history_viewed", case.id) == 1
    assert {"case.create", "case.update"} <= set(db.session.execute(select(AuditEntry.action).where(
        AuditEntry.resource_id == case.id)).scalars())


def test_notes_flags_and_resolving_with_its_permission(api_as, team):
    agency, group = team
    api, user = api_as("caseworker", agency=agency, groups=[group])
    case = new_case(user)
    note = api.post(f"/api/v1/cases/{case.id}/notes", {"subject": "Visit", "body": "Met the child at the clinic."})
    assert note.status_code == 201 and note.get_json()["author"]["id"] == user.id
    assert api.post(f"/api/v1/cases/{case.id}/notes", {"body": "   "}).get_json()["errors"] == {
        "body": ["Write the note before saving it."]}
    notes = api.get(f"/api/v1/cases/{case.id}/notes").get_json()
    assert [n["body"] for n in notes["items"]] == ["Met the child at the clinic."]
    assert audit_count("case.note_added", case.id) == 1 and audit_count("case.notes_viewed", case.id) == 1

    flag = api.post(f"/api/v1/cases/{case.id}/flags", {"reason": "Possible duplicate"})
    assert flag.status_code == 201 and flag.get_json()["is_open"] is True
    flag_id = flag.get_json()["id"]
    resolve = f"/api/v1/cases/{case.id}/flags/{flag_id}/resolve"
    assert api.post(resolve, {"resolution": "fine"}).status_code == 403  # caseworkers cannot resolve
    supervisor, boss = api_as("supervisor", agency=agency, groups=[group])
    assert supervisor.post(resolve, {"resolution": ""}).status_code == 422
    resolved = supervisor.post(resolve, {"resolution": "Checked, not a duplicate"})
    assert resolved.status_code == 200, resolved.get_json()
    assert resolved.get_json()["is_open"] is False and resolved.get_json()["resolved_by"]["id"] == boss.id
    again = supervisor.post(resolve, {"resolution": "again"})
    assert again.status_code == 422 and "flag" in again.get_json()["errors"]
    # A flag of another record is not found through this one.
    other = new_case(user)
    foreign_flag = add_flag(other, user, "other record")
    db.session.commit()
    assert supervisor.post(f"/api/v1/cases/{case.id}/flags/{foreign_flag.id}/resolve",
                           {"resolution": "x"}).status_code == 404
    flags = api.get(f"/api/v1/cases/{case.id}/flags").get_json()["items"]
    assert [(f["reason"], f["is_open"]) for f in flags] == [("Possible duplicate", False)]
    # Listing only flagged cases.
    assert {c["id"] for c in api.get("/api/v1/cases?flagged=true").get_json()["items"]} == {other.id}
    assert {c["id"] for c in api.get("/api/v1/cases?flagged=false").get_json()["items"]} == {case.id}


def test_close_and_reopen_with_reason_and_version(api_as):
    api, user = api_as("caseworker")
    case = new_case(user)
    path = f"/api/v1/cases/{case.id}"
    assert api.post(f"{path}/close", {"reason": "  "}).get_json()["errors"] == {
        "reason": ["Say why the case is closed."]}
    assert api.post(f"{path}/close", {}).get_json()["errors"] == {"reason": ["This field is required."]}
    assert fresh(Case, case.id).status == "open"
    closed = api.post(f"{path}/close", {"reason": "Reunified with mother", "version": 1})
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json()["status"] == "closed" and closed.get_json()["workflow_stage"] == "closure"
    assert closed.get_json()["closure_reason"] == "Reunified with mother" and closed.get_json()["closed_at"]
    assert api.post(f"{path}/close", {"reason": "again"}).get_json()["errors"] == {
        "status": ["This case is already closed."]}
    stale = api.post(f"{path}/reopen", {"reason": "New concern", "version": 1})
    assert stale.status_code == 409 and stale.get_json()["current_version"] == 2
    assert "@status" in stale.get_json()["fields"]
    reopened = api.post(f"{path}/reopen", {"reason": "New protection concern"})
    assert reopened.status_code == 200 and reopened.get_json()["status"] == "open"
    history = api.get(f"{path}/history").get_json()["items"]
    assert [(h["action"], h["comment"]) for h in history] == [
        ("reopen", "New protection concern"), ("close", "Reunified with mother"), ("create", None)]
    assert audit_count("case.close", case.id) == 1 and audit_count("case.reopen", case.id) == 1


# --- R1: edit conflicts ------------------------------------------------------------------------------

def test_conflict_answers_409_with_both_versions_and_saves_nothing(app, login_as):
    from tests.conftest import WebClient
    web, user = login_as("caseworker")
    case = new_case(user)
    first = session_api(web)
    other_browser = WebClient(app.test_client())  # the same person on another device
    other_browser.login(user.username)
    second = session_api(other_browser)
    assert first.patch(f"/api/v1/cases/{case.id}", {"version": 1, "data": {"age": 10}}).status_code == 200
    response = second.patch(f"/api/v1/cases/{case.id}", {"version": 1, "data": {"age": 11, "name_first": "Mohamed"}})
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"]["status"] == 409 and body["error"]["reference"]
    assert body["current_version"] == 2 and body["fields"] == ["age"]
    assert body["current"]["age"] == 10 and body["current"]["name_first"] == "Muhammad"
    assert body["yours"] == {"age": 11, "name_first": "Mohamed"}
    assert fresh(Case, case.id).age == 10 and fresh(Case, case.id).version == 2  # nothing overwritten
    assert audit_count("case.view", case.id) == 1  # the stored values were shown: audited
    retried = second.patch(f"/api/v1/cases/{case.id}", {"version": body["current_version"],
                                                        "data": {"age": 11, "name_first": "Mohamed"}})
    assert retried.status_code == 200 and retried.get_json()["version"] == 3
    assert fresh(Case, case.id).age == 11


def test_version_is_required(api_as):
    api, user = api_as("caseworker")
    case = new_case(user)
    response = api.patch(f"/api/v1/cases/{case.id}", {"data": {"age": 3}})
    assert response.status_code == 422 and response.get_json()["errors"] == {"version": ["This field is required."]}
    assert api.patch(f"/api/v1/cases/{case.id}", {"version": "1", "data": {}}).status_code == 422


def test_concurrent_save_in_another_transaction_is_a_409_on_postgresql(app, committed, make, monkeypatch):
    """Two sessions: another transaction commits between our check and our write. The UPDATE's
    version condition (not only the early comparison) catches it; nothing is overwritten (R1)."""
    from tests.conftest import WebClient
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): this interleaving needs PostgreSQL")
        user = make.user("caseworker")
        case = create_case(user, dict(CHILD))
        db.session.commit()
        case_id, username = case.id, user.username
        db.session.remove()
    web = WebClient(app.test_client())
    web.login(username)
    api = session_api(web)

    import cases.operations as case_ops
    original = case_ops.check_version

    def other_editor_saves_first(record, expected_version, theirs):
        original(record, expected_version, theirs)
        with db.engine.begin() as other:  # a second connection: another person's request
            other.execute(text("UPDATE cases SET version = version + 1, age = 12 WHERE id = :id"), {"id": case_id})

    monkeypatch.setattr(case_ops, "check_version", other_editor_saves_first)
    response = api.patch(f"/api/v1/cases/{case_id}", {"version": 1, "data": {"age": 10}})
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["current_version"] == 2 and response.get_json()["yours"] == {"age": 10}
    with app.app_context():
        stored = db.session.get(Case, case_id)
        assert stored.version == 2 and stored.age == 12
        assert db.session.scalar(select(func.count(RecordChange.id)).where(
            RecordChange.record_id == case_id, RecordChange.action == "update")) == 0
        db.session.remove()


# --- 422 and S4: bad input and mass assignment ------------------------------------------------------------

def test_field_errors_are_422_per_field(api_as):
    api, user = api_as("caseworker")
    response = api.post("/api/v1/cases", {"data": {"name_last": "Omar", "sex": "dragon", "age": -3}})
    assert response.status_code == 422
    errors = response.get_json()["errors"]["data"]
    assert set(errors) >= {"name_first", "sex", "age"} and all(isinstance(m, list) for m in errors.values())
    assert api.post("/api/v1/cases", {"data": "Amina"}).get_json()["errors"] == {
        "data": ["Send the record's fields as a JSON object."]}
    assert api.post("/api/v1/cases", None).get_json()["errors"] == {"_schema": ["Send a JSON object."]}
    assert api.post("/api/v1/cases", {"data": CHILD, "draft": "yes"}).get_json()["errors"] == {
        "draft": ["Enter true or false."]}
    assert db.session.scalar(select(func.count(Case.id))) == 0
    # A draft may be incomplete where the form allows drafts.
    draft = api.post("/api/v1/cases", {"data": {"name_last": "Omar"}, "draft": True})
    assert draft.status_code == 201


def test_record_attributes_cannot_be_set_through_the_body(api_as, make):
    api, user = api_as("caseworker")
    other = make.user("caseworker")
    db.session.commit()
    for key, value in (("owner_id", other.id), ("agency_id", other.agency_id), ("status", "closed"),
                       ("short_id", "aaaaaaa"), ("source_id", "x"), ("workflow_stage", "closure"), ("id", "x")):
        response = api.post("/api/v1/cases", {"data": CHILD, key: value})
        assert response.status_code == 422 and response.get_json()["errors"] == {key: UNKNOWN}, key
        response = api.post("/api/v1/cases", {"data": {**CHILD, key: value}})
        assert response.status_code == 422 and response.get_json()["errors"] == {"data": {key: UNKNOWN}}, key
    assert api.post("/api/v1/cases", {"data": {**CHILD, "@status": "closed"}}).get_json()["errors"] == {
        "data": {"@status": UNKNOWN}}
    assert db.session.scalar(select(func.count(Case.id))) == 0
    case = new_case(user)
    path = f"/api/v1/cases/{case.id}"
    for key, value in (("owner_id", other.id), ("status", "closed"), ("short_id", "bbbbbbb"), ("agency", 1)):
        assert api.patch(path, {"version": 1, "data": {}, key: value}).get_json()["errors"] == {key: UNKNOWN}
        assert api.patch(path, {"version": 1, "data": {key: value}}).get_json()["errors"] == {"data": {key: UNKNOWN}}
    assert api.post(f"{path}/close", {"reason": "x", "status": "open"}).get_json()["errors"] == {"status": UNKNOWN}
    assert api.post(f"{path}/notes", {"body": "x", "author_id": other.id}).get_json()["errors"] == {
        "author_id": UNKNOWN}
    stored = fresh(Case, case.id)
    assert (stored.owner_id, stored.agency_id, stored.status, stored.version) == (
        user.id, user.agency_id, "open", 1)


# --- S3 and field-level access ---------------------------------------------------------------------------

def test_a_section_the_role_cannot_read_is_absent_from_every_answer(api_as, team):
    """The default configuration hides the 'protection' section from tracing officers."""
    agency, group = team
    owner, user = api_as("caseworker", agency=agency, groups=[group])
    created = owner.post("/api/v1/cases", {"data": {**CHILD, "protection_concerns": ["other"],
                                                     "protection_concerns_other": SENTINEL}}).get_json()
    case_id = created["id"]
    assert created["data"]["protection_concerns_other"] == SENTINEL  # the owner reads it
    assert owner.patch(f"/api/v1/cases/{case_id}", {"version": 1, "data": {
        "protection_concerns_other": SENTINEL + "-2", "risk_level": "high"}}).status_code == 200
    officer, _ = api_as("tracing_officer", agency=agency)
    answers = [
        officer.get(f"/api/v1/cases/{case_id}"),
        officer.get("/api/v1/cases"),
        officer.get("/api/v1/cases?sort=name&per_page=100"),
        officer.post("/api/v1/cases/search", {"q": "Muhammad"}),
        officer.post("/api/v1/cases/search", {"q": created["short_id"]}),
        officer.get(f"/api/v1/cases/{case_id}/history"),
    ]
    for response in answers:
        assert response.status_code == 200, response.get_json()
        text_ = response.get_data(as_text=True)
        assert SENTINEL not in text_ and "protection_concerns" not in text_ and "risk_level" not in text_
    shown = answers[0].get_json()["data"]
    assert shown["name_first"] == "Muhammad" and "consent_for_tracing" in shown
    assert case_id in {c["id"] for c in answers[1].get_json()["items"]}
    assert case_id in {c["id"] for c in answers[3].get_json()["items"]}
    history = answers[5].get_json()["items"]
    assert history[0]["changes"] == [] and history[0]["hidden_changes"] == 2
    assert officer.patch(f"/api/v1/cases/{case_id}", {"version": 2, "data": {"age": 1}}).status_code == 403


def test_limited_role_reads_and_writes_only_its_sections(api_as, make, team):
    from app.users.operations import create_role
    agency, group = team
    role = create_role("limited_caseworker", "Limited", "agency", {
        "cases:read", "cases:update", "api:tokens", "form.case.basic_identity:write", "form.case.consent:read"})
    db.session.commit()
    owner, user = api_as("caseworker", agency=agency, groups=[group])
    case = new_case(user, protection_concerns=["other"], protection_concerns_other=SENTINEL)
    limited, _ = api_as(role, agency=agency)
    path = f"/api/v1/cases/{case.id}"
    data = limited.get(path).get_json()["data"]
    assert set(data) == {"name_first", "name_last", "sex", "age", "consent_for_tracing"}
    # Fields of a section it may only read, or not see, cannot be changed.
    response = limited.patch(path, {"version": 1, "data": {"consent_for_tracing": False}})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"data": {"consent_for_tracing": ["You may not change this field."]}}
    response = limited.patch(path, {"version": 1, "data": {"protection_concerns_other": "x"}})
    assert response.get_json()["errors"] == {"data": {"protection_concerns_other": ["You may not change this field."]}}
    # Someone else changes a readable and an unreadable field: the 409 shows only what it may read.
    assert owner.patch(path, {"version": 1, "data": {"age": 12, "protection_concerns_other": "new " + SENTINEL}}
                       ).status_code == 200
    conflict = limited.patch(path, {"version": 1, "data": {"age": 13}})
    assert conflict.status_code == 409
    assert SENTINEL not in conflict.get_data(as_text=True)
    assert conflict.get_json()["fields"] == ["age"] and conflict.get_json()["current"]["age"] == 12
    ok = limited.patch(path, {"version": 2, "data": {"age": 13}})
    assert ok.status_code == 200 and fresh(Case, case.id).data["protection_concerns_other"] == "new " + SENTINEL


# --- S1, S2: scope on every route -------------------------------------------------------------------------

def test_case_scope_on_every_route(app, api_as, team):
    agency, group = team
    owner, user = api_as("caseworker", agency=agency, groups=[group])
    case = new_case(user)
    flag = add_flag(case, user, "concern")
    db.session.commit()
    routes = record_routes(f"/api/v1/cases/{case.id}", flag.id, "cases") + [
        ("POST", f"/api/v1/cases/{case.id}/close", {"reason": "x"}, "cases:close"),
        ("POST", f"/api/v1/cases/{case.id}/reopen", {"reason": "x"}, "cases:close"),
    ]
    not_found = 0
    for role, kwargs in (("caseworker", {}), ("supervisor", {}), ("caseworker", {"agency": agency}),
                         ("supervisor", {"agency": agency})):
        api, stranger = api_as(role, **kwargs)  # another agency, or the same agency outside the group
        not_found += expect_refused(api, stranger, routes)
        assert case.id not in {c["id"] for c in api.get("/api/v1/cases").get_json()["items"]}
        assert api.post("/api/v1/cases/search", {"q": case.short_id}).get_json()["items"] == []
        assert api.post("/api/v1/cases/search", {"q": "Muhammad Hassan"}).get_json()["items"] == []
    assert not_found == 4 * len(routes) - 2  # caseworkers may not resolve flags: 403 before the scope
    denied = db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.resource_id == case.id, AuditEntry.outcome == "denied", AuditEntry.action == "out_of_scope"))
    assert denied == not_found
    # A role without case permissions: 403 everywhere, audited.
    admin, admin_user = api_as("administrator")
    before = audit_count("permission_denied", outcome="denied")
    expect_refused(admin, admin_user, routes + [("GET", "/api/v1/cases", None, "cases:read"),
                                                ("POST", "/api/v1/cases/search", {"q": "x"}, "cases:read"),
                                                ("POST", "/api/v1/cases", {"data": CHILD}, "cases:create")])
    assert audit_count("permission_denied", outcome="denied") == before + len(routes) + 3
    # Not logged in: 401 JSON everywhere.
    anonymous = anonymous_api(app)
    for method, path, body, _ in routes + [("GET", "/api/v1/cases", None, ""),
                                           ("POST", "/api/v1/cases", {"data": CHILD}, "")]:
        response = anonymous.call(method, path, body)
        assert response.status_code == 401 and response.get_json()["error"]["status"] == 401, (method, path)
    # The group's supervisor sees it and may act on it.
    supervisor, _ = api_as("supervisor", agency=agency, groups=[group])
    assert supervisor.get(f"/api/v1/cases/{case.id}").status_code == 200
    assert case.id in {c["id"] for c in supervisor.get("/api/v1/cases").get_json()["items"]}
    assert supervisor.post(f"/api/v1/cases/{case.id}/flags/{flag.id}/resolve",
                           {"resolution": "ok"}).status_code == 200
    assert supervisor.patch(f"/api/v1/cases/{case.id}", {"version": 1, "data": {"age": 4}}).status_code == 200


def test_list_filters_sorting_and_paging(api_as, make):
    api, user = api_as("caseworker")
    aisha = new_case(user, name_first="Aisha", name_last="Ali", sex="female", age=5, consent_for_tracing=False)
    ali = new_case(user, name_first="Ali", name_last="Omar", sex="male", age=12)
    colleague = make.user("caseworker", agency=user.agency)
    db.session.commit()
    new_case(colleague, name_first="Zainab")  # not in a caseworker's own scope

    def ids(query):
        response = api.get(f"/api/v1/cases{query}")
        assert response.status_code == 200, response.get_json()
        return [c["id"] for c in response.get_json()["items"]]

    assert set(ids("")) == {aisha.id, ali.id}
    assert ids("?sex=female") == [aisha.id]
    assert ids("?age_min=10") == [ali.id] and ids("?age_max=5") == [aisha.id]
    assert ids("?consent=false") == [aisha.id] and ids("?consent=true") == [ali.id]
    assert ids("?sort=name") == [aisha.id, ali.id] and ids("?sort=age") == [aisha.id, ali.id]
    assert ids("?owner=me&stage=new&status=open&sort=short_id") == sorted([aisha.id, ali.id],
                                                                            key=lambda i: fresh(Case, i).short_id)
    assert ids("?status=closed") == []
    page = api.get("/api/v1/cases?per_page=1&page=2&sort=name").get_json()
    assert page["items"][0]["id"] == ali.id and (page["page"], page["per_page"], page["pages"], page["total"]) == (
        2, 1, 2, 2)
    for query, field in (("?age_min=abc", "age_min"), ("?sort=owner", "sort"), ("?status=lost", "status"),
                         ("?per_page=1000", "per_page"), ("?name=Aisha", "name"), ("?flagged=maybe", "flagged")):
        response = api.get(f"/api/v1/cases{query}")
        assert response.status_code == 422 and field in response.get_json()["errors"], query
    assert audit_count("case.list") >= 10


def test_search_finds_spelling_variants_with_names_only_in_the_body(api_as):
    api, user = api_as("caseworker")
    xasan = new_case(user, name_first="Xasan", name_last="Cabdi")
    new_case(user, name_first="Fatima", name_last="Omar", sex="female")
    found = api.post("/api/v1/cases/search", {"q": "Hassan Abdi"})
    assert found.status_code == 200 and [c["id"] for c in found.get_json()["items"]] == [xasan.id]
    assert [c["id"] for c in api.post("/api/v1/cases/search", {"q": xasan.short_id}).get_json()["items"]] == [xasan.id]
    assert api.post("/api/v1/cases/search", {"q": "Hassan", "sex": "female"}).get_json()["items"] == []
    assert api.post("/api/v1/cases/search", {"q": "Hassan", "limit": 0}).status_code == 422
    assert api.post("/api/v1/cases/search", {}).get_json()["errors"] == {"q": ["This field is required."]}
    assert api.get("/api/v1/cases/search?q=Hassan").status_code == 405  # never in a URL
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "case.list").order_by(
        AuditEntry.id.desc())).scalars().first()
    assert "Hassan" not in str(entry.detail)


# --- authentication ------------------------------------------------------------------------------------

def test_api_token_works_without_csrf_and_session_writes_need_it(app, login_as):
    web, user = login_as("caseworker")
    token = make_token(web)
    client = Api(app.test_client(), {"Authorization": f"Bearer {token}"})
    created = client.post("/api/v1/cases", {"data": CHILD})
    assert created.status_code == 201, created.get_json()
    case_id = created.get_json()["id"]
    assert client.patch(f"/api/v1/cases/{case_id}", {"version": 1, "data": {"age": 3}}).status_code == 200
    assert client.post(f"/api/v1/cases/{case_id}/notes", {"body": "by token"}).status_code == 201
    assert client.get(f"/api/v1/cases/{case_id}/history").status_code == 200
    # The browser session must send its CSRF token on writes.
    no_csrf = web.client.post("/api/v1/cases", json={"data": CHILD})
    assert no_csrf.status_code == 400
    assert web.client.patch(f"/api/v1/cases/{case_id}", json={"version": 2, "data": {"age": 4}}).status_code == 400
    assert session_api(web).patch(f"/api/v1/cases/{case_id}", {"version": 2, "data": {"age": 4}}).status_code == 200
    bogus = Api(app.test_client(), {"Authorization": "Bearer cpims_nope"})
    assert bogus.get(f"/api/v1/cases/{case_id}").status_code == 401
    assert bogus.post("/api/v1/cases", {"data": CHILD}).status_code == 401
    assert fresh(Case, case_id).version == 3


def test_files_are_served_in_scope_and_only_from_readable_fields(app, api_as, login_as, team):
    agency, group = team
    web, user = login_as("caseworker", agency=agency, groups=[group])
    case = new_case(user)
    token = web.csrf_token("/cases")
    form = {"version": "1", "name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": "9",
            "consent_for_tracing": "on", "csrf_token": token, "photos": (io.BytesIO(PNG), "photo of ali.png")}
    assert web.client.post(f"/cases/{case.id}/edit", data=form, content_type="multipart/form-data").status_code == 302
    api = session_api(web)
    file_id = api.get(f"/api/v1/cases/{case.id}").get_json()["data"]["photos"][0]
    served = api.get(f"/api/v1/cases/{case.id}/files/{file_id}")
    assert served.status_code == 200 and served.data == PNG and served.mimetype == "image/png"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    served.close()
    assert audit_count("case.attachment_downloaded", case.id) == 1
    stranger, _ = api_as("caseworker")
    assert stranger.get(f"/api/v1/cases/{case.id}/files/{file_id}").status_code == 404
    other = new_case(user)
    assert api.get(f"/api/v1/cases/{other.id}/files/{file_id}").status_code == 404  # not this record's file
    # A role that may not read the photo's section gets nothing, not even in scope.
    from app.users.operations import create_role
    role = create_role("consent_reader", "Consent reader", "agency", {"cases:read", "form.case.consent:read"})
    db.session.commit()
    reader, _ = api_as(role, agency=agency)
    assert "photos" not in reader.get(f"/api/v1/cases/{case.id}").get_json()["data"]
    assert reader.get(f"/api/v1/cases/{case.id}/files/{file_id}").status_code == 404


# --- tracing requests and traces -------------------------------------------------------------------------

def test_tracing_officer_registers_an_inquirer_with_two_children(api_as):
    api, officer = api_as("tracing_officer")
    response = api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": [AISHA, OMAR]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/tracing-requests/{body['id']}")
    assert body["data"]["relation_name"] == "Halima Yusuf" and body["inquiry_date"] == "2024-03-02"
    assert [t["data"]["name_first"] for t in body["traces"]] == ["Aisha", "Omar"]
    assert all(t["tracing_status"] == "open" and t["tracing_request_id"] == body["id"] for t in body["traces"])
    assert body["traces"][0]["owner"]["id"] == officer.id
    read = api.get(f"/api/v1/tracing-requests/{body['id']}")
    assert read.status_code == 200 and len(read.get_json()["traces"]) == 2
    assert audit_count("tracing_request.view", body["id"]) == 1

    added = api.post(f"/api/v1/tracing-requests/{body['id']}/traces",
                     {"data": {"name_first": "Yusuf", "sex": "male", "age": 2}})
    assert added.status_code == 201 and added.headers["Location"].endswith(f"/api/v1/traces/{added.get_json()['id']}")
    trace_id = added.get_json()["id"]
    assert len(api.get(f"/api/v1/tracing-requests/{body['id']}").get_json()["traces"]) == 3

    updated = api.patch(f"/api/v1/tracing-requests/{body['id']}", {"version": 1, "data": {"relation_name": "Halima"}})
    assert updated.status_code == 200 and updated.get_json()["version"] == 2
    conflict = api.patch(f"/api/v1/tracing-requests/{body['id']}", {"version": 1, "data": {"relation_name": "H."}})
    assert conflict.status_code == 409 and conflict.get_json()["fields"] == ["relation_name"]
    trace = api.patch(f"/api/v1/traces/{trace_id}", {"version": 1, "data": {"age": 3}})
    assert trace.status_code == 200 and trace.get_json()["data"]["age"] == 3 and trace.get_json()["version"] == 2
    assert api.patch(f"/api/v1/traces/{trace_id}", {"version": 1, "data": {"age": 4}}).status_code == 409
    bad = api.patch(f"/api/v1/traces/{trace_id}", {"version": 2, "data": {"sex": "dragon", "tracing_status": "x"}})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]["data"]) == {"sex", "tracing_status"}
    assert api.patch(f"/api/v1/traces/{trace_id}", {"version": 2, "data": {}, "tracing_status": "reunified"}
                     ).get_json()["errors"] == {"tracing_status": UNKNOWN}

    history = api.get(f"/api/v1/traces/{trace_id}/history").get_json()["items"]
    assert [h["action"] for h in history] == ["update", "create"]
    assert api.post(f"/api/v1/traces/{trace_id}/notes", {"body": "Seen at the market"}).status_code == 201
    assert api.post(f"/api/v1/tracing-requests/{body['id']}/flags", {"reason": "urgent"}).status_code == 201
    assert api.get(f"/api/v1/tracing-requests/{body['id']}/flags").get_json()["total"] == 1

    closed = api.post(f"/api/v1/tracing-requests/{body['id']}/close", {"reason": "Family found"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    assert {t["tracing_status"] for t in closed.get_json()["traces"]} == {"closed"}
    refused = api.post(f"/api/v1/tracing-requests/{body['id']}/traces", {"data": AISHA})
    assert refused.status_code == 422 and "status" in refused.get_json()["errors"]
    reopened = api.post(f"/api/v1/tracing-requests/{body['id']}/reopen", {"reason": "Not them"})
    assert reopened.status_code == 200 and {t["tracing_status"] for t in reopened.get_json()["traces"]} == {"open"}
    assert api.post(f"/api/v1/tracing-requests/{body['id']}/reopen", {"reason": "x"}).status_code == 422


def test_tracing_request_errors_are_reported_per_child(api_as):
    api, _ = api_as("tracing_officer")
    response = api.post("/api/v1/tracing-requests", {"data": {**INQUIRER, "relation": "cousin-twice"},
                                                     "traces": [AISHA, {"name_last": "Yusuf", "sex": "x"}]})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors["data"]) == {"relation"} and set(errors["traces"]) == {"1"}
    assert set(errors["traces"]["1"]) == {"name_first", "sex"}
    assert api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": []}).get_json()["errors"] == {
        "traces": ["Send from 1 to 50 children."]}
    assert api.post("/api/v1/tracing-requests", {"data": INQUIRER}).get_json()["errors"] == {
        "traces": ["This field is required."]}
    assert api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": [AISHA], "owner_id": 1}
                    ).get_json()["errors"] == {"owner_id": UNKNOWN}
    assert db.session.scalar(select(func.count(TracingRequest.id))) == 0


def test_trace_and_request_lists_and_searches(api_as, make):
    api, officer = api_as("tracing_officer")
    first = new_request(officer, AISHA, OMAR)
    second = new_request(officer, {"name_first": "Cabdi", "name_last": "Xasan", "sex": "male", "age": 14},
                         relation_name="Fadumo Cali", consent_for_tracing=False)
    elsewhere, _ = api_as("tracing_officer")
    hidden = new_request(make.user("tracing_officer"), AISHA)

    def ids(path):
        response = api.get(path)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    assert set(ids("/api/v1/tracing-requests")) == {first.id, second.id}
    assert ids("/api/v1/tracing-requests?consent=false") == [second.id]
    assert ids("/api/v1/tracing-requests?sort=name") == [second.id, first.id]
    aisha, omar = first.traces
    cabdi = second.traces[0]
    assert set(ids("/api/v1/traces")) == {aisha.id, omar.id, cabdi.id}
    assert ids("/api/v1/traces?sex=female") == [aisha.id]
    assert ids("/api/v1/traces?age_min=10&sort=age") == [omar.id, cabdi.id]
    assert ids("/api/v1/traces?consent=false") == [cabdi.id]
    assert ids("/api/v1/traces?tracing_status=closed") == []
    assert api.get("/api/v1/traces?tracing_status=lost").status_code == 422
    found = api.post("/api/v1/traces/search", {"q": "Abdi Hassan"}).get_json()["items"]
    assert [t["id"] for t in found] == [cabdi.id]
    found = api.post("/api/v1/tracing-requests/search", {"q": "Faduma Ali"}).get_json()["items"]
    assert [r["id"] for r in found] == [second.id]
    assert api.post("/api/v1/tracing-requests/search", {"q": "712345678"}).get_json()["items"][0]["id"] in {
        first.id, second.id}
    assert elsewhere.get("/api/v1/tracing-requests").get_json()["items"] == []
    assert elsewhere.post("/api/v1/traces/search", {"q": "Aisha Yusuf"}).get_json()["items"] == []
    assert hidden.id not in ids("/api/v1/tracing-requests")


def test_tracing_scope_on_every_route(app, api_as, team):
    agency, group = team
    owner, officer = api_as("tracing_officer", agency=agency, groups=[group])
    record = new_request(officer, AISHA)
    trace = record.traces[0]
    request_flag = add_flag(record, officer, "x")
    trace_flag = add_flag(trace, officer, "y")
    db.session.commit()
    request_routes = record_routes(f"/api/v1/tracing-requests/{record.id}", request_flag.id, "tracing") + [
        ("POST", f"/api/v1/tracing-requests/{record.id}/traces", {"data": OMAR}, "tracing:update"),
        ("POST", f"/api/v1/tracing-requests/{record.id}/close", {"reason": "x"}, "tracing:close"),
        ("POST", f"/api/v1/tracing-requests/{record.id}/reopen", {"reason": "x"}, "tracing:close"),
    ]
    routes = request_routes + record_routes(f"/api/v1/traces/{trace.id}", trace_flag.id, "tracing") + [
        # The status route checks the scope first (with tracing:read), then the permission the change needs.
        ("POST", f"/api/v1/traces/{trace.id}/status", {"tracing_status": "in_progress"}, "tracing:read"),
    ]
    not_found = 0
    for role, kwargs in (("tracing_officer", {}), ("supervisor", {}), ("supervisor", {"agency": agency})):
        api, stranger = api_as(role, **kwargs)
        not_found += expect_refused(api, stranger, routes)
        assert api.get("/api/v1/tracing-requests").get_json()["items"] == []
        assert api.get("/api/v1/traces").get_json()["items"] == []
        assert api.post("/api/v1/traces/search", {"q": "Aisha Yusuf"}).get_json()["items"] == []
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.resource_id.in_([record.id, trace.id]), AuditEntry.action == "out_of_scope")) == not_found
    assert not_found > len(routes)
    caseworker, case_user = api_as("caseworker", agency=agency, groups=[group])  # no tracing permission
    expect_refused(caseworker, case_user, routes + [
        ("GET", "/api/v1/traces", None, "tracing:read"), ("GET", "/api/v1/tracing-requests", None, "tracing:read"),
        ("POST", "/api/v1/traces/search", {"q": "Aisha"}, "tracing:read"),
        ("POST", "/api/v1/tracing-requests", {"data": INQUIRER, "traces": [OMAR]}, "tracing:create")])
    anonymous = anonymous_api(app)
    for method, path, body, _ in routes:
        assert anonymous.call(method, path, body).status_code == 401, (method, path)
    # The group's supervisor reads both and resolves flags, but may not edit (no tracing:update).
    supervisor, _ = api_as("supervisor", agency=agency, groups=[group])
    assert supervisor.get(f"/api/v1/tracing-requests/{record.id}").status_code == 200
    assert supervisor.get(f"/api/v1/traces/{trace.id}").status_code == 200
    assert supervisor.post(f"/api/v1/traces/{trace.id}/flags/{trace_flag.id}/resolve",
                           {"resolution": "ok"}).status_code == 200
    assert supervisor.patch(f"/api/v1/traces/{trace.id}", {"version": 1, "data": {"age": 8}}).status_code == 403
    assert fresh(RecordFlag, trace_flag.id).resolved_at is not None
    assert fresh(Trace, trace.id).version == 1


def test_trace_status_by_hand_with_the_pages_permissions(api_as, team):
    agency, group = team
    api, officer = api_as("tracing_officer", agency=agency, groups=[group])
    record = new_request(officer, AISHA, OMAR)
    aisha, omar = record.traces
    path = f"/api/v1/traces/{aisha.id}/status"
    started = api.post(path, {"tracing_status": "in_progress", "version": 1})
    assert started.status_code == 200 and started.get_json()["tracing_status"] == "in_progress"
    assert started.get_json()["version"] == 2
    assert api.post(path, {"tracing_status": "in_progress"}).get_json()["errors"] == {
        "tracing_status": ["The trace already has this status."]}
    assert "tracing_status" in api.post(path, {"tracing_status": "reunified"}).get_json()["errors"]
    assert api.post(path, {"tracing_status": "lost"}).status_code == 422
    assert api.post(path, {"tracing_status": "closed"}).get_json()["errors"] == {
        "reason": ["Say why the trace is closed or reopened."]}
    stale = api.post(path, {"tracing_status": "closed", "reason": "Found", "version": 1})
    assert stale.status_code == 409 and stale.get_json()["fields"] == ["@tracing_status"]
    closed = api.post(path, {"tracing_status": "closed", "reason": "Found in Kakuma"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    assert fresh(Trace, omar.id).tracing_status == "open"  # the other child is still sought
    history = api.get(f"/api/v1/traces/{aisha.id}/history").get_json()["items"]
    assert [(h["action"], h["comment"], h["changes"][0]["new"]) for h in history[:2]] == [
        ("close", "Found in Kakuma", "closed"), ("update", None, "in_progress")]
    # A supervisor may close and reopen (tracing:close) but not start tracing (tracing:update).
    supervisor, _ = api_as("supervisor", agency=agency, groups=[group])
    assert supervisor.post(path, {"tracing_status": "open", "reason": "Not her"}).status_code == 200
    assert supervisor.post(f"/api/v1/traces/{omar.id}/status", {"tracing_status": "in_progress"}).status_code == 403
    assert audit_count("trace.status_changed", aisha.id) == 3


def test_inquiry_date_is_shown_only_to_those_who_may_read_it(api_as, team):
    from app.users.operations import create_role
    agency, group = team
    api, officer = api_as("tracing_officer", agency=agency, groups=[group])
    record = new_request(officer, AISHA)
    assert api.get(f"/api/v1/tracing-requests/{record.id}").get_json()["inquiry_date"] == "2024-03-02"
    role = create_role("inquirer_reader", "Inquirer reader", "agency", {
        "tracing:read", "form.tracing_request.inquirer:read", "form.trace.child_sought:read"})
    db.session.commit()
    reader, _ = api_as(role, agency=agency)
    body = reader.get(f"/api/v1/tracing-requests/{record.id}").get_json()
    assert body["inquiry_date"] is None and set(body["data"]) == {"relation_name", "relation", "relation_phone"}
    assert set(body["traces"][0]["data"]) == {"name_first", "name_last", "sex", "age"}
    assert "2024-03-02" not in reader.get("/api/v1/tracing-requests").get_data(as_text=True)
