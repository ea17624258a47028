"""CLI for agencies, groups, roles and users (readable errors, never a traceback)."""
from __future__ import annotations

import getpass
import secrets

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.auth.operations import end_all_sessions
from app.extensions import db
from app.permissions import CATALOGUE
from app.users import operations as ops
from app.users.models import SCOPES, Agency, Role, User, UserGroup


def _fail_on_validation(error: ops.ValidationError) -> None:
    db.session.rollback()
    lines = [f"  {field}: {' '.join(messages)}" for field, messages in error.errors.items()]
    raise click.ClickException("invalid values:\n" + "\n".join(lines))


def _one(model, code_column, value, what: str):
    row = db.session.execute(select(model).where(code_column == value.strip().lower())).scalar_one_or_none()
    if row is None:
        raise click.ClickException(f"no {what} with code {value!r}")
    return row


def _user(username: str) -> User:
    return _one(User, User.username, username, "user")


def generate_password() -> str:
    """A random passphrase that passes the password rules (for demo and first accounts)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    words = [w for w in FREQUENCY_LISTS["english_wikipedia"][2000:6000] if w.isalpha() and 4 <= len(w) <= 8]
    return "-".join(secrets.choice(words) for _ in range(3)) + f"-{secrets.randbelow(90) + 10}"


# --- agencies ----------------------------------------------------------------------

@click.group("agencies")
def agencies_group():
    """Manage agencies."""


@agencies_group.command("create")
@click.argument("code")
@click.argument("name")
@with_appcontext
def agency_create(code, name):
    try:
        agency = ops.create_agency(code, name)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"Agency {agency.code} created.")


@agencies_group.command("list")
@with_appcontext
def agency_list():
    for agency in db.session.execute(select(Agency).order_by(Agency.code)).scalars():
        click.echo(f"{agency.code:20} {'active' if agency.is_active else 'inactive':9} {agency.name}")


# --- groups ------------------------------------------------------------------------

@click.group("groups")
def groups_group():
    """Manage user groups (teams)."""


@groups_group.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--agency", "agency_code", help="Agency code (omit for a cross-agency group).")
@with_appcontext
def group_create(code, name, agency_code):
    agency = _one(Agency, Agency.code, agency_code, "agency") if agency_code else None
    try:
        group = ops.create_group(code, name, agency)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"Group {group.code} created.")


@groups_group.command("list")
@with_appcontext
def group_list():
    for group in db.session.execute(select(UserGroup).order_by(UserGroup.code)).scalars():
        agency = group.agency.code if group.agency else "-"
        click.echo(f"{group.code:24} {agency:12} {len(group.members):4} members  {group.name}")


# --- roles -------------------------------------------------------------------------

@click.group("roles")
def roles_group():
    """Manage roles and permissions."""


def _known_section_permissions() -> None:
    """Form-section permissions come from the form definitions (data): load them first."""
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)


@roles_group.command("list")
@with_appcontext
def role_list():
    for role in db.session.execute(select(Role).order_by(Role.code)).scalars():
        flags = " supervisor" if role.is_supervisor else ""
        click.echo(f"{role.code:20} scope={role.scope:7}{flags}")
        for permission in sorted(role.permissions):
            click.echo(f"    {permission}")


@roles_group.command("permissions")
@with_appcontext
def role_permissions():
    """List every permission in the catalogue."""
    for resource, definitions in CATALOGUE.by_resource().items():
        for definition in definitions:
            click.echo(f"{definition.name:32} {definition.label}")


@roles_group.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), default="own", show_default=True)
@click.option("--supervisor", is_flag=True, help="The role supervises the groups its users belong to.")
@click.option("--permission", "permissions", multiple=True, help="resource:action (repeatable).")
@with_appcontext
def role_create(code, name, scope, supervisor, permissions):
    _known_section_permissions()
    try:
        role = ops.create_role(code, name, scope, set(permissions), is_supervisor=supervisor)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"Role {role.code} created with {len(role.permissions)} permission(s).")


@roles_group.command("grant")
@click.argument("code")
@click.argument("permissions", nargs=-1, required=True)
@with_appcontext
def role_grant(code, permissions):
    _known_section_permissions()
    role = _one(Role, Role.code, code, "role")
    try:
        ops.update_role(role, role.name, role.scope, role.permissions | set(permissions), role.is_supervisor,
                        role.description)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"Role {role.code} now has {len(role.permissions)} permission(s).")


@roles_group.command("revoke")
@click.argument("code")
@click.argument("permissions", nargs=-1, required=True)
@with_appcontext
def role_revoke(code, permissions):
    _known_section_permissions()
    role = _one(Role, Role.code, code, "role")
    try:
        ops.update_role(role, role.name, role.scope, role.permissions - set(permissions), role.is_supervisor,
                        role.description)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"Role {role.code} now has {len(role.permissions)} permission(s).")


# --- users -------------------------------------------------------------------------

@click.group("users")
def users_group():
    """Manage user accounts."""


@users_group.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name.")
@click.option("--agency", "agency_code", required=True, help="Agency code.")
@click.option("--role", "role_code", required=True, help="Role code.")
@click.option("--group", "group_codes", multiple=True, help="Group code (repeatable).")
@click.option("--email", default=None)
@click.option("--locale", default="en", show_default=True)
@click.option("--password-prompt", is_flag=True, help="Type the password instead of generating one.")
@with_appcontext
def user_create(username, full_name, agency_code, role_code, group_codes, email, locale, password_prompt):
    """Create a user. A generated password is printed once; the user must change it at first login."""
    agency = _one(Agency, Agency.code, agency_code, "agency")
    role = _one(Role, Role.code, role_code, "role")
    groups = [_one(UserGroup, UserGroup.code, code, "group") for code in group_codes]
    password = getpass.getpass("Password: ") if password_prompt else generate_password()
    try:
        user = ops.create_user(username, full_name, password, agency, role, groups, email, locale,
                               must_change_password=not password_prompt)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo(f"User {user.username} created.")
    if not password_prompt:
        click.echo(f"Temporary password (shown once): {password}")


@users_group.command("list")
@with_appcontext
def user_list():
    for user in db.session.execute(select(User).order_by(User.username)).scalars():
        state = "active" if user.is_active else "inactive"
        click.echo(f"{user.username:24} {user.role.code:18} {user.agency.code:12} {state}")


@users_group.command("set-password")
@click.argument("username")
@with_appcontext
def user_set_password(username):
    """Type a new password for a user (they must change it at next login)."""
    user = _user(username)
    password = getpass.getpass("New password: ")
    try:
        ops.admin_set_password(user, password)
    except ops.ValidationError as error:
        _fail_on_validation(error)
    db.session.commit()
    click.echo("Password set; every session of the user has ended.")


@users_group.command("reset-code")
@click.argument("username")
@with_appcontext
def user_reset_code(username):
    """Make a one-time password reset code to hand to the user."""
    user = _user(username)
    code = ops.create_user_reset_code(user, actor=None)
    db.session.commit()
    click.echo(f"Reset code for {user.username} (single use, shown once): {code}")


@users_group.command("deactivate")
@click.argument("username")
@with_appcontext
def user_deactivate(username):
    user = _user(username)
    ops.update_user(user, user.full_name, user.email, user.agency, user.role, user.groups, user.locale,
                    is_active=False)
    db.session.commit()
    click.echo(f"User {user.username} deactivated; their sessions have ended.")


@users_group.command("end-sessions")
@click.argument("username")
@with_appcontext
def user_end_sessions(username):
    user = _user(username)
    count = end_all_sessions(user, "ended_by_admin")
    db.session.commit()
    click.echo(f"{count} session(s) ended.")
