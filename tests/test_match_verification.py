"""After confirmation: verification (how, by whom, outcome) and reunification, pages and API."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from matching import operations as ops
from matching.models import MatchDecision, MatchProposal, MatchReunification, MatchVerification
from tests.test_matching_engine import proposals, register_child, search_for_child

pytestmark = pytest.mark.usefixtures("default_forms")
TODAY = date.today()


@pytest.fixture
def scene(make, login_as):
    agency = make.agency()
    group = make.group(agency=agency)
    web, officer = login_as("tracing_officer", agency=agency, groups=[group])
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    db.session.commit()
    child = register_child(caseworker)
    namesake = register_child(caseworker, name_first="Mohammed", age=10)
    trace = search_for_child(officer)
    found = {p.case_id: p for p in proposals(trace_id=trace.id)}
    right, wrong = found[child.id], found[namesake.id]
    return {"web": web, "officer": officer, "agency": agency, "group": group, "trace": trace,
            "right": right, "wrong": wrong}


def confirm(scene):
    ops.confirm_match(scene["right"], scene["officer"])
    db.session.commit()
    return scene["right"]


def actions(proposal_id):
    return list(db.session.execute(select(MatchDecision.action).where(MatchDecision.proposal_id == proposal_id)
                                   .order_by(MatchDecision.id)).scalars())


def test_verified_then_reunified_moves_the_trace_to_reunified_and_it_can_be_closed(scene):
    from tracing.operations import change_trace_status
    proposal = confirm(scene)
    with pytest.raises(ops.FollowUpError) as refused:  # no reunification before verification
        ops.record_reunification(proposal, scene["officer"], TODAY, "Camp A", "Mother", TODAY)
    assert refused.value.status == 409
    db.session.rollback()
    verification = ops.verify_match(proposal, scene["officer"], ["child_interview", "photo_recognition"],
                                    "verified", "The child named his mother")
    db.session.commit()
    assert verification.methods == ["child_interview", "photo_recognition"]
    assert verification.verified_by_id == scene["officer"].id
    with pytest.raises(ops.FollowUpError) as twice:
        ops.verify_match(proposal, scene["officer"], ["documents"], "verified")
    assert twice.value.status == 409
    db.session.rollback()
    with pytest.raises(ops.FollowUpError) as bad:
        ops.record_reunification(proposal, scene["officer"], TODAY, "", " ", TODAY - timedelta(days=1))
    assert set(bad.value.errors) == {"place", "with_whom", "follow_up_due"}
    ops.record_reunification(proposal, scene["officer"], TODAY, "Camp A, block 4", "Amina Yusuf (mother)",
                             TODAY + timedelta(days=30))
    db.session.commit()
    db.session.expire_all()
    trace = proposal.trace
    assert trace.tracing_status == "reunified"
    assert actions(proposal.id) == ["confirm", "verify", "reunify"]
    audited = set(db.session.execute(select(AuditEntry.action).where(
        AuditEntry.resource_id == str(proposal.id))).scalars())
    assert {"match.verify", "match.reunify"} <= audited
    with pytest.raises(ops.DecisionError, match="reunified"):  # a reunification is not undone by a click
        ops.undo_decision(proposal, scene["officer"], "second thoughts")
    db.session.rollback()
    change_trace_status(trace, scene["officer"], "closed", "Reunified with the mother")
    db.session.commit()
    assert trace.tracing_status == "closed"


def test_failed_verification_rejects_the_pair_and_reopens_the_trace(scene):
    proposal = confirm(scene)
    assert db.session.get(MatchProposal, scene["wrong"].id).status == "superseded"
    with pytest.raises(ops.FollowUpError) as no_note:
        ops.verify_match(proposal, scene["officer"], ["inquirer_interview"], "failed", "")
    assert set(no_note.value.errors) == {"note"}
    ops.verify_match(proposal, scene["officer"], ["inquirer_interview"], "failed",
                     "The mother did not recognise the child")
    db.session.commit()
    db.session.expire_all()
    proposal = db.session.get(MatchProposal, proposal.id)
    assert proposal.status == "rejected" and proposal.decision_reason == "verification_failed"
    assert proposal.rejected_score == proposal.score
    assert actions(proposal.id)[-1] == "verify_failed"
    # The child is sought again: the look-alike set aside by the confirmation is back in the queue.
    assert db.session.get(MatchProposal, scene["wrong"].id).status == "pending"
    assert proposal.trace.tracing_status in ("in_progress", "match_proposed")
    with pytest.raises(ops.FollowUpError) as after:
        ops.record_reunification(proposal, scene["officer"], TODAY, "Camp", "Mother", TODAY)
    assert after.value.status == 409


def test_failed_verification_without_other_candidates_leaves_the_trace_in_progress(make):
    agency = make.agency()
    officer = make.user("tracing_officer", agency=agency)
    child = register_child(make.user("caseworker", agency=agency))
    trace = search_for_child(officer)
    proposal = proposals(trace_id=trace.id, case_id=child.id)[0]
    ops.confirm_match(proposal, officer)
    ops.verify_match(proposal, officer, ["documents"], "failed", "Birth certificate shows another child")
    db.session.commit()
    db.session.expire_all()
    assert proposal.trace.tracing_status == "in_progress"
    assert proposal.status == "rejected"


def test_verification_refused_on_a_pending_proposal(scene):
    web, pending = scene["web"], scene["right"]
    with pytest.raises(ops.FollowUpError) as refused:
        ops.verify_match(pending, scene["officer"], ["documents"], "verified")
    assert refused.value.status == 409
    db.session.rollback()
    response = web.form(f"/matches/{pending.id}/verification", {"methods": ["documents"], "outcome": "verified"})
    assert response.status_code == 409
    assert db.session.execute(select(MatchVerification)).first() is None


def test_permission_and_scope(scene, login_as, make):
    proposal = confirm(scene)
    caseworker_web, _ = login_as("caseworker", agency=scene["agency"], groups=[scene["group"]])
    body = {"methods": ["documents"], "outcome": "verified"}
    assert caseworker_web.form(f"/matches/{proposal.id}/verification", body).status_code == 403
    outsider_web, _ = login_as("tracing_officer", agency=make.agency())
    assert outsider_web.form(f"/matches/{proposal.id}/verification", body).status_code == 404
    token = outsider_web.csrf_token("/")
    assert outsider_web.client.post(f"/api/v1/matches/{proposal.id}/verification", json=body,
                                    headers={"X-CSRFToken": token}).status_code == 404
    assert db.session.execute(select(MatchVerification)).first() is None


def test_pages_show_the_forms_errors_per_field_and_the_records(scene):
    web = scene["web"]
    proposal = confirm(scene)
    page = web.get(f"/matches/{proposal.id}")
    assert b'id="verification-form"' in page.data and b'id="reunification-form"' not in page.data
    response = web.form(f"/matches/{proposal.id}/verification", {"outcome": "failed"})
    assert response.status_code == 422
    assert b'id="verify-methods-error"' in response.data and b'id="verify-note-error"' in response.data
    response = web.form(f"/matches/{proposal.id}/verification",
                        {"methods": ["child_interview", "documents"], "outcome": "verified", "note": "Agreed"})
    assert response.status_code == 302
    page = web.get(f"/matches/{proposal.id}")
    assert b'id="reunification-form"' in page.data and b"Interview of the child" in page.data
    response = web.form(f"/matches/{proposal.id}/reunification",
                        {"reunified_on": "not a date", "place": "", "with_whom": "Mother", "follow_up_due": ""})
    assert response.status_code == 422
    for name in (b"reunified_on", b"place", b"follow_up_due"):
        assert b'id="reunify-' + name + b'-error"' in response.data
    response = web.form(f"/matches/{proposal.id}/reunification", {
        "reunified_on": TODAY.isoformat(), "place": "Camp A", "with_whom": "Mother",
        "follow_up_due": (TODAY + timedelta(days=14)).isoformat()})
    assert response.status_code == 302
    page = web.get(f"/matches/{proposal.id}")
    assert b"Camp A" in page.data and b'id="reunification-form"' not in page.data
    db.session.expire_all()
    assert db.session.get(MatchProposal, proposal.id).trace.tracing_status == "reunified"


def test_api_verification_and_reunification(scene):
    web = scene["web"]
    headers = {"X-CSRFToken": web.csrf_token("/")}
    pending = scene["right"]
    path = f"/api/v1/matches/{pending.id}"
    good = {"methods": ["photo_recognition"], "outcome": "verified"}
    assert web.client.post(f"{path}/verification", json=good, headers=headers).status_code == 409
    confirm(scene)
    response = web.client.post(f"{path}/verification", json={"methods": ["telepathy"], "outcome": "maybe"},
                               headers=headers)
    assert response.status_code == 422 and set(response.get_json()["errors"]) == {"methods", "outcome"}
    early = {"reunified_on": TODAY.isoformat(), "place": "Camp", "with_whom": "Father",
             "follow_up_due": TODAY.isoformat()}
    assert web.client.post(f"{path}/reunification", json=early, headers=headers).status_code == 409
    response = web.client.post(f"{path}/verification", json=good, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["outcome"] == "verified" and response.get_json()["proposal_status"] == "confirmed"
    bad = dict(early, follow_up_due="2000-01-01")
    response = web.client.post(f"{path}/reunification", json=bad, headers=headers)
    assert response.status_code == 422 and set(response.get_json()["errors"]) == {"follow_up_due"}
    response = web.client.post(f"{path}/reunification", json=early, headers=headers)
    assert response.status_code == 201 and response.get_json()["place"] == "Camp"
    assert web.client.post(f"{path}/reunification", json=early, headers=headers).status_code == 409
    assert db.session.execute(select(MatchReunification)).scalars().one().verification_id
