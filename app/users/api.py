"""JSON API for agencies, groups, users and roles (/api/v1/...).

Session authentication for now: a logged-in browser sends its CSRF token in the
X-CSRFToken header on POST and PATCH (checked by CSRFProtect). Not logged in:
401; lacking the permission: 403; unknown id: 404; bad input: 422 with
{"errors": {field: [messages]}}. Each handler parses, calls one operation
(which audits), and commits once.
"""
from __future__ import annotations

from contextlib import contextmanager

from flask import Blueprint, abort, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.permissions import CATALOGUE, ROLES_MANAGE, USERS_MANAGE, require
from app.users import operations as ops
from app.users import schemas
from app.users.models import Agency, Role, User, UserGroup
from app.users.views import temporary_password_for

bp = Blueprint("users_api", __name__, url_prefix="/api/v1")


# --- helpers ---------------------------------------------------------------------

class InvalidInput(Exception):
    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


@bp.errorhandler(InvalidInput)
def _invalid_input(error: InvalidInput):
    db.session.rollback()
    return jsonify({"errors": _plain(error.errors)}), 422


def _plain(errors):
    """Marshmallow and operation errors as plain JSON: {field: [messages]} (translated now)."""
    if isinstance(errors, dict):
        return {str(key): _plain(value) for key, value in errors.items()}
    if isinstance(errors, (list, tuple)):
        return [_plain(item) if isinstance(item, dict) else str(item) for item in errors]
    return [str(errors)]  # a single (lazy) message


def _load(schema: schemas.Schema, data) -> dict:
    try:
        return schema.load(data)
    except SchemaError as error:
        raise InvalidInput(error.messages) from error


def _json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput({"_schema": [_("Send a JSON object.")]})
    return data


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


def _page(query, schema: schemas.Schema):
    args = _load(schemas.PageArgsSchema(), request.args.to_dict())
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False, max_per_page=100)
    return jsonify({"items": schema.dump(page.items, many=True), "page": page.page,
                    "per_page": page.per_page, "pages": page.pages, "total": page.total})


@contextmanager
def _unique(field: str, message: str):
    """A unique value taken by a concurrent request (after the operation's own check) is a 422 on its field."""
    try:
        yield
    except IntegrityError as error:
        db.session.rollback()
        raise InvalidInput({field: [message]}) from error


def _created(body: dict, location: str):
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


# --- agencies --------------------------------------------------------------------

@bp.get("/agencies")
@require(USERS_MANAGE)
def list_agencies():
    return _page(select(Agency).order_by(Agency.code), schemas.AgencySchema())


@bp.get("/agencies/<int:agency_id>")
@require(USERS_MANAGE)
def get_agency(agency_id: int):
    return jsonify(schemas.AgencySchema().dump(_get_or_404(Agency, agency_id)))


@bp.post("/agencies")
@require(USERS_MANAGE)
def create_agency():
    data = _load(schemas.AgencyCreateSchema(), _json_body())
    with _unique("code", _("This code is already used.")):
        try:
            agency = ops.create_agency(data["code"], data["name"], actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error) from error
        db.session.commit()
    return _created(schemas.AgencySchema().dump(agency), url_for(".get_agency", agency_id=agency.id))


@bp.patch("/agencies/<int:agency_id>")
@require(USERS_MANAGE)
def update_agency(agency_id: int):
    agency = _get_or_404(Agency, agency_id)
    data = _load(schemas.AgencyUpdateSchema(), _json_body())
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
    return _page(select(UserGroup).order_by(UserGroup.code), schemas.GroupSchema())


@bp.get("/groups/<int:group_id>")
@require(USERS_MANAGE)
def get_group(group_id: int):
    return jsonify(schemas.GroupSchema().dump(_get_or_404(UserGroup, group_id)))


@bp.post("/groups")
@require(USERS_MANAGE)
def create_group():
    data = _load(schemas.GroupCreateSchema(), _json_body())
    agency = _reference(Agency, data.get("agency_id"), "agency_id", _("Unknown agency."))
    with _unique("code", _("This code is already used.")):
        try:
            group = ops.create_group(data["code"], data["name"], agency, actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error, {"agency": "agency_id"}) from error
        db.session.commit()
    return _created(schemas.GroupSchema().dump(group), url_for(".get_group", group_id=group.id))


@bp.patch("/groups/<int:group_id>")
@require(USERS_MANAGE)
def update_group(group_id: int):
    group = _get_or_404(UserGroup, group_id)
    data = _load(schemas.GroupUpdateSchema(), _json_body())
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
    return _page(select(Role).options(selectinload(Role.permission_rows)).order_by(Role.code),
                 schemas.RoleSchema())


@bp.get("/roles/<int:role_id>")
@require(ROLES_MANAGE)
def get_role(role_id: int):
    return jsonify(schemas.RoleSchema().dump(_get_or_404(Role, role_id)))


@bp.post("/roles")
@require(ROLES_MANAGE)
def create_role():
    data = _load(schemas.RoleCreateSchema(), _json_body())
    with _unique("code", _("This code is already used.")):
        try:
            role = ops.create_role(data["code"], data["name"], data["scope"], set(data["permissions"]),
                                   is_supervisor=data.get("is_supervisor", False),
                                   description=data.get("description") or "", actor=current_user)
        except ops.ValidationError as error:
            raise _operation_errors(error) from error
        db.session.commit()
    return _created(schemas.RoleSchema().dump(role), url_for(".get_role", role_id=role.id))


@bp.patch("/roles/<int:role_id>")
@require(ROLES_MANAGE)
def update_role(role_id: int):
    role = _get_or_404(Role, role_id)
    data = _load(schemas.RoleUpdateSchema(), _json_body())
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
    return _page(select(User).options(selectinload(User.groups)).order_by(User.username), schemas.UserSchema())


@bp.get("/users/<int:user_id>")
@require(USERS_MANAGE)
def get_user(user_id: int):
    return jsonify(schemas.UserSchema().dump(_get_or_404(User, user_id)))


@bp.post("/users")
@require(USERS_MANAGE)
def create_user():
    """Create an account. Without a password in the body, a temporary one is generated and
    returned once as `temporary_password`; the user must change it at first login."""
    data = _load(schemas.UserCreateSchema(), _json_body())
    agency = _reference(Agency, data["agency_id"], "agency_id", _("Unknown agency."))
    role = _reference(Role, data["role_id"], "role_id", _("Unknown role."))
    groups = _groups(data.get("group_ids") or [])
    generated = None if data.get("password") else temporary_password_for(data["username"], data["full_name"],
                                                                          data.get("email"))
    with _unique("username", _("This username is taken.")):
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
    return _created(body, url_for(".get_user", user_id=user.id))


@bp.patch("/users/<int:user_id>")
@require(USERS_MANAGE)
def update_user(user_id: int):
    user = _get_or_404(User, user_id)
    data = _load(schemas.UserUpdateSchema(), _json_body())
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
