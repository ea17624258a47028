"""The match review pages: the queue (scope, order, filters, claims), the side-by-side
comparison (S3, audit, keyboard legend), decisions through the browser, per-record panels
and supervisors' measures."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from matching.models import MatchDecision, MatchProposal
from tests.test_matching_engine import proposals, register_child, search_for_child

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def team(make, login_as):
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    db.session.commit()
    web, officer = login_as("tracing_officer", agency=agency, groups=[group])
    return {"agency": agency, "group": group, "caseworker": caseworker, "officer": officer, "web": web}


def two_candidates(team):
    """A trace with its true match (likely) and a namesake; returns (trace, right, wrong)."""
    child = register_child(team["caseworker"])
    namesake = register_child(team["caseworker"], name_first="Mohammed", age=10)
    trace = search_for_child(team["officer"])
    found = {p.case_id: p for p in proposals(trace_id=trace.id)}
    assert set(found) == {child.id, namesake.id}
    return trace, found[child.id], found[namesake.id]


def audit_count(action: str, resource_id=None) -> int:
    query = select(func.count(AuditEntry.id)).where(AuditEntry.action == action)
    if resource_id is not None:
        query = query.where(AuditEntry.resource_id == str(resource_id))
    return db.session.scalar(query)


def row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'href="/matches/(\d+)" data-queue-link', html)]


def test_queue_lists_pending_best_first_with_counts_and_names(team):
    _trace, right, wrong = two_candidates(team)
    page = team["web"].get("/matches")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    expected = [p.id for p in sorted((right, wrong), key=lambda p: -p.probability)]
    assert row_ids(html) == expected
    from matching.views import percent_text
    from markupsafe import escape
    assert f"{escape(percent_text(right.probability))}%" in html
    assert "100%" not in html  # never certain before verification
    assert right.trace.short_id in html and right.case.short_id in html
    assert "Muhammad Hassan" in html  # the registered child's name, readable by a tracing officer
    assert "Match review" in html  # the navigation entry
    assert audit_count("match.list") >= 1
    likely = [p for p in (right, wrong) if p.likelihood == "likely"]
    filtered = team["web"].get("/matches?likelihood=likely").get_data(as_text=True)
    assert row_ids(filtered) == [p.id for p in likely]


def test_queue_filters_by_sex_age_agency_and_date(team, make):
    _trace, right, wrong = two_candidates(team)
    web = team["web"]
    assert row_ids(web.get("/matches?sex=female").get_data(as_text=True)) == []
    assert set(row_ids(web.get("/matches?age_min=10&age_max=12").get_data(as_text=True))) == {wrong.id}
    assert row_ids(web.get(f"/matches?agency={make.agency().id}").get_data(as_text=True)) == []
    assert len(row_ids(web.get(f"/matches?agency={team['agency'].id}").get_data(as_text=True))) == 2
    assert row_ids(web.get("/matches?since=2999-01-01").get_data(as_text=True)) == []
    assert web.get("/matches?age_min=abc").status_code == 422
    assert web.get("/matches?agency=abc").status_code == 200


def test_another_agency_sees_nothing_and_gets_404(team, make, login_as):
    _trace, right, _wrong = two_candidates(team)
    other_web, _ = login_as("tracing_officer", agency=make.agency())
    assert row_ids(other_web.get("/matches").get_data(as_text=True)) == []
    assert other_web.get(f"/matches/{right.id}").status_code == 404
    assert other_web.form(f"/matches/{right.id}/confirm", {"note": "x"}).status_code == 404
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).status == "pending"
    assert audit_count("out_of_scope", right.id) >= 1


def test_reviewer_without_permission_gets_403(team, login_as):
    two_candidates(team)
    web, _ = login_as("caseworker", agency=team["agency"], groups=[team["group"]])
    assert web.get("/matches").status_code == 403


def test_opening_claims_and_a_claim_is_shown_and_respected(team, make, login_as):
    _trace, right, _wrong = two_candidates(team)
    page = team["web"].get(f"/matches/{right.id}")
    assert page.status_code == 200
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).claimed_by_id == team["officer"].id
    assert audit_count("match.view", right.id) == 1
    other_web, other = login_as("tracing_officer", agency=team["agency"], groups=[team["group"]],
                                full_name="Second Reviewer")
    queue = other_web.get("/matches").get_data(as_text=True)
    assert team["officer"].full_name in queue
    held = other_web.get(f"/matches/{right.id}").get_data(as_text=True)
    assert "is reviewing this proposal" in held and 'id="confirm-form"' not in held
    refused = other_web.form(f"/matches/{right.id}/confirm", {"note": ""})
    assert refused.status_code == 409 and "Another reviewer" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).status == "pending"


def test_comparison_marks_fields_explains_names_and_shows_the_legend(team):
    _trace, right, _wrong = two_candidates(team)
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "Mohamed" in html and "Muhammad" in html
    assert re.search(r"Mohamed and Muhammad (are spellings of the same name|sound the same)", html)
    assert "Ages agree once 2 years since separation are counted" in html
    assert "mark-exact" in html and "mark-similar" in html  # sex agrees exactly, names are similar
    assert "Aminah Yousef" in html and "Amina Yusuf" in html  # inquirer against the mother
    assert "Keyboard shortcuts" in html and "<kbd>j</kbd>" in html and "js/queue.js" in html
    for form_id in ("confirm-form", "reject-form", "defer-form"):
        assert f'id="{form_id}"' in html


def test_confirm_through_the_page_goes_to_the_next_item(team):
    trace, right, wrong = two_candidates(team)
    other_trace = search_for_child(team["officer"], name_first="Muhamad", inquirer="Fatima Ali")
    web = team["web"]
    web.get(f"/matches/{right.id}")
    response = web.form(f"/matches/{right.id}/confirm", {"note": "Mother recognised the photo"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(MatchProposal, right.id).status == "confirmed"
    assert db.session.get(MatchProposal, wrong.id).status == "superseded"
    remaining = [p.id for p in proposals(trace_id=other_trace.id) if p.status == "pending"]
    if remaining:
        assert re.search(r"/matches/(\d+)$", response.headers["Location"]).group(1) in map(str, remaining)
    else:
        assert response.headers["Location"].endswith("/matches")
    assert audit_count("match.confirm", right.id) == 1


def test_reject_needs_a_reason_then_sticks(team):
    _trace, right, wrong = two_candidates(team)
    web = team["web"]
    refused = web.form(f"/matches/{wrong.id}/reject", {"reason": "", "note": ""})
    assert refused.status_code == 422 and "Choose why this is not the child." in refused.get_data(as_text=True)
    other = web.form(f"/matches/{wrong.id}/reject", {"reason": "other", "note": ""})
    assert other.status_code == 422
    done = web.form(f"/matches/{wrong.id}/reject", {"reason": "sibling", "note": "His brother"})
    assert done.status_code == 302
    db.session.expire_all()
    stored = db.session.get(MatchProposal, wrong.id)
    assert stored.status == "rejected" and stored.decision_reason == "sibling"
    assert wrong.id not in row_ids(web.get("/matches").get_data(as_text=True))
    again = web.form(f"/matches/{wrong.id}/reject", {"reason": "sibling"})
    assert again.status_code == 409


def test_defer_keeps_it_pending_and_undo_is_for_supervisors(team, login_as):
    _trace, right, wrong = two_candidates(team)
    web = team["web"]
    assert web.form(f"/matches/{right.id}/defer", {"note": ""}).status_code == 422
    assert web.form(f"/matches/{right.id}/defer", {"note": "Waiting for a photo"}).status_code == 302
    db.session.expire_all()
    deferred = db.session.get(MatchProposal, right.id)
    assert deferred.status == "pending" and deferred.claimed_by_id is None
    assert web.form(f"/matches/{wrong.id}/reject", {"reason": "different_child"}).status_code == 302
    assert web.form(f"/matches/{wrong.id}/undo", {"reason": "wrong"}).status_code == 403
    supervisor_web, _ = login_as("supervisor", agency=team["agency"], groups=[team["group"]])
    page = supervisor_web.get(f"/matches/{wrong.id}").get_data(as_text=True)
    assert 'id="undo-reason"' in page
    assert supervisor_web.form(f"/matches/{wrong.id}/undo", {"reason": ""}).status_code == 422
    assert supervisor_web.form(f"/matches/{wrong.id}/undo", {"reason": "Not a sibling after all"}
                               ).status_code == 302
    db.session.expire_all()
    assert db.session.get(MatchProposal, wrong.id).status == "pending"
    actions = db.session.execute(select(MatchDecision.action).where(
        MatchDecision.proposal_id == wrong.id).order_by(MatchDecision.id)).scalars().all()
    assert actions == ["reject", "undo"]
    assert audit_count("match.undo", wrong.id) == 1 and audit_count("match.defer", right.id) == 1


def test_a_field_the_reviewer_may_not_read_never_appears(team, make, login_as):
    """S3 and minimisation: a reviewer of another agency who holds the trace sees the case's
    matching fields only, and no field their role may not read."""
    from forms.operations import readable_fields
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    db.session.commit()
    case = register_child(caseworker, caregiver_name="Sentinel Caregiver Zq")
    case.data = {**case.data, "protection_concerns_note_zq": "x"}
    db.session.commit()
    trace = search_for_child(team["officer"])
    proposal = proposals(trace_id=trace.id)[0]
    assert proposal.case_id == case.id
    html = team["web"].get(f"/matches/{proposal.id}").get_data(as_text=True)
    assert "Muhammad" in html  # the matching fields it may read
    assert f"/cases/{case.id}\"" not in html  # no link to the whole case out of scope
    # Take the name fields away from the role: they leave the page, explanations included.
    officer = team["officer"]
    name_keys = {"name_first", "name_last", "name_middle", "name_nickname", "name_other"}
    from unittest import mock
    real = readable_fields

    def without_names(user, record_type):
        keys = real(user, record_type)
        return keys - name_keys if record_type == "case" else keys

    with mock.patch("forms.operations.readable_fields", without_names):
        hidden = team["web"].get(f"/matches/{proposal.id}").get_data(as_text=True)
    assert "Muhammad" not in hidden and "Hassan" not in hidden
    assert officer.id


def test_per_record_panels_and_measures(team, login_as):
    trace, right, wrong = two_candidates(team)
    web = team["web"]
    trace_page = web.get(f"/traces/{trace.id}").get_data(as_text=True)
    assert 'id="match-proposals"' in trace_page and f"/matches/{right.id}" in trace_page
    supervisor_web, _ = login_as("supervisor", agency=team["agency"], groups=[team["group"]])
    case_page = supervisor_web.get(f"/cases/{right.case_id}").get_data(as_text=True)
    assert f"/matches/{right.id}" in case_page and trace.short_id in case_page
    web.form(f"/matches/{right.id}/confirm", {"note": ""})
    web.form(f"/matches/{wrong.id}/reject", {"reason": "sibling"})  # already superseded: refused
    measures = supervisor_web.get("/matches/measures")
    assert measures.status_code == 200
    html = measures.get_data(as_text=True)
    assert 'data-measure="confirmed">1<' in html and 'data-measure="queue_length">0<' in html
    assert web.get("/matches/measures").status_code == 403


def test_parents_counted_less_for_a_possible_sibling_are_explained(team):
    """A proposal whose parents' names were capped (own names differ) says why in plain words."""
    _trace, right, wrong = two_candidates(team)
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "brother or sister" not in html
    wrong.comparison = [{**item, "family_shared": True} if item["comparator"] == "mother_name" else item
                        for item in wrong.comparison] + [
        {"comparator": "mother_name", "level": "variant", "weight": 2.0, "similarity": 0.9, "family_shared": True}]
    db.session.commit()
    html = team["web"].get(f"/matches/{wrong.id}").get_data(as_text=True)
    assert "this may be a brother or sister, so the parents&#39; names count for less" in html


def test_a_fathers_name_found_in_the_childs_chain_is_explained(team):
    """The engine compares a father's name recorded on one side with the child's names after the
    own name on the other (chain naming): the comparison page says so in plain words."""
    _trace, right, _wrong = two_candidates(team)
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "in chain naming" not in html
    right.comparison = [item for item in right.comparison if item["comparator"] != "father_name"] + [
        {"comparator": "father_name", "level": "variant", "weight": 5.966, "similarity": 0.95,
         "compared_with": "child_name_chain"}]
    db.session.commit()
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "in chain naming, these are the father&#39;s and grandfather&#39;s names" in html


def test_more_than_two_names_agreeing_are_explained(team):
    """A whole-name weight raised because three of the child's names agree says so in plain words
    (in the reader's language)."""
    _trace, right, _wrong = two_candidates(team)
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "names agree, not only two" not in html
    right.comparison = [item for item in right.comparison if item["comparator"] != "names"] + [
        {"comparator": "names", "level": "variant", "weight": 8.951, "similarity": 0.95, "agreeing_names": 3}]
    db.session.commit()
    html = team["web"].get(f"/matches/{right.id}").get_data(as_text=True)
    assert "3 of the child&#39;s names agree, not only two" in html
