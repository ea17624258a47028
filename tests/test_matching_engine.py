"""The matching engine end to end: save, job, proposals, decisions kept, export."""
from __future__ import annotations

import csv
import dataclasses
import math
from datetime import date, timedelta

import pytest
from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select, update

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
    # A save that changes nothing that matters scores the same: as stored (4 decimals) not higher.
    from matching.engine import _store, current_settings
    proposal = proposals(trace_id=trace.id)[0]
    _store(trace.id, [(case.id, proposal.rejected_score + 0.00004, [])], current_settings(), True, by_trace=True)
    assert proposals(trace_id=trace.id)[0].status == "rejected"
    db.session.rollback()
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


def test_parents_names_are_kept_as_relative_keys_on_every_save(tracer):
    from app.records.models import RecordKey
    from matching.engine import RELATIVE_KIND
    _officer, caseworker = tracer
    case = register_child(caseworker, father_name="Kidane Girmay")

    def relative_keys():
        return set(db.session.execute(select(RecordKey.key).where(
            RecordKey.record_id == case.id, RecordKey.kind == RELATIVE_KIND)).scalars())
    assert {"KDN", "JRM"} <= relative_keys()  # Kidane, Girmay (and Amina Yusuf, the mother)
    update_case(case, caseworker, {**case.data, "father_name": "Tesfay"}, case.version)
    db.session.commit()
    keys = relative_keys()
    assert "DSF" in keys and "KDN" not in keys


def test_a_child_whose_only_name_is_misspelt_is_found_through_the_fathers_name(tracer):
    """No name key in common (a typo in the only name the case has): the father's name on
    the case is the chain name of the trace, and blocking finds the pair through it."""
    from matching.engine import blocking_candidates, name_keys, person_keys, trace_person
    officer, caseworker = tracer
    case = register_child(caseworker, name_first="Saoam", name_last="", mother_name="Yordanos",
                          father_name="Kidane Girmay", sex="female", age=8)
    trace = search_for_child(officer, relation="father", inquirer="Kidane Girmay", name_first="Selam",
                             name_middle="Kidane", name_last="Girmay", sex="female", age=6,
                             mother_name="Yordanos Amaniel")
    person = trace_person(trace)
    assert not person_keys(person) & name_keys("Saoam")
    assert blocking_candidates(person, "case") == [case.id]


def test_a_mother_asking_is_the_traces_mother_for_blocking_both_ways(tracer):
    """The mother who asks seldom writes her name again as the child's mother: her name is
    kept among the trace's relative keys (and blocks as one) while she is the mother asking
    and the trace names no mother; a case whose only name is misspelt is found through it
    from either side."""
    from app.records.models import RecordKey
    from matching.engine import RELATIVE_KIND, blocking_candidates, case_person, name_keys, trace_person
    from tracing.operations import update_tracing_request
    officer, caseworker = tracer
    case = register_child(caseworker, name_first="Ubax", name_last="", mother_name="Faadumo Cabdi",
                          sex="female", age=5)
    trace = search_for_child(officer, relation="mother", inquirer="Fadumo Abdi", name_first="Halima",
                             name_last="", sex="female", age=4)

    def relative_keys():
        db.session.expire_all()
        return set(db.session.execute(select(RecordKey.key).where(
            RecordKey.record_id == trace.id, RecordKey.kind == RELATIVE_KIND)).scalars())
    assert name_keys("Fadumo") <= relative_keys()
    assert not name_keys("Ubax") & name_keys("Halima")  # no key of the child's own name in common
    assert blocking_candidates(trace_person(trace), "case") == [case.id]
    assert blocking_candidates(case_person(case), "trace") == [trace.id]
    # An aunt asking is not the mother: her name is no longer one of the trace's relatives.
    request = trace.tracing_request
    update_tracing_request(request, officer, {**request.data, "relation": "aunt_uncle"}, request.version)
    db.session.commit()
    assert not relative_keys() & name_keys("Fadumo")
    assert blocking_candidates(case_person(case), "trace") == []


def test_a_common_name_only_brings_records_of_a_compatible_sex_and_age():
    from matching.engine import Attributes, BlockingToken, rank_candidates
    common = [f"c{i}" for i in range(500)]  # "Mohamed": every record has it
    postings = {("name", "MHMD"): common + ["boy", "girl", "twin", "old"], ("name", "RR"): ["rare"]}
    counts = {("name", "MHMD"): 504, ("name", "RR"): 1}
    attributes = {record_id: Attributes("male", 2000.0, False) for record_id in common}
    attributes.update({"boy": Attributes("male", 2015.2, False), "girl": Attributes("female", 2013.0, False),
                       "twin": Attributes("female", 2015.5, False),
                       "old": Attributes("male", 1990.0, False), "rare": Attributes("female", 1980.0, False)})
    query = Attributes("male", 2015.0, False)
    tokens = [BlockingToken(frozenset({"MHMD"}), 1.5, False), BlockingToken(frozenset({"RR"}), 1.0, False)]
    ranked = dict(rank_candidates(tokens, postings, counts, 1000, query, attributes, limit=1000))
    assert "boy" in ranked
    assert "girl" not in ranked and "old" not in ranked  # only the common key led to them
    # Born within SEX_SLIP_YEARS: the sex may have been written wrong on one side.
    assert "twin" in ranked and ranked["twin"] < ranked["boy"]
    assert not any(record_id in ranked for record_id in common)  # born 15 years earlier
    assert "rare" in ranked  # a rare shared key always brings its records, whatever else differs
    assert ranked["boy"] > ranked["rare"]  # ... but sex and birth year still weigh in the ranking


