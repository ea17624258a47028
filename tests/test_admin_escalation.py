"""Administration never escalates: one admin permission does not lead to the others."""
from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.users.models import Role, User
from app.users.operations import create_role
from tests.test_admin_api import Api


def _role(code: str, permissions: set[str]) -> Role:
    return create_role(code, code.title(), "all", permissions)


def test_user_manager_cannot_create_or_touch_administrators(login_as, make):
    _role("user-desk", {"users:manage"})
    web, desk_user = login_as("user-desk")
    api = Api(web)
    agency = make.agency()
    admin_role = make.role("administrator")
    target_admin = make.user("administrator", agency=agency)
    db.session.commit()
    response = api.post("/api/v1/users", {"username": "sneaky", "full_name": "Sneaky", "agency_id": agency.id,
                                          "role_id": admin_role.id, "password": "a long enough sentence"})
    assert response.status_code == 403
    assert db.session.execute(select(User).where(User.username == "sneaky")).scalar_one_or_none() is None
    assert web.form(f"/admin/users/{target_admin.id}/reset-code").status_code == 403
    assert web.form(f"/admin/users/{target_admin.id}/end-sessions").status_code == 403
    assert web.form(f"/admin/users/{target_admin.id}/password",
                    {"password": "another long sentence"}).status_code == 403
    # Caseworkers are theirs to manage.
    caseworker = make.user("caseworker", agency=agency)
    db.session.commit()
    assert web.form(f"/admin/users/{caseworker.id}/end-sessions").status_code == 302
    denied = db.session.execute(select(AuditEntry.action).where(
        AuditEntry.outcome == "denied", AuditEntry.user_id == desk_user.id)).scalars().all()
    assert "user.manage_beyond_own" in denied and "role.grant_beyond_own" in denied


def test_role_manager_cannot_raise_its_own_role_or_mint_admin_roles(login_as):
    role = _role("role-desk", {"roles:manage"})
    web, _user = login_as("role-desk")
    api = Api(web)
    response = api.patch(f"/api/v1/roles/{role.id}", {"permissions": ["roles:manage", "users:manage"]})
    assert response.status_code == 403
    response = api.post("/api/v1/roles", {"code": "mega", "name": "Mega", "scope": "all",
                                          "permissions": ["audit:read"]})
    assert response.status_code == 403
    # A case-work role is fine to make.
    response = api.post("/api/v1/roles", {"code": "helper", "name": "Helper", "scope": "own",
                                          "permissions": ["api:tokens"]})
    assert response.status_code == 201
    db.session.expire_all()
    assert db.session.get(Role, role.id).permissions == {"roles:manage"}


def test_nobody_changes_their_own_reach(login_as, make):
    web, admin = login_as("administrator")
    other_agency = make.agency()
    db.session.commit()
    api = Api(web)
    response = api.patch(f"/api/v1/users/{admin.id}", {"agency_id": other_agency.id})
    assert response.status_code == 422 and "agency" in str(response.get_json()["errors"])
    group = make.group()
    db.session.commit()
    response = api.patch(f"/api/v1/users/{admin.id}", {"group_ids": [group.id]})
    assert response.status_code == 422


def test_role_change_ends_the_users_sessions(app, login_as, make):
    web, admin = login_as("administrator")
    victim_web, victim = login_as("caseworker")
    assert victim_web.get("/").status_code == 200
    api = Api(web)
    supervisor = make.role("supervisor")
    assert api.patch(f"/api/v1/users/{victim.id}", {"role_id": supervisor.id}).status_code == 200
    assert victim_web.get("/").status_code == 302


def test_seeding_roles_again_keeps_an_administrators_removal(app):
    from app.cli import seed_roles
    caseworker = db.session.execute(select(Role).where(Role.code == "caseworker")).scalar_one()
    assert "api:tokens" in caseworker.permissions
    caseworker.set_permissions(caseworker.permissions - {"api:tokens"})
    db.session.flush()
    seed_roles()
    db.session.expire_all()
    assert "api:tokens" not in db.session.get(Role, caseworker.id).permissions
