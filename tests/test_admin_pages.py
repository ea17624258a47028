"""Administration pages: agencies, groups, users and roles (/admin/...)."""
from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth.models import UserSession
from app.extensions import db
from app.jobs.models import JobRecord
from app.users.models import Agency, Role, User, UserGroup
from tests.conftest import PASSWORD, WebClient

NEW_PASSWORD = "a quiet morning by the river bank"


def audit_count(action: str, **where) -> int:
    query = select(func.count(AuditEntry.id)).where(AuditEntry.action == action)
    for column, value in where.items():
        query = query.where(getattr(AuditEntry, column) == value)
    return db.session.scalar(query)


def field_error(html: str, field_id: str) -> str:
    """The error text shown under one form field."""
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', html)
    return match.group(1) if match else ""


def fresh(model, record_id):
    db.session.expire_all()
    return db.session.get(model, record_id)


@pytest.fixture
def admin(login_as):
    web, user = login_as("administrator")
    return web, user


@pytest.fixture
def records(make):
    agency = make.agency()
    group = make.group(agency=agency)
    person = make.user("caseworker", agency=agency, groups=[group])
    role = make.role("caseworker")
    job = JobRecord(task="tests.admin_pages_unused", args={})
    db.session.add(job)
    db.session.commit()
    return {"agency": agency.id, "group": group.id, "user": person.id, "role": role.id, "job": job.id}


PAGES = [
    "/admin/agencies", "/admin/agencies/new", "/admin/agencies/{agency}/edit",
    "/admin/groups", "/admin/groups/new", "/admin/groups/{group}/edit",
    "/admin/users", "/admin/users/new", "/admin/users/{user}", "/admin/users/{user}/edit",
    "/admin/roles", "/admin/roles/new", "/admin/roles/{role}/edit",
    "/admin/audit", "/admin/audit/export.csv",
    "/admin/jobs", "/admin/jobs/{job}",
]
ACTIONS = [
    "/admin/agencies/new", "/admin/agencies/{agency}/edit", "/admin/groups/new", "/admin/groups/{group}/edit",
    "/admin/users", "/admin/users/new", "/admin/users/{user}/edit", "/admin/users/{user}/deactivate",
    "/admin/users/{user}/reactivate", "/admin/users/{user}/password", "/admin/users/{user}/reset-code",
    "/admin/users/{user}/end-sessions", "/admin/users/{user}/second-factor/off",
    "/admin/roles/new", "/admin/roles/{role}/edit", "/admin/audit/search", "/admin/jobs/{job}/retry",
]


