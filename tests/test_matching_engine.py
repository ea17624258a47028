"""The matching engine end to end: save, job, proposals, decisions kept, export."""
from __future__ import annotations

import csv
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.operations import dispatch_committed_jobs
from cases.models import Case
from cases.operations import create_case, update_case
from matching.models import MatchProposal
from tracing.operations import create_tracing_request

TWO_YEARS_AGO = (date.today() - timedelta(days=730)).isoformat()


pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def tracer(make):
    agency = make.agency()
    return make.user("tracing_officer", agency=agency), make.user("caseworker", agency=agency)


def register_child(caseworker, **data):
    values = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9,
              "mother_name": "Amina Yusuf", "consent_for_tracing": True}
    values.update(data)
    case = create_case(caseworker, values)
    db.session.commit()
    dispatch_committed_jobs()
    return case


def search_for_child(officer, relation="mother", inquirer="Aminah Yousef", consent=True, **trace):
    values = {"name_first": "Mohamed", "name_last": "Hasan", "sex": "male", "age": 7,
              "date_of_separation": TWO_YEARS_AGO}
    values.update(trace)
    request = create_tracing_request(officer, {"relation_name": inquirer, "relation": relation,
                                               "inquiry_date": date.today().isoformat(),
                                               "consent_for_tracing": consent}, [values])
    db.session.commit()
    dispatch_committed_jobs()
    return request.traces[0]


def proposals(**where):
    db.session.expire_all()
    query = select(MatchProposal)
    for key, value in where.items():
        query = query.where(getattr(MatchProposal, key) == value)
    return db.session.execute(query).scalars().all()


def test_a_transliterated_child_is_proposed_as_likely(tracer):
    officer, caseworker = tracer
    case = register_child(caseworker)
    trace = search_for_child(officer)
    found = proposals(trace_id=trace.id)
    assert [p.case_id for p in found] == [case.id]
    proposal = found[0]
    assert proposal.likelihood == "likely" and proposal.status == "pending"
    comparators = {item["comparator"]: item["level"] for item in proposal.comparison}
    assert comparators["names"] in ("variant", "phonetic")
    assert comparators["age"] in ("exact", "within_tolerance")  # 7 two years ago is about 9 now
    assert comparators["inquirer"] != "different"  # Aminah Yousef ~ the mother Amina Yusuf
    assert proposal.engine_version >= 1


def test_matching_runs_from_either_side(tracer):
    officer, caseworker = tracer
    trace = search_for_child(officer)
    assert proposals(trace_id=trace.id) == []
    case = register_child(caseworker)  # the case arrives after the trace
    assert [p.case_id for p in proposals(trace_id=trace.id)] == [case.id]


def test_sibling_ranks_below_the_child(tracer):
    officer, caseworker = tracer
    child = register_child(caseworker)
    sibling = register_child(caseworker, name_first="Ahmed", age=12)
    trace = search_for_child(officer)
    ranked = sorted(proposals(trace_id=trace.id), key=lambda p: -p.probability)
    assert ranked[0].case_id == child.id
    assert all(p.likelihood != "likely" for p in ranked if p.case_id == sibling.id)


def test_no_consent_no_proposal(tracer):
    officer, caseworker = tracer
    register_child(caseworker, consent_for_tracing=False)
    trace = search_for_child(officer)
    assert proposals(trace_id=trace.id) == []
    register_child(caseworker, name_first="Mohammed")
    trace2 = search_for_child(officer, consent=False)
    assert proposals(trace_id=trace2.id) == []


def test_rejected_pair_stays_rejected_until_a_relevant_change_scores_higher(app, tracer):
    from matching.engine import match_trace
    officer, caseworker = tracer
    case = register_child(caseworker, age=None)
    trace = search_for_child(officer)
    proposal = proposals(trace_id=trace.id)[0]
    proposal.status, proposal.rejected_score = "rejected", proposal.score
    db.session.commit()
    match_trace(trace, changed=False)  # a full re-match keeps the decision
    assert proposals(trace_id=trace.id)[0].status == "rejected"
    update_case(case, caseworker, {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male",
                                   "mother_name": "Amina Yusuf", "consent_for_tracing": True,
                                   "age": 9, "date_of_separation": TWO_YEARS_AGO}, case.version)
    db.session.commit()
    dispatch_committed_jobs()
    again = proposals(trace_id=trace.id)[0]
    assert again.status == "pending" and again.score > again.rejected_score


def test_confirmed_trace_stops_proposing(tracer):
    from matching.engine import match_trace
    officer, caseworker = tracer
    case = register_child(caseworker)
    trace = search_for_child(officer)
    proposal = proposals(trace_id=trace.id)[0]
    proposal.status = "confirmed"
    db.session.commit()
    register_child(caseworker, name_first="Mohammed")  # a namesake registered later
    match_trace(trace)
    assert {p.case_id for p in proposals(trace_id=trace.id)} == {case.id}


def test_proposals_survive_a_full_rematch_and_export(app, tracer, tmp_path):
    officer, caseworker = tracer
    register_child(caseworker)
    search_for_child(officer)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["matching", "run"])
    assert result.exit_code == 0, result.output
    assert "pending proposal" in result.output
    assert db.session.scalar(select(func.count(MatchProposal.id))) == 1
    output = tmp_path / "proposals.csv"
    result = runner.invoke(args=["matching", "export", "--output", str(output)])
    assert result.exit_code == 0, result.output
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["trace_id", "trace_source_id", "case_id", "case_source_id", "score", "probability",
                             "likelihood", "status"]
    assert rows[0]["likelihood"] == "likely"


def test_saving_through_redis_queues_matching_once(app, tracer, redis_jobs):
    from rq import SimpleWorker

    from app.jobs.models import JobRecord
    officer, caseworker = tracer
    case = create_case(caseworker, {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9,
                                    "consent_for_tracing": True})
    for age in (10, 11):  # saved three times quickly: one matching job
        update_case(case, caseworker, {**case.data, "age": age}, case.version)
    db.session.commit()
    assert db.session.scalar(select(func.count(JobRecord.id)).where(
        JobRecord.dedupe_key == f"match:case:{case.id}")) == 1
    case_id = case.id
    dispatch_committed_jobs()
    SimpleWorker([redis_jobs], connection=redis_jobs.connection).work(burst=True)
    assert db.session.execute(select(JobRecord.status).where(
        JobRecord.dedupe_key == f"match:case:{case_id}")).scalar_one() == "done"


def test_saving_with_redis_down_still_works_and_matching_catches_up(app, tracer, redis_down):
    from app.jobs.models import JobRecord
    officer, caseworker = tracer
    case = register_child(caseworker)
    assert db.session.get(Case, case.id) is not None
    job = db.session.execute(select(JobRecord).where(JobRecord.dedupe_key == f"match:case:{case.id}")).scalar_one()
    assert job.status == "pending"
