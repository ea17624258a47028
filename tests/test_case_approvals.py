"""Supervisor approval of case plans and closures: the settings, every transition and every
refused one (self-approval S5, out of scope S1, wrong role, decided twice, cancelled,
a second request while one waits), the queue, notifications, history, audit, the API's
answers, and two supervisors deciding at once on PostgreSQL."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.notifications.models import Notification
from app.records.models import RecordChange
from cases import approvals
from cases.models import Case, CaseApproval
from cases.operations import create_case, update_case
from tests.test_api_tokens import make_token

pytestmark = pytest.mark.usefixtures("default_forms")

CHILD = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9, "consent_for_tracing": True}


@pytest.fixture
def team(make):
    """One agency with two teams; the north team has two caseworkers and two supervisors."""
    agency = make.agency()
    north, south = make.group(agency=agency), make.group(agency=agency)
    people = {
        "caseworker": make.user("caseworker", agency=agency, groups=[north]),
        "caseworker2": make.user("caseworker", agency=agency, groups=[north]),
        "supervisor": make.user("supervisor", agency=agency, groups=[north]),
        "supervisor2": make.user("supervisor", agency=agency, groups=[north]),
        "south_supervisor": make.user("supervisor", agency=agency, groups=[south]),
        "foreign_supervisor": make.user("supervisor", groups=[make.group()]),
        "admin": make.user("administrator", agency=agency),
        "agency": agency, "north": north, "south": south,
    }
    db.session.commit()
    return people


def turn_on(team, *types):
    for approval_type in types:
        approvals.set_approval_required(approval_type, True, team["admin"])
    db.session.commit()


def open_case(user, **extra):
    case = create_case(user, {**CHILD, **extra})
    db.session.commit()
    return case


def history(case) -> list[str]:
    return list(db.session.scalars(select(RecordChange.action).where(
        RecordChange.record_type == "case", RecordChange.record_id == case.id).order_by(RecordChange.id)))


def audit_actions(case_id) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == case_id)
                                   .order_by(AuditEntry.id)))


def notified(user, kind: str) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id,
                                                               Notification.kind == kind)))


def web_as(app, user):
    from tests.conftest import WebClient
    web = WebClient(app.test_client())
    web.login(user.username)
    return web


# --- settings ------------------------------------------------------------------------------------------

def test_types_are_off_until_an_administrator_turns_them_on(app, team):
    assert approvals.approval_settings() == {"case_plan": False, "closure": False}
    case = open_case(team["caseworker"])
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.request_approval(case, team["caseworker"], "closure", "Reunified")
    assert refused.value.status == 422 and "turned it off" in refused.value.message
    db.session.rollback()

    assert web_as(app, team["caseworker"]).get("/approvals/settings").status_code == 403
    admin = web_as(app, team["admin"])
    page = admin.get("/approvals/settings").get_data(as_text=True)
    assert 'value="closure"' in page and 'value="case_plan"' in page
    assert admin.form("/approvals/settings", {"required": "closure"}, token_from="/approvals/settings"
                      ).status_code == 302
    db.session.expire_all()
    assert approvals.approval_settings() == {"case_plan": False, "closure": True}
    audited = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "approval_settings.update")).all()
    assert [(e.resource_id, e.detail) for e in audited] == [("closure", {"is_required": True})]
    # Saving the same choice again changes (and audits) nothing.
    admin.form("/approvals/settings", {"required": "closure"}, token_from="/approvals/settings")
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "approval_settings.update")
                             .order_by(AuditEntry.id.desc())) == audited[0].id
    assert admin.form("/approvals/settings", {"required": "payment"}, token_from="/approvals/settings"
                      ).status_code == 400


# --- closure -------------------------------------------------------------------------------------------

def test_closure_waits_for_a_supervisor_then_closes_the_case(app, team):
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    worker = web_as(app, team["caseworker"])
    page = worker.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Ask a supervisor to approve the closure" in page and 'action="/cases/%s/close"' % case.id not in page
    # The direct close is refused while closure needs approval (page and operation alike).
    worker.form(f"/cases/{case.id}/close", {"reason": "Reunified"}, token_from="/cases")
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "open"

    worker.form(f"/cases/{case.id}/approvals", {"approval_type": "closure", "note": " "}, token_from="/cases")
    assert "Say why the case should be closed." in worker.get(f"/cases/{case.id}").get_data(as_text=True)
    assert db.session.scalars(select(CaseApproval).where(CaseApproval.case_id == case.id)).all() == []
    response = worker.form(f"/cases/{case.id}/approvals", {"approval_type": "closure",
                                                            "note": "Reunified with her mother"}, token_from="/cases")
    assert response.status_code == 302
    approval = db.session.scalars(select(CaseApproval).where(CaseApproval.case_id == case.id)).one()
    assert approval.status == "pending" and approval.requested_by_id == team["caseworker"].id
    assert "Cancel request" in worker.get(f"/cases/{case.id}").get_data(as_text=True)
    # Both supervisors of the case's team are told; the other team's supervisor is not.
    for name in ("supervisor", "supervisor2"):
        [note] = notified(team[name], "approval_requested")
        assert note.params == {"case": case.short_id} and note.url == "/approvals" and note.record_id == case.id
    assert notified(team["south_supervisor"], "approval_requested") == []

    supervisor = web_as(app, team["supervisor"])
    assert f'action="/approvals/{approval.id}/approve"' in supervisor.get(f"/cases/{case.id}").get_data(as_text=True)
    queue = supervisor.get("/approvals").get_data(as_text=True)
    assert case.short_id in queue and "Reunified with her mother" in queue
    assert supervisor.form(f"/approvals/{approval.id}/approve", {"comment": "Checked the follow-up visit"},
                           token_from="/approvals").status_code == 302
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    assert case.status == "closed" and case.closure_reason == "Reunified with her mother"
    approval = db.session.get(CaseApproval, approval.id)
    assert (approval.status, approval.decided_by_id, approval.decision_comment) == (
        "approved", team["supervisor"].id, "Checked the follow-up visit")
    assert history(case) == ["create", "approval_requested", "close", "approval_approved"]
    assert {"case.approval_requested", "case.close", "case.approval_approved"} <= set(audit_actions(case.id))
    [decided] = notified(team["caseworker"], "approval_decided")
    assert decided.params == {"case": case.short_id} and decided.url == f"/cases/{case.id}#approvals"
    assert "is approved" in decided.message
    assert f'id="approval-{approval.id}"' not in supervisor.get("/approvals").get_data(as_text=True)
    shown = supervisor.get(f"/cases/{case.id}/history").get_data(as_text=True)
    assert "Approval requested" in shown and "Approved by a supervisor" in shown


def test_rejection_needs_a_comment_and_leaves_the_case_open(app, team):
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    approval = approvals.request_approval(case, team["caseworker"], "closure", "Turned 18")
    db.session.commit()
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.decide_approval(approval, team["supervisor"], False, "  ")
    assert refused.value.status == 422 and refused.value.errors == {
        "comment": ["Say why the request is not approved."]}
    db.session.rollback()
    supervisor = web_as(app, team["supervisor"])
    supervisor.form(f"/approvals/{approval.id}/reject", {"comment": "Her 18th birthday is next month"},
                    token_from="/approvals")
    db.session.expire_all()
    assert db.session.get(CaseApproval, approval.id).status == "rejected"
    assert db.session.get(Case, case.id).status == "open"
    assert history(case)[-1] == "approval_rejected"
    change = db.session.scalars(select(RecordChange).where(RecordChange.record_id == case.id)
                                .order_by(RecordChange.id.desc())).first()
    assert change.comment == "Her 18th birthday is next month"
    assert change.changes == [{"field": "@approval_closure", "old": "pending", "new": "rejected"}]
    [decided] = notified(team["caseworker"], "approval_decided")
    assert "not approved" in decided.message
    # A new request may follow the rejection.
    approvals.request_approval(case, team["caseworker"], "closure", "Turned 18 now")
    db.session.commit()


def test_closure_request_needs_a_reason_and_an_open_case(team):
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.request_approval(case, team["caseworker"], "closure", "")
    assert refused.value.errors == {"note": ["Say why the case should be closed."]}
    db.session.rollback()
    approvals.set_approval_required("closure", False, team["admin"])
    from cases.operations import close_case
    close_case(case, team["caseworker"], "Reunified")
    approvals.set_approval_required("closure", True, team["admin"])
    db.session.commit()
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.request_approval(case, team["caseworker"], "closure", "Again")
    assert refused.value.status == 409 and refused.value.message == "This case is closed."


# --- case plan -----------------------------------------------------------------------------------------

def test_case_plan_approval_needs_a_plan_and_moves_the_case_to_services(team):
    turn_on(team, "case_plan")
    case = open_case(team["caseworker"])
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.request_approval(case, team["caseworker"], "case_plan")
    assert refused.value.status == 422 and "Write the case plan" in refused.value.message
    db.session.rollback()
    update_case(case, team["caseworker"], {"case_plan_goals": "Back to school; weekly PSS sessions"}, None)
    db.session.commit()
    approval = approvals.request_approval(case, team["caseworker"], "case_plan")
    db.session.commit()
    version = case.version
    approvals.decide_approval(approval, team["supervisor2"], True)
    db.session.commit()
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    assert case.workflow_stage == "services" and case.status == "open" and case.version == version + 1
    change = db.session.scalars(select(RecordChange).where(RecordChange.record_id == case.id)
                                .order_by(RecordChange.id.desc())).first()
    assert change.action == "approval_approved" and change.changes == [
        {"field": "@approval_case_plan", "old": "pending", "new": "approved"},
        {"field": "@workflow_stage", "old": "new", "new": "services"}]


# --- forbidden transitions ---------------------------------------------------------------------------

def test_nobody_approves_their_own_request_even_a_supervisor(app, make, team):
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    # A supervisor asks for the closure of a case of their team: they cannot approve it themselves.
    approval = approvals.request_approval(case, team["supervisor"], "closure", "Reunified")
    db.session.commit()
    supervisor = web_as(app, team["supervisor"])
    assert case.short_id not in supervisor.get("/approvals").get_data(as_text=True)
    assert supervisor.form(f"/approvals/{approval.id}/approve", {}, token_from="/approvals").status_code == 403
    assert supervisor.form(f"/approvals/{approval.id}/reject", {"comment": "x"},
                           token_from="/approvals").status_code == 403
    db.session.expire_all()
    assert db.session.get(CaseApproval, approval.id).status == "pending"
    denial = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "approval.self_decision")).first()
    assert denial is not None and denial.outcome != "success" and denial.resource_id == str(approval.id)

    # A caseworker whose role also holds the approval permission, on their own case.
    from app.users.operations import create_role
    both = create_role("caseworker_plus", "Caseworker who approves", "group",
                       {"cases:read", "cases:update", "cases:close", "cases:request_approval", "cases:approve"})
    dual = make.user(both, agency=team["agency"], groups=[team["north"]])
    db.session.commit()
    own_case, owned = open_case(team["caseworker"]), open_case(team["caseworker"])
    own_case.owner_id = owned.owner_id = dual.id  # their own cases (the form access is per seeded role)
    db.session.commit()
    own = approvals.request_approval(own_case, dual, "closure", "Done")
    db.session.commit()
    with pytest.raises(Exception) as refused:
        approvals.decide_approval(own, dual, True)
    assert getattr(refused.value, "code", None) == 403
    db.session.rollback()
    # Nor a request someone else made on a case they own.
    other = approvals.request_approval(owned, team["supervisor"], "closure", "Done")
    db.session.commit()
    assert web_as(app, dual).form(f"/approvals/{other.id}/approve", {}, token_from="/cases").status_code == 403
    db.session.expire_all()
    assert db.session.get(CaseApproval, other.id).status == "pending"


def test_out_of_scope_is_404_and_wrong_role_is_403(app, team):
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    approval = approvals.request_approval(case, team["caseworker"], "closure", "Reunified")
    db.session.commit()
    for name in ("south_supervisor", "foreign_supervisor"):
        web = web_as(app, team[name])
        assert case.short_id not in web.get("/approvals").get_data(as_text=True)
        assert web.form(f"/approvals/{approval.id}/approve", {}, token_from="/approvals").status_code == 404
    assert web_as(app, team["caseworker2"]).form(f"/approvals/{approval.id}/approve", {},
                                                 token_from="/cases").status_code == 403
    assert web_as(app, team["caseworker2"]).get("/approvals").status_code == 403
    assert web_as(app, team["supervisor"]).form("/approvals/99999/approve", {},
                                                token_from="/approvals").status_code == 404
    db.session.expire_all()
    assert db.session.get(CaseApproval, approval.id).status == "pending"
    denials = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.resource_type.in_(
        ("case_approvals", "cases")), AuditEntry.outcome != "success")))
    assert {"out_of_scope", "permission_denied"} <= denials


def test_seeing_a_case_through_something_else_is_not_supervising_it(team):
    """A supervisor who may read a case only through a scope extension (e.g. an accepted referral)
    neither finds it in their queue nor decides on it."""
    from app import permissions
    turn_on(team, "closure")
    case = open_case(team["caseworker"])
    approval = approvals.request_approval(case, team["caseworker"], "closure", "Reunified")
    db.session.commit()
    outsider = team["foreign_supervisor"]

    def referred(user, model):
        return Case.id == case.id if model is Case and user.id == outsider.id else None

    permissions.register_scope_extension(referred)
    try:
        assert permissions.is_in_scope(outsider, case)
        assert db.session.scalars(approvals.approval_queue(outsider)).all() == []
        with pytest.raises(Exception) as refused:
            approvals.decide_approval(approval, outsider, True)
        assert getattr(refused.value, "code", None) == 403
    finally:
        permissions._scope_extensions.remove(referred)
    db.session.rollback()
    assert db.session.get(CaseApproval, approval.id).status == "pending"


def test_decided_twice_cancelled_and_duplicate_requests_are_refused(app, team):
    turn_on(team, "closure", "case_plan")
    case = open_case(team["caseworker"], case_plan_goals="Family tracing")
    approval = approvals.request_approval(case, team["caseworker"], "case_plan")
    db.session.commit()
    # One waiting request per type; another type may wait beside it.
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.request_approval(case, team["caseworker2"], "case_plan")
    assert refused.value.status == 409 and "already waiting" in refused.value.message
    db.session.rollback()
    closure = approvals.request_approval(case, team["caseworker"], "closure", "Reunified")
    db.session.commit()

    approvals.decide_approval(approval, team["supervisor"], True)
    db.session.commit()
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.decide_approval(approval, team["supervisor2"], False, "No")
    assert refused.value.status == 409 and refused.value.message == (
        "Someone else decided this request first: it is approved.")
    db.session.rollback()
    with pytest.raises(approvals.ApprovalError):
        approvals.cancel_approval(approval, team["caseworker"])
    db.session.rollback()

    # Only the requester cancels; a cancelled request cannot be decided.
    assert web_as(app, team["supervisor2"]).form(f"/approvals/{closure.id}/cancel", {"back": "case"},
                                                 token_from="/cases").status_code == 403
    assert web_as(app, team["caseworker2"]).form(f"/approvals/{closure.id}/cancel", {"back": "case"},
                                                 token_from="/cases").status_code == 404  # not their case
    worker = web_as(app, team["caseworker"])
    assert worker.form(f"/approvals/{closure.id}/cancel", {"back": "case"}, token_from="/cases"
                       ).headers["Location"].endswith(f"/cases/{case.id}#approvals")
    db.session.expire_all()
    closure = db.session.get(CaseApproval, closure.id)
    assert closure.status == "cancelled" and closure.decided_by_id == team["caseworker"].id
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.decide_approval(closure, team["supervisor"], True)
    # (No rollback here: it would also undo the pages' work, nested in this test's transaction.)
    assert refused.value.message == "The request was cancelled by the person who made it."
    assert db.session.get(Case, case.id).status == "open"
    assert history(case) == ["create", "approval_requested", "approval_requested", "approval_approved",
                             "approval_cancelled"]
    # After the cancellation a new closure request is accepted.
    approvals.request_approval(db.session.get(Case, case.id), team["caseworker"], "closure", "Reunified")
    db.session.commit()


def test_queue_is_oldest_first_in_scope_and_never_ones_own(team, make):
    turn_on(team, "closure")
    first = open_case(team["caseworker"])
    second = open_case(team["caseworker2"])
    own = open_case(team["supervisor"])
    south_worker = make.user("caseworker", agency=team["agency"], groups=[team["south"]])
    db.session.commit()
    elsewhere = open_case(south_worker)
    for case, user in ((first, team["caseworker"]), (second, team["caseworker2"]), (own, team["supervisor"]),
                       (elsewhere, south_worker)):
        approvals.request_approval(case, user, "closure", "Reunified")
        db.session.commit()
    queue = db.session.scalars(approvals.approval_queue(team["supervisor"])).all()
    assert [a.case_id for a in queue] == [first.id, second.id]
    assert [a.case_id for a in db.session.scalars(approvals.approval_queue(team["supervisor2"]))] == [
        first.id, second.id, own.id]
    assert {u.id for u in approvals.supervisors_of(first)} == {team["supervisor"].id, team["supervisor2"].id}


# --- the API -------------------------------------------------------------------------------------------

def test_api_request_decide_cancel_and_messages(app, team):
    turn_on(team, "closure", "case_plan")
    case = open_case(team["caseworker"])
    worker_web = web_as(app, team["caseworker"])
    worker = app.test_client()
    token = {"Authorization": f"Bearer {make_token(worker_web)}"}
    path = f"/api/v1/cases/{case.id}/approvals"

    def post(client, url, body, headers=token):
        return client.post(url, json=body, headers=headers)

    assert post(worker, path, {}).get_json()["errors"] == {"approval_type": ["This field is required."]}
    assert post(worker, path, {"approval_type": "closure", "status": "approved"}).get_json()["errors"] == {
        "status": ["Unknown field."]}
    answer = post(worker, path, {"approval_type": "closure"})
    assert answer.status_code == 422 and answer.get_json()["errors"] == {
        "note": ["Say why the case should be closed."]}
    answer = post(worker, path, {"approval_type": "case_plan"})
    assert answer.status_code == 422 and answer.get_json()["errors"] == {"approval_type": [
        "Write the case plan (its goals or services) before asking for its approval."]}
    assert post(worker, f"/api/v1/cases/{case.id}/close", {"reason": "Reunified"}).get_json()["errors"] == {
        "status": ["Closing a case needs a supervisor's approval: ask for it in the case's Approvals panel."]}
    made = post(worker, path, {"approval_type": "closure", "note": "Reunified"})
    assert made.status_code == 201 and made.headers["Location"].endswith(path)
    body = made.get_json()
    assert body["status"] == "pending" and body["case_short_id"] == case.short_id and body["note"] == "Reunified"
    again = post(worker, path, {"approval_type": "closure", "note": "Reunified"})
    assert again.status_code == 409 and "already waiting" in again.get_json()["error"]["message"]
    listed = worker.get(path, headers=token).get_json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert worker.get("/api/v1/approvals", headers=token).status_code == 403
    assert post(worker, f"/api/v1/approvals/{body['id']}/approve", {}).status_code == 403

    supervisor_web = web_as(app, team["supervisor"])
    supervisor = app.test_client()
    sup_token = {"Authorization": f"Bearer {make_token(supervisor_web)}"}
    queue = supervisor.get("/api/v1/approvals?status=pending", headers=sup_token).get_json()
    assert [item["id"] for item in queue["items"]] == [body["id"]] and queue["total"] == 1
    assert supervisor.get("/api/v1/approvals?status=maybe", headers=sup_token).status_code == 422
    rejected = post(supervisor, f"/api/v1/approvals/{body['id']}/reject", {}, sup_token)
    assert rejected.status_code == 422 and rejected.get_json()["errors"] == {
        "comment": ["Say why the request is not approved."]}
    approved = post(supervisor, f"/api/v1/approvals/{body['id']}/approve", {"comment": "Fine"}, sup_token)
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert approved.get_json()["decided_by"]["id"] == team["supervisor"].id
    twice = post(supervisor, f"/api/v1/approvals/{body['id']}/reject", {"comment": "No"}, sup_token)
    assert twice.status_code == 409
    assert post(worker, f"/api/v1/approvals/{body['id']}/cancel", {}).status_code == 409
    assert supervisor.get("/api/v1/approvals?status=approved&type=closure", headers=sup_token
                          ).get_json()["total"] == 1
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "closed"
    out = web_as(app, team["south_supervisor"])
    assert post(app.test_client(), f"/api/v1/approvals/{body['id']}/approve", {},
                {"Authorization": f"Bearer {make_token(out)}"}).status_code == 404


def test_api_approval_types_for_administrators_with_a_session(app, team):
    admin = web_as(app, team["admin"])
    headers = {"X-CSRFToken": admin.csrf_token("/")}
    assert admin.get("/api/v1/approval-types").get_json()["items"] == [
        {"approval_type": "case_plan", "is_required": False}, {"approval_type": "closure", "is_required": False}]
    answer = admin.client.patch("/api/v1/approval-types/closure", json={"is_required": True}, headers=headers)
    assert answer.status_code == 200 and answer.get_json() == {"approval_type": "closure", "is_required": True}
    assert admin.client.patch("/api/v1/approval-types/closure", json={"is_required": "yes"},
                              headers=headers).status_code == 422
    assert admin.client.patch("/api/v1/approval-types/payment", json={"is_required": True},
                              headers=headers).status_code == 404
    worker = web_as(app, team["caseworker"])
    assert worker.client.patch("/api/v1/approval-types/closure", json={"is_required": False},
                               headers={"X-CSRFToken": worker.csrf_token("/")}).status_code == 403
    db.session.expire_all()
    assert approvals.approval_required("closure")


# --- the race ------------------------------------------------------------------------------------------

def test_two_supervisors_deciding_at_once_exactly_one_wins(app, make, committed):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite serialises every transaction; the race needs PostgreSQL (as in CI)")
    from forms.operations import load_default_configuration
    with app.app_context():
        load_default_configuration()
        agency = make.agency()
        group = make.group(agency=agency)
        worker = make.user("caseworker", agency=agency, groups=[group])
        supervisors = [make.user("supervisor", agency=agency, groups=[group]) for _ in range(2)]
        admin = make.user("administrator", agency=agency)
        approvals.set_approval_required("closure", True, admin)
        db.session.commit()
        case = create_case(worker, dict(CHILD))
        db.session.commit()
        approval_id = approvals.request_approval(case, worker, "closure", "Reunified").id
        db.session.commit()
        case_id, supervisor_ids = case.id, [s.id for s in supervisors]
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(supervisor_id, approve):
        with app.app_context(), app.test_request_context():
            from app.users.models import User
            supervisor = db.session.get(User, supervisor_id)
            approval = db.session.get(CaseApproval, approval_id)
            approval.case  # loaded before the race starts
            barrier.wait()
            try:
                approvals.decide_approval(approval, supervisor, approve, "" if approve else "Not yet")
                db.session.commit()
                outcomes.append("won")
            except approvals.ApprovalError as error:
                db.session.rollback()
                outcomes.append(("lost", error.status))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=decide, args=(supervisor_ids[0], True)),
               threading.Thread(target=decide, args=(supervisor_ids[1], False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == [("lost", 409), "won"]
    with app.app_context():
        approval = db.session.get(CaseApproval, approval_id)
        decisions = db.session.scalars(select(RecordChange.action).where(
            RecordChange.record_id == case_id, RecordChange.action.in_(("approval_approved", "approval_rejected"))
        )).all()
        assert len(decisions) == 1 and decisions[0] == f"approval_{approval.status}"
        assert db.session.get(Case, case_id).status == ("closed" if approval.status == "approved" else "open")
        assert len(db.session.scalars(select(Notification).where(Notification.kind == "approval_decided")).all()) == 1


def test_retention_clears_what_approvals_said(team):
    """Anonymising an old closed case (app.records.retention) clears the notes and comments of its approvals."""
    from datetime import timedelta

    import time_machine

    from app.db import utcnow
    from app.records.retention import run_retention
    turn_on(team, "closure")
    with time_machine.travel(utcnow() - timedelta(days=365 * 7), tick=False):
        case = open_case(team["caseworker"])
        request = approvals.request_approval(case, team["caseworker"], "closure", "Hodan went home to her aunt")
        approvals.decide_approval(request, team["supervisor"], True, "Hodan's aunt was visited")
        db.session.commit()
    run_retention(team["admin"])
    db.session.commit()
    db.session.expire_all()
    row = db.session.get(CaseApproval, request.id)
    assert row.request_note is None and row.decision_comment is None and row.status == "approved"
