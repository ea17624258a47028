"""The matching benchmark (bench/): the generator is deterministic, produces exactly what
was asked, in the shape of the default forms, and the hard cases it claims; the loader
stores what the real operations store; the metrics count what they say."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from rapidfuzz.distance import OSA

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import matching_baseline as mb  # noqa: E402
import matching_data as md  # noqa: E402
import matching_eval as me  # noqa: E402


def _fingerprint(cases, requests, truth) -> str:
    import json
    digest = hashlib.sha256()
    for case in cases:
        digest.update(json.dumps([case.source_id, str(case.registered_on), case.data], sort_keys=True).encode())
    for request in requests:
        digest.update(json.dumps([request.source_id, request.data, [[t.source_id, t.data] for t in request.traces]],
                                 sort_keys=True).encode())
    for trace in truth:
        digest.update(json.dumps([trace.source_id, trace.case_source_id, trace.tags]).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def large():
    """Big enough for every hard case to occur, small enough to stay fast."""
    cases, requests, truth = md.generate(3000, 3000, seed=11)
    return cases, requests, truth, {c.source_id: c for c in cases}


def _is_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def _is_geez(text: str) -> bool:
    return any("\u1200" <= ch <= "\u137f" for ch in text)


def _names(data: dict) -> str:
    return " ".join(data.get(k, "") for k in ("name_first", "name_middle", "name_last"))


# --- determinism and counts ----------------------------------------------------------------

def test_same_seed_gives_the_same_data_and_another_seed_other_data():
    first = _fingerprint(*md.generate(300, 250, seed=3))
    assert first == _fingerprint(*md.generate(300, 250, seed=3))
    assert first != _fingerprint(*md.generate(300, 250, seed=4))


GENERATE_IN_SUBPROCESS = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
sys.path.insert(0, {bench!r})
import matching_data as md
summary = md.write_jsonl(__import__("pathlib").Path(sys.argv[1]), 200, 180, 7)
data_dir = {data_dir!r}
print("READ_ENGINE_TABLES" if any(p.startswith(data_dir) for p in opened) else "independent")
print("IMPORTED_ENGINE" if any(m == "matching" or m.startswith("matching.") for m in sys.modules) else "no-engine")
"""


def test_files_do_not_depend_on_hash_seed_and_never_read_the_engines_tables(tmp_path):
    script = GENERATE_IN_SUBPROCESS.format(bench=str(BENCH), data_dir=str(ROOT / "matching" / "data"))
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True,
                              check=True, timeout=60)
        assert done.stdout.split() == ["independent", "no-engine"]
        digests.append({name: hashlib.sha256((out / name).read_bytes()).hexdigest()
                        for name in ("cases.jsonl", "tracing_requests.jsonl", "truth.jsonl", "locations.csv")})
    assert digests[0] == digests[1]


@pytest.mark.parametrize("n_cases, n_traces", [(50, 200), (300, 100), (120, 0), (1, 5), (400, 400)])
def test_exactly_the_requested_numbers_of_cases_and_traces(n_cases, n_traces):
    cases, requests, truth = md.generate(n_cases, n_traces, seed=2)
    assert len(cases) == n_cases
    assert sum(len(r.traces) for r in requests) == len(truth) == n_traces
    matched = min(round(n_traces * (1 - md.Generator.UNREGISTERED_SHARE)), n_cases)
    assert sum(1 for t in truth if t.case_source_id) == matched
    ids = [c.source_id for c in cases] + [t.source_id for t in truth] + [r.source_id for r in requests]
    assert len(ids) == len(set(ids))


def test_truth_points_to_real_cases_and_tags_agree_with_it(large):
    cases, requests, truth, by_id = large
    assert all(r.traces for r in requests)
    for trace in truth:
        if trace.case_source_id is None:
            assert "unregistered" in trace.tags
            continue
        case = by_id[trace.case_source_id]
        assert "unregistered" not in trace.tags
        assert ("no_consent" in trace.tags) == (case.data["consent_for_tracing"] is False)
        assert case.data["sex"] in ("male", "female", "unknown")
        assert case.registered_on <= md.AS_OF
    assert {tag for t in truth for tag in t.tags} <= set(md.TAGS)


# --- the shape of the records -----------------------------------------------------------------

def test_records_use_only_the_default_forms_keys(large):
    cases, requests, truth, _ = large
    keys = md.form_keys()
    for case in cases:
        assert set(case.data) <= keys["case"], set(case.data) - keys["case"]
        for row in case.data.get("family_details", []):
            assert {f"family_details.{k}" for k in row if k != "_id"} <= keys["case"]
    for request in requests:
        assert set(request.data) <= keys["tracing_request"]
        for trace in request.traces:
            assert set(trace.data) <= keys["trace"], set(trace.data) - keys["trace"]
    # The approximate flags exist in this configuration and are used.
    assert any(c.data.get("date_of_birth_approximate") for c in cases)