def test_the_bulk_rematch_stores_what_matching_one_by_one_stores(app, tracer):
    from matching.engine import match_trace, run_all
    from tracing.models import Trace
    officer, caseworker = tracer
    register_child(caseworker)
    register_child(caseworker, name_first="Ahmed", age=12)
    register_child(caseworker, name_first="Mohammed", age=10, mother_name="Halima Ali")
    register_child(caseworker, name_first="Fatima", sex="female", age=5)
    search_for_child(officer)
    search_for_child(officer, name_first="Fatuma", sex="female", age=4)
    search_for_child(officer, name_first="Ahmad", age=11)

    def stored():
        return {(p.trace_id, p.case_id): (p.score, p.probability, p.likelihood, p.status, p.comparison)
                for p in proposals()}
    for trace in db.session.execute(select(Trace)).scalars():
        match_trace(trace, changed=False)
    db.session.commit()
    one_by_one = stored()
    assert len(one_by_one) >= 3
    for proposal in proposals():
        db.session.delete(proposal)
    db.session.commit()
    assert run_all(chunk_size=2) == sum(1 for value in one_by_one.values() if value[3] == "pending")
    assert stored() == one_by_one
    assert all(value[4] for value in one_by_one.values())  # every stored pair is explained
    # An existing proposal whose score drops below `possible` is superseded, with the new
    # explanation (the bulk path explains every pair it updates, not only those it proposes).
    from matching.engine import current_settings
    from matching.models import SUPERSEDED
    settings = current_settings()
    from matching import operations as ops
    ops.save_settings(0.9995, 0.999, {}, None, None, note="stricter")
    db.session.commit()
    run_all(chunk_size=2)
    after = stored()
    dropped = [key for key, value in after.items() if value[3] == SUPERSEDED]
    assert dropped and all(after[key][4] for key in dropped)


def test_the_bulk_rematch_marks_each_proposed_trace_once_with_its_history(app, tracer):
    """A chunk's traces are marked "match proposed" together: each gets one history row that
    records the version the mark gave it; a trace with no proposal stays open."""
    from app.records.models import RecordChange
    from matching.engine import run_all
    from tracing.models import Trace
    officer, caseworker = tracer
    register_child(caseworker)
    register_child(caseworker, name_first="Fatima", sex="female", age=5)
    search_for_child(officer)
    search_for_child(officer, name_first="Fatuma", sex="female", age=4)
    search_for_child(officer, name_first="Tesfay", name_last="Gebremariam", age=15)
    db.session.execute(sa_delete(MatchProposal))
    db.session.execute(update(Trace).values(tracing_status="open"))
    db.session.commit()
    run_all(chunk_size=10)
    db.session.commit()
    db.session.expire_all()
    traces = db.session.execute(select(Trace)).scalars().all()
    proposed = {trace.id for trace in traces if trace.tracing_status == "match_proposed"}
    assert proposed == {p.trace_id for p in proposals(status="pending")} and len(proposed) == 2
    for trace in traces:
        marks = db.session.execute(select(RecordChange).where(
            RecordChange.record_id == trace.id, RecordChange.action == "match_proposed",
            RecordChange.version == trace.version)).scalars().all()
        assert len(marks) == (1 if trace.id in proposed else 0)


def test_a_rematch_shared_by_two_forked_processes_stores_what_one_process_stores(app, make, committed):
    """run_all(processes=2) forks two processes that inherit the case index; on PostgreSQL
    they store exactly the proposals a single process stores."""
    from matching.engine import run_all
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: run_all uses one process there")
    from forms.operations import load_default_configuration
    with app.app_context():
        load_default_configuration()
        agency = make.agency()
        officer, caseworker = make.user("tracing_officer", agency=agency), make.user("caseworker", agency=agency)
        db.session.commit()
        for first, sex, age in (("Muhammad", "male", 9), ("Ahmed", "male", 12), ("Fatima", "female", 5),
                                ("Aisha", "female", 7), ("Omar", "male", 3)):
            register_child(caseworker, name_first=first, sex=sex, age=age)
        for first, sex, age in (("Mohamed", "male", 7), ("Fatuma", "female", 4), ("Ahmad", "male", 11),
                                ("Aicha", "female", 6), ("Umar", "male", 2), ("Hassan", "male", 8)):
            search_for_child(officer, name_first=first, sex=sex, age=age)

        def stored():
            db.session.expire_all()
            return {(p.trace_id, p.case_id): (p.score, p.likelihood, p.status) for p in proposals()}
        single = run_all(chunk_size=2)
        db.session.commit()
        one_process = stored()
        assert len(one_process) >= 5
        for proposal in proposals():
            db.session.delete(proposal)
        db.session.commit()
        assert run_all(chunk_size=2, processes=2) == single
        assert stored() == one_process