def routes_of(app, *blueprints) -> set[tuple[str, str]]:
    return {(re.sub(r"<[^>]+>", "<id>", rule.rule), method)
            for rule in app.url_map.iter_rules() if rule.endpoint.split(".")[0] in blueprints
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_these_tests_cover_every_admin_route(app):
    covered = ({(re.sub(r"\{[a-z]+\}", "<id>", path), "GET") for path in PAGES}
               | {(re.sub(r"\{[a-z]+\}", "<id>", path), "POST") for path in ACTIONS})
    assert routes_of(app, "users_views", "audit_views", "jobs_views") == covered


def test_every_admin_page_and_action_refuses_a_caseworker(login_as, records):
    web, caseworker = login_as("caseworker")
    for path in PAGES:
        assert web.get(path.format(**records)).status_code == 403, path
    for path in ACTIONS:
        assert web.form(path.format(**records), {"name": "x", "password": NEW_PASSWORD}).status_code == 403, path
    assert audit_count("permission_denied", user_id=caseworker.id) == len(PAGES) + len(ACTIONS)
    # Nothing was changed by the refused posts.
    person = fresh(User, records["user"])
    assert person.is_active and not person.must_change_password


def test_every_admin_page_and_action_sends_anonymous_users_to_login(client, records):
    for path in PAGES:
        response = client.get(path.format(**records))
        assert response.status_code == 302 and response.headers["Location"].endswith("/login"), path
    for path in ACTIONS:
        response = client.form(path.format(**records), {"name": "x"}, token_from="/login")
        assert response.status_code == 302 and response.headers["Location"].endswith("/login"), path


def test_posts_without_csrf_token_are_refused(admin, records):
    web, _ = admin
    for path in ACTIONS:
        assert web.post(path.format(**records), data={"name": "x"}).status_code == 400, path


def test_administrator_sees_every_page(admin, records):
    web, _ = admin
    for path in PAGES:
        response = web.get(path.format(**records))
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"


def test_admin_navigation_only_for_holders(admin, login_as):
    web, _ = admin
    home = web.get("/").get_data(as_text=True)
    for path in ("/admin/users", "/admin/agencies", "/admin/groups", "/admin/roles", "/admin/audit", "/admin/jobs"):
        assert f'href="{path}"' in home, path
    caseworker, _ = login_as("caseworker")
    home = caseworker.get("/").get_data(as_text=True)
    assert "/admin/" not in home


def test_admin_creates_agency_group_and_user_through_pages(admin):
    web, admin_user = admin
    response = web.form("/admin/agencies/new", {"code": "Hope-Org", "name": "Hope Organisation"})
    assert response.status_code == 302
    agency = db.session.execute(select(Agency).where(Agency.code == "hope-org")).scalar_one()
    assert audit_count("agency.create", resource_id=str(agency.id), user_id=admin_user.id) == 1

    response = web.form("/admin/groups/new", {"code": "hope-north", "name": "Hope north team",
                                               "agency_id": str(agency.id)})
    assert response.status_code == 302
    group = db.session.execute(select(UserGroup).where(UserGroup.code == "hope-north")).scalar_one()
    assert group.agency_id == agency.id
    assert audit_count("group.create", resource_id=str(group.id)) == 1

    role = db.session.execute(select(Role).where(Role.code == "caseworker")).scalar_one()
    response = web.form("/admin/users/new", {
        "username": "Nadia.Omar", "full_name": "Nadia Omar", "email": "nadia@example.org",
        "agency_id": str(agency.id), "role_id": str(role.id), "group_ids": [str(group.id)], "locale": "fr"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    user = db.session.execute(select(User).where(User.username == "nadia.omar")).scalar_one()
    assert user.must_change_password and user.locale == "fr" and user.group_ids == {group.id}
    assert audit_count("user.create", resource_id=str(user.id), user_id=admin_user.id) == 1
    # The generated password is shown once, on this page only, and it works.
    password = re.search(r'<p class="secret-once" dir="ltr"><code>([^<]+)</code>', html).group(1)
    assert password not in web.get(f"/admin/users/{user.id}").get_data(as_text=True)
    newcomer = WebClient(web.application.test_client())
    response = newcomer.form("/login", {"username": "nadia.omar", "password": password}, token_from="/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")


def test_user_with_typed_password_goes_to_the_detail_page(admin, make):
    web, _ = admin
    agency = make.agency()
    db.session.commit()
    role = make.role("supervisor")
    response = web.form("/admin/users/new", {
        "username": "typed.password", "full_name": "Typed Password", "agency_id": str(agency.id),
        "role_id": str(role.id), "locale": "en", "password": NEW_PASSWORD})
    assert response.status_code == 302
    user = db.session.execute(select(User).where(User.username == "typed.password")).scalar_one()
    assert response.headers["Location"].endswith(f"/admin/users/{user.id}")
    assert user.must_change_password


def test_user_form_shows_field_level_errors(admin, make):
    web, _ = admin
    existing = make.user("caseworker")
    db.session.commit()
    role = make.role("caseworker")
    response = web.form("/admin/users/new", {
        "username": existing.username, "full_name": "Someone Else", "agency_id": str(existing.agency_id),
        "role_id": str(role.id), "locale": "en", "password": "short"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "taken" in field_error(html, "username")

    response = web.form("/admin/users/new", {
        "username": "fresh.name", "full_name": "Fresh Name", "agency_id": str(existing.agency_id),
        "role_id": str(role.id), "locale": "en", "password": "password1234"})
    assert response.status_code == 422
    assert "too common" in field_error(response.get_data(as_text=True), "password")

    response = web.form("/admin/users/new", {"username": "x y", "full_name": "", "locale": "en"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for field in ("full_name", "agency_id", "role_id"):
        assert field_error(html, field), field
    assert db.session.scalar(select(func.count(User.id)).where(User.username.in_(["fresh.name", "x y"]))) == 0


def test_duplicate_agency_and_group_codes_are_field_errors(admin, make):
    web, _ = admin
    agency = make.agency("taken-code")
    make.group("taken-group")
    db.session.commit()
    response = web.form("/admin/agencies/new", {"code": "taken-code", "name": "Again"})
    assert response.status_code == 422
    assert "already used" in field_error(response.get_data(as_text=True), "code")
    response = web.form("/admin/groups/new", {"code": "taken-group", "name": "Again", "agency_id": str(agency.id)})
    assert response.status_code == 422
    assert "already used" in field_error(response.get_data(as_text=True), "code")
    response = web.form("/admin/agencies/new", {"code": "Bad Code!", "name": "Fine"})
    assert response.status_code == 422
    assert "lower-case" in field_error(response.get_data(as_text=True), "code")
    response = web.form("/admin/agencies/new", {"code": "fine-code", "name": ""})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "name")
    assert db.session.scalar(select(func.count(Agency.id)).where(Agency.code == "fine-code")) == 0


def test_edit_agency_and_group(admin, make):
    web, _ = admin
    agency = make.agency()
    other = make.agency()
    group = make.group(agency=agency)
    db.session.commit()
    assert web.form(f"/admin/agencies/{agency.id}/edit", {"name": "Renamed agency"}).status_code == 302
    agency = fresh(Agency, agency.id)
    assert agency.name == "Renamed agency" and agency.is_active is False  # unchecked box: inactive
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "agency.update",
                                                        AuditEntry.resource_id == str(agency.id))).scalar_one()
    assert sorted(entry.detail["fields"]) == ["is_active", "name"]

    response = web.form(f"/admin/groups/{group.id}/edit", {"name": "Moved", "agency_id": str(other.id),
                                                           "is_active": "y"})
    assert response.status_code == 302
    group = fresh(UserGroup, group.id)
    assert group.agency_id == other.id and group.name == "Moved" and group.is_active
    # The inactive agency is still offered on its own group's form, not on new ones.
    assert f'value="{agency.id}"' not in web.get("/admin/groups/new").get_data(as_text=True)
    assert web.get("/admin/agencies/999999/edit").status_code == 404


def test_lists_filter_and_paginate(admin, make):
    web, _ = admin
    unicef, save = make.agency("flt-unicef", "Filter UNICEF"), make.agency("flt-save", "Filter Save")
    north = make.group("flt-north", agency=unicef)
    make.user("caseworker", agency=unicef, groups=[north], username="flt.alice")
    make.user("supervisor", agency=save, username="flt.bob")
    carol = make.user("caseworker", agency=save, username="flt.carol")
    carol.is_active = False
    db.session.commit()
    supervisor = make.role("supervisor")

    def listed(html):
        return set(re.findall(r">(flt\.[a-z]+)</a>", html))

    assert listed(web.get(f"/admin/users?agency={save.id}").get_data(as_text=True)) == {"flt.bob", "flt.carol"}
    assert listed(web.get(f"/admin/users?role={supervisor.id}&agency={save.id}").get_data(as_text=True)) == {
        "flt.bob"}
    assert listed(web.get(f"/admin/users?group={north.id}").get_data(as_text=True)) == {"flt.alice"}
    assert listed(web.get(f"/admin/users?agency={save.id}&active=no").get_data(as_text=True)) == {"flt.carol"}
    assert web.get("/admin/users?agency=not-a-number").status_code == 422

    # The username search is posted and remembered in the session, never put in the URL.
    response = web.form("/admin/users", {"username": "FLT.A", "agency": "", "role": "", "group": "",
                                         "active": ""})
    assert response.status_code == 302
    assert "flt" not in response.headers["Location"].lower()
    assert listed(web.get("/admin/users").get_data(as_text=True)) == {"flt.alice"}
    response = web.form("/admin/users", {"username": "flt.", "agency": str(save.id), "active": "yes"})
    assert response.headers["Location"].endswith(f"/admin/users?agency={save.id}&active=yes")
    assert listed(web.get(response.headers["Location"]).get_data(as_text=True)) == {"flt.bob"}
    web.form("/admin/users", {"clear": "1"})
    assert {"flt.alice", "flt.bob", "flt.carol"} <= listed(web.get("/admin/users").get_data(as_text=True))

    assert "Filter Save" in web.get("/admin/agencies?q=flt-sa").get_data(as_text=True)
    assert "Filter UNICEF" not in web.get("/admin/agencies?q=flt-sa").get_data(as_text=True)
    assert "flt-north" in web.get(f"/admin/groups?agency={unicef.id}").get_data(as_text=True)
    assert "flt-north" not in web.get(f"/admin/groups?agency={save.id}").get_data(as_text=True)

    for index in range(26):
        make.agency(f"flt-page-{index:02d}")
    db.session.commit()
    first = web.get("/admin/agencies?q=flt-page").get_data(as_text=True)
    second = web.get("/admin/agencies?q=flt-page&page=2").get_data(as_text=True)
    assert "flt-page-00" in first and "flt-page-25" not in first
    assert "flt-page-25" in second and "flt-page-00" not in second
    assert "page=2" in first and "q=flt-page" in first  # the next-page link keeps the filter


def test_edit_user_and_self_protection(admin, make):
    web, admin_user = admin
    person = make.user("caseworker")
    group = make.group(agency=person.agency)
    db.session.commit()
    supervisor = make.role("supervisor")
    response = web.form(f"/admin/users/{person.id}/edit", {
        "full_name": "New Name", "email": "", "agency_id": str(person.agency_id), "role_id": str(supervisor.id),
        "group_ids": [str(group.id)], "locale": "ar",
        # Not fields of the form: ignored, whatever a crafted post says (S4).
        "password_hash": "$argon2id$forged", "is_totp_enabled": "y", "must_change_password": "y",
        "username": "renamed", "is_active": ""})
    assert response.status_code == 302
    person = fresh(User, person.id)
    assert person.password_hash.startswith("$argon2id$v=") and person.username != "renamed"
    assert person.is_active and not person.is_totp_enabled and not person.must_change_password
    assert (person.full_name, person.role_id, person.locale, person.group_ids) == (
        "New Name", supervisor.id, "ar", {group.id})
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "user.update",
                                                        AuditEntry.resource_id == str(person.id))).scalar_one()
    assert set(entry.detail["fields"]) == {"full_name", "role_id", "locale", "groups"}
    assert "New Name" not in str(entry.detail)

    # An administrator cannot take away their own role, nor deactivate themselves.
    response = web.form(f"/admin/users/{admin_user.id}/edit", {
        "full_name": admin_user.full_name, "agency_id": str(admin_user.agency_id),
        "role_id": str(supervisor.id), "locale": "en"})
    assert response.status_code == 422
    assert "own role" in field_error(response.get_data(as_text=True), "role_id")
    response = web.form(f"/admin/users/{admin_user.id}/deactivate")
    assert response.status_code == 302
    assert fresh(User, admin_user.id).is_active
    assert "cannot deactivate your own account" in web.get(response.headers["Location"]).get_data(as_text=True)


def test_deactivating_a_user_ends_their_sessions(admin, login_as):
    web, admin_user = admin
    victim_web, victim = login_as("caseworker")
    assert victim_web.get("/").status_code == 200
    response = web.form(f"/admin/users/{victim.id}/deactivate")
    assert response.status_code == 302
    assert not fresh(User, victim.id).is_active
    # Their old browser is logged out at once, and cannot log in again.
    response = victim_web.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert db.session.scalar(select(func.count(UserSession.id)).where(
        UserSession.user_id == victim.id, UserSession.ended_at.is_(None))) == 0
    again = WebClient(web.application.test_client())
    assert again.form("/login", {"username": victim.username, "password": PASSWORD},
                      token_from="/login").status_code == 401
    assert audit_count("user.update", resource_id=str(victim.id), user_id=admin_user.id) == 1

    assert web.form(f"/admin/users/{victim.id}/reactivate").status_code == 302
    assert fresh(User, victim.id).is_active
    assert again.form("/login", {"username": victim.username, "password": PASSWORD},
                      token_from="/login").status_code == 302


def test_end_all_sessions(admin, login_as):
    web, admin_user = admin
    victim_web, victim = login_as("caseworker")
    response = web.form(f"/admin/users/{victim.id}/end-sessions")
    assert response.status_code == 302
    assert victim_web.get("/").status_code == 302
    assert fresh(User, victim.id).is_active
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "user.sessions_ended")).scalar_one()
    assert (entry.resource_id, entry.user_id, entry.detail["count"]) == (str(victim.id), admin_user.id, 1)
    # Ending one's own sessions keeps the browser doing it.
    assert web.form(f"/admin/users/{admin_user.id}/end-sessions").status_code == 302
    assert web.get("/admin/users").status_code == 200


