"""Referrals: consent (S6), supervisor approval (S5), the recipient's answer, done, revoke;
the recipient sees only the shared sections, only while the referral is active; every
forbidden transition refused; two supervisors deciding at once: exactly one wins."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.notifications.models import Notification
from app.permissions import NotPermitted
from app.records.models import RecordChange
from cases.operations import create_case
from workflows import operations as ops
from workflows.models import Referral

pytestmark = pytest.mark.usefixtures("default_forms")

SENTINEL_FAMILY = "Zubeida-Sentinel-Mother"


@pytest.fixture
def org(make):
    """A UNICEF-like team (caseworker, two supervisors) and a service provider in another agency."""
    home = make.agency()
    team = make.group(agency=home)
    other_team = make.group(agency=home)
    service = make.agency()
    legal = make.group(agency=service)
    people = {
        "home": home, "service": service, "team": team,
        "caseworker": make.user("caseworker", agency=home, groups=[team]),
        "supervisor": make.user("supervisor", agency=home, groups=[team]),
        "supervisor2": make.user("supervisor", agency=home, groups=[team]),
        "far_supervisor": make.user("supervisor", agency=home, groups=[other_team]),
        "provider": make.user("service_provider", agency=service, groups=[legal]),
        "provider2": make.user("service_provider", agency=service, groups=[legal]),
    }
    db.session.commit()
    return people


def child(owner, consent=True, **extra):
    values = {"name_first": "Amal", "name_last": "Haddad", "sex": "female", "age": 11,
              "mother_name": SENTINEL_FAMILY, "risk_level": "high",
              "consent_for_referral": consent}
    values.update(extra)
    case = create_case(owner, values)
    db.session.commit()
    return case


def refer(org, case, **kwargs):
    args = {"service_type": "legal", "recipient_agency_id": org["service"].id, "recipient_user_id": None,
            "sections": ["basic_identity", "protection"], "reason": "Needs legal aid for documents"}
    args.update(kwargs)
    referral = ops.refer_case(case, org["caseworker"], **args)
    db.session.commit()
    return referral


def notifications_of(user, kind=None):
    query = select(Notification).where(Notification.user_id == user.id)
    if kind:
        query = query.where(Notification.kind == kind)
    return db.session.execute(query).scalars().all()


def test_the_whole_path_notifies_at_each_step_and_keeps_history(org):
    case = child(org["caseworker"])
    referral = refer(org, case)
    assert referral.status == "pending_approval" and referral.consent_basis == "consent"
    # The supervisors of the caseworker's group are asked; the one of another group is not.
    assert notifications_of(org["supervisor"], "approval_requested")
    assert notifications_of(org["supervisor2"], "approval_requested")
    assert not notifications_of(org["far_supervisor"])
    # Not yet visible to the provider.
    assert not ops.is_referral_recipient(org["provider"], referral)
    ops.approve_referral(referral, org["supervisor"], "Fine")
    db.session.commit()
    assert referral.status == "sent"
    assert notifications_of(org["caseworker"], "approval_decided")
    assert notifications_of(org["provider"], "referral_received")
    assert notifications_of(org["provider2"], "referral_received")  # sent to the agency: all its receivers
    ops.accept_referral(referral, org["provider"])
    db.session.commit()
    assert referral.status == "accepted" and referral.recipient_user_id == org["provider"].id
    # Once one provider took it, the other no longer is a recipient.
    assert not ops.is_referral_recipient(org["provider2"], referral)
    with pytest.raises(NotPermitted):
        ops.complete_referral(referral, org["provider2"], "Done too")
    ops.complete_referral(referral, org["provider"], "Birth certificate obtained")
    db.session.commit()
    assert referral.status == "done"
    kinds = [n.message for n in notifications_of(org["caseworker"], "referral_answered")]
    assert len(kinds) == 2  # accepted, done
    actions = db.session.execute(select(RecordChange.action).where(
        RecordChange.record_id == case.id).order_by(RecordChange.id)).scalars().all()
    assert actions[-4:] == ["referral_requested", "referral_approved", "referral_accepted", "referral_done"]
    audited = db.session.execute(select(AuditEntry.action).where(AuditEntry.action.like("referral.%"))).scalars()
    assert {"referral.request", "referral.approve", "referral.accept", "referral.done"} <= set(audited)
    assert [e.action for e in ops.events_of("referral", referral.id)] == ["requested", "approved", "accepted", "done"]


def test_consent_is_needed_or_an_override_with_a_reason(org):
    case = child(org["caseworker"], consent=False)
    with pytest.raises(ops.WorkflowError) as refused:
        refer(org, case)
    assert "consent" in refused.value.errors
    db.session.rollback()
    # A supervisor may override, but only with a reason.
    with pytest.raises(ops.WorkflowError) as refused:
        ops.refer_case(case, org["supervisor"], service_type="health", recipient_agency_id=org["service"].id,
                       recipient_user_id=None, sections=["basic_identity"], reason="Clinic")
    assert "override_reason" in refused.value.errors
    db.session.rollback()
    referral = ops.refer_case(case, org["supervisor"], service_type="health", recipient_agency_id=org["service"].id,
                              recipient_user_id=None, sections=["basic_identity"], reason="Clinic",
                              override_reason="Urgent medical need, caregiver unreachable")
    assert referral.consent_basis == "override" and referral.override_reason.startswith("Urgent")


def test_bad_input_is_refused_field_by_field(org):
    case = child(org["caseworker"])
    with pytest.raises(ops.WorkflowError) as refused:
        ops.refer_case(case, org["caseworker"], service_type="spa", recipient_agency_id=org["service"].id,
                       recipient_user_id=None, sections=[], reason="")
    assert set(refused.value.errors) == {"service_type", "sections", "reason"}
    with pytest.raises(ops.WorkflowError) as refused:
        refer(org, case, recipient_user_id=org["supervisor"].id)  # not of the receiving agency
    assert "recipient_user_id" in refused.value.errors
    with pytest.raises(ops.WorkflowError) as refused:
        refer(org, case, sections=["no_such_section"])
    assert "sections" in refused.value.errors


def test_nobody_approves_their_own_referral(org):
    case = child(org["supervisor"])  # a supervisor's own case
    referral = ops.refer_case(case, org["supervisor"], service_type="legal", recipient_agency_id=org["service"].id,
                              recipient_user_id=None, sections=["basic_identity"], reason="Documents")
    db.session.commit()
    with pytest.raises(NotPermitted):
        ops.approve_referral(referral, org["supervisor"])
    with pytest.raises(NotPermitted):
        ops.reject_referral_approval(referral, org["supervisor"], "No")
    db.session.rollback()
    ops.approve_referral(referral, org["supervisor2"])
    db.session.commit()
    assert referral.status == "sent"


def test_forbidden_transitions(org):
    case = child(org["caseworker"])
    referral = refer(org, case)
    with pytest.raises(NotPermitted):  # not sent yet: no recipient
        ops.accept_referral(referral, org["provider"])
    ops.reject_referral_approval(referral, org["supervisor"], "Use the in-house lawyer")
    db.session.commit()
    assert referral.status == "approval_rejected"
    with pytest.raises(ops.WorkflowError) as refused:
        ops.approve_referral(referral, org["supervisor2"])
    assert refused.value.status == 409
    db.session.rollback()
    with pytest.raises(ops.WorkflowError):
        ops.revoke_referral(referral, org["caseworker"], "never mind")
    db.session.rollback()
    # Revoked before acceptance: the recipient can act on it no more and sees nothing.
    second = refer(org, case)
    ops.approve_referral(second, org["supervisor"])
    ops.revoke_referral(second, org["caseworker"], "Family moved")
    db.session.commit()
    with pytest.raises(ops.WorkflowError) as refused:
        ops.accept_referral(second, org["provider"])
    assert refused.value.status == 409
    db.session.rollback()
    assert ops.shared_values(second, org["provider"])[2] == {}
    assert notifications_of(org["provider"], "referral_revoked")
    # After acceptance the sender can no longer revoke; only the recipient marks it done.
    third = refer(org, case)
    ops.approve_referral(third, org["supervisor"])
    ops.accept_referral(third, org["provider"])
    db.session.commit()
    with pytest.raises(ops.WorkflowError):
        ops.revoke_referral(third, org["caseworker"], "too late")
    db.session.rollback()
    with pytest.raises(NotPermitted):
        ops.revoke_referral(third, org["supervisor"], "not the sender")
    with pytest.raises(ops.WorkflowError):
        ops.complete_referral(third, org["provider"], "")
    db.session.rollback()
    # A rejection needs a reason; rejecting a sent referral ends it.
    fourth = refer(org, case)
    ops.approve_referral(fourth, org["supervisor"])
    db.session.commit()
    with pytest.raises(ops.WorkflowError):
        ops.decline_referral(fourth, org["provider"], " ")
    db.session.rollback()
    ops.decline_referral(fourth, org["provider"], "No lawyer available this month")
    db.session.commit()
    assert fourth.status == "rejected"
    with pytest.raises(ops.WorkflowError):
        ops.accept_referral(fourth, org["provider"])


def test_closed_case_cannot_be_referred(org):
    from cases.operations import close_case
    case = child(org["caseworker"])
    close_case(case, org["caseworker"], "Reunified")
    db.session.commit()
    with pytest.raises(ops.WorkflowError) as refused:
        refer(org, case)
    assert refused.value.status == 409


# --- what the recipient sees (pages and API) ------------------------------------------------------

def approved_referral(org, **kwargs):
    case = child(org["caseworker"])
    referral = refer(org, case, **kwargs)
    ops.approve_referral(referral, org["supervisor"])
    db.session.commit()
    return case, referral


def test_recipient_sees_only_the_shared_sections_only_while_active(org, app):
    from tests.conftest import WebClient
    case, referral = approved_referral(org)
    web = WebClient(app.test_client())
    web.login(org["provider"].username)
    page = web.get(f"/referrals/{referral.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Amal" in html  # basic identity was shared
    assert SENTINEL_FAMILY not in html  # the family section was not shared
    # The case itself stays out of the provider's reach (S1), and so do its files and history.
    assert web.get(f"/cases/{case.id}").status_code in (403, 404)  # no cases:read at all: 403
    assert web.get(f"/cases/{case.id}/history").status_code in (403, 404)
    ops.decline_referral(referral, org["provider"], "Full")
    db.session.commit()
    html = web.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Amal" not in html and "only while the referral is active" in html
    assert db.session.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "referral.view_shared")).scalar() >= 1


def test_shared_family_section_is_shown_only_if_the_recipients_role_may_read_it(org):
    _case, referral = approved_referral(org, sections=["basic_identity", "family"])
    _definition, access, values = ops.shared_values(referral, org["provider"])
    # Service providers may not read the family section (form access), even when it is shared.
    assert "family" not in access.readable_sections and "mother_name" not in values
    assert values["name_first"] == "Amal"


def test_strangers_get_404_and_the_denial_is_audited(org, make, app):
    from tests.conftest import WebClient
    _case, referral = approved_referral(org, recipient_user_id=org["provider"].id)
    outsider = make.user("service_provider", agency=make.agency())
    colleague = org["provider2"]  # same agency, but the referral names another person
    db.session.commit()
    for user in (outsider, colleague, org["far_supervisor"]):
        web = WebClient(app.test_client())
        web.login(user.username)
        assert web.get(f"/referrals/{referral.id}").status_code == 404
        assert web.form(f"/referrals/{referral.id}/accept", token_from="/").status_code == 404
    assert db.session.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "out_of_scope", AuditEntry.resource_type == "referral")).scalar() >= 3
    db.session.refresh(referral)
    assert referral.status == "sent"


def test_pages_refer_approve_accept_done(org, app):
    from tests.conftest import WebClient
    case = child(org["caseworker"])
    caseworker = WebClient(app.test_client())
    caseworker.login(org["caseworker"].username)
    show = caseworker.get(f"/cases/{case.id}").get_data(as_text=True)
    assert f"/cases/{case.id}/refer" in show
    form = caseworker.get(f"/cases/{case.id}/refer")
    assert form.status_code == 200
    bad = caseworker.form(f"/cases/{case.id}/refer", {"service_type": "legal", "reason": ""}, token_from="/")
    assert bad.status_code == 422 and "Choose at least one section to share." in bad.get_data(as_text=True)
    done = caseworker.form(f"/cases/{case.id}/refer", {
        "service_type": "legal", "recipient_agency_id": str(org["service"].id), "sections": ["basic_identity"],
        "reason": "Documents"}, token_from="/")
    assert done.status_code == 302
    referral = db.session.execute(select(Referral).where(Referral.case_id == case.id)).scalar_one()
    # Without CSRF nothing happens (S7).
    supervisor = WebClient(app.test_client())
    supervisor.login(org["supervisor"].username)
    assert supervisor.post(f"/referrals/{referral.id}/approve", data={}).status_code == 400
    queue = supervisor.get("/referrals?box=approval").get_data(as_text=True)
    assert referral.id in queue
    assert referral.id in supervisor.get("/approvals").get_data(as_text=True)  # the supervisors' approval queue
    assert supervisor.form(f"/referrals/{referral.id}/approve", {"comment": ""}).status_code == 303
    provider = WebClient(app.test_client())
    provider.login(org["provider"].username)
    assert referral.id in provider.get("/referrals").get_data(as_text=True)
    assert provider.form(f"/referrals/{referral.id}/accept").status_code == 303
    assert provider.form(f"/referrals/{referral.id}/done", {"note": "Done"}).status_code == 303
    db.session.refresh(referral)
    assert referral.status == "done"
    # The caseworker cannot approve (403, audited) and the self-approval route is refused for the sender.
    assert caseworker.form(f"/referrals/{referral.id}/approve").status_code == 403
    history = caseworker.get(f"/cases/{case.id}/history").get_data(as_text=True)
    assert "Referral requested" in history and "Referral done" in history and "Waiting for approval" in history


def test_api_refer_approve_accept_with_contract(org, app, make):
    from app.openapi import openapi_document
    from tests.conftest import WebClient
    from tests.test_openapi import CheckedApi, Contract
    contract = Contract(openapi_document(app))

    def api_for(user):
        web = WebClient(app.test_client())
        web.login(user.username)
        return CheckedApi(contract, web.client, {"X-CSRFToken": web.csrf_token("/")})

    case = child(org["caseworker"])
    caseworker, supervisor, provider = (api_for(org[k]) for k in ("caseworker", "supervisor", "provider"))
    errors = caseworker.post(f"/api/v1/cases/{case.id}/referrals", {
        "service_type": "legal", "recipient_agency_id": org["service"].id, "sections": [], "reason": "x"},
        expect=422)["errors"]
    assert "sections" in errors
    assert "status" in caseworker.post(f"/api/v1/cases/{case.id}/referrals", {  # no mass assignment (S4)
        "service_type": "legal", "recipient_agency_id": org["service"].id, "sections": ["basic_identity"],
        "reason": "x", "status": "sent"}, expect=422)["errors"]
    body = caseworker.post(f"/api/v1/cases/{case.id}/referrals", {
        "service_type": "legal", "recipient_agency_id": org["service"].id, "sections": ["basic_identity"],
        "reason": "Documents"}, expect=201)
    referral_id = body["id"]
    assert body["status"] == "pending_approval" and body["shared_data"] is None
    caseworker.post(f"/api/v1/referrals/{referral_id}/approve", {}, expect=403)
    provider.get(f"/api/v1/referrals/{referral_id}", expect=404)
    assert [r["id"] for r in supervisor.get("/api/v1/referrals?box=approval")["items"]] == [referral_id]
    supervisor.post(f"/api/v1/referrals/{referral_id}/reject-approval", {}, expect=422)
    assert supervisor.post(f"/api/v1/referrals/{referral_id}/approve", {"comment": "ok"})["status"] == "sent"
    supervisor.post(f"/api/v1/referrals/{referral_id}/approve", {}, expect=409)
    seen = provider.get(f"/api/v1/referrals/{referral_id}")
    assert seen["shared_data"]["name_first"] == "Amal" and "mother_name" not in seen["shared_data"]
    assert seen["consent_basis"] is None  # the sender's side of the case is not the recipient's business
    assert [r["id"] for r in provider.get("/api/v1/referrals")["items"]] == [referral_id]
    provider.post(f"/api/v1/referrals/{referral_id}/reject", {}, expect=422)
    provider.post(f"/api/v1/referrals/{referral_id}/accept", {})
    provider.post(f"/api/v1/referrals/{referral_id}/done", {}, expect=422)
    assert provider.post(f"/api/v1/referrals/{referral_id}/done", {"note": "ok"})["status"] == "done"
    assert caseworker.get("/api/v1/referrals?box=sent")["items"][0]["status"] == "done"
    caseworker.post(f"/api/v1/referrals/{referral_id}/revoke", {"reason": "late"}, expect=409)
    caseworker.get("/api/v1/referrals?box=approval", expect=403)
    # A second referral, revoked by its sender.
    second = caseworker.post(f"/api/v1/cases/{case.id}/referrals", {
        "service_type": "health", "recipient_agency_id": org["service"].id, "sections": ["basic_identity"],
        "reason": "Clinic"}, expect=201)["id"]
    assert caseworker.post(f"/api/v1/referrals/{second}/revoke", {"reason": "Moved"})["status"] == "revoked"
    stranger = api_for(make.user("caseworker", agency=make.agency()))
    stranger.post(f"/api/v1/cases/{case.id}/referrals", {
        "service_type": "legal", "recipient_agency_id": org["service"].id, "sections": ["basic_identity"],
        "reason": "x"}, expect=404)


def test_two_supervisors_deciding_at_once_exactly_one_wins(app, make, committed, default_forms):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite serialises every transaction; the race needs PostgreSQL (as in CI)")
    with app.app_context():
        home, service = make.agency(), make.agency()
        team = make.group(agency=home)
        caseworker = make.user("caseworker", agency=home, groups=[team])
        supervisors = [make.user("supervisor", agency=home, groups=[team]) for _ in range(2)]
        make.user("service_provider", agency=service)
        db.session.commit()
        case = child(caseworker)
        referral = ops.refer_case(case, caseworker, service_type="legal", recipient_agency_id=service.id,
                                  recipient_user_id=None, sections=["basic_identity"], reason="Documents")
        db.session.commit()
        referral_id, supervisor_ids = referral.id, [s.id for s in supervisors]
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(supervisor_id, approve):
        with app.app_context():
            from app.users.models import User
            supervisor = db.session.get(User, supervisor_id)
            row = db.session.get(Referral, referral_id)
            barrier.wait()
            try:
                if approve:
                    ops.approve_referral(row, supervisor)
                else:
                    ops.reject_referral_approval(row, supervisor, "No")
                db.session.commit()
                outcomes.append("won")
            except ops.WorkflowError:
                db.session.rollback()
                outcomes.append("lost")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=decide, args=(supervisor_ids[0], True)),
               threading.Thread(target=decide, args=(supervisor_ids[1], False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    with app.app_context():
        events = ops.events_of("referral", referral_id)
        assert [e.action for e in events][0] == "requested" and len(events) == 2


def test_retention_clears_the_free_text_of_referrals_and_transfers(org, make):
    """Anonymising an old closed case (app.records.retention) clears what its referrals and transfers said."""
    from datetime import timedelta

    import time_machine

    from app.db import utcnow
    from app.records.retention import run_retention
    from cases.operations import close_case
    from workflows.models import Transfer, WorkflowEvent
    with time_machine.travel(utcnow() - timedelta(days=365 * 7), tick=False):
        case = child(org["caseworker"])
        referral = refer(org, case, reason="Amal needs a lawyer about her uncle")
        ops.reject_referral_approval(referral, org["supervisor"], "Amal's uncle is the problem")
        receiver = make.user("caseworker", agency=org["service"])
        transfer = ops.request_transfer(case, org["caseworker"], to_agency_id=org["service"].id,
                                        to_user_id=receiver.id, reason="Amal moved to her aunt")
        ops.decline_transfer(transfer, receiver, "Amal is not in our area")
        close_case(case, org["caseworker"], "Moved")
        db.session.commit()
    run_retention(make.user("administrator"))
    db.session.commit()
    db.session.expire_all()
    referral, transfer = db.session.get(Referral, referral.id), db.session.get(Transfer, transfer.id)
    texts = [referral.reason, referral.approval_comment, transfer.reason, transfer.answer_reason]
    texts += [e.comment for e in db.session.execute(select(WorkflowEvent)).scalars()]
    assert not any(text and "Amal" in text for text in texts)
    assert referral.status == "approval_rejected" and referral.service_type == "legal"  # counts survive


def test_the_override_reason_and_supervisor_comments_stay_on_the_senders_side(org, app):
    from app.openapi import openapi_document
    from tests.conftest import WebClient
    from tests.test_openapi import CheckedApi, Contract
    case = child(org["caseworker"], consent=False)
    referral = ops.refer_case(case, org["supervisor"], service_type="legal", recipient_agency_id=org["service"].id,
                              recipient_user_id=None, sections=["basic_identity"], reason="Documents",
                              override_reason="SECRET-OVERRIDE the uncle is suspected")
    db.session.commit()
    ops.approve_referral(referral, org["supervisor2"], "SECRET-COMMENT watch the uncle")
    db.session.commit()
    web = WebClient(app.test_client())
    web.login(org["provider"].username)
    html = web.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Amal" in html and "SECRET-" not in html
    api = CheckedApi(Contract(openapi_document(app)), web.client, {"X-CSRFToken": web.csrf_token("/")})
    assert "SECRET-" not in repr(api.get(f"/api/v1/referrals/{referral.id}"))
    assert "SECRET-" not in repr(api.get("/api/v1/referrals"))
    sender = WebClient(app.test_client())
    sender.login(org["supervisor"].username)
    assert "SECRET-OVERRIDE" in sender.get(f"/referrals/{referral.id}").get_data(as_text=True)


def test_consent_withdrawn_or_case_closed_while_waiting_stops_the_referral(org):
    from cases.operations import close_case, update_case
    case = child(org["caseworker"])
    referral = refer(org, case)
    update_case(case, org["caseworker"], {**case.data, "consent_for_referral": False}, case.version)
    db.session.commit()
    with pytest.raises(ops.WorkflowError) as refused:
        ops.approve_referral(referral, org["supervisor"])
    assert refused.value.status == 409 and "consent" in refused.value.errors
    db.session.rollback()
    other = child(org["caseworker"])
    second = refer(org, other)
    ops.approve_referral(second, org["supervisor"])
    close_case(other, org["caseworker"], "Moved away")
    db.session.commit()
    with pytest.raises(ops.WorkflowError) as refused:
        ops.accept_referral(second, org["provider"])
    assert refused.value.status == 409


def test_a_supervisor_does_not_approve_referrals_of_their_own_cases(org):
    """S5 as for case approvals: neither one's own request nor a case one owns; nor a case one does not supervise."""
    case = child(org["supervisor"])  # the supervisor's own case, referred by a colleague of the group
    referral = ops.refer_case(case, org["supervisor2"], service_type="legal", recipient_agency_id=org["service"].id,
                              recipient_user_id=None, sections=["basic_identity"], reason="Documents")
    db.session.commit()
    for user in (org["supervisor"], org["supervisor2"], org["far_supervisor"]):
        with pytest.raises(NotPermitted):
            ops.approve_referral(referral, user)
    assert not ops.may_decide_approval(org["supervisor"], referral)