def test_a_full_rematch_rewrites_every_records_name_keys_with_the_rules_in_force(app, tracer):
    """Records saved before the key rules changed (or before relative keys existed) are
    re-keyed by `flask matching run`: the same keys a save writes today, once each."""
    from sqlalchemy import delete, update

    from app.records.models import RecordKey
    from matching.engine import RELATIVE_KIND
    officer, caseworker = tracer
    case = register_child(caseworker, father_name="Kidane Girmay")
    trace = search_for_child(officer)
    saved = set(db.session.execute(select(RecordKey.record_type, RecordKey.record_id, RecordKey.kind,
                                          RecordKey.key)).all())
    assert {row[0] for row in saved} == {"case", "trace", "tracing_request"}
    # An older installation: no relative keys, and name keys made by other rules.
    db.session.execute(delete(RecordKey).where(RecordKey.kind == RELATIVE_KIND))
    db.session.execute(update(RecordKey).values(key="OLD" + RecordKey.key))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["matching", "run"])
    assert result.exit_code == 0, result.output
    assert f"Indexed {len(saved)} name key(s)" in result.output
    rows = db.session.execute(select(RecordKey.record_type, RecordKey.record_id, RecordKey.kind,
                                     RecordKey.key)).all()
    assert len(rows) == len(saved) and set(rows) == saved
    assert {"KDN", "JRM", "AMN"} <= {key for _t, rid, kind, key in saved if rid == case.id and kind == RELATIVE_KIND}
    assert proposals(trace_id=trace.id, case_id=case.id)


def _evidence(trace, case):
    from matching import engine
    settings = engine.Settings(1, engine.DEFAULT_LIKELY, engine.DEFAULT_POSSIBLE, engine.DEFAULT_PRIOR,
                               engine._weights({}))
    score, evidence = engine.compare(trace, case, settings)
    assert engine.compare(trace, case, settings, explain=False) == (score, None)  # same weight unexplained
    return score, {item["comparator"]: item for item in evidence}


def _person(record_type, **values):
    from matching.engine import Person
    return Person(record_type, values.pop("id", record_type), **values)


def test_a_one_word_name_found_in_the_other_is_counted_once():
    """"Hayatullah" alone is in "Hayatullah Muhammad": the own-name comparison says so; the
    whole-name comparison would say it again and make every sparse namesake look like the child."""
    trace = _person("trace", names={"given": ["Hayatullah"], "family": ["Mohmamad"]}, sex="male")
    sparse = _person("case", names={"given": ["Hayatullah"]}, sex="male")
    _score, evidence = _evidence(trace, sparse)
    assert "names" not in evidence and evidence["given_name"]["level"] == "exact"
    fuller = _person("case", names={"given": ["Hayatullah"], "family": ["Muhammad"]}, sex="male")
    _score, evidence = _evidence(trace, fuller)
    assert evidence["names"]["level"] in ("fuzzy_high", "fuzzy_low", "phonetic", "variant")
    assert _evidence(trace, fuller)[0] > _evidence(trace, sparse)[0]


def test_a_name_without_an_own_name_still_counts_and_a_later_name_counts_no_more_than_the_own_name():
    case = _person("case", names={"given": ["Ahmad"], "family": ["Karimi"]}, sex="male")
    for names in ({"family": ["Karimi"]}, {"full": ["Ahmad"]}):
        _score, evidence = _evidence(_person("trace", names=names, sex="male"), case)
        assert "names" in evidence or "given_name" in evidence, names
        assert sum(item["weight"] for key, item in evidence.items() if key in ("names", "given_name")) > 3
    own = _evidence(_person("trace", names={"given": ["Ahmad"]}, sex="male"), case)[0]
    later = _evidence(_person("trace", names={"given": ["Karimi"]}, sex="male"), case)[0]
    assert later <= own  # a one-word name found as the other's father or family name


def test_swapped_or_truncated_names_do_not_count_as_different_own_names():
    trace = _person("trace", names={"given": ["Moukendi"], "middle": ["Katende"], "family": ["Pascal"]}, sex="male")
    case = _person("case", names={"given": ["Pascal"]}, sex="male")  # the chain's last name, alone
    _score, evidence = _evidence(trace, case)
    assert evidence["names"]["level"] == "variant" and "given_name" not in evidence
    swapped = _person("case", names={"given": ["Pascal"], "family": ["Mukendi"]}, sex="male")
    _score, evidence = _evidence(trace, swapped)
    assert evidence["names"]["level"] in ("variant", "phonetic") and evidence["given_name"]["weight"] > 3
    sibling = _person("case", names={"given": ["Jean"], "middle": ["Katende"], "family": ["Pascal"]}, sex="male")
    _score, evidence = _evidence(trace, sibling)
    assert evidence["names"]["level"] == "partial" and evidence["given_name"]["level"] == "different"
    assert evidence["given_name"]["weight"] < -3


