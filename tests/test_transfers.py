"""Transfers: consent (S6), ownership moves only on acceptance, rejection leaves the case where it
was, one pending transfer per case, strangers get 404, and the API keeps the same rules."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.notifications.models import Notification
from app.permissions import NotPermitted, is_in_scope
from app.records.models import RecordChange
from tests.test_referrals import child
from workflows import operations as ops

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def org(make):
    home, other = make.agency(), make.agency()
    team, far_team = make.group(agency=home), make.group(agency=other)
    people = {"home": home, "other": other,
              "caseworker": make.user("caseworker", agency=home, groups=[team]),
              "receiver": make.user("caseworker", agency=other, groups=[far_team]),
              "receiver2": make.user("caseworker", agency=other, groups=[far_team]),
              "provider": make.user("service_provider", agency=other)}
    db.session.commit()
    return people


def offer(org, case, **kwargs):
    args = {"to_agency_id": org["other"].id, "to_user_id": org["receiver"].id, "reason": "Family moved north"}
    args.update(kwargs)
    transfer = ops.request_transfer(case, org["caseworker"], **args)
    db.session.commit()
    return transfer


def test_accepting_moves_ownership_agency_and_groups(org):
    case = child(org["caseworker"])
    transfer = offer(org, case)
    assert case.owner_id == org["caseworker"].id  # nothing moves before the answer
    assert db.session.execute(select(Notification).where(
        Notification.user_id == org["receiver"].id, Notification.kind == "transfer_received")).first()
    version = case.version
    ops.accept_transfer(transfer, org["receiver"])
    db.session.commit()
    assert case.owner_id == org["receiver"].id and case.agency_id == org["other"].id
    assert [g.id for g in case.groups] == [g.id for g in org["receiver"].groups]
    assert case.version > version  # an edit based on the old version now conflicts (R1)
    assert is_in_scope(org["receiver"], case) and not is_in_scope(org["caseworker"], case)
    change = db.session.execute(select(RecordChange).where(
        RecordChange.record_id == case.id, RecordChange.action == "transfer_accepted")).scalar_one()
    assert change.changes[0]["new"] == org["receiver"].full_name
    assert db.session.execute(select(Notification).where(
        Notification.user_id == org["caseworker"].id, Notification.kind == "transfer_answered")).first()


def test_rejecting_leaves_the_case_and_needs_a_reason(org):
    case = child(org["caseworker"])
    transfer = offer(org, case)
    with pytest.raises(ops.WorkflowError):
        ops.decline_transfer(transfer, org["receiver"], "")
    db.session.rollback()
    ops.decline_transfer(transfer, org["receiver"], "No capacity")
    db.session.commit()
    assert transfer.status == "rejected" and case.owner_id == org["caseworker"].id
    with pytest.raises(ops.WorkflowError) as refused:
        ops.accept_transfer(transfer, org["receiver"])
    assert refused.value.status == 409


def test_rules_consent_one_pending_and_recipients(org):
    with pytest.raises(ops.WorkflowError) as refused:
        offer(org, child(org["caseworker"], consent=False))
    assert "consent" in refused.value.errors
    db.session.rollback()
    case = child(org["caseworker"])
    with pytest.raises(ops.WorkflowError) as refused:  # service providers do not receive cases
        offer(org, case, to_user_id=org["provider"].id)
    assert "to_user_id" in refused.value.errors
    db.session.rollback()
    transfer = offer(org, case)
    with pytest.raises(ops.WorkflowError) as refused:
        offer(org, case)
    assert refused.value.status == 409
    db.session.rollback()
    with pytest.raises(NotPermitted):  # named to someone else
        ops.accept_transfer(transfer, org["receiver2"])
    with pytest.raises(NotPermitted):
        ops.cancel_transfer(transfer, org["receiver"])
    ops.cancel_transfer(transfer, org["caseworker"], "Stayed after all")
    db.session.commit()
    assert transfer.status == "cancelled"
    # To the agency: whoever of its receivers accepts first takes the case.
    agency_wide = offer(org, case, to_user_id=None)
    ops.accept_transfer(agency_wide, org["receiver2"])
    db.session.commit()
    assert case.owner_id == org["receiver2"].id


def test_pages_and_api(org, app, make):
    from app.openapi import openapi_document
    from tests.conftest import WebClient
    from tests.test_openapi import CheckedApi, Contract
    contract = Contract(openapi_document(app))

    def login(user):
        web = WebClient(app.test_client())
        web.login(user.username)
        return web, CheckedApi(contract, web.client, {"X-CSRFToken": web.csrf_token("/")})

    case = child(org["caseworker"])
    sender_web, sender = login(org["caseworker"])
    assert sender_web.get(f"/cases/{case.id}/transfer").status_code == 200
    refused = sender_web.form(f"/cases/{case.id}/transfer", {"to_agency_id": str(org["other"].id), "reason": ""},
                              token_from="/")
    assert refused.status_code == 422
    sender.post(f"/api/v1/cases/{case.id}/transfers", {"to_agency_id": org["other"].id}, expect=422)
    body = sender.post(f"/api/v1/cases/{case.id}/transfers", {
        "to_agency_id": org["other"].id, "to_user_id": org["receiver"].id, "reason": "Moved"}, expect=201)
    transfer_id = body["id"]
    sender.post(f"/api/v1/cases/{case.id}/transfers", {
        "to_agency_id": org["other"].id, "reason": "Again"}, expect=409)
    receiver_web, receiver = login(org["receiver"])
    page = receiver_web.get(f"/transfers/{transfer_id}").get_data(as_text=True)
    assert case.short_id in page and "Amal" not in page  # no name before accepting
    assert [t["id"] for t in receiver.get("/api/v1/transfers")["items"]] == [transfer_id]
    assert transfer_id in receiver_web.get("/transfers").get_data(as_text=True)
    stranger_web, stranger = login(make.user("caseworker", agency=make.agency()))
    stranger.get(f"/api/v1/transfers/{transfer_id}", expect=404)
    stranger.post(f"/api/v1/transfers/{transfer_id}/accept", {}, expect=404)
    receiver.post(f"/api/v1/transfers/{transfer_id}/reject", {}, expect=422)
    assert receiver_web.form(f"/transfers/{transfer_id}/accept").status_code == 303
    assert receiver.get(f"/api/v1/transfers/{transfer_id}")["status"] == "accepted"
    assert receiver_web.get(f"/cases/{case.id}").status_code == 200
    assert sender_web.get(f"/cases/{case.id}").status_code == 404
    assert sender.get("/api/v1/transfers?box=sent")["items"][0]["status"] == "accepted"
    sender.post(f"/api/v1/transfers/{transfer_id}/cancel", {}, expect=409)
    # A second transfer, withdrawn by the new owner through the API.
    second = receiver.post(f"/api/v1/cases/{case.id}/transfers", {
        "to_agency_id": org["home"].id, "to_user_id": org["caseworker"].id, "reason": "Back"}, expect=201)["id"]
    assert receiver.post(f"/api/v1/transfers/{second}/cancel", {"reason": "No"})["status"] == "cancelled"


def test_a_transfer_offered_before_a_reassignment_cannot_take_the_case(org, make):
    from cases.operations import assign_cases
    case = child(org["caseworker"])
    transfer = offer(org, case)
    colleague = make.user("caseworker", agency=org["home"], groups=list(org["caseworker"].groups))
    supervisor = make.user("supervisor", agency=org["home"], groups=list(org["caseworker"].groups))
    db.session.commit()
    assign_cases([case], colleague, supervisor)
    db.session.commit()
    with pytest.raises(ops.WorkflowError) as refused:
        ops.accept_transfer(transfer, org["receiver"])
    assert refused.value.status == 409
    db.session.rollback()
    assert db.session.get(type(case), case.id).owner_id == colleague.id