def test_reset_code_is_shown_once_and_works(admin, make, client, caplog):
    web, admin_user = admin
    person = make.user("caseworker")
    db.session.commit()
    caplog.set_level("DEBUG")
    response = web.form(f"/admin/users/{person.id}/reset-code")
    assert response.status_code == 200  # shown in the answer to the POST: no redirect, no URL
    code = re.search(r'<p class="secret-once" dir="ltr"><code>([0-9A-F-]{14})</code>', response.get_data(
        as_text=True)).group(1)
    assert code not in web.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert code not in caplog.text
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "auth.reset_code_created")).scalar_one()
    assert entry.user_id == admin_user.id and entry.resource_id == str(person.id) and code not in str(entry.detail)

    data = {"username": person.username, "code": code, "new_password": NEW_PASSWORD}
    response = client.form("/password/reset", data, token_from="/password/reset")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert client.form("/password/reset", dict(data, new_password="another quiet evening walk"),
                       token_from="/password/reset").status_code == 422  # single use
    assert client.form("/login", {"username": person.username, "password": NEW_PASSWORD},
                       token_from="/login").status_code == 302


def test_set_temporary_password(admin, login_as):
    web, admin_user = admin
    victim_web, victim = login_as("caseworker")
    response = web.form(f"/admin/users/{victim.id}/password", {"password": "password1234"})
    assert response.status_code == 422
    assert "too common" in field_error(response.get_data(as_text=True), "password")
    assert not fresh(User, victim.id).must_change_password

    response = web.form(f"/admin/users/{victim.id}/password", {"password": NEW_PASSWORD})
    assert response.status_code == 302
    assert fresh(User, victim.id).must_change_password
    assert victim_web.get("/").status_code == 302  # logged out everywhere
    fresh_web = WebClient(web.application.test_client())
    response = fresh_web.form("/login", {"username": victim.username, "password": NEW_PASSWORD},
                              token_from="/login")
    assert response.headers["Location"].endswith("/account/password")
    assert audit_count("user.password_set_by_admin", resource_id=str(victim.id), user_id=admin_user.id) == 1