def test_only_the_relative_the_relationship_names_can_disagree_with_the_inquirer():
    case = _person("case", names={"given": ["Amina"]}, sex="female", mother_name="Halima Yusuf",
                   family_details=[{"name": "Divina", "relationship": "sibling"}])
    mother = _person("trace", names={"given": ["Amina"]}, sex="female", inquirer_name="Fatuma Abdi",
                     relationship="mother")
    assert _evidence(mother, case)[1]["inquirer"]["level"] == "different"
    assert _evidence(mother, case)[1]["inquirer"]["weight"] < -2
    for relationship, inquirer in (("aunt_uncle", "Fatuma Abdi"), ("sibling", "Goitom Aman")):
        other = _person("trace", names={"given": ["Amina"]}, sex="female", inquirer_name=inquirer,
                        relationship=relationship)
        assert "inquirer" not in _evidence(other, case)[1], relationship
    aunt_named = _person("trace", names={"given": ["Amina"]}, sex="female", inquirer_name="Halima Yusuf",
                         relationship="aunt_uncle")
    assert _evidence(aunt_named, case)[1]["inquirer"]["weight"] > 3  # a match with any relative still counts


def test_language_nationality_ethnicity_religion_are_weak_evidence():
    from matching import engine
    weights = engine._weights({})
    for tag in engine.CATEGORICAL:
        assert 0 < weights[tag]["same"] <= 1.3 and -1.8 <= weights[tag]["different"] < 0, tag
    assert weights["sex"]["different"] < -4  # sex stays a strong discriminator


def test_the_mother_asking_is_counted_once():
    """The inquirer who is the child's mother is the trace's mother: compared once, not twice."""
    case = _person("case", names={"given": ["Fistno"]}, sex="male", mother_name="Dorcas Kitenge")
    trace = _person("trace", names={"given": ["Fistone"]}, sex="male", mother_name="Dorcas Kitenge",
                    inquirer_name="Dorcas Kitenge", relationship="mother")
    evidence = _evidence(trace, case)[1]
    assert evidence["mother_name"]["level"] == "exact" and "inquirer" not in evidence
    # Without the mother's name on the trace, the inquirer is what says it.
    trace.mother_name = None
    assert _evidence(trace, case)[1]["inquirer"]["level"] == "exact"


def test_a_sibling_sharing_both_parents_does_not_outrank_the_child():
    """From the benchmark: the child registered with little (own name with a typo, the father's
    name) against a brother with everything the family shares (mother, father) and another own
    name. The parents say "this family", not "this child": together they count for at most
    SIBLING_FAMILY_CAP when the own name differs, and the explanation says so."""
    from matching import engine
    trace = _person("trace", names={"given": ["Fistone"], "middle": ["Muamba"], "family": ["Mumbere"]}, sex="male",
                    age=2.0, mother_name="Dorcas Kitenge", father_name="Patrick Moumbere",
                    inquirer_name="Dorcas Kitenge", relationship="mother")
    child = _person("case", id="child", names={"given": ["Fistno"]}, sex="male", age=2.0, age_estimated=True,
                    father_name="Patrick Moumbere")
    brother = _person("case", id="brother", names={"given": ["Exaucé"]}, sex="male", age=0.0, age_estimated=True,
                      mother_name="Dorcas Kitenge", father_name="Patrick Moumbere")
    child_score, _ = _evidence(trace, child)
    brother_score, evidence = _evidence(trace, brother)
    assert child_score > brother_score
    assert evidence["given_name"]["level"] == "different"
    family = [evidence[c] for c in ("mother_name", "father_name") if c in evidence]
    assert sum(item["weight"] for item in family) <= engine.SIBLING_FAMILY_CAP
    assert any(item.get("family_shared") for item in family)


def test_a_pair_below_the_possible_band_may_stop_early_but_a_pair_in_it_never_does():
    """With a floor, compare() may stop before the parents' and inquirer's names: then it
    returns a bound that is at least the true weight and below the floor, so no pair that
    reaches the `possible` band is lost, and every pair that does gets its exact weight."""
    from matching import engine
    settings = engine.Settings(1, engine.DEFAULT_LIKELY, engine.DEFAULT_POSSIBLE, engine.DEFAULT_PRIOR,
                               engine._weights({}))
    floor = engine.score_floor(settings)
    assert engine.likelihood_of(engine.probability(floor + 1e-3), settings) == "possible"
    assert engine.likelihood_of(engine.probability(floor - 1e-3), settings) is None
    family = {"mother_name": "Amina Yusuf", "father_name": "Hassan Ali", "inquirer_name": "Amina Yusuf",
              "relationship": "mother"}
    traces = [_person("trace", names={"given": ["Mohamed"], "family": ["Hasan"]}, sex="male", age=7, **family),
              _person("trace", names={"given": ["Fatuma"]}, sex="female", age=4, **family,
                      categorical={"language": "somali"}),
              _person("trace", names={"given": ["Abdirahman"], "family": ["Warsame"]}, sex="male", age=12)]
    cases = [_person("case", names={"given": ["Muhammad"], "family": ["Hassan"]}, sex="male", age=9, **family),
             _person("case", names={"given": ["Ahmed"], "family": ["Hassan"]}, sex="male", age=8,
                     mother_name="Amina Yousef", father_name="Hassan Ali"),  # a brother
             _person("case", names={"given": ["Fatima"]}, sex="female", age=5, mother_name="Khadija",
                     categorical={"language": "somali"}),
             _person("case", names={"given": ["Zainab"], "family": ["Omar"]}, sex="female", age=15,
                     mother_name="Halima Omar", father_name="Omar Said")]
    stopped = 0
    for trace in traces:
        for case in cases:
            weight, _ = engine.compare(trace, case, settings, explain=False)
            bounded, _ = engine.compare(trace, case, settings, explain=False, floor=floor)
            if weight >= floor:
                assert bounded == weight
            elif bounded != weight:
                stopped += 1
                assert weight <= bounded + 1e-9 and bounded < floor  # (sums in another order)
    assert stopped >= 3  # the strangers stopped early


