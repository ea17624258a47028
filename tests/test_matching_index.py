"""The in-memory indexes (matching.index) rank exactly as the SQL path, and stay so as records change."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.permissions import ROLE_CASEWORKER, ROLE_TRACING_OFFICER
from app.records.models import RecordKey
from cases.models import Case
from cases.operations import close_case, create_case, update_case
from matching import engine
from matching.index import RecordIndex, record_index
from tracing.models import Trace
from tracing.operations import close_tracing_request, update_tracing_request

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import matching_data as md  # noqa: E402
import matching_eval as me  # noqa: E402

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def generated(make, monkeypatch):
    """300 generated cases and 300 traces (the benchmark's generator and loader), with many
    keys counted as common at this size."""
    from forms.operations import import_locations_csv
    monkeypatch.setattr(engine, "COMMON_MIN", 5)
    import_locations_csv(md.locations_csv(md.build_places()))
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user(ROLE_CASEWORKER, agency=agency, groups=[group])
    tracer = make.user(ROLE_TRACING_OFFICER, agency=agency, groups=[group])
    loader = me.BulkLoader(caseworker, tracer, group, seed=7)
    with me.form_lookups_cached():
        for batch in md.Generator(300, 300, seed=7).batches():
            loader.add(batch)
    loader._flush()
    return caseworker, tracer


def traces_and_cases():
    db.session.expire_all()
    traces = db.session.execute(select(Trace).options(selectinload(Trace.tracing_request))
                                .order_by(Trace.id)).scalars().all()
    cases = db.session.execute(select(Case).order_by(Case.id)).scalars().all()
    return traces, cases


def assert_ranks_as_sql(case_index: RecordIndex, trace_index: RecordIndex) -> int:
    """Every trace's case candidates and every case's trace candidates: the same ids, order and
    (bit for bit) scores from memory as through SQL. Returns how many candidates were compared."""
    traces, cases = traces_and_cases()
    compared = 0
    for trace in traces:
        person = engine.trace_person(trace)
        from_sql = engine.ranked_candidates(person, "case")
        assert case_index.candidates(person) == from_sql
        assert case_index.frequencies(person) == engine.key_frequencies(engine.person_keys(person), "case")
        compared += len(from_sql)
    for case in cases:
        person = engine.case_person(case)
        from_sql = engine.ranked_candidates(person, "trace")
        assert trace_index.candidates(person) == from_sql
        compared += len(from_sql)
    return compared


def place_codes(index: RecordIndex, position: int) -> list[str]:
    codes = list(index._place_numbers)  # numbered in the order they were met
    return [codes[number] for number in index.place[position] if number >= 0]


def assert_same_index(kept: RecordIndex, fresh: RecordIndex) -> None:
    """An index kept up to date holds what one built now holds."""
    assert kept.total == fresh.total and kept.known == fresh.known
    assert set(kept.position) == set(fresh.position)
    assert kept.counts == fresh.counts
    assert {record_id: kept.persons[record_id] for record_id in fresh.position} == fresh.persons
    for record_id, position in fresh.position.items():
        mine = kept.position[record_id]
        assert kept.sex[mine] == fresh.sex[position] and kept.estimated[mine] == fresh.estimated[position]
        assert np.array_equal(kept.birth[mine], fresh.birth[position], equal_nan=True)
        assert place_codes(kept, mine) == place_codes(fresh, position)
    for kk in set(fresh.postings) | set(kept.postings):
        assert sorted(kept.ids[i] for i in kept.postings.get(kk, ()) if kept.alive[i]) == \
            sorted(fresh.ids[i] for i in fresh.postings.get(kk, ()))


def test_the_indexes_rank_as_the_database_path(generated):
    """On generated data with many common keys, both sides: memory and SQL agree."""
    traces, _cases = traces_and_cases()
    # A tracing request without consent: its traces are in neither path's candidates.
    request = traces[0].tracing_request
    request.is_consent_for_tracing = False
    db.session.flush()
    withheld = {trace.id for trace in request.traces}
    case_index, trace_index = RecordIndex("case"), RecordIndex("trace")
    assert withheld and not withheld & set(trace_index.position)
    assert len(trace_index.position) == 300 - len(withheld)
    assert assert_ranks_as_sql(case_index, trace_index) > 600 * 10  # full candidate lists were compared
    common = sum(any(engine._is_common(case_index.counts.get((engine.NAME_KIND, key), 0), case_index.total)
                     for token in engine.blocking_tokens(engine.trace_person(trace)) for key in token.keys)
                 for trace in traces)
    assert common > 100  # ... and common keys, split by sex and birth year
    # Without an own (given or full) name the second stage has nothing to compare: both paths agree.
    for trace in traces[:40]:
        person = engine.trace_person(trace)
        person.names = {part: values for part, values in person.names.items() if part not in ("given", "full")}
        assert engine.own_name_token(person) is None
        assert case_index.candidates(person) == engine.ranked_candidates(person, "case")
    # Stale duplicate key rows (a key held "more often" than there are cases: a negative idf)
    # must not make the two paths disagree either.
    key = db.session.execute(select(RecordKey.key).where(RecordKey.record_type == "case", RecordKey.kind == "name")
                             .group_by(RecordKey.key).order_by(func.count().desc()).limit(1)).scalar_one()
    holders = db.session.execute(select(RecordKey.record_id).where(
        RecordKey.record_type == "case", RecordKey.kind == "name", RecordKey.key == key)).scalars().all()
    db.session.execute(insert(RecordKey), [
        {"record_type": "case", "record_id": holders[i % len(holders)], "kind": "name", "key": key}
        for i in range(case_index.total + 10)])
    case_index = RecordIndex("case")
    checked = 0
    for trace in traces:
        person = engine.trace_person(trace)
        if any(key in token.keys for token in engine.blocking_tokens(person)):
            assert case_index.candidates(person) == engine.ranked_candidates(person, "case")
            checked += 1
    assert checked >= 5


def test_an_index_kept_up_to_date_holds_what_a_new_one_holds(generated):
    """Records saved, renamed, closed, without consent, a tracing request's inquirer changed or
    closed, key rows rewritten, a transaction rolled back: each process's indexes follow by
    reading only what changed, and rank as they would if built now and as SQL does."""
    caseworker, tracer = generated
    cases, traces = record_index("case"), record_index("trace")
    all_traces, all_cases = traces_and_cases()
    # Changes through the application, each committed (matching jobs run and use the indexes).
    new = create_case(caseworker, {"name_first": "Zubeyr", "name_last": "Warsame", "sex": "male", "age": 8,
                                   "consent_for_tracing": True})
    db.session.commit()
    renamed, closed, withdrawn = all_cases[0], all_cases[1], all_cases[2]
    assert update_case(renamed, caseworker, {"name_first": "Kadiidja", "name_last": "Qorane"}, renamed.version)
    close_case(closed, caseworker, "Reunified by the family itself")
    update_case(withdrawn, caseworker, {"consent_for_tracing": not withdrawn.is_consent_for_tracing},
                withdrawn.version)
    db.session.commit()
    request = all_traces[0].tracing_request
    assert update_tracing_request(request, tracer, {"relation_name": "Hawo Cabdi Nuur"}, request.version)
    other = next(t.tracing_request for t in all_traces if t.tracing_request_id != request.id)
    close_tracing_request(other, tracer, "The family found the child")
    db.session.commit()
    assert record_index("case") is cases and record_index("trace") is traces  # refreshed, not rebuilt
    assert new.id in cases.position and closed.id not in cases.position and closed.id in cases.known
    assert (withdrawn.id in cases.position) == withdrawn.is_consent_for_tracing
    assert not {t.id for t in other.traces} & set(traces.position)
    assert traces.persons[all_traces[0].id].inquirer_name == "Hawo Cabdi Nuur"
    assert cases.dead >= 2  # the renamed and the closed case's old positions
    # Key rows rewritten without the record changing (a re-index): read again through the key ids.
    db.session.execute(insert(RecordKey), [{"record_type": "case", "record_id": all_cases[5].id, "kind": "name",
                                            "key": "zzqx"}])
    db.session.commit()
    assert record_index("case") is cases and ("name", "zzqx") in cases.counts
    # A transaction that is rolled back after the index read it: the record is dropped again.
    savepoint = db.session.begin_nested()
    ghost = create_case(caseworker, {"name_first": "Ghostly", "sex": "female", "age": 4, "consent_for_tracing": True})
    db.session.flush()
    assert ghost.id in record_index("case").position
    savepoint.rollback()
    assert record_index("case") is cases and ghost.id not in cases.position and ghost.id not in cases.known
    assert_same_index(cases, RecordIndex("case"))
    assert_same_index(traces, RecordIndex("trace"))
    assert assert_ranks_as_sql(cases, traces) > 600 * 10


def test_an_index_is_rebuilt_when_the_matching_tags_change(generated, monkeypatch):
    """A form change that moves a matching tag changes every record's view: rebuilt, not refreshed."""
    cases = record_index("case")
    assert record_index("case") is cases
    tagged = engine._tagged
    monkeypatch.setattr(engine, "_tagged", lambda record_type: {**tagged(record_type), "nickname": []})
    assert record_index("case") is not cases


def test_one_record_matching_gives_the_same_proposals_with_and_without_the_index(generated, app):
    """match_trace and match_case store the same proposals (scores, bands, explanations) whether
    they rank in memory or through SQL."""
    all_traces, all_cases = traces_and_cases()

    def stored():
        from matching.models import MatchProposal
        db.session.flush()
        return sorted((p.trace_id, p.case_id, p.status, p.likelihood, p.score, p.comparison)
                      for p in db.session.execute(select(MatchProposal)).scalars())
    results = []
    for memory in (True, False):
        app.config["MATCHING_MEMORY_INDEX"] = memory
        try:
            savepoint = db.session.begin_nested()
            for trace in all_traces[:60]:
                engine.match_trace(trace)
            for case in all_cases[:60]:
                engine.match_case(case)
            results.append(stored())
            savepoint.rollback()
        finally:
            app.config["MATCHING_MEMORY_INDEX"] = True
    assert len(results[0]) > 60
    assert results[0] == results[1]



def test_a_stale_index_never_proposes_a_case_whose_consent_was_withdrawn(make):
    """The index may be behind the database (a change committed long after it was stamped);
    the engine checks eligibility in the database before it stores a proposal."""
    from datetime import date

    from sqlalchemy import update

    from matching.models import PENDING, MatchProposal
    from tracing.operations import create_tracing_request
    agency = make.agency()
    caseworker, officer = make.user("caseworker", agency=agency), make.user("tracing_officer", agency=agency)
    case = create_case(caseworker, {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9,
                                    "mother_name": "Amina Yusuf", "consent_for_tracing": True})
    request = create_tracing_request(officer, {"relation_name": "Aminah Yousef", "relation": "mother",
                                               "inquiry_date": date.today().isoformat(), "consent_for_tracing": True},
                                     [{"name_first": "Mohamed", "name_last": "Hasan", "sex": "male", "age": 9}])
    db.session.commit()
    trace = request.traces[0]
    assert [p.case_id for p in engine.match_trace(trace)] == [case.id]
    index = record_index("case")
    assert case.id in index.position
    # Consent withdrawn without the row's stamp moving: the index cannot see it.
    db.session.execute(update(Case).where(Case.id == case.id).values(is_consent_for_tracing=False,
                                                                     updated_at=case.updated_at))
    assert record_index("case") is index and case.id in index.position  # still there
    assert engine.match_trace(trace) == []
    assert not db.session.execute(select(MatchProposal).where(MatchProposal.case_id == case.id,
                                                              MatchProposal.status == PENDING)).scalars().all()


def test_candidates_far_behind_the_best_stop_early_unless_the_best_is_no_longer_eligible(make):
    """A trace's candidate that cannot come within the margin of its best candidate stops before
    the rest of its comparison (an upper bound is kept, and it is not proposed). If that best
    case turns out not to be eligible (the index behind the database), the bar does not hold:
    the namesake is scored in full and proposed with its true score."""
    from datetime import date

    from sqlalchemy import update

    from matching.models import PENDING, MatchProposal
    from tracing.operations import create_tracing_request
    agency = make.agency()
    caseworker, officer = make.user("caseworker", agency=agency), make.user("tracing_officer", agency=agency)
    child = create_case(caseworker, {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9,
                                     "mother_name": "Amina Yusuf", "father_name": "Hassan Ali",
                                     "consent_for_tracing": True})
    namesake = create_case(caseworker, {"name_first": "Mohamed", "name_last": "Hassan", "sex": "male", "age": 13,
                                        "mother_name": "Halima Omar", "father_name": "Omar Said",
                                        "consent_for_tracing": True})
    request = create_tracing_request(officer, {"relation_name": "Zahra Yusuf", "relation": "aunt_uncle",
                                               "inquiry_date": date.today().isoformat(), "consent_for_tracing": True},
                                     [{"name_first": "Mohamed", "name_last": "Hasan", "sex": "male", "age": 9,
                                       "mother_name": "Aminah Yousef", "father_name": "Hasan Ali"}])
    db.session.commit()
    trace = request.traces[0]
    index = record_index("case")
    settings = engine.current_settings(index.total)
    person = engine.trace_person(trace)
    ids = [child.id, namesake.id]  # best first, as the index ranks them
    full = {case_id: score for case_id, score, _ in engine._trace_pairs(person, ids, index, settings, {}, outrank=False)[0]}
    barred, bar = engine._trace_pairs(person, ids, index, settings, {})
    barred = {case_id: score for case_id, score, _ in barred}
    assert bar is not None and full[child.id] - settings.margin >= bar
    assert barred[child.id] == full[child.id]
    assert full[namesake.id] < barred[namesake.id] < bar  # stopped early: an upper bound below the bar
    assert engine.likelihood_of(engine.probability(full[namesake.id]), settings) == "possible"  # ... outranked
    assert [p.case_id for p in engine.match_trace(trace)] == [child.id]
    # The child's consent withdrawn without the row's stamp moving: the index cannot see it.
    db.session.execute(update(Case).where(Case.id == child.id).values(is_consent_for_tracing=False,
                                                                      updated_at=child.updated_at))
    assert record_index("case") is index
    proposals = engine.match_trace(trace)
    assert [p.case_id for p in proposals] == [namesake.id]
    assert proposals[0].score == round(full[namesake.id], 4)
    assert not db.session.execute(select(MatchProposal).where(MatchProposal.case_id == child.id,
                                                              MatchProposal.status == PENDING)).scalars().all()


def _searched_by_an_aunt(officer, aunt: str, child: dict):
    """The trace of a tracing request an aunt made today for `child` (form values)."""
    from datetime import date

    from tracing.operations import create_tracing_request
    request = create_tracing_request(officer, {"relation_name": aunt, "relation": "aunt_uncle",
                                               "inquiry_date": date.today().isoformat(),
                                               "consent_for_tracing": True}, [child])
    db.session.flush()
    return request.traces[0]


def test_a_child_registered_with_only_her_given_name_outranks_namesakes_with_a_name_of_their_own(make):
    """Trace "Shabnum Asad Tokhi", 4; case "Shabnam" alone, 6: every name the case holds is in
    the trace. Twelve other "Shabnam"s of 4 have a family name the trace does not hold. Without
    the cover bonus they rank first (closer in age); with it the child does, in both paths."""
    agency = make.agency()
    caseworker, officer = make.user(ROLE_CASEWORKER, agency=agency), make.user(ROLE_TRACING_OFFICER, agency=agency)
    child = create_case(caseworker, {"name_first": "Shabnam", "sex": "female", "age": 6,
                                     "consent_for_tracing": True})
    for family in ("Karimi", "Ahmadi", "Rahimi", "Hashimi", "Sultani", "Noori", "Wardak", "Popal", "Sadat",
                   "Azizi", "Haidari", "Nazari"):
        create_case(caseworker, {"name_first": "Shabnam", "name_last": family, "sex": "female", "age": 4,
                                 "consent_for_tracing": True})
    trace = _searched_by_an_aunt(officer, "Zarghuna Karimi", {"name_first": "Shabnum", "name_middle": "Asad",
                                                             "name_last": "Tokhi", "sex": "female", "age": 4})
    person = engine.trace_person(trace)
    ranked = RecordIndex("case").candidates(person)
    assert ranked[0][0] == child.id
    assert engine.ranked_candidates(person, "case") == ranked
    bonus = engine.COVER_BONUS
    try:
        engine.COVER_BONUS = 0.0
        import matching.index as index_module
        index_module.COVER_BONUS = 0.0
        assert RecordIndex("case").candidates(person)[0][0] != child.id
        assert engine.ranked_candidates(person, "case")[0][0] != child.id
    finally:
        engine.COVER_BONUS = bonus
        index_module.COVER_BONUS = bonus


def test_a_typo_in_a_one_word_name_is_found_through_the_spelling_keys_in_both_paths(make):
    """Case "Maryam" alone; trace "Marysm Arbab Mahamat": no phonetic key is shared, but both
    sides hold the spelling key "marym" (one letter left out), so both paths find the case, and
    only through that kind. Renaming the case rewrites its spelling keys."""
    agency = make.agency()
    caseworker, officer = make.user(ROLE_CASEWORKER, agency=agency), make.user(ROLE_TRACING_OFFICER, agency=agency)
    child = create_case(caseworker, {"name_first": "Maryam", "sex": "female", "age": 1, "consent_for_tracing": True})
    other = create_case(caseworker, {"name_first": "Halima", "name_last": "Arbabi", "sex": "female", "age": 1,
                                     "consent_for_tracing": True})
    trace = _searched_by_an_aunt(officer, "Zara Mahamat", {"name_first": "Marysm", "name_middle": "Arbab",
                                                          "name_last": "Mahamat", "sex": "female", "age": 1})
    spelling = set(db.session.execute(select(RecordKey.key).where(
        RecordKey.record_id == child.id, RecordKey.kind == engine.SPELLING_KIND)).scalars())
    assert {"maryam", "marym", "mryam"} <= spelling
    assert not engine.person_keys(engine.case_person(child)) & engine.person_keys(engine.trace_person(trace))
    person = engine.trace_person(trace)
    ranked = RecordIndex("case").candidates(person)
    assert child.id in dict(ranked) and other.id in dict(ranked)
    assert engine.ranked_candidates(person, "case") == ranked
    update_case(child, caseworker, {**child.data, "name_first": "Rahma"}, expected_version=child.version)
    db.session.flush()
    assert "marym" not in set(db.session.execute(select(RecordKey.key).where(
        RecordKey.record_id == child.id, RecordKey.kind == engine.SPELLING_KIND)).scalars())
    assert child.id not in dict(RecordIndex("case").candidates(person))
    assert child.id not in dict(engine.ranked_candidates(person, "case"))


def test_spelling_keys():
    assert engine.spelling_keys("Gracce") == engine.spelling_keys("Grace")  # doubled letters once
    assert "grce" in engine.spelling_keys("Grzce") & engine.spelling_keys("Grace")
    assert "gebremedhin" in engine.spelling_keys("Gebre Medhin") & engine.spelling_keys("Gebremedhin")
    assert engine.spelling_keys("Ali") == frozenset({"ali"})  # short names keep only themselves
    assert engine.spelling_keys("يارا") & engine.spelling_keys("Yraa")  # Arabic script in Latin letters
    assert engine.spelling_keys("") == frozenset() and engine.spelling_keys(None) == frozenset()
