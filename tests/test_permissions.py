"""The role x scope matrix (S1, S2) on a probe table shaped like every scoped record."""
from __future__ import annotations

import uuid

import pytest
from flask_login import login_user
from sqlalchemy import Column, Integer, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, foreign, mapped_column, relationship
from werkzeug.exceptions import NotFound

from app.audit.models import AuditEntry
from app.audit.operations import write_pending_denials
from app.extensions import db
from app.permissions import (
    CATALOGUE,
    can,
    get_in_scope_or_404,
    is_admin_role,
    register_permission,
    register_scope_extension,
    scope_filter,
)
from app.users.models import UserGroup


class ProbeBase(DeclarativeBase):
    pass


probe_groups = Table(
    "scope_probe_groups", ProbeBase.metadata,
    Column("record_id", String(36), primary_key=True),
    Column("group_id", Integer, primary_key=True),
)


class ScopeProbe(ProbeBase):
    """A record with the columns the permission module relies on: owner, agency, groups."""

    __tablename__ = "scope_probes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    owner_id: Mapped[int] = mapped_column(Integer)
    agency_id: Mapped[int] = mapped_column(Integer)
    groups = relationship(
        UserGroup, secondary=probe_groups, viewonly=True,
        primaryjoin=lambda: ScopeProbe.id == foreign(probe_groups.c.record_id),
        secondaryjoin=lambda: UserGroup.id == foreign(probe_groups.c.group_id))


@pytest.fixture
def world(make):
    """Three agencies; two groups in the first; users of each role; one record per caseworker."""
    ProbeBase.metadata.create_all(db.session.connection())
    a1, a2, a3 = make.agency(), make.agency(), make.agency()
    north, south = make.group(agency=a1), make.group(agency=a1)
    people = {
        "cw_north": make.user("caseworker", agency=a1, groups=[north]),
        "cw_north2": make.user("caseworker", agency=a1, groups=[north]),
        "cw_south": make.user("caseworker", agency=a1, groups=[south]),
        "cw_a2": make.user("caseworker", agency=a2),
        "cw_a3": make.user("caseworker", agency=a3),
        "sup_north": make.user("supervisor", agency=a1, groups=[north]),
        "tracer_a1": make.user("tracing_officer", agency=a1),
        "tracer_a2": make.user("tracing_officer", agency=a2),
        "admin": make.user("administrator", agency=a3),
        "provider": make.user("service_provider", agency=a3),
    }
    records = {}
    for name in ("cw_north", "cw_north2", "cw_south", "cw_a2", "cw_a3"):
        owner = people[name]
        record = ScopeProbe(owner_id=owner.id, agency_id=owner.agency_id)
        db.session.add(record)
        db.session.flush()
        for group in owner.groups:
            db.session.execute(probe_groups.insert().values(record_id=record.id, group_id=group.id))
        records[name] = record.id
    db.session.flush()
    return people, records


def visible(user) -> set[str]:
    return set(db.session.execute(select(ScopeProbe.id).where(scope_filter(user, ScopeProbe))).scalars())


@pytest.mark.parametrize("who, sees", [
    ("cw_north", {"cw_north"}),                                  # own
    ("cw_a2", {"cw_a2"}),
    ("sup_north", {"cw_north", "cw_north2"}),                    # group
    ("tracer_a1", {"cw_north", "cw_north2", "cw_south"}),        # agency
    ("tracer_a2", {"cw_a2"}),
    ("admin", {"cw_north", "cw_north2", "cw_south", "cw_a2", "cw_a3"}),  # all (scope, not permission)
    ("provider", set()),                                         # own, and owns nothing
])
def test_scope_matrix(world, who, sees):
    people, records = world
    assert visible(people[who]) == {records[name] for name in sees}


def test_inactive_users_and_users_without_role_see_nothing(world):
    people, _records = world
    people["admin"].is_active = False
    assert visible(people["admin"]) == set()


def test_out_of_scope_read_is_404_and_audited(app, world):
    people, records = world
    db.session.commit()  # the denial handler rolls back the failed request's work
    with app.test_request_context("/probe", environ_base={"REMOTE_ADDR": "10.2.3.4"}):
        login_user(people["cw_a2"])
        assert get_in_scope_or_404(ScopeProbe, records["cw_a2"]).id == records["cw_a2"]
        with pytest.raises(NotFound):
            get_in_scope_or_404(ScopeProbe, records["cw_north"])
        with pytest.raises(NotFound):  # missing and out of scope look the same
            get_in_scope_or_404(ScopeProbe, str(uuid.uuid4()))
        write_pending_denials()
    denials = db.session.execute(select(AuditEntry).where(
        AuditEntry.outcome == "denied", AuditEntry.user_id == people["cw_a2"].id)).scalars().all()
    assert [d.resource_id for d in denials][:1] == [records["cw_north"]]
    assert denials[0].action == "out_of_scope" and denials[0].address == "10.2.3.4"


def test_record_permission_is_checked_before_scope(app, world):
    from werkzeug.exceptions import Forbidden
    people, records = world
    db.session.commit()
    with app.test_request_context("/probe"):
        login_user(people["admin"])  # scope "all", but no case permission
        with pytest.raises(Forbidden):
            get_in_scope_or_404(ScopeProbe, records["cw_north"], permission="team:read")
        login_user(people["sup_north"])
        assert get_in_scope_or_404(ScopeProbe, records["cw_north"], permission="team:read")
        with pytest.raises(NotFound):
            get_in_scope_or_404(ScopeProbe, records["cw_a2"], permission="team:read")


def test_inactive_group_grants_no_scope(world):
    people, records = world
    supervisor = people["sup_north"]
    for group in supervisor.groups:
        group.is_active = False
    assert visible(supervisor) == set()


def test_scope_extension_grants_extra_records(world):
    people, records = world
    provider = people["provider"]
    shared = records["cw_a3"]

    def shared_with_provider(user, model):
        if model is ScopeProbe and user.id == provider.id:
            return ScopeProbe.id == shared
        return None

    register_scope_extension(shared_with_provider)
    try:
        assert visible(provider) == {shared}
    finally:
        from app import permissions
        permissions._scope_extensions.remove(shared_with_provider)


def test_permission_checks_and_catalogue(world):
    people, _ = world
    assert can(people["admin"], "users:manage")
    assert not can(people["cw_north"], "users:manage")
    assert is_admin_role(people["admin"].role) and not is_admin_role(people["sup_north"].role)
    with pytest.raises(KeyError):
        can(people["admin"], "no:such")
    with pytest.raises(ValueError):
        register_permission("users", "manage", "something else entirely", is_admin=False)
    assert "users:manage" in CATALOGUE.defaults_for("administrator")


def test_pages_deny_by_default(login_as):
    """Every registered admin endpoint refuses a caseworker."""
    web, _user = login_as("caseworker")
    from flask import current_app
    checked = 0
    for rule in current_app.url_map.iter_rules():
        if rule.rule.startswith("/admin") and "GET" in rule.methods and not rule.arguments:
            assert web.get(rule.rule).status_code in (403, 404), rule.rule
            checked += 1
    # The administration pages are registered by the users, audit and jobs modules.
    assert checked >= 4