def test_a_name_written_twice_covers_one_name_only():
    """"Mohamed Ahmed Mohamed" holds Mohamed and Ahmed: "Mohamed Hassan" is not covered by it
    (Hassan is not among its names), "Mohamed Ahmed" is."""
    from matching.engine import COVER_BONUS, Attributes, BlockingToken, rank_candidates
    tokens = [BlockingToken(frozenset({"MHMD"}), 1.5, False), BlockingToken(frozenset({"AHMD"}), 1.0, False),
              BlockingToken(frozenset({"MHMD"}), 1.0, False)]
    postings = {("name", "MHMD"): ["hassan", "ahmed"], ("name", "AHMD"): ["ahmed"], ("name", "HSN"): ["hassan"]}
    counts = {("name", "MHMD"): 2, ("name", "AHMD"): 1, ("name", "HSN"): 1}
    attributes = {"hassan": Attributes("male", 2015.0, False, (), 2), "ahmed": Attributes("male", 2015.0, False, (), 2)}
    ranked = dict(rank_candidates(tokens, postings, counts, 100, Attributes("male", 2015.0, False), attributes))
    idf = math.log(101 / 2)
    assert ranked["hassan"] == pytest.approx(idf * 1.5 + idf * 1.0 + 1.0)  # both Mohameds score, no bonus
    assert ranked["ahmed"] == pytest.approx(idf * 1.5 + math.log(101) + idf * 1.0 + 1.0 + COVER_BONUS)


def test_the_asking_mothers_keys_follow_her_name_and_stop_when_the_trace_names_a_mother(tracer):
    from app.records.models import RecordKey
    from matching.engine import RELATIVE_KIND, name_keys
    from tracing.operations import update_trace, update_tracing_request
    officer, _caseworker = tracer
    trace = search_for_child(officer, relation="mother", inquirer="Fadumo Abdi", name_first="Halima")

    def relative_keys():
        db.session.expire_all()
        return set(db.session.execute(select(RecordKey.key).where(
            RecordKey.record_id == trace.id, RecordKey.kind == RELATIVE_KIND)).scalars())
    assert name_keys("Fadumo") <= relative_keys()
    request = trace.tracing_request
    update_tracing_request(request, officer, {**request.data, "relation_name": "Zainab Kidane"}, request.version)
    db.session.commit()
    assert name_keys("Zainab") <= relative_keys() and not name_keys("Fadumo") & relative_keys()
    # The trace names a mother itself: that name is the mother's, not the inquirer's.
    update_trace(trace, officer, {**trace.data, "mother_name": "Amina Yusuf"}, trace.version)
    db.session.commit()
    assert name_keys("Amina") <= relative_keys() and not name_keys("Zainab") & relative_keys()


EXPLAINED = [{"comparator": "names", "level": "variant", "weight": 1.0, "similarity": 1.0}]


def _scored(*pairs):
    return [(case_id, score, EXPLAINED) for case_id, score in pairs]


def _three_cases_and_a_trace(tracer):
    """Three registered children and a trace with no proposal yet (scores are given by the test)."""
    officer, caseworker = tracer
    cases = [register_child(caseworker, name_first=name) for name in ("Yusuf", "Idris", "Bilal")]
    trace = search_for_child(officer, name_first="Tesfay", name_last="Gebremariam", age=15)
    for p in proposals(trace_id=trace.id):
        db.session.delete(p)
    return officer, cases, trace, f"rematch:trace:{trace.id}"


