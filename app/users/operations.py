"""Operations on agencies, groups, roles and users.

Each operation checks its invariants, writes its audit entry and flushes; the
caller (a view, API handler or CLI command) commits once. Audit details name
the fields that changed, never their values when they are personal data.
"""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import func, select

from app.audit.operations import record_audit
from app.auth.operations import end_all_sessions, set_password
from app.extensions import db
from app.permissions import (
    CATALOGUE,
    ROLE_ADMINISTRATOR,
    ROLES_MANAGE,
    USERS_MANAGE,
    NotPermitted,
    admin_permissions_of,
)
from app.users.models import SCOPES, Agency, Role, User, UserGroup

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{1,63}$")


class ValidationError(Exception):
    """Field-level problems: {field: [messages]}."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def _require(condition: bool, errors: dict, field: str, message: str) -> None:
    if not condition:
        errors.setdefault(field, []).append(message)


def _raise_if(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


def _changed(obj, values: dict) -> list[str]:
    """Apply `values` to `obj`; return the names of the attributes that changed."""
    changed = []
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed.append(key)
    return changed


# --- who may manage whom ------------------------------------------------------------
# Administration never escalates: an actor can only give, change or act on what stays
# within their own administrative permissions. Case-work permissions are not limited
# this way: administrators set up caseworkers' roles without seeing any case themselves.
# `actor=None` is the command line (someone with shell access to the server).

def ensure_may_grant(actor, permissions: set[str], role: Role | None = None) -> None:
    if actor is None:
        return
    if role is not None and role.id == actor.role_id:
        raise NotPermitted("role.edit_own_role", "role", role.id)
    if not (set(permissions) & CATALOGUE.admin_permissions()) <= admin_permissions_of(actor.role):
        raise NotPermitted("role.grant_beyond_own", "role", role.id if role else None)


def ensure_may_manage(actor, user: User) -> None:
    """`actor` may act on `user` (passwords, codes, second factor, sessions, edits)."""
    if actor is None or actor.id == user.id:
        return
    if not admin_permissions_of(user.role) <= admin_permissions_of(actor.role):
        raise NotPermitted("user.manage_beyond_own", "user", user.id)


# --- agencies ----------------------------------------------------------------------

def create_agency(code: str, name: str, actor=None) -> Agency:
    code = (code or "").strip().lower()
    errors: dict = {}
    _require(bool(CODE_RE.match(code)), errors, "code",
             _("Use lower-case letters, digits, dots, dashes or underscores."))
    _require(bool((name or "").strip()), errors, "name", _("Enter a name."))
    if code and db.session.scalar(select(func.count()).where(Agency.code == code)):
        errors.setdefault("code", []).append(_("This code is already used."))
    _raise_if(errors)
    agency = Agency(code=code, name=name.strip())
    db.session.add(agency)
    db.session.flush()
    record_audit("agency.create", "agency", agency.id, detail={"code": code}, user=actor)
    return agency


def update_agency(agency: Agency, name: str, is_active: bool, actor=None) -> Agency:
    errors: dict = {}
    _require(bool((name or "").strip()), errors, "name", _("Enter a name."))
    _raise_if(errors)
    changed = _changed(agency, {"name": name.strip(), "is_active": is_active})
    if changed:
        record_audit("agency.update", "agency", agency.id, detail={"fields": changed}, user=actor)
    return agency


# --- groups ------------------------------------------------------------------------

def create_group(code: str, name: str, agency: Agency | None, actor=None) -> UserGroup:
    code = (code or "").strip().lower()
    errors: dict = {}
    _require(bool(CODE_RE.match(code)), errors, "code",
             _("Use lower-case letters, digits, dots, dashes or underscores."))
    _require(bool((name or "").strip()), errors, "name", _("Enter a name."))
    if code and db.session.scalar(select(func.count()).where(UserGroup.code == code)):
        errors.setdefault("code", []).append(_("This code is already used."))
    _raise_if(errors)
    group = UserGroup(code=code, name=name.strip(), agency=agency)
    db.session.add(group)
    db.session.flush()
    record_audit("group.create", "group", group.id, detail={"code": code}, user=actor)
    return group


def update_group(group: UserGroup, name: str, agency: Agency | None, is_active: bool, actor=None) -> UserGroup:
    errors: dict = {}
    _require(bool((name or "").strip()), errors, "name", _("Enter a name."))
    _raise_if(errors)
    changed = _changed(group, {"name": name.strip(), "agency_id": agency.id if agency else None,
                               "is_active": is_active})
    if changed:
        record_audit("group.update", "group", group.id, detail={"fields": changed}, user=actor)
    return group


# --- roles -------------------------------------------------------------------------

def _validate_role(name: str, scope: str, permissions: set[str], errors: dict) -> None:
    _require(bool((name or "").strip()), errors, "name", _("Enter a name."))
    _require(scope in SCOPES, errors, "scope", _("Choose one of: own, group, agency, all."))
    unknown = sorted(p for p in permissions if p not in CATALOGUE)
    _require(not unknown, errors, "permissions", _("Unknown permissions: %(names)s", names=", ".join(unknown)))


def create_role(code: str, name: str, scope: str, permissions: set[str], is_supervisor: bool = False,
                description: str = "", actor=None) -> Role:
    code = (code or "").strip().lower()
    ensure_may_grant(actor, permissions)
    errors: dict = {}
    _require(bool(CODE_RE.match(code)), errors, "code",
             _("Use lower-case letters, digits, dots, dashes or underscores."))
    if code and db.session.scalar(select(func.count()).where(Role.code == code)):
        errors.setdefault("code", []).append(_("This code is already used."))
    _validate_role(name, scope, permissions, errors)
    _raise_if(errors)
    role = Role(code=code, name=name.strip(), scope=scope, is_supervisor=is_supervisor,
                description=(description or "").strip())
    role.set_permissions(set(permissions))
    db.session.add(role)
    db.session.flush()
    record_audit("role.create", "role", role.id,
                 detail={"code": code, "scope": scope, "permissions": sorted(permissions)}, user=actor)
    return role


def update_role(role: Role, name: str, scope: str, permissions: set[str], is_supervisor: bool,
                description: str = "", actor=None) -> Role:
    ensure_may_grant(actor, set(permissions) | role.permissions, role)
    errors: dict = {}
    _validate_role(name, scope, permissions, errors)
    if {ROLES_MANAGE, USERS_MANAGE} & role.permissions and not {ROLES_MANAGE, USERS_MANAGE} <= set(permissions):
        # Keep a way back in: some active person must still manage both roles and users.
        _require(_managers_without(role) > 0, errors, "permissions",
                 _("Nobody else can manage roles and users: keep those permissions on this role."))
    _raise_if(errors)
    before = role.permissions
    changed = _changed(role, {"name": name.strip(), "scope": scope, "is_supervisor": is_supervisor,
                              "description": (description or "").strip()})
    role.set_permissions(set(permissions))
    added, removed = sorted(set(permissions) - before), sorted(before - set(permissions))
    if changed or added or removed:
        record_audit("role.update", "role", role.id,
                     detail={"fields": changed, "added": added, "removed": removed}, user=actor)
    return role


def _managers_without(role: Role) -> int:
    """Active users outside `role` whose role manages both roles and users."""
    managing = select(Role.id).where(Role.id != role.id,
                                     Role.permission_rows.any(permission=ROLES_MANAGE),
                                     Role.permission_rows.any(permission=USERS_MANAGE))
    return db.session.scalar(select(func.count(User.id)).where(User.is_active.is_(True),
                                                               User.role_id.in_(managing)))


# --- users -------------------------------------------------------------------------

def _validate_user_fields(full_name: str, email: str | None, locale: str, errors: dict) -> None:
    from flask import current_app
    _require(bool((full_name or "").strip()), errors, "full_name", _("Enter the person's full name."))
    _require(len(full_name or "") <= 200, errors, "full_name", _("Use at most 200 characters."))
    if email:
        _require("@" in email and len(email) <= 254 and " " not in email.strip(), errors, "email",
                 _("Enter a valid e-mail address."))
    _require(locale in current_app.config["LANGUAGES"], errors, "locale", _("Choose a language."))


def create_user(username: str, full_name: str, password: str, agency: Agency, role: Role,
                groups: list[UserGroup] | None = None, email: str | None = None, locale: str = "en",
                must_change_password: bool = True, actor=None) -> User:
    """Create an account. `password` is checked against the password rules (S8)."""
    username = (username or "").strip().lower()
    errors: dict = {}
    _require(bool(USERNAME_RE.match(username)), errors, "username",
             _("Use 2 to 64 lower-case letters, digits, dots, dashes, underscores or @."))
    if username and db.session.scalar(select(func.count()).where(User.username == username)):
        errors.setdefault("username", []).append(_("This username is taken."))
    _require(agency is not None, errors, "agency", _("Choose an agency."))
    _require(role is not None, errors, "role", _("Choose a role."))
    _validate_user_fields(full_name, email, locale, errors)
    _raise_if(errors)
    ensure_may_grant(actor, role.permissions)
    user = User(username=username, full_name=full_name.strip(), email=(email or "").strip() or None,
                agency=agency, role=role, locale=locale, password_hash="")
    user.groups = list(groups or [])
    from app.auth.operations import AuthError
    try:
        set_password(user, password)
    except AuthError as error:
        raise ValidationError({"password": [error.message]}) from error
    user.must_change_password = must_change_password
    db.session.add(user)
    db.session.flush()
    record_audit("user.create", "user", user.id,
                 detail={"role": role.code, "agency": agency.code, "groups": [g.code for g in user.groups]},
                 user=actor)
    return user


def update_user(user: User, full_name: str, email: str | None, agency: Agency, role: Role,
                groups: list[UserGroup], locale: str, is_active: bool, actor=None) -> User:
    errors: dict = {}
    _require(agency is not None, errors, "agency", _("Choose an agency."))
    _require(role is not None, errors, "role", _("Choose a role."))
    _validate_user_fields(full_name, email, locale, errors)
    if actor is not None and actor.id == user.id:
        # One's own reach (role, agency, groups) is always someone else's decision.
        _require(is_active, errors, "is_active", _("You cannot deactivate your own account."))
        _require(role.id == user.role_id, errors, "role", _("You cannot change your own role."))
        _require(agency.id == user.agency_id, errors, "agency", _("You cannot change your own agency."))
        _require({g.id for g in groups} == user.group_ids, errors, "groups",
                 _("You cannot change your own groups."))
    _raise_if(errors)
    ensure_may_manage(actor, user)
    if role.id != user.role_id:
        ensure_may_grant(actor, role.permissions)
    before_groups = {g.code for g in user.groups}
    changed = _changed(user, {"full_name": full_name.strip(), "email": (email or "").strip() or None,
                              "agency_id": agency.id, "role_id": role.id, "locale": locale,
                              "is_active": is_active})
    user.groups = list(groups)
    if before_groups != {g.code for g in groups}:
        changed.append("groups")
    if "is_active" in changed and not is_active:
        end_all_sessions(user, "deactivated")
    elif {"role_id", "agency_id", "groups"} & set(changed):
        end_all_sessions(user, "access_changed")  # log in again with the new reach
    if changed:
        detail = {"fields": changed}
        if "role_id" in changed:
            detail["role"] = role.code
        record_audit("user.update", "user", user.id, detail=detail, user=actor)
    return user


def admin_set_password(user: User, password: str, actor=None) -> None:
    """An administrator sets a temporary password; the user must change it at next login."""
    from app.auth.operations import AuthError
    ensure_may_manage(actor, user)
    try:
        set_password(user, password)
    except AuthError as error:
        raise ValidationError({"password": [error.message]}) from error
    user.must_change_password = True
    end_all_sessions(user, "password_reset")
    record_audit("user.password_set_by_admin", "user", user.id, user=actor)


def ensure_role(code: str, name: str, scope: str, is_supervisor: bool = False, description: str = "") -> Role:
    """Create a seeded role if missing and give it every catalogue permission meant for it."""
    role = db.session.execute(select(Role).where(Role.code == code)).scalar_one_or_none()
    defaults = CATALOGUE.defaults_for(code)
    if role is None:
        role = Role(code=code, name=name, scope=scope, is_supervisor=is_supervisor, description=description,
                    offered_permissions=[])
        db.session.add(role)
        db.session.flush()
    new = defaults - set(role.offered_permissions or [])
    if new:
        role.set_permissions(role.permissions | new)
        role.offered_permissions = sorted(set(role.offered_permissions or []) | defaults)
        record_audit("role.defaults_added", "role", role.id, detail={"added": sorted(new)})
    db.session.flush()
    return role


def create_user_reset_code(user: User, actor=None) -> str:
    """A one-time reset code for `user`, to hand over privately."""
    from app.auth.operations import create_reset_code
    ensure_may_manage(actor, user)
    return create_reset_code(user, created_by=actor)


def disable_user_second_factor(user: User, actor=None) -> None:
    """Turn off someone's second factor (a lost phone); their sessions end."""
    from app.auth.operations import disable_totp
    ensure_may_manage(actor, user)
    disable_totp(user, by=actor)
    end_all_sessions(user, "second_factor_reset")


def end_user_sessions(user: User, actor=None, keep_session_id: int | None = None) -> int:
    """An administrator logs a user out everywhere (a lost phone, a shared computer)."""
    ensure_may_manage(actor, user)
    count = end_all_sessions(user, "ended_by_admin", keep_session_id=keep_session_id)
    record_audit("user.sessions_ended", "user", user.id, detail={"count": count}, user=actor)
    return count