def test_turn_off_second_factor(admin, make):
    web, admin_user = admin
    person = make.user("caseworker")
    person.totp_secret, person.is_totp_enabled = pyotp.random_base32(), True
    db.session.commit()
    assert "Turn off second factor" in web.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert web.form(f"/admin/users/{person.id}/second-factor/off").status_code == 302
    person = fresh(User, person.id)
    assert not person.is_totp_enabled and person.totp_secret is None
    assert audit_count("auth.totp_disabled", resource_id=str(person.id), user_id=admin_user.id) == 1


def test_roles_list_and_edit_with_permission_checkboxes(admin):
    web, admin_user = admin
    html = web.get("/admin/roles").get_data(as_text=True)
    assert "caseworker" in html and "administrator" in html
    role = db.session.execute(select(Role).where(Role.code == "caseworker")).scalar_one()
    html = web.get(f"/admin/roles/{role.id}/edit").get_data(as_text=True)
    # Permissions are grouped by resource, each a checkbox; the role's own are checked.
    assert '<legend dir="ltr"><code>audit</code></legend>' in html
    assert 'value="audit:read" id="perm-audit-read">' in html  # not held by caseworkers: unchecked
    for scope in ("own", "group", "agency", "all"):
        assert f'value="{scope}"' in html

    form = {"name": "Caseworker", "description": "Edited", "scope": "group", "is_supervisor": "y",
            "permissions": sorted(role.permissions | {"team:read"})}
    assert web.form(f"/admin/roles/{role.id}/edit", form).status_code == 302
    role = fresh(Role, role.id)
    assert role.scope == "group" and role.is_supervisor and "team:read" in role.permissions
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "role.update",
                                                        AuditEntry.resource_id == str(role.id))).scalar_one()
    assert entry.detail["added"] == ["team:read"] and entry.user_id == admin_user.id

    response = web.form(f"/admin/roles/{role.id}/edit", dict(form, permissions=["cases:fly"]))
    assert response.status_code == 422
    assert "cases:fly" in field_error(response.get_data(as_text=True), "permissions")

    response = web.form("/admin/roles/new", {"code": "auditor", "name": "Auditor", "scope": "own",
                                             "permissions": ["audit:read"]})
    assert response.status_code == 302
    auditor = db.session.execute(select(Role).where(Role.code == "auditor")).scalar_one()
    assert auditor.permissions == {"audit:read"} and not auditor.is_supervisor
    response = web.form("/admin/roles/new", {"code": "auditor", "name": "Again", "scope": "everything"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "already used" in field_error(html, "code") and field_error(html, "scope")


def test_nobody_edits_their_own_role_and_the_last_managers_keep_their_power(admin):
    web, _ = admin
    role = db.session.execute(select(Role).where(Role.code == "administrator")).scalar_one()
    response = web.form(f"/admin/roles/{role.id}/edit", {"name": role.name, "scope": role.scope,
                                                         "permissions": ["audit:read"]})
    assert response.status_code == 403
    assert "roles:manage" in fresh(Role, role.id).permissions
    # From the command line (no actor), the last active managers cannot lose the power either.
    from app.users.operations import ValidationError, update_role
    with pytest.raises(ValidationError) as caught:
        update_role(role, role.name, role.scope, {"audit:read"}, role.is_supervisor)
    assert "keep those permissions" in " ".join(caught.value.errors["permissions"])


def test_a_role_without_users_manage_cannot_reach_user_pages(login_as, make):
    from app.users.operations import create_role
    role = create_role("role-admin-only", "Role admin", "own", {"roles:manage"})
    db.session.commit()
    web, _ = login_as(role)
    assert web.get("/admin/roles").status_code == 200
    assert web.get("/admin/users").status_code == 403
    home = web.get("/").get_data(as_text=True)
    assert 'href="/admin/roles"' in home and 'href="/admin/users"' not in home