def test_a_possible_pair_far_behind_the_trace_s_best_is_not_proposed_until_the_best_is_rejected(tracer):
    """Likely 3.0; possible -3.5 (6.5 bits behind: proposed); possible -6.5 (9.5 behind the best,
    beyond the 7-bit margin: not proposed). Rejecting the best queues the trace's matching, and
    measured against the best that is left, -6.5 comes back."""
    from app.jobs.models import JobRecord
    from matching import operations as ops
    from matching.engine import _store, current_settings, probability
    officer, (best, near, far), trace, rematch = _three_cases_and_a_trace(tracer)
    settings = current_settings()
    assert settings.margin == 7.0 and probability(-6.5) >= settings.possible and probability(3.0) >= settings.likely
    _store(trace.id, _scored((best.id, 3.0), (near.id, -3.5), (far.id, -6.5)), settings, True, by_trace=True)
    db.session.commit()
    assert {p.case_id: p.likelihood for p in proposals(trace_id=trace.id, status="pending")} == {
        best.id: "likely", near.id: "possible"}
    # A wider margin (an administrator's setting) proposes it.
    wide = dataclasses.replace(settings, margin=20.0)
    _store(trace.id, _scored((best.id, 3.0), (near.id, -3.5), (far.id, -6.5)), wide, True, by_trace=True)
    assert far.id in {p.case_id for p in proposals(trace_id=trace.id, status="pending")}
    _store(trace.id, _scored((best.id, 3.0), (near.id, -3.5), (far.id, -6.5)), settings, True, by_trace=True)
    db.session.commit()
    (held_back,) = proposals(trace_id=trace.id, case_id=far.id)
    assert (held_back.status, held_back.decision_reason) == ("superseded", "outranked")
    (top,) = proposals(trace_id=trace.id, case_id=best.id)
    ops.reject_match(top, officer, "different_child")
    db.session.commit()
    assert db.session.execute(select(JobRecord).where(JobRecord.dedupe_key == rematch,
                                                      JobRecord.status.in_(("pending", "queued")))).scalar()
    _store(trace.id, _scored((best.id, 3.0), (near.id, -3.5), (far.id, -6.5)), settings, True, by_trace=True)
    db.session.commit()
    (back,) = proposals(trace_id=trace.id, case_id=far.id)
    assert (back.status, back.decision_reason) == ("pending", None)


def test_a_case_no_longer_matchable_brings_forward_the_candidates_held_back_behind_it(tracer):
    """The trace's best case withdraws its consent (or is closed): its proposal is superseded and
    the trace is matched again, so a candidate held back behind it (beyond the margin) comes back."""
    from app.jobs.models import JobRecord
    from matching.engine import _store, current_settings, match_case
    _officer, (best, near, far), trace, rematch = _three_cases_and_a_trace(tracer)
    settings = current_settings()
    _store(trace.id, _scored((best.id, 3.0), (far.id, -6.5)), settings, True, by_trace=True)
    db.session.commit()
    assert {p.case_id for p in proposals(trace_id=trace.id, status="pending")} == {best.id}
    queued = select(JobRecord).where(JobRecord.dedupe_key == rematch, JobRecord.status.in_(("pending", "queued")))
    assert db.session.execute(queued).scalar() is None
    best.is_consent_for_tracing = False
    assert match_case(best) == []
    db.session.commit()
    (withdrawn,) = proposals(trace_id=trace.id, case_id=best.id)
    assert (withdrawn.status, withdrawn.decision_reason) == ("superseded", "not_matchable")
    assert db.session.execute(queued).scalar() is not None
    _store(trace.id, _scored((far.id, -6.5)), settings, True, by_trace=True)  # what that job finds now
    db.session.commit()
    (back,) = proposals(trace_id=trace.id, case_id=far.id)
    assert (back.status, back.decision_reason) == ("pending", None)


def test_a_case_job_weighs_its_pair_against_the_trace_s_other_proposals(tracer):
    """The trace's best pending proposal scores 3.0. A case job's pair at -6.5 is not proposed
    (beyond the margin); at -3.5 it is; a pair at 12.0 (the new best, and the possible -3.5 now
    more than the margin behind it) queues the trace's own matching, which sends that one out.
    A pair at 3.2 leaves every possible proposal within the margin: nothing to queue."""
    from app.jobs.models import JobRecord
    from matching.engine import _store, _store_for_case, current_settings
    _officer, (best, weak, strong), trace, rematch = _three_cases_and_a_trace(tracer)
    settings = current_settings()
    _store(trace.id, _scored((best.id, 3.0)), settings, True, by_trace=True)
    db.session.commit()
    assert _store_for_case(weak.id, [(trace.id, -6.5, EXPLAINED)], settings, True, {}) == []
    assert len(_store_for_case(weak.id, [(trace.id, -3.5, EXPLAINED)], settings, True, {})) == 1
    db.session.commit()
    queued = select(JobRecord).where(JobRecord.dedupe_key == rematch,
                                     JobRecord.status.in_(("pending", "queued")))
    assert db.session.execute(queued).scalar() is None
    _store_for_case(strong.id, [(trace.id, 3.2, EXPLAINED)], settings, True, {})
    db.session.commit()
    assert db.session.execute(queued).scalar() is None
    _store_for_case(strong.id, [(trace.id, 12.0, EXPLAINED)], settings, True,
                    {p.trace_id: p for p in proposals(case_id=strong.id)})
    db.session.commit()
    assert db.session.execute(queued).scalar() is not None


