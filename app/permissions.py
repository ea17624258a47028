"""The one place that answers "may this user do this?" and "which records may they see?".

Permissions are "resource:action" strings held by roles. Each module registers
its own in the shared catalogue with `register_permission`, naming the seeded
roles that get it by default. A role's scope (own, group, agency, all) limits
which records its permissions reach; `scope_filter` turns that into SQL so
lists, searches and exports never load a record the user may not see, and
`get_in_scope_or_404` answers 404 (not 403) for records out of scope (S1).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from flask import abort, g, has_request_context
from werkzeug.exceptions import Forbidden
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from app.users.models import SCOPE_AGENCY, SCOPE_ALL, SCOPE_GROUP, SCOPE_OWN

ROLE_CASEWORKER = "caseworker"
ROLE_SUPERVISOR = "supervisor"
ROLE_TRACING_OFFICER = "tracing_officer"
ROLE_SERVICE_PROVIDER = "service_provider"
ROLE_ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class PermissionDef:
    resource: str
    action: str
    label: object  # a lazy string, translated when shown
    default_roles: tuple[str, ...] = ()
    is_admin: bool = False  # administrative permissions make a role an "administrator role" (S13)

    @property
    def name(self) -> str:
        return f"{self.resource}:{self.action}"


@dataclass
class Catalogue:
    entries: dict[str, PermissionDef] = field(default_factory=dict)

    def register(self, definition: PermissionDef) -> None:
        existing = self.entries.get(definition.name)
        if existing and existing != definition:
            raise ValueError(f"permission {definition.name} registered twice with different meaning")
        self.entries[definition.name] = definition

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def by_resource(self) -> dict[str, list[PermissionDef]]:
        grouped: dict[str, list[PermissionDef]] = {}
        for definition in sorted(self.entries.values(), key=lambda d: (d.resource, d.action)):
            grouped.setdefault(definition.resource, []).append(definition)
        return grouped

    def defaults_for(self, role_code: str) -> set[str]:
        return {name for name, d in self.entries.items() if role_code in d.default_roles}

    def admin_permissions(self) -> set[str]:
        return {name for name, d in self.entries.items() if d.is_admin}


CATALOGUE = Catalogue()


def register_permission(resource: str, action: str, label, roles: tuple[str, ...] = (),
                        is_admin: bool = False) -> str:
    definition = PermissionDef(resource, action, label, tuple(roles), is_admin)
    CATALOGUE.register(definition)
    return definition.name


# The platform's own permissions. Feature modules register theirs the same way.
USERS_MANAGE = register_permission(
    "users", "manage", _l("Manage users, agencies and groups"), (ROLE_ADMINISTRATOR,), is_admin=True)
ROLES_MANAGE = register_permission(
    "roles", "manage", _l("Manage roles and their permissions"), (ROLE_ADMINISTRATOR,), is_admin=True)
AUDIT_READ = register_permission(
    "audit", "read", _l("Read the audit trail"), (ROLE_ADMINISTRATOR,), is_admin=True)
JOBS_MANAGE = register_permission(
    "jobs", "manage", _l("See and retry background jobs"), (ROLE_ADMINISTRATOR,), is_admin=True)
API_TOKENS = register_permission(
    "api", "tokens", _l("Create personal API tokens (they act with the user's own permissions)"),
    (ROLE_CASEWORKER, ROLE_SUPERVISOR, ROLE_TRACING_OFFICER, ROLE_SERVICE_PROVIDER, ROLE_ADMINISTRATOR))
TEAM_READ = register_permission(
    "team", "read", _l("See the members of the groups one supervises"), (ROLE_SUPERVISOR,))


class NotPermitted(Forbidden):
    """Raised by operations when the actor may not do this to this target; answered 403 and audited."""

    def __init__(self, action: str, resource_type: str | None = None, resource_id=None):
        super().__init__()
        from app.audit.operations import record_denial
        record_denial(action, resource_type=resource_type, resource_id=resource_id)


def admin_permissions_of(role) -> set[str]:
    return (role.permissions if role else set()) & CATALOGUE.admin_permissions()


def is_admin_role(role) -> bool:
    return bool(role and role.permissions & CATALOGUE.admin_permissions())


def can(user, permission: str) -> bool:
    """May `user` use `permission` at all (before any record scope)?

    Requests authenticated with a personal API token never carry administrative
    permissions: administration needs a browser session (and its second factor).
    """
    definition = CATALOGUE.entries.get(permission)
    if definition is None:
        raise KeyError(f"unknown permission {permission!r}")
    if definition.is_admin and has_request_context() and g.get("api_token_id"):
        return False
    return bool(user and user.is_authenticated and user.is_active and user.can(permission))


def can_on_record(user, permission: str, record) -> bool:
    """May `user` use `permission` on this very record (permission and record scope)?"""
    return can(user, permission) and is_in_scope(user, record)


def require(permission: str):
    """View decorator: 403 unless the current user holds `permission`."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                from app.extensions import login_manager
                return login_manager.unauthorized()
            if not can(current_user, permission):
                from app.audit.operations import record_denial
                record_denial("permission_denied", detail={"permission": permission})
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# Extra visibility that later modules grant (e.g. an accepted referral lets its
# recipient see one case). Each extension returns a clause OR-ed into the scope.
ScopeExtension = Callable[[object, type], "ColumnElement[bool] | None"]
_scope_extensions: list[ScopeExtension] = []


