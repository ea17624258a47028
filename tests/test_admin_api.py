"""JSON API for agencies, groups, users and roles (/api/v1/...)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.users.models import Agency, Role, User, UserGroup
from tests.conftest import WebClient

NEW_PASSWORD = "a quiet morning by the river bank"


class Api:
    """A logged-in browser calling the API: session cookie plus the CSRF token in a header."""

    def __init__(self, web: WebClient):
        self.web = web
        self.token = web.csrf_token("/") if web.logged_in else web.csrf_token("/login")

    def get(self, path, **kwargs):
        return self.web.client.get(path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.web.client.post(path, json=body, headers={"X-CSRFToken": self.token}, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.web.client.patch(path, json=body, headers={"X-CSRFToken": self.token}, **kwargs)


def fresh(model, record_id):
    db.session.expire_all()
    return db.session.get(model, record_id)


def audit_count(action: str, resource_id=None) -> int:
    query = select(func.count(AuditEntry.id)).where(AuditEntry.action == action)
    if resource_id is not None:
        query = query.where(AuditEntry.resource_id == str(resource_id))
    return db.session.scalar(query)


@pytest.fixture
def admin_api(login_as):
    web, user = login_as("administrator")
    return Api(web), user


@pytest.fixture
def ids(make):
    agency = make.agency()
    group = make.group(agency=agency)
    user = make.user("caseworker", agency=agency, groups=[group])
    db.session.commit()
    return {"agency": agency.id, "group": group.id, "user": user.id, "role": user.role_id}


READS = ["/api/v1/agencies", "/api/v1/agencies/{agency}", "/api/v1/groups", "/api/v1/groups/{group}",
         "/api/v1/users", "/api/v1/users/{user}", "/api/v1/roles", "/api/v1/roles/{role}", "/api/v1/permissions"]
CREATES = ["/api/v1/agencies", "/api/v1/groups", "/api/v1/users", "/api/v1/roles"]
UPDATES = ["/api/v1/agencies/{agency}", "/api/v1/groups/{group}", "/api/v1/users/{user}", "/api/v1/roles/{role}"]


def test_these_tests_cover_every_api_route(app):
    import re
    routes = {(re.sub(r"<[^>]+>", "<id>", rule.rule), method) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("users_api.") for method in rule.methods - {"HEAD", "OPTIONS"}}
    pattern = lambda path: re.sub(r"\{[a-z]+\}", "<id>", path)  # noqa: E731
    covered = ({(pattern(p), "GET") for p in READS} | {(pattern(p), "POST") for p in CREATES}
               | {(pattern(p), "PATCH") for p in UPDATES})
    assert routes == covered


def test_anonymous_callers_get_401_json(client, ids):
    api = Api(client)
    for path in READS:
        response = api.get(path.format(**ids))
        assert response.status_code == 401, path
        assert response.is_json and response.json["error"]["status"] == 401
    for path in CREATES:
        assert api.post(path, {"name": "x"}).status_code == 401, path
    for path in UPDATES:
        assert api.patch(path.format(**ids), {"name": "x"}).status_code == 401, path


def test_a_caseworker_gets_403_everywhere(login_as, ids):
    web, caseworker = login_as("caseworker")
    api = Api(web)
    for path in READS:
        response = api.get(path.format(**ids))
        assert response.status_code == 403 and response.is_json, path
    for path in CREATES:
        assert api.post(path, {"name": "x"}).status_code == 403, path
    for path in UPDATES:
        assert api.patch(path.format(**ids), {"name": "hijacked"}).status_code == 403, path
    assert fresh(Agency, ids["agency"]).name != "hijacked"
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "permission_denied", AuditEntry.user_id == caseworker.id)) == (
        len(READS) + len(CREATES) + len(UPDATES))


def test_post_and_patch_need_the_csrf_header(admin_api, ids):
    api, _ = admin_api
    response = api.web.client.post("/api/v1/agencies", json={"code": "no-token", "name": "No token"})
    assert response.status_code == 400 and response.is_json
    response = api.web.client.patch(f"/api/v1/agencies/{ids['agency']}", json={"name": "No token"},
                                    headers={"X-CSRFToken": "forged"})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Agency.id)).where(Agency.code == "no-token")) == 0


def test_missing_ids_are_404(admin_api):
    api, _ = admin_api
    for path in ("/api/v1/agencies/999999", "/api/v1/groups/999999", "/api/v1/users/999999",
                 "/api/v1/roles/999999"):
        response = api.get(path)
        assert response.status_code == 404 and response.is_json, path
        assert api.patch(path, {"name": "x"}).status_code == 404, path


def test_admin_creates_agency_group_and_user(admin_api):
    api, admin_user = admin_api
    response = api.post("/api/v1/agencies", {"code": "api-agency", "name": "API Agency"})
    assert response.status_code == 201, response.json
    agency = response.json
    assert agency["code"] == "api-agency" and agency["is_active"] is True
    assert response.headers["Location"].endswith(f"/api/v1/agencies/{agency['id']}")
    assert api.get(f"/api/v1/agencies/{agency['id']}").json == agency

    response = api.post("/api/v1/groups", {"code": "api-group", "name": "API group", "agency_id": agency["id"]})
    assert response.status_code == 201, response.json
    group = response.json
    assert group["agency_id"] == agency["id"] and group["is_active"] is True
    cross = api.post("/api/v1/groups", {"code": "api-cross", "name": "Cross-agency", "agency_id": None})
    assert cross.status_code == 201 and cross.json["agency_id"] is None

    role = db.session.execute(select(Role).where(Role.code == "caseworker")).scalar_one()
    response = api.post("/api/v1/users", {
        "username": "API.User", "full_name": "Api User", "email": "api@example.org", "agency_id": agency["id"],
        "role_id": role.id, "group_ids": [group["id"]], "locale": "ar"})
    assert response.status_code == 201, response.json
    body = response.json
    password = body.pop("temporary_password")
    assert body["username"] == "api.user" and body["group_ids"] == [group["id"]] and body["locale"] == "ar"
    assert body["must_change_password"] is True and body["is_totp_enabled"] is False
    assert not {"password", "password_hash", "totp_secret"} & set(body)
    # The temporary password is returned once: reading the user again never shows it.
    again = api.get(f"/api/v1/users/{body['id']}").json
    assert "temporary_password" not in again and password not in str(again)
    assert again == body
    newcomer = WebClient(api.web.application.test_client())
    response = newcomer.form("/login", {"username": "api.user", "password": password}, token_from="/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")

    for action, resource_id in (("agency.create", agency["id"]), ("group.create", group["id"]),
                                ("user.create", body["id"])):
        entry = db.session.execute(select(AuditEntry).where(
            AuditEntry.action == action, AuditEntry.resource_id == str(resource_id))).scalar_one()
        assert entry.user_id == admin_user.id
    assert password not in str([e.detail for e in db.session.execute(select(AuditEntry)).scalars()])


def test_user_with_given_password_gets_none_back(admin_api, ids):
    api, _ = admin_api
    response = api.post("/api/v1/users", {"username": "chosen.pw", "full_name": "Chosen Password",
                                          "agency_id": ids["agency"], "role_id": ids["role"],
                                          "password": NEW_PASSWORD})
    assert response.status_code == 201
    assert "temporary_password" not in response.json and NEW_PASSWORD not in response.get_data(as_text=True)
    assert fresh(User, response.json["id"]).must_change_password


def test_update_records(admin_api, ids, login_as):
    api, _ = admin_api
    response = api.patch(f"/api/v1/agencies/{ids['agency']}", {"name": "Renamed", "is_active": False})
    assert response.status_code == 200 and response.json["name"] == "Renamed" and not response.json["is_active"]
    response = api.patch(f"/api/v1/groups/{ids['group']}", {"agency_id": None})
    assert response.status_code == 200 and response.json["agency_id"] is None
    assert response.json["name"] == fresh(UserGroup, ids["group"]).name  # untouched fields stay

    victim_web, victim = login_as("caseworker")
    response = api.patch(f"/api/v1/users/{victim.id}", {"full_name": "New Name", "group_ids": [ids["group"]],
                                                         "is_active": False})
    assert response.status_code == 200, response.json
    assert response.json["full_name"] == "New Name" and response.json["group_ids"] == [ids["group"]]
    assert not fresh(User, victim.id).is_active
    assert victim_web.get("/").status_code == 302  # deactivation ended their session
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "user.update",
                                                        AuditEntry.resource_id == str(victim.id))).scalar_one()
    assert set(entry.detail["fields"]) == {"full_name", "groups", "is_active"}

    response = api.patch(f"/api/v1/roles/{ids['role']}", {"permissions": ["team:read"], "scope": "group"})
    assert response.status_code == 200
    assert response.json["permissions"] == ["team:read"] and response.json["scope"] == "group"
    assert audit_count("role.update", ids["role"]) == 1


def test_create_role(admin_api):
    api, _ = admin_api
    response = api.post("/api/v1/roles", {"code": "api-auditor", "name": "Auditor", "scope": "own",
                                          "permissions": ["audit:read"], "is_supervisor": False})
    assert response.status_code == 201
    assert response.json["permissions"] == ["audit:read"]
    names = {item["name"] for item in api.get("/api/v1/permissions").json["items"]}
    assert {"users:manage", "roles:manage", "audit:read", "jobs:manage"} <= names


def test_field_level_errors_are_422(admin_api, ids):
    api, _ = admin_api
    taken = fresh(User, ids["user"]).username
    base = {"full_name": "Someone", "agency_id": ids["agency"], "role_id": ids["role"]}
    cases = [
        ("/api/v1/users", dict(base, username=taken), "username", "taken"),
        ("/api/v1/users", dict(base, username="weak.pw", password="password1234"), "password", "too common"),
        ("/api/v1/users", dict(base, username="short.pw", password="short"), "password", "at least 12"),
        ("/api/v1/users", dict(base, username="no.agency", agency_id=999999), "agency_id", "Unknown agency"),
        ("/api/v1/users", dict(base, username="bad.group", group_ids=[999999]), "group_ids", "999999"),
        ("/api/v1/users", dict(base, username="bad.locale", locale="xx"), "locale", "language"),
        ("/api/v1/users", dict(base, username="Bad Name!"), "username", "lower-case"),
        ("/api/v1/users", {"username": "x.y"}, "full_name", "required"),
        ("/api/v1/roles", {"code": "bad-perm", "name": "Bad", "scope": "own", "permissions": ["cases:fly"]},
         "permissions", "cases:fly"),
        ("/api/v1/roles", {"code": "bad-scope", "name": "Bad", "scope": "universe"}, "scope", "own, group"),
        ("/api/v1/agencies", {"code": fresh(Agency, ids["agency"]).code, "name": "Dup"}, "code", "already used"),
        ("/api/v1/agencies", {"code": "x" * 40, "name": "Long"}, "code", "at most 32"),
        ("/api/v1/groups", {"code": "g-x", "name": "G", "agency_id": "1"}, "agency_id", "whole number"),
    ]
    for path, body, field, fragment in cases:
        response = api.post(path, body)
        assert response.status_code == 422, (path, body, response.json)
        assert fragment in " ".join(response.json["errors"][field]), (field, response.json)
    assert db.session.scalar(select(func.count(User.id)).where(User.username.in_(
        ["weak.pw", "short.pw", "no.agency", "bad.group", "bad.locale"]))) == 0

    response = api.patch(f"/api/v1/roles/{ids['role']}", {"permissions": ["nope:nothing"]})
    assert response.status_code == 422 and "nope:nothing" in response.json["errors"]["permissions"][0]
    response = api.patch(f"/api/v1/users/{ids['user']}", {"role_id": 999999})
    assert response.status_code == 422 and "role_id" in response.json["errors"]


@pytest.mark.parametrize("field, value", [
    ("password_hash", "$argon2id$forged"),
    ("is_totp_enabled", False),
    ("totp_secret", "AAAA"),
    ("last_login_at", "2020-01-01T00:00:00+00:00"),
    ("must_change_password", False),
    ("username", "renamed"),
    ("id", 1),
])
def test_no_mass_assignment_on_users(admin_api, ids, field, value):
    api, _ = admin_api
    before = fresh(User, ids["user"])
    snapshot = (before.password_hash, before.is_totp_enabled, before.username, before.last_login_at)
    response = api.patch(f"/api/v1/users/{ids['user']}", {"full_name": "Changed", field: value})
    assert response.status_code == 422
    assert response.json["errors"] == {field: ["Unknown field."]}
    after = fresh(User, ids["user"])
    assert (after.password_hash, after.is_totp_enabled, after.username, after.last_login_at) == snapshot
    assert after.full_name != "Changed"
    if field != "username":  # chosen once, at creation
        response = api.post("/api/v1/users", {"username": "mass.assign", "full_name": "Mass Assign",
                                              "agency_id": ids["agency"], "role_id": ids["role"], field: value})
        assert response.status_code == 422 and response.json["errors"] == {field: ["Unknown field."]}


def test_bad_bodies_are_422(admin_api, ids):
    api, _ = admin_api
    response = api.web.client.post("/api/v1/agencies", data="code=x", headers={"X-CSRFToken": api.token},
                                   content_type="application/x-www-form-urlencoded")
    assert response.status_code == 422 and "_schema" in response.json["errors"]
    assert api.post("/api/v1/agencies", ["not", "an", "object"]).status_code == 422
    response = api.post("/api/v1/agencies", {"code": 5, "name": None})
    assert response.status_code == 422 and {"code", "name"} <= set(response.json["errors"])
    response = api.patch(f"/api/v1/agencies/{ids['agency']}", {"is_active": "yes"})
    assert response.status_code == 422 and "true or false" in response.json["errors"]["is_active"][0]
    response = api.post("/api/v1/users", {"username": "list.bad", "full_name": "List Bad",
                                          "agency_id": ids["agency"], "role_id": ids["role"], "group_ids": ["x"]})
    assert response.status_code == 422 and response.json["errors"]["group_ids"] == {"0": ["Enter a whole number."]}


def test_lists_are_paginated(admin_api, make):
    api, _ = admin_api
    for index in range(5):
        make.agency(f"pg-{index}")
    db.session.commit()
    total = db.session.scalar(select(func.count(Agency.id)))
    first = api.get("/api/v1/agencies?per_page=2").json
    assert (first["page"], first["per_page"], first["total"], len(first["items"])) == (1, 2, total, 2)
    second = api.get("/api/v1/agencies?per_page=2&page=2").json
    assert {a["id"] for a in first["items"]}.isdisjoint({a["id"] for a in second["items"]})
    assert api.get("/api/v1/agencies?page=999").json["items"] == []
    for query, field in (("per_page=101", "per_page"), ("per_page=0", "per_page"), ("page=0", "page"),
                         ("page=abc", "page"), ("sort=name", "sort")):
        response = api.get(f"/api/v1/agencies?{query}")
        assert response.status_code == 422 and field in response.json["errors"], query
    users = api.get("/api/v1/users?per_page=100").json
    assert users["total"] == db.session.scalar(select(func.count(User.id)))
    assert all("password_hash" not in item and "password" not in item for item in users["items"])
    for path in ("/api/v1/groups", "/api/v1/roles"):
        body = api.get(path).json
        assert set(body) >= {"items", "page", "total"}


def test_roles_api_needs_roles_manage_only(login_as, make):
    from app.users.operations import create_role
    role = create_role("api-users-only", "Users only", "own", {"users:manage"})
    db.session.commit()
    web, _ = login_as(role)
    api = Api(web)
    assert api.get("/api/v1/users").status_code == 200
    assert api.get("/api/v1/roles").status_code == 403
    assert api.post("/api/v1/roles", {"code": "sneaky", "name": "Sneaky", "scope": "all",
                                      "permissions": ["roles:manage"]}).status_code == 403