def test_a_fathers_name_meets_the_chain_of_a_child_registered_with_names_after_her_own():
    """From the benchmark's misranked traces: a trace "Helen", father "Yonas Goitom Natnael";
    the case "Helen Yonas Goitom" records no father. In chain naming her names after her own are
    her father's and grandfather's: they are compared with the father's name (agreeing only:
    later names may be a family or clan name), and not when both sides write a chain (the whole
    names compared it already). A pair's bound before the parents' names counts it."""
    from matching import engine
    trace = _person("trace", names={"given": ["Helen"]}, sex="female", age=10, father_name="Yonas Goitom Natnael")
    chained = _person("case", names={"given": ["Helen"], "family": ["Yonas Goitom"]}, sex="female", age=9)
    score, evidence = _evidence(trace, chained)
    assert evidence["father_name"]["compared_with"] == "child_name_chain" and evidence["father_name"]["weight"] > 4
    other = _person("case", names={"given": ["Helen"], "family": ["Tesfay Merhawi"]}, sex="female", age=9)
    other_score, other_evidence = _evidence(trace, other)
    assert "father_name" not in other_evidence  # a chain that differs says nothing
    assert score > other_score
    reverse_score, reverse = _evidence(_person("trace", names={"given": ["Helen"], "family": ["Yonas Goitom"]},
                                               sex="female", age=10),
                                       _person("case", names={"given": ["Hellen"]}, sex="female", age=9,
                                               father_name="Yonas Goitom"))
    assert reverse["father_name"]["compared_with"] == "child_name_chain"
    both = _person("trace", names={"given": ["Helen"], "middle": ["Yonas"]}, sex="female", age=10,
                   father_name="Yonas Goitom Natnael")
    assert "father_name" not in _evidence(both, chained)[1]  # "Yonas" already paired in the whole names
    settings = engine.Settings(1, engine.DEFAULT_LIKELY, engine.DEFAULT_POSSIBLE, engine.DEFAULT_PRIOR,
                               engine._weights({}))
    bound, _ = engine.compare(trace, chained, settings, explain=False, floor=score + 100)
    assert bound >= score - 1e-9


def test_dates_of_birth_years_apart_also_count_as_ages_apart():
    """From the benchmark's misranked traces: a namesake born four years earlier only lost the
    weight of "dates of birth differ", as if it were a wrong day. Dates that differ are also
    compared as ages (with the tolerance of estimates): years apart, the ages disagree too;
    within the tolerance, nothing more is said."""
    from datetime import date
    registered = {"sex": "male", "age_date": date(2024, 3, 1)}
    trace = _person("trace", names={"given": ["Zakariye"], "family": ["Abdi"]}, date_of_birth="2016-05-20",
                    **registered)
    far = _person("case", names={"given": ["Zakariye"], "family": ["Abdi"]}, date_of_birth="2012-10-22",
                  **registered)
    close = _person("case", names={"given": ["Zakariye"], "family": ["Abdi"]}, date_of_birth="2014-03-02",
                    age_estimated=True, **registered)
    far_score, far_evidence = _evidence(trace, far)
    close_score, close_evidence = _evidence(trace, close)
    assert far_evidence["date_of_birth"]["level"] == close_evidence["date_of_birth"]["level"] == "different"
    assert far_evidence["age"]["level"] == "different" and far_evidence["age"]["weight"] < 0
    assert "age" not in close_evidence
    assert close_score > far_score


def test_an_approximate_date_of_birth_is_compared_as_an_age():
    """From the benchmark's misranked traces: a case registered "about 2" gets the date of birth
    1 January of that year, marked approximate. Against the relative's real date of birth it
    counted as a date that differs (-3 bits) and the child fell behind a namesake. An approximate
    date is compared as an age, with the tolerance of an estimate; an exact pair still as dates."""
    from datetime import date
    from matching import engine
    trace = _person("trace", names={"given": ["Sahro"], "family": ["Guled"]}, sex="female", age=2,
                    date_of_birth="2017-10-06", age_date=date(2021, 11, 21))
    estimated = _person("case", names={"given": ["Sahro"], "family": ["Guuled"]}, sex="female", age=2,
                        date_of_birth="2019-01-01", dob_approximate=True, age_estimated=True,
                        age_date=date(2021, 12, 1))
    _score, evidence = _evidence(trace, estimated)
    assert "date_of_birth" not in evidence and evidence["age"]["level"] == "within_tolerance"
    exact = dataclasses.replace(estimated, dob_approximate=False, age_estimated=False)
    assert _evidence(trace, exact)[1]["date_of_birth"]["level"] == "different"
    tags = {tag: [] for tag in ("sex", "age", "date_of_birth", "location", "date_of_separation", "mother_name",
                                "father_name", "caregiver_name", *engine.NAME_PARTS, *engine.CATEGORICAL)}
    tags["date_of_birth"] = ["date_of_birth"]
    read = engine.person_from("case", "c1", {"date_of_birth": "2019-01-01", "date_of_birth_approximate": True},
                              None, tags)
    assert read.dob_approximate and read.age_estimated
    assert engine.person_attributes(read).estimated  # the first stage's birth year is an estimate too