def test_generated_records_pass_the_forms_validation(default_forms, make):
    """What the generator writes is what a caseworker or tracing officer could save."""
    from app.permissions import ROLE_CASEWORKER, ROLE_TRACING_OFFICER
    from forms.operations import import_locations_csv, validate_record_data
    import_locations_csv(md.locations_csv(md.build_places()))
    agency = make.agency()
    caseworker = make.user(ROLE_CASEWORKER, agency=agency)
    tracer = make.user(ROLE_TRACING_OFFICER, agency=agency)
    cases, requests, _truth = md.generate(150, 150, seed=9)
    for case in cases:
        cleaned = validate_record_data("case", case.data, caseworker)
        assert cleaned == case.data
    for request in requests:
        assert validate_record_data("tracing_request", request.data, tracer) == request.data
        for trace in request.traces:
            assert validate_record_data("trace", trace.data, tracer) == trace.data


def test_bulk_load_stores_what_the_operations_store(default_forms, make):
    """The benchmark's bulk inserts have the shape of create_case / create_tracing_request:
    the same denormalised columns and the same name keys."""
    from sqlalchemy import select

    from app.permissions import ROLE_CASEWORKER, ROLE_TRACING_OFFICER
    from app.records.models import RecordKey
    from cases.operations import create_case
    from forms.operations import import_locations_csv
    from tracing.operations import create_tracing_request
    import_locations_csv(md.locations_csv(md.build_places()))
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user(ROLE_CASEWORKER, agency=agency, groups=[group])
    tracer = make.user(ROLE_TRACING_OFFICER, agency=agency, groups=[group])
    generator = md.Generator(12, 12, seed=4)
    batches = list(generator.batches())
    loader = me.BulkLoader(caseworker, tracer, group, seed=4)
    with me.form_lookups_cached():
        for batch in batches:
            loader.add(batch)
    bulk_keys: dict[str, set[str]] = {}
    for record_type, record_id, _kind, key in loader.keys:
        bulk_keys.setdefault(record_id, set()).add(f"{record_type}:{key}")

    def stored_keys(record) -> set[str]:
        return {f"{record.RECORD_TYPE}:{k}" for k in db_session().execute(select(RecordKey.key).where(
            RecordKey.record_type == record.RECORD_TYPE, RecordKey.record_id == record.id)).scalars()}

    columns = ("display_name", "sex", "age", "location_code", "phone_digits", "is_consent_for_tracing")
    bulk_cases = {row["source_id"]: row for row in loader.rows["cases"]}
    for batch in batches:
        for case in batch.cases:
            made = create_case(caseworker, dict(case.data), source_id=case.source_id)
            row = bulk_cases[case.source_id]
            assert made.data == row["data"]
            assert {c: getattr(made, c) for c in columns} == {c: row[c] for c in columns}
            assert stored_keys(made) == bulk_keys.get(row["id"], set())
    bulk_requests = {row["source_id"]: row for row in loader.rows["tracing_requests"]}
    bulk_traces = {row["source_id"]: row for row in loader.rows["traces"]}
    trace_columns = ("display_name", "sex", "age", "location_code", "tracing_status")
    for batch in batches:
        for request in batch.requests:
            made = create_tracing_request(tracer, dict(request.data), [dict(t.data) for t in request.traces],
                                          source_id=request.source_id,
                                          trace_source_ids=[t.source_id for t in request.traces])
            row = bulk_requests[request.source_id]
            assert (made.display_name, made.inquiry_date, made.is_consent_for_tracing) == (
                row["display_name"], row["inquiry_date"], row["is_consent_for_tracing"])
            assert stored_keys(made) == bulk_keys.get(row["id"], set())
            for trace in made.traces:
                trace_row = bulk_traces[trace.source_id]
                assert trace.data == trace_row["data"]
                assert {c: getattr(trace, c) for c in trace_columns} == {c: trace_row[c] for c in trace_columns}
                assert stored_keys(trace) == bulk_keys.get(trace_row["id"], set())


def db_session():
    from app.extensions import db
    return db.session


# --- the hard cases are what they claim ------------------------------------------------------

def test_every_hard_case_occurs(large):
    _cases, _requests, truth, _ = large
    counts = Counter(tag for t in truth for tag in t.tags)
    missing = [tag for tag in md.TAGS if not counts[tag]]
    assert not missing
    shares = md.tag_shares(truth)
    assert 0.14 <= shares["unregistered"][1] <= 0.16
    assert shares["variant_spelling"][1] > 0.3
    assert shares["arabic_script"][1] > 0.02