def register_scope_extension(extension: ScopeExtension) -> None:
    _scope_extensions.append(extension)


def scope_filter(user, model) -> ColumnElement[bool]:
    """SQL clause selecting the records of `model` that `user` may see.

    A scoped model has `owner_id`, `agency_id` and a `groups` relationship to
    UserGroup (the owner's groups when the record was created).
    """
    if not (user and user.is_authenticated and user.is_active and user.role):
        return false()
    scope = user.role.scope
    if scope == SCOPE_ALL:
        return true()
    clauses: list[ColumnElement[bool]] = [model.owner_id == user.id]
    if scope == SCOPE_AGENCY:
        clauses.append(model.agency_id == user.agency_id)
    elif scope == SCOPE_GROUP:
        group_ids = sorted(group.id for group in user.groups if group.is_active)
        if group_ids:
            clauses.append(model.groups.any(model.groups.property.mapper.class_.id.in_(group_ids)))
    elif scope != SCOPE_OWN:
        return false()
    for extension in _scope_extensions:
        clause = extension(user, model)
        if clause is not None:
            clauses.append(clause)
    return or_(*clauses)


def is_in_scope(user, record) -> bool:
    """Whether `record` is visible to `user`, decided by the same SQL as lists."""
    from app.extensions import db
    model = type(record)
    query = select(model.id).where(model.id == record.id, scope_filter(user, model))
    return db.session.execute(query).first() is not None


def get_in_scope_or_404(model, record_id, user=None, permission: str | None = None, for_update: bool = False):
    """Load a record the user may see (and act on with `permission`), or refuse (S1).

    Without the permission at all: 403. Out of scope, or missing: 404, the two look
    the same from outside; both refusals are audited.
    """
    from app.audit.operations import record_denial
    from app.extensions import db
    user = user or current_user
    if permission is not None and not can(user, permission):
        record_denial("permission_denied", resource_type=model.__tablename__, resource_id=str(record_id),
                      detail={"permission": permission})
        abort(403)
    query = select(model).where(model.id == record_id, scope_filter(user, model))
    if for_update:
        query = query.with_for_update()
    record = db.session.execute(query).scalar_one_or_none()
    if record is None:
        record_denial("out_of_scope", resource_type=model.__tablename__, resource_id=str(record_id),
                      detail={"permission": permission} if permission else {})
        abort(404)
    return record