def test_other_names_are_not_read_as_the_childs_chain():
    """From the benchmark's misranked traces: a case "Yacoub" with the other name "يعقوب محمد"
    (his name in Arabic script) was read as the chain "Yacoub, son of Yacoub Mohamed", and a
    father "Abakar Yakub Muhammad" asking for another child met it. Only the given, middle,
    family and full names make the chain a father's name is compared with."""
    trace = _person("trace", names={"given": ["Hasaballah"]}, sex="male", age=2,
                    inquirer_name="Abakar Yakub Muhammad", relationship="father")
    other = _person("case", names={"given": ["Yacoub"], "other": ["يعقوب محمد"]}, sex="male", age=2,
                    caregiver_name="Hawa Adam")
    assert "inquirer" not in _evidence(trace, other)[1]
    chained = _person("case", names={"given": ["Yacoub"], "family": ["يعقوب محمد"]}, sex="male", age=2,
                      caregiver_name="Hawa Adam")
    assert _evidence(trace, chained)[1]["inquirer"]["compared_with"] == "child_name_chain"


def test_more_of_the_childs_names_agreeing_count_for_more():
    """From the benchmark's misranked traces: "Faaduma Maxammed Xasan" (the child written in full
    on both sides) and a namesake "Fatima Xuseen" got the same whole-name weight, as the level
    only says how well the shorter name is found. Each name agreeing beyond two adds
    NAMES_TOKEN_BONUS bits, and the comparison page says so."""
    from matching import engine
    trace = _person("trace", names={"given": ["Fatuma"], "middle": ["Mohamed"], "family": ["Hasan"]}, sex="female",
                    age=10)
    full = _person("case", names={"given": ["Faaduma"], "middle": ["Maxammed"], "family": ["Xasan"]}, sex="female",
                   age=10)
    two = _person("case", names={"given": ["Faaduma"], "family": ["Xasan"]}, sex="female", age=10)
    full_score, full_evidence = _evidence(trace, full)
    two_score, two_evidence = _evidence(trace, two)
    assert full_evidence["names"]["level"] == two_evidence["names"]["level"]
    assert full_evidence["names"]["agreeing_names"] == 3 and "agreeing_names" not in two_evidence["names"]
    level_weight = engine._weights({})["names"][full_evidence["names"]["level"]]
    assert full_evidence["names"]["weight"] == round(level_weight + engine.NAMES_TOKEN_BONUS, 3)
    assert full_score == pytest.approx(two_score + engine.NAMES_TOKEN_BONUS)


def test_the_first_stages_best_are_compared_whatever_the_own_name_says():
    """From the benchmark's lost pairs: a child ranked near the top by the first stage (family
    names, parents, place) whose own name was written so differently that it does not compare was
    pushed beyond the 60 compared by a hundred namesakes of the own name. The first stage's best
    FIRST_STAGE_PROTECT stay among those compared."""
    from matching import engine
    pool = [("swapped", 21.0)] + [(f"namesake{i:03d}", 20.9 - i * 0.001) for i in range(100)]
    own_of = {"swapped": "hassan", **{f"namesake{i:03d}": "ahmed" for i in range(100)}}
    ranked = [record_id for record_id, _score in engine.rerank_by_own_name(pool, "ahmed", own_of, 60)]
    assert len(ranked) == 60 and "swapped" in ranked
    assert ranked[:59] == [f"namesake{i:03d}" for i in range(59)]


def test_a_case_pair_far_behind_its_traces_best_proposal_stops_early():
    """A case job knows each trace's best stored proposal: a pair that cannot come within the
    margin of it (nor be likely) is outranked whatever its weight, so it stops before the parents'
    names with a bound below that bar; a pair with a proposal is always weighed in full."""
    from matching import engine
    settings = engine.Settings(1, engine.DEFAULT_LIKELY, engine.DEFAULT_POSSIBLE, engine.DEFAULT_PRIOR,
                               engine._weights({}))
    trace = _person("trace", id="t1", names={"given": ["Mohamed"], "family": ["Hasan"]}, sex="male", age=9,
                    mother_name="Aminah Yousef", father_name="Hasan Ali")
    namesake = _person("case", names={"given": ["Mohamed"], "family": ["Hassan"]}, sex="male", age=13,
                       mother_name="Halima Omar", father_name="Omar Said")
    weight, _ = engine.compare(trace, namesake, settings, explain=False)
    bar = weight + 12.0  # the trace's best proposal is far ahead: outranked (and the father still to compare)
    assert engine.likelihood_of(engine.probability(weight), settings) == "possible"
    (scored_id, bound, _evidence), = engine._score_pairs([("t1", trace, namesake)], settings, {}, {},
                                                         bars={"t1": bar})[0]
    assert scored_id == "t1" and weight < bound < bar
    known = {"t1": object()}  # a pair with a proposal: its true weight
    (_id, exact, _evidence), = engine._score_pairs([("t1", trace, namesake)], settings, {}, known,
                                                   bars={"t1": bar})[0]
    assert exact == weight