def test_tagged_traces_really_differ_from_their_case(large):
    _cases, _requests, truth, by_id = large
    shorts = {s for t in md.TRADITIONS for pool in (t.male, t.female) for e in pool.entries for s in e.short}
    checked = Counter()
    for trace in truth:
        if not trace.case_source_id:
            continue
        case, data = by_id[trace.case_source_id].data, trace.data
        tags = set(trace.tags)
        if "arabic_script" in tags:
            assert _is_arabic(_names(data)) != _is_arabic(_names(case))
            checked["arabic_script"] += 1
        if "geez_script" in tags:
            assert _is_geez(_names(data)) != _is_geez(_names(case))
            checked["geez_script"] += 1
        if "family_name_missing" in tags:
            assert not (data.get("name_middle") or data.get("name_last")) or not (
                case.get("name_middle") or case.get("name_last"))
            checked["family_name_missing"] += 1
        if "nickname_as_name" in tags and "typo" not in tags:
            # The short form is the given name, or moved with it when the names were swapped.
            assert set(_names(data).split()) & shorts or set(_names(case).split()) & shorts
            checked["nickname_as_name"] += 1
        if "sex_wrong" in tags:
            assert data["sex"] in ("male", "female") and data["sex"] != case["sex"]
            checked["sex_wrong"] += 1
        if "dob_day_month_swapped" in tags and case.get("date_of_birth") and not case.get(
                "date_of_birth_approximate"):
            y1, m1, d1 = case["date_of_birth"].split("-")
            y2, m2, d2 = data["date_of_birth"].split("-")
            assert (y1, m1, d1) == (y2, d2, m2) and m1 != d1
            checked["dob_day_month_swapped"] += 1
        if "dob_typo" in tags and case.get("date_of_birth") and not case.get("date_of_birth_approximate"):
            a, b = case["date_of_birth"].replace("-", ""), data["date_of_birth"].replace("-", "")
            assert sum(x != y for x, y in zip(a, b, strict=True)) == 1
            checked["dob_typo"] += 1
        if "particle" in tags:
            last = (case.get("name_last", "") + " " + data.get("name_last", "") + " " + case.get("name_first", "")
                    + " " + data.get("name_first", "")).casefold()
            assert "al" in last or "el" in last
            checked["particle"] += 1
        if "variant_spelling" in tags and "typo" not in tags:
            assert _fold(_names(data)) != _fold(_names(case)) or data != case
            checked["variant_spelling"] += 1
        if "location_level" in tags:
            assert data.get("location_separation") != case.get("location_separation")
            checked["location_level"] += 1
        if "swapped_names" in tags:
            assert data.get("name_last")
            checked["swapped_names"] += 1
    assert all(checked[tag] for tag in ("arabic_script", "family_name_missing", "nickname_as_name", "sex_wrong",
                                        "dob_day_month_swapped", "dob_typo", "particle", "variant_spelling",
                                        "location_level", "swapped_names"))


def _fold(text: str) -> str:
    return md.fold(text)


def test_siblings_twins_and_namesakes_are_really_there(large):
    cases, requests, truth, by_id = large
    # Twins: a tracing request may seek both, and both cases then share parents and date of birth.
    twins = [t for t in truth if "registered_twin" in t.tags and t.case_source_id]
    assert twins
    # Namesakes: another case has the same three name parts (in some spelling).
    assert any("namesake_case" in t.tags for t in truth)
    # A never-registered child whose sibling is registered: the request names the family.
    negatives = [t for t in truth if "unregistered_sibling_registered" in t.tags]
    assert negatives and all(t.case_source_id is None for t in negatives)


def test_typo_is_one_keyboard_slip():
    import random
    rng = random.Random(1)
    for word in ("Mohamed", "Fadumo", "Abdirahman", "Gatluak", "Tesfay", "Khadija", "Nyandeng") * 40:
        slipped = md.typo(word, rng)
        assert slipped[0] == word[0]
        assert OSA.distance(slipped, word) <= 1


def test_locations_form_one_hierarchy_with_the_demo_places():
    places = md.build_places()
    with md.DEMO_LOCATIONS.open(encoding="utf-8") as fh:
        demo = [line.split(",")[0] for line in fh.read().splitlines()[1:]]
    assert set(demo) <= set(places)
    for place in places.values():
        assert place.parent is None or place.parent in places
        assert (place.type == "country") == (place.parent is None)


def test_generator_names_are_not_the_engines_table():
    """Reported, not required: how many generator variant pairs the engine's table knows."""
    overlap = md.variant_overlap()
    assert overlap["pairs"] > 1000
    assert overlap["known_to_engine_table"] < 0.8


# --- the metrics ----------------------------------------------------------------------------

