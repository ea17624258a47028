"""Decisions on proposals: confirm supersedes, reject sticks, defer, undo, claims, races."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.extensions import db
from matching import operations as ops
from matching.models import MatchDecision, MatchProposal
from tests.test_matching_engine import proposals, register_child, search_for_child

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def people(make):
    agency = make.agency()
    group = make.group(agency=agency)
    return {"officer": make.user("tracing_officer", agency=agency, groups=[group]),
            "other_officer": make.user("tracing_officer", agency=agency, groups=[group]),
            "caseworker": make.user("caseworker", agency=agency, groups=[group]),
            "supervisor": make.user("supervisor", agency=agency, groups=[group])}


def two_candidates(people):
    child = register_child(people["caseworker"])
    namesake = register_child(people["caseworker"], name_first="Mohammed", age=10)
    trace = search_for_child(people["officer"])
    found = {p.case_id: p for p in proposals(trace_id=trace.id)}
    assert set(found) == {child.id, namesake.id}
    return trace, found[child.id], found[namesake.id]


def test_confirm_supersedes_the_others_and_marks_the_trace(people):
    trace, right, wrong = two_candidates(people)
    assert trace.tracing_status == "match_proposed"
    ops.confirm_match(right, people["officer"], "Mother recognised the photo")
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).status == "confirmed"
    assert db.session.get(MatchProposal, wrong.id).status == "superseded"
    assert right.trace.tracing_status == "match_confirmed"
    with pytest.raises(ops.DecisionError):
        ops.reject_match(db.session.get(MatchProposal, right.id), people["other_officer"], "different_child")


def test_reject_needs_a_reason_and_remembers_the_score(people):
    trace, right, wrong = two_candidates(people)
    with pytest.raises(ops.DecisionError):
        ops.reject_match(wrong, people["officer"], "")
    with pytest.raises(ops.DecisionError):
        ops.reject_match(wrong, people["officer"], "other", "")
    ops.reject_match(wrong, people["officer"], "sibling")
    db.session.commit()
    assert wrong.status == "rejected" and wrong.rejected_score == wrong.score
    actions = db.session.execute(select(MatchDecision.action).where(MatchDecision.proposal_id == wrong.id)).scalars()
    assert list(actions) == ["reject"]


def test_claims_keep_two_reviewers_apart(people):
    _trace, right, _wrong = two_candidates(people)
    assert ops.claim_proposal(right, people["officer"])
    assert not ops.claim_proposal(right, people["other_officer"])
    with pytest.raises(ops.DecisionError, match="Another reviewer"):
        ops.confirm_match(right, people["other_officer"])
    ops.defer_match(right, people["officer"], "Waiting for a photo from the camp")
    assert ops.claim_proposal(right, people["other_officer"])  # a deferral releases the claim


def test_undo_restores_the_superseded_proposals(people):
    trace, right, wrong = two_candidates(people)
    ops.confirm_match(right, people["officer"])
    db.session.commit()
    with pytest.raises(ops.DecisionError):
        ops.undo_decision(right, people["supervisor"], "")
    ops.undo_decision(right, people["supervisor"], "The mother was shown the wrong photo")
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).status == "pending"
    assert db.session.get(MatchProposal, wrong.id).status == "pending"
    assert right.trace.tracing_status == "match_proposed"


def test_two_reviewers_deciding_at_once_exactly_one_wins(app, make, committed):
    from app.jobs.operations import dispatch_committed_jobs
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite serialises every transaction; the race needs PostgreSQL (as in CI)")
    with app.app_context():
        agency = make.agency()
        officers = [make.user("tracing_officer", agency=agency) for _ in range(2)]
        caseworker = make.user("caseworker", agency=agency)
        db.session.commit()
        register_child(caseworker)
        trace = search_for_child(officers[0])
        dispatch_committed_jobs()
        proposal_id = proposals(trace_id=trace.id)[0].id
        officer_ids = [o.id for o in officers]
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(officer_id, confirm):
        with app.app_context():
            from app.users.models import User
            officer = db.session.get(User, officer_id)
            proposal = db.session.get(MatchProposal, proposal_id)
            barrier.wait()
            try:
                if confirm:
                    ops.confirm_match(proposal, officer)
                else:
                    ops.reject_match(proposal, officer, "different_child")
                db.session.commit()
                outcomes.append("won")
            except ops.DecisionError:
                db.session.rollback()
                outcomes.append("lost")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=decide, args=(officer_ids[0], True)),
               threading.Thread(target=decide, args=(officer_ids[1], False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    with app.app_context():
        decisions = db.session.execute(select(MatchDecision).where(MatchDecision.proposal_id == proposal_id)
                                       .where(MatchDecision.action.in_(("confirm", "reject")))).scalars().all()
        assert len(decisions) == 1
