"""`flask seed roles` and `flask seed demo`."""
from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.i18n import N_
from app.permissions import (
    ROLE_ADMINISTRATOR,
    ROLE_CASEWORKER,
    ROLE_SERVICE_PROVIDER,
    ROLE_SUPERVISOR,
    ROLE_TRACING_OFFICER,
)
from app.users import operations as ops
from app.users.cli import generate_password
from app.users.models import SCOPE_AGENCY, SCOPE_ALL, SCOPE_GROUP, SCOPE_OWN, Agency, User, UserGroup

# The seeded roles. Their permissions come from the catalogue (each module says which
# roles get each of its permissions by default); administrators can change them later.
# Names and descriptions are stored in English; N_ marks them for the translation
# catalogues, and pages show them translated while they keep these defaults (app.i18n.role_label).
DEFAULT_ROLES = (
    (ROLE_CASEWORKER, N_("Caseworker"), SCOPE_OWN, False,
     N_("Registers and follows their own cases, requests approvals, makes referrals.")),
    (ROLE_SUPERVISOR, N_("Supervisor"), SCOPE_GROUP, True,
     N_("Sees the cases of their groups, approves plans, closures and referrals, reassigns cases.")),
    (ROLE_TRACING_OFFICER, N_("Tracing officer"), SCOPE_AGENCY, False,
     N_("Registers tracing requests, reviews proposed matches, records verification and reunification.")),
    (ROLE_SERVICE_PROVIDER, N_("Service provider"), SCOPE_OWN, False,
     N_("Receives referrals and sees only what was shared with them.")),
    (ROLE_ADMINISTRATOR, N_("Administrator"), SCOPE_ALL, False,
     N_("Manages users, roles, agencies, forms and lookups; sees no case data unless granted.")),
)

DEMO_AGENCIES = (("unicef", "UNICEF"), ("save", "Save the Children"), ("irc", "International Rescue Committee"))
DEMO_GROUPS = (("north-camp", "North camp team", "unicef"), ("south-camp", "South camp team", "unicef"),
               ("save-field", "Save field team", "save"), ("irc-legal", "IRC legal services", "irc"))
# username, full name, role, agency, groups, locale
DEMO_USERS = (
    ("caseworker", "Amina Yusuf", ROLE_CASEWORKER, "unicef", ("north-camp",), "en"),
    ("caseworker2", "Jean Mukendi", ROLE_CASEWORKER, "unicef", ("south-camp",), "fr"),
    ("supervisor", "Hassan Ali", ROLE_SUPERVISOR, "unicef", ("north-camp",), "en"),
    ("tracer", "Layla Haddad", ROLE_TRACING_OFFICER, "unicef", ("north-camp",), "ar"),
    ("provider", "Grace Achieng", ROLE_SERVICE_PROVIDER, "irc", ("irc-legal",), "en"),
    ("admin", "Site Administrator", ROLE_ADMINISTRATOR, "unicef", (), "en"),
    ("save_caseworker", "Omar Farah", ROLE_CASEWORKER, "save", ("save-field",), "en"),
)


def seed_roles() -> None:
    for code, name, scope, is_supervisor, description in DEFAULT_ROLES:
        ops.ensure_role(code, name, scope, is_supervisor, description)


@click.group("seed")
def seed_group():
    """Load the default roles, or a whole demo organisation."""


@seed_group.command("roles")
@with_appcontext
def seed_roles_command():
    """Create the default roles (idempotent; adds new default permissions to them)."""
    seed_roles()
    db.session.commit()
    click.echo(f"{len(DEFAULT_ROLES)} default roles are in place.")


@seed_group.command("demo")
@with_appcontext
def seed_demo_command():
    """Demo agencies, groups and one user per role; prints their passwords (new ones each run)."""
    from flask import current_app

    from app.users.models import Role
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("flask seed demo resets demo accounts' passwords: it does not run in production.")
    seed_roles()
    agencies = {}
    for code, name in DEMO_AGENCIES:
        agencies[code] = (db.session.execute(select(Agency).where(Agency.code == code)).scalar_one_or_none()
                          or ops.create_agency(code, name))
    groups = {}
    for code, name, agency_code in DEMO_GROUPS:
        groups[code] = (db.session.execute(select(UserGroup).where(UserGroup.code == code)).scalar_one_or_none()
                        or ops.create_group(code, name, agencies[agency_code]))
    roles = {role.code: role for role in db.session.execute(select(Role)).scalars()}
    lines = []
    for username, full_name, role_code, agency_code, group_codes, locale in DEMO_USERS:
        password = generate_password()
        user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            ops.create_user(username, full_name, password, agencies[agency_code], roles[role_code],
                            [groups[c] for c in group_codes], locale=locale, must_change_password=False)
        else:
            ops.admin_set_password(user, password)
            user.must_change_password = False
        lines.append((username, roles[role_code].name, password))
    from app.seeding import run_demo_seeders
    summaries = run_demo_seeders()
    db.session.commit()
    # Matching jobs queued by the demo records: to the workers, or run here without Redis.
    from app.jobs.operations import dispatch_committed_jobs
    dispatch_committed_jobs()
    click.echo("Demo users (passwords are new at each run):")
    for username, role_name, password in lines:
        click.echo(f"  {username:16} {role_name:18} {password}")
    for summary in summaries:
        click.echo(summary)
