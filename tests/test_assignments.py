"""Reassigning cases (supervisors, "cases:assign"): one from the case page, many from the
list's checkboxes or the API; all or none when a case is outside the supervisor's scope;
the new owner's groups, history, audit and notification."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.notifications.models import Notification
from app.records.models import RecordChange
from cases.models import Case
from cases.operations import assignable_users, create_case
from tests.test_api_tokens import make_token
from tests.test_case_approvals import CHILD, web_as

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def team(make):
    agency = make.agency()
    north, south = make.group(agency=agency), make.group(agency=agency)
    people = {
        "caseworker": make.user("caseworker", agency=agency, groups=[north]),
        "newcomer": make.user("caseworker", agency=agency, groups=[north, south]),
        "south_worker": make.user("caseworker", agency=agency, groups=[south]),
        "supervisor": make.user("supervisor", agency=agency, groups=[north]),
        "tracer": make.user("tracing_officer", agency=agency, groups=[north]),
        "foreign_worker": make.user("caseworker", groups=[north]),  # another agency, same (cross-agency) group
        "north": north, "south": south, "agency": agency,
    }
    db.session.commit()
    return people


def cases_of(user, count=1) -> list[Case]:
    made = [create_case(user, dict(CHILD)) for _ in range(count)]
    db.session.commit()
    return made


def reload(case) -> Case:
    db.session.expire_all()
    return db.session.get(Case, case.id)


def test_who_can_receive_cases(team):
    names = {user.id for user in assignable_users(team["supervisor"])}
    # Caseworkers and supervisors of the supervisor's teams in their agency; not the tracing officer
    # (no cases:update), not the other team, not another agency.
    assert names == {team["caseworker"].id, team["newcomer"].id, team["supervisor"].id}


def test_one_case_from_the_case_page_moves_owner_groups_history_and_notifies(app, team):
    [case] = cases_of(team["caseworker"])
    supervisor = web_as(app, team["supervisor"])
    page = supervisor.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'id="assign"' in page and f'value="{team["newcomer"].id}"' in page
    assert 'id="assign"' not in web_as(app, team["caseworker"]).get(f"/cases/{case.id}").get_data(as_text=True)
    response = supervisor.form(f"/cases/{case.id}/assign", {"owner_id": str(team["newcomer"].id),
                                                           "note": "Caseload balance"}, token_from="/cases")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{case.id}#assign")
    case = reload(case)
    assert case.owner_id == team["newcomer"].id and case.version == 2
    # The case follows its new owner's teams: the south team's supervisor now sees it too.
    assert {g.id for g in case.groups} == {team["north"].id, team["south"].id}
    change = db.session.scalars(select(RecordChange).where(RecordChange.record_id == case.id,
                                                           RecordChange.action == "assign")).one()
    assert change.user_id == team["supervisor"].id and change.comment == "Caseload balance"
    assert {c["field"]: c["new"] for c in change.changes}["@owner"] == team["newcomer"].username
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.assign")).one()
    assert audit.resource_id == case.id and audit.detail == {"from": team["caseworker"].id,
                                                             "to": team["newcomer"].id}
    [note] = db.session.scalars(select(Notification).where(Notification.user_id == team["newcomer"].id)).all()
    assert (note.kind, note.params, note.record_id) == ("case_assigned", {"case": case.short_id}, case.id)
    # The former owner (caseworker scope: own cases) no longer sees it; the new one does.
    assert web_as(app, team["caseworker"]).get(f"/cases/{case.id}").status_code == 404
    assert web_as(app, team["newcomer"]).get(f"/cases/{case.id}").status_code == 200
    assert "Reassigned" in supervisor.get(f"/cases/{case.id}/history").get_data(as_text=True)


def test_many_from_the_list_checkboxes_with_one_notification(app, team):
    cases = cases_of(team["caseworker"], 3)
    supervisor = web_as(app, team["supervisor"])
    listing = supervisor.get("/cases").get_data(as_text=True)
    assert 'form="assign-form"' in listing and 'id="assign-form"' in listing
    assert 'form="assign-form"' not in web_as(app, team["caseworker"]).get("/cases").get_data(as_text=True)
    response = supervisor.client.post("/cases/assign", data={
        "case_ids": [c.id for c in cases], "owner_id": str(team["newcomer"].id),
        "csrf_token": supervisor.csrf_token("/cases")})
    assert response.status_code == 302
    assert {reload(c).owner_id for c in cases} == {team["newcomer"].id}
    notes = db.session.scalars(select(Notification).where(Notification.user_id == team["newcomer"].id)).all()
    assert [(n.kind, n.params) for n in notes] == [("case_assigned", {"count": "3"})]
    assert db.session.query(RecordChange).filter(RecordChange.action == "assign").count() == 3


def test_all_or_nothing_when_one_case_is_out_of_scope(app, team):
    mine = cases_of(team["caseworker"], 2)
    [elsewhere] = cases_of(team["south_worker"])
    supervisor = web_as(app, team["supervisor"])
    ids = [c.id for c in mine] + [elsewhere.id]
    response = supervisor.client.post("/cases/assign", data={
        "case_ids": ids, "owner_id": str(team["newcomer"].id), "csrf_token": supervisor.csrf_token("/cases")})
    assert response.status_code == 404
    token = {"Authorization": f"Bearer {make_token(supervisor)}"}
    api = app.test_client()
    answer = api.post("/api/v1/cases/assign", json={"case_ids": ids, "owner_id": team["newcomer"].id},
                      headers=token)
    assert answer.status_code == 404
    answer = api.post("/api/v1/cases/assign", json={"case_ids": [mine[0].id, str(uuid.uuid4())],
                                                    "owner_id": team["newcomer"].id}, headers=token)
    assert answer.status_code == 404
    assert {reload(c).owner_id for c in mine} == {team["caseworker"].id}
    assert reload(elsewhere).owner_id == team["south_worker"].id
    assert db.session.query(RecordChange).filter(RecordChange.action == "assign").count() == 0
    assert db.session.query(Notification).filter(Notification.kind == "case_assigned").count() == 0
    denial = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "out_of_scope",
                                                         AuditEntry.resource_type == "cases")).first()
    assert denial.detail["out_of_scope"] == 1 and denial.detail["asked"] == 3


def test_api_assign_answers_and_messages(app, team):
    cases = cases_of(team["caseworker"], 2)
    supervisor = web_as(app, team["supervisor"])
    token = {"Authorization": f"Bearer {make_token(supervisor)}"}
    api = app.test_client()

    def assign(body, headers=token):
        return api.post("/api/v1/cases/assign", json=body, headers=headers)

    assert assign({}).get_json()["errors"] == {"case_ids": ["This field is required."],
                                               "owner_id": ["This field is required."]}
    assert assign({"case_ids": [], "owner_id": 1}).get_json()["errors"] == {
        "case_ids": ["Send from 1 to 500 ids."]}
    assert assign({"case_ids": ["x"], "owner_id": 1}).get_json()["errors"] == {"case_ids": {"0": ["Enter a case id."]}}
    assert assign({"case_ids": [cases[0].id], "owner_id": 1, "groups": [1]}).get_json()["errors"] == {
        "groups": ["Unknown field."]}
    for outsider in ("south_worker", "foreign_worker", "tracer"):
        answer = assign({"case_ids": [cases[0].id], "owner_id": team[outsider].id})
        assert answer.status_code == 422 and answer.get_json()["errors"] == {
            "owner_id": ["Choose someone from your teams who works on cases."]}, outsider
    assert assign({"case_ids": [cases[0].id], "owner_id": 2**31 - 1}).status_code == 422
    answer = assign({"case_ids": [c.id for c in cases], "owner_id": team["newcomer"].id, "note": "Leave"})
    assert answer.status_code == 200
    assert answer.get_json() == {"assigned": 2, "case_ids": sorted(c.id for c in cases)}
    # Again: they already belong to the newcomer, nothing changes.
    assert assign({"case_ids": [c.id for c in cases], "owner_id": team["newcomer"].id}).get_json()["assigned"] == 0
    worker = web_as(app, team["caseworker"])
    worker_token = {"Authorization": f"Bearer {make_token(worker)}"}
    assert assign({"case_ids": [cases[0].id], "owner_id": team["caseworker"].id}, worker_token).status_code == 403
    assert worker.form(f"/cases/{cases[0].id}/assign", {"owner_id": str(team["caseworker"].id)},
                       token_from="/cases").status_code in (403, 404)
    assert {reload(c).owner_id for c in cases} == {team["newcomer"].id}
