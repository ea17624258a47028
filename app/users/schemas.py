"""Marshmallow schemas of the users API: one per use, explicit fields, unknown fields refused.

Input schemas list exactly what a client may set; anything else (password_hash,
is_totp_enabled, last_login_at, created_at, ...) is answered with 422 "Unknown
field" (S4). Output schemas never include a password or its hash.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.api import InputSchema, boolean, id_list, integer, messages, text

from app.users.models import SCOPES


# --- agencies --------------------------------------------------------------------

class AgencySchema(Schema):
    """An agency as the API returns it."""

    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class AgencyCreateSchema(InputSchema):
    code = text(32, required=True)
    name = text(200, required=True)


class AgencyUpdateSchema(InputSchema):
    name = text(200)
    is_active = boolean()


# --- groups ----------------------------------------------------------------------

class GroupSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    agency_id = fields.Integer(allow_none=True)
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class GroupCreateSchema(InputSchema):
    code = text(64, required=True)
    name = text(200, required=True)
    agency_id = integer(allow_none=True)  # null or absent: a cross-agency group


class GroupUpdateSchema(InputSchema):
    name = text(200)
    agency_id = integer(allow_none=True)
    is_active = boolean()


# --- roles -----------------------------------------------------------------------

class RoleSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    description = fields.String()
    scope = fields.String()
    is_supervisor = fields.Boolean()
    permissions = fields.Function(lambda role: sorted(role.permissions))
    created_at = fields.DateTime()


_scope = dict(validate=validate.OneOf(SCOPES, error=_l("Choose one of: own, group, agency, all.")))


class RoleCreateSchema(InputSchema):
    code = text(64, required=True)
    name = text(200, required=True)
    description = text(2000)
    scope = fields.String(required=True, error_messages=messages(invalid=_l("Enter text.")), **_scope)
    is_supervisor = boolean()
    permissions = fields.List(text(100), load_default=list, error_messages=messages(invalid=_l("Enter a list.")))


class RoleUpdateSchema(InputSchema):
    name = text(200)
    description = text(2000)
    scope = fields.String(error_messages=messages(invalid=_l("Enter text.")), **_scope)
    is_supervisor = boolean()
    permissions = fields.List(text(100), error_messages=messages(invalid=_l("Enter a list.")))


class PermissionSchema(Schema):
    name = fields.String()
    resource = fields.String()
    action = fields.String()
    label = fields.Function(lambda definition: str(definition.label))
    is_admin = fields.Boolean()


# --- users -----------------------------------------------------------------------

class UserSchema(Schema):
    """A user account as the API returns it: never the password or its hash."""

    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    email = fields.String(allow_none=True)
    agency_id = fields.Integer()
    role_id = fields.Integer()
    group_ids = fields.Function(lambda user: sorted(user.group_ids))
    locale = fields.String()
    is_active = fields.Boolean()
    must_change_password = fields.Boolean()
    is_totp_enabled = fields.Boolean()
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class UserCreateSchema(InputSchema):
    username = text(64, required=True)
    full_name = text(200, required=True)
    email = text(254, allow_none=True)
    agency_id = integer(required=True)
    role_id = integer(required=True)
    group_ids = id_list()
    locale = text(8)
    # Optional: without it a temporary password is generated and returned once.
    # Either way the user must choose their own at first login.
    password = text(1024)


class UserUpdateSchema(InputSchema):
    full_name = text(200)
    email = text(254, allow_none=True)
    agency_id = integer()
    role_id = integer()
    group_ids = id_list()
    locale = text(8)
    is_active = boolean()
