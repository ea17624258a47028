"""JSON API for agencies, groups, users and roles (/api/v1/...).

Session authentication for now: a logged-in browser sends its CSRF token in the
X-CSRFToken header on POST and PATCH (checked by CSRFProtect). Not logged in:
401; lacking the permission: 403; unknown id: 404; bad input: 422 with
{"errors": {field: [messages]}}. Each handler parses, calls one operation
(which audits), and commits once.
"""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api import InvalidInput, created, json_body, load_input, page_of, unique_or_422
from app.extensions import db
from app.permissions import CATALOGUE, ROLES_MANAGE, USERS_MANAGE, require
from app.users import operations as ops
from app.users import schemas
from app.users.models import Agency, Role, User, UserGroup
from app.users.views import temporary_password_for

bp = Blueprint("users_api", __name__, url_prefix="/api/v1")


# --- helpers ---------------------------------------------------------------------

def _operation_errors(error: ops.ValidationError, renames: dict[str, str] | None = None) -> InvalidInput:
    """Operation field names (agency, role) as the API names them (agency_id, role_id)."""
    renames = renames or {}
    return InvalidInput({renames.get(key, key): value for key, value in error.errors.items()})


def _get_or_404(model, record_id: int):
    record = db.session.get(model, record_id)
    if record is None:
        abort(404)
    return record


def _reference(model, record_id, field: str, message: str):
    """Resolve an id given in the body; an unknown one is a 422 on that field."""
    if record_id is None:
        return None
    record = db.session.get(model, record_id)
    if record is None:
        raise InvalidInput({field: [message]})
    return record


# --- agencies --------------------------------------------------------------------

@bp.get("/agencies")
@require(USERS_MANAGE)
def list_agencies():
    return page_of(select(Agency).order_by(Agency.code), schemas.AgencySchema())


@bp.get("/agencies/<int:agency_id>")
@require(USERS_MANAGE)
def get_agency(agency_id: int):
    return jsonify(schemas.AgencySchema().dump(_get_or_404(Agency, agency_id)))


@bp.post("/agencies")
@require(USERS_MANAGE)
def create_agency():
    data = load_input(schemas.AgencyCreateSchema(), json_body())
    with unique_or_422("code", _("This code is already used.")):
        try:
            agency = ops.create_agency(data["code"], data["name"], actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error) from error
        db.session.commit()
    return created(schemas.AgencySchema().dump(agency), url_for(".get_agency", agency_id=agency.id))


@bp.patch("/agencies/<int:agency_id>")
@require(USERS_MANAGE)
def update_agency(agency_id: int):
    agency = _get_or_404(Agency, agency_id)
    data = load_input(schemas.AgencyUpdateSchema(), json_body())
    try:
        ops.update_agency(agency, data.get("name", agency.name), data.get("is_active", agency.is_active),
                          actor=current_user)
    except ops.ValidationError as error:
        raise _operation_errors(error) from error
    db.session.commit()
    return jsonify(schemas.AgencySchema().dump(agency))


# --- groups ----------------------------------------------------------------------

@bp.get("/groups")
@require(USERS_MANAGE)
def list_groups():
    return page_of(select(UserGroup).order_by(UserGroup.code), schemas.GroupSchema())


@bp.get("/groups/<int:group_id>")
@require(USERS_MANAGE)
def get_group(group_id: int):
    return jsonify(schemas.GroupSchema().dump(_get_or_404(UserGroup, group_id)))


@bp.post("/groups")
@require(USERS_MANAGE)
def create_group():
    data = load_input(schemas.GroupCreateSchema(), json_body())
    agency = _reference(Agency, data.get("agency_id"), "agency_id", _("Unknown agency."))
    with unique_or_422("code", _("This code is already used.")):
        try:
            group = ops.create_group(data["code"], data["name"], agency, actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error, {"agency": "agency_id"}) from error
        db.session.commit()
    return created(schemas.GroupSchema().dump(group), url_for(".get_group", group_id=group.id))


@bp.patch("/groups/<int:group_id>")
@require(USERS_MANAGE)
def update_group(group_id: int):
    group = _get_or_404(UserGroup, group_id)
    data = load_input(schemas.GroupUpdateSchema(), json_body())
    agency = (_reference(Agency, data["agency_id"], "agency_id", _("Unknown agency."))
              if "agency_id" in data else group.agency)
    try:
        ops.update_group(group, data.get("name", group.name), agency, data.get("is_active", group.is_active),
                         actor=current_user)
    except ops.ValidationError as error:
        raise _operation_errors(error, {"agency": "agency_id"}) from error
    db.session.commit()
    return jsonify(schemas.GroupSchema().dump(group))


# --- roles -----------------------------------------------------------------------