def test_metrics_count_ranks_ties_bands_and_false_alarms():
    truth = {"t1": "c1", "t2": "c2", "t3": None, "t4": "c4", "t5": "c5"}
    no_consent = {"c5"}
    tags = {"t1": ("typo",), "t2": ("typo",), "t3": ("unregistered",), "t4": (), "t5": ("no_consent",)}
    rows = [
        ("t1", "c1", 9.0, "likely"), ("t1", "c9", 2.0, "possible"),  # true case first
        ("t2", "c2", 3.0, "possible"), ("t2", "c8", 3.0, "possible"),  # tied with another: half credit
        ("t3", "c7", 5.0, "likely"),  # never registered: a false alarm
        ("t5", "c5", 8.0, "likely"),  # no consent: must not be proposed, counts as wrong
    ]
    expected = {t: c for t, c in truth.items() if c and c not in no_consent}
    quality = me.summarise(me.outcomes_from_proposals(rows, expected), truth, no_consent, tags)
    assert quality.expected == 3
    assert quality.bands["likely"][:2] == (3, 1)  # three likely proposals, one true
    assert quality.bands["likely + possible"][:2] == (6, 2)
    assert quality.ranked_first == pytest.approx((1 + 0.5) / 3)
    assert quality.proposals_per_trace == pytest.approx(6 / 5)
    assert quality.false_alarms["unregistered"] == (1, 1.0, 1.0)
    assert quality.by_tag["typo"] == (2, 1.0, 0.75)


def test_baseline_keeps_to_the_review_budget_and_finds_exact_names():
    cases = [(f"c{i}", {"name_first": n, "name_last": "Hassan"}) for i, n in
             enumerate(["Mohamed", "Mohammed", "Ahmed", "Fatima", "Amina", "Abdi", "Ali", "Omar"])]
    traces = [("t0", {"name_first": "Mohamed", "name_last": "Hassan"}),
              ("t1", {"name_first": "Fatuma", "name_last": "Hassan"}),
              ("t2", {"name_first": "Xasan", "name_last": "Cali"})]
    truth = {"t0": "c0", "t1": "c3", "t2": None}
    run = mb.run_baseline(cases, traces, truth, workers=1)
    assert run.blocking == "all pairs" and run.pairs_compared == 24
    expected = {"t0": "c0", "t1": "c3"}
    thresholds = mb.choose_thresholds(run, expected, len(traces))
    assert thresholds.possible <= thresholds.likely
    outcomes = me.outcomes_from_baseline(run, thresholds, expected)
    assert sum(o.n_possible for o in outcomes.values()) <= mb.MAX_PROPOSALS_PER_TRACE * len(traces)
    assert outcomes["t0"].true_band is not None and outcomes["t0"].first_credit == 1.0
    # The first-letter shortcut only compares names with the same initial.
    shortcut = mb.run_baseline(cases, traces, truth, workers=1, full_limit=1)
    assert shortcut.blocking.startswith("first letter") and shortcut.pairs_compared < 24


def test_the_runner_prints_the_comparison_table(tmp_path):
    """End to end on a temporary SQLite file: generate, migrate, load, baseline, report."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, str(BENCH / "matching_eval.py"), "--cases", "60", "--traces", "60",
                           "--seed", "3", "--skip-engine", "--workers", "1"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "60 cases, 60 traces" in out
    for label in ("Pair completeness of blocking", "Likely: precision / recall / F1",
                  "Likely + possible: precision / recall / F1", "True case ranked first", "Proposals per trace",
                  "Peak memory (RSS, whole phase)", "By hard case"):
        assert label in out
    assert unicodedata.is_normalized("NFC", out)


def test_runner_says_when_the_engine_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "matching.engine", None)
    adapter, message = me.EngineAdapter.load()
    assert adapter is None and "does not exist yet" in message


def test_engine_adapter_uses_the_documented_entry_points():
    import types
    calls = []

    def blocking_candidates(trace_id: str) -> list[str]:
        calls.append(("blocking", trace_id))
        return ["c1", "c2"]

    engine = types.SimpleNamespace(
        blocking_candidates=blocking_candidates,
        match_record=lambda record_type, record_id: calls.append(("match", record_type, record_id)),
        run_all=lambda: calls.append(("run_all",)))
    adapter = me.EngineAdapter(engine, None)
    assert adapter.notes == []
    assert adapter.candidates("t1") == ["c1", "c2"]
    adapter.match_one("trace", "t1")
    adapter.run_all(["t1", "t2"])
    assert calls == [("blocking", "t1"), ("match", "trace", "t1"), ("run_all",)]
    # Without run_all, every trace is matched in turn, and the report says so.
    del engine.run_all
    calls.clear()
    adapter = me.EngineAdapter(engine, None)
    adapter.run_all(["t1", "t2"])
    assert calls == [("match", "trace", "t1"), ("match", "trace", "t2")]
    assert any("no run_all" in note for note in adapter.notes)