@bp.get("/permissions")
@require(ROLES_MANAGE)
def list_permissions():
    """The permission catalogue, for building a role."""
    definitions = [d for group in CATALOGUE.by_resource().values() for d in group]
    return jsonify({"items": schemas.PermissionSchema().dump(definitions, many=True)})


@bp.get("/roles")
@require(ROLES_MANAGE)
def list_roles():
    return page_of(select(Role).options(selectinload(Role.permission_rows)).order_by(Role.code),
                 schemas.RoleSchema())


@bp.get("/roles/<int:role_id>")
@require(ROLES_MANAGE)
def get_role(role_id: int):
    return jsonify(schemas.RoleSchema().dump(_get_or_404(Role, role_id)))


@bp.post("/roles")
@require(ROLES_MANAGE)
def create_role():
    data = load_input(schemas.RoleCreateSchema(), json_body())
    with unique_or_422("code", _("This code is already used.")):
        try:
            role = ops.create_role(data["code"], data["name"], data["scope"], set(data["permissions"]),
                                   is_supervisor=data.get("is_supervisor", False),
                                   description=data.get("description") or "", actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error) from error
        db.session.commit()
    return created(schemas.RoleSchema().dump(role), url_for(".get_role", role_id=role.id))


@bp.patch("/roles/<int:role_id>")
@require(ROLES_MANAGE)
def update_role(role_id: int):
    role = _get_or_404(Role, role_id)
    data = load_input(schemas.RoleUpdateSchema(), json_body())
    permissions = set(data["permissions"]) if "permissions" in data else role.permissions
    try:
        ops.update_role(role, data.get("name", role.name), data.get("scope", role.scope), permissions,
                        data.get("is_supervisor", role.is_supervisor),
                        data.get("description", role.description) or "", actor=current_user)
    except ops.ValidationError as error:
        raise _operation_errors(error) from error
    db.session.commit()
    return jsonify(schemas.RoleSchema().dump(role))


# --- users -----------------------------------------------------------------------

def _groups(ids: list[int]) -> list[UserGroup]:
    wanted = sorted(set(ids))
    found = db.session.execute(select(UserGroup).where(UserGroup.id.in_(wanted))).scalars().all() if wanted else []
    missing = sorted(set(wanted) - {group.id for group in found})
    if missing:
        raise InvalidInput({"group_ids": [_("Unknown groups: %(ids)s", ids=", ".join(map(str, missing)))]})
    return sorted(found, key=lambda group: group.name)


_USER_FIELDS = {"agency": "agency_id", "role": "role_id"}


@bp.get("/users")
@require(USERS_MANAGE)
def list_users():
    return page_of(select(User).options(selectinload(User.groups)).order_by(User.username), schemas.UserSchema())


@bp.get("/users/<int:user_id>")
@require(USERS_MANAGE)
def get_user(user_id: int):
    return jsonify(schemas.UserSchema().dump(_get_or_404(User, user_id)))


@bp.post("/users")
@require(USERS_MANAGE)
def create_user():
    """Create an account. Without a password in the body, a temporary one is generated and
    returned once as `temporary_password`; the user must change it at first login."""
    data = load_input(schemas.UserCreateSchema(), json_body())
    agency = _reference(Agency, data["agency_id"], "agency_id", _("Unknown agency."))
    role = _reference(Role, data["role_id"], "role_id", _("Unknown role."))
    groups = _groups(data.get("group_ids") or [])
    generated = None if data.get("password") else temporary_password_for(data["username"], data["full_name"],
                                                                          data.get("email"))
    with unique_or_422("username", _("This username is taken.")):
        try:
            user = ops.create_user(data["username"], data["full_name"], data.get("password") or generated,
                                   agency, role, groups, data.get("email"), data.get("locale") or "en",
                                   must_change_password=True, actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error, _USER_FIELDS) from error
        db.session.commit()
    body = schemas.UserSchema().dump(user)
    if generated:
        body["temporary_password"] = generated
    return created(body, url_for(".get_user", user_id=user.id))


@bp.patch("/users/<int:user_id>")
@require(USERS_MANAGE)
def update_user(user_id: int):
    user = _get_or_404(User, user_id)
    data = load_input(schemas.UserUpdateSchema(), json_body())
    agency = (_reference(Agency, data["agency_id"], "agency_id", _("Unknown agency."))
              if "agency_id" in data else user.agency)
    role = _reference(Role, data["role_id"], "role_id", _("Unknown role.")) if "role_id" in data else user.role
    groups = _groups(data["group_ids"]) if "group_ids" in data else list(user.groups)
    try:
        ops.update_user(user, data.get("full_name", user.full_name), data.get("email", user.email), agency, role,
                        groups, data.get("locale", user.locale), data.get("is_active", user.is_active),
                        actor=current_user)
    except ops.ValidationError as error:
        raise _operation_errors(error, _USER_FIELDS) from error
    db.session.commit()
    return jsonify(schemas.UserSchema().dump(user))

