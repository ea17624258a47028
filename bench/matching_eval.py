"""Benchmark of the matching engine against a naive baseline (see bench/README.md).

    python bench/matching_eval.py --cases 10000 --traces 10000 --seed 1
    python bench/matching_eval.py --cases 100000 --traces 100000 --seed 1 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench --reset-database

Steps, each in its own forked process so that its time and peak memory are its own:

1. **load**: generate the data (bench/matching_data.py) and load it into a fresh
   database (a temporary SQLite file unless ``--database-url``): the schema through the
   Alembic migrations, the default form configuration, the demo locations plus the
   generated hierarchy, then the records by bulk inserts of exactly what
   cases/operations.py and tracing/operations.py store (the denormalised columns and the
   RecordKey name keys of app.records.search.index_names, computed with the same
   functions), or through the real operations with ``--load-mode operations`` (slow).
2. **engine**: if ``matching.engine`` is importable, pair completeness of its blocking,
   the time to match one new trace, a full re-match, and the quality of the stored
   proposals; otherwise a message says what is missing.
3. **baseline**: bench/matching_baseline.py on the same records read back from the
   database.

The table compares both. Quality is measured against the generator's truth; a trace's
*expected* case is its true case when that case has consent for tracing (a true case
without consent must not be proposed, and a proposal of it counts as a false positive).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

import matching_baseline as baseline  # noqa: E402
import matching_data as gen  # noqa: E402

SHORT_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
INSERT_BATCH = 2000
NEGATIVE_TAGS = ("unregistered", "unregistered_sibling_registered", "unregistered_twin_registered", "no_consent")


# ---------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


@dataclass
class PhaseResult:
    value: object
    seconds: float
    peak_rss_mb: float
    peak_traced_mb: float | None


def run_phase(fn: Callable, *args, isolate: bool = True, trace_memory: bool = False) -> PhaseResult:
    """Run `fn(*args)` in a forked process (its own peak memory), or here."""
    def body():
        if trace_memory:
            tracemalloc.start()
        started = time.perf_counter()
        value = fn(*args)
        seconds = time.perf_counter() - started
        traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace_memory else None
        if trace_memory:
            tracemalloc.stop()
        return PhaseResult(value, seconds, peak_rss_mb(), traced)

    if not isolate:
        return body()
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def target():
        try:
            writer.send(("ok", body()))
        except SystemExit as stop:  # a refusal with a message for the user
            writer.send(("exit", str(stop.code)))
        except BaseException:  # report anything else to the parent
            writer.send(("error", traceback.format_exc()))
        finally:
            writer.close()

    process = ctx.Process(target=target)
    process.start()
    writer.close()
    try:
        status, payload = reader.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{fn.__name__} died (exit code {process.exitcode}), probably out of memory") from None
    process.join()
    if status == "exit":
        raise SystemExit(payload)
    if status == "error":
        raise RuntimeError(f"{fn.__name__} failed:\n{payload}")
    return payload


# ---------------------------------------------------------------------------------
# The app and the database
# ---------------------------------------------------------------------------------


def create_bench_app(database_url: str):
    """The real app on the benchmark database; jobs run in-process (no Redis). The two
    benchmark accounts are never logged into, so their passwords are hashed cheaply."""
    from app import create_app
    return create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": None,
                       "PASSWORD_HASH_FAST": True})


def prepare_database(database_url: str, reset: bool) -> None:
    """Build the schema with the migrations; refuse a non-empty database unless `reset`."""
    from flask_migrate import upgrade
    from sqlalchemy import inspect, text

    from app.extensions import db
    app = create_bench_app(database_url)
    with app.app_context():
        tables = inspect(db.engine).get_table_names()
        if tables and not reset:
            raise SystemExit(f"The database at {_safe_url(database_url)} is not empty ({len(tables)} tables). "
                             "Use an empty database, or --reset-database to drop everything in it.")
        if tables:
            if db.engine.dialect.name == "postgresql":
                with db.engine.begin() as connection:
                    connection.execute(text("DROP SCHEMA public CASCADE"))
                    connection.execute(text("CREATE SCHEMA public"))
            else:
                db.drop_all()
                with db.engine.begin() as connection:
                    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        # Alembic's logging config writes every revision to stderr: keep it unless it fails.
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):
                upgrade()
        except BaseException:
            sys.stderr.write(captured.getvalue())
            raise
        db.session.remove()
        db.engine.dispose()


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only used in messages
        return "(database)"


@dataclass
class LoadResult:
    truth: dict[str, str | None]  # trace id -> true case id
    tags: dict[str, tuple[str, ...]]  # trace id -> hard-case tags
    no_consent: set[str]  # case ids without consent for tracing
    cases: int
    traces: int
    requests: int
    record_keys: int
    summary: dict
    overlap: dict
    generate_seconds: float
    insert_seconds: float
    trace_ids: list[str] = field(default_factory=list)


def _short_ids(salt: int) -> Callable[[], str]:
    """Unique 7-character short ids in the app's alphabet (a bijection of a counter)."""
    counter = iter(range(10**12))
    modulus = len(SHORT_ID_ALPHABET) ** 7

    def next_id() -> str:
        n = (next(counter) * 1_000_003 + salt) % modulus
        out = []
        for _ in range(7):
            n, r = divmod(n, len(SHORT_ID_ALPHABET))
            out.append(SHORT_ID_ALPHABET[r])
        return "".join(out)

    return next_id


def _at(day) -> datetime:
    return datetime.combine(day, dtime(9, 0), tzinfo=timezone.utc)


def setup_organisation():
    """Roles, one agency and group, a caseworker and a tracing officer; forms and places."""
    import secrets

    from sqlalchemy import select

    from app.cli import seed_roles
    from app.extensions import db
    from app.permissions import ROLE_CASEWORKER, ROLE_TRACING_OFFICER
    from app.users import operations as users
    from app.users.models import Role
    from forms.operations import has_configuration, import_locations_csv, load_default_configuration
    seed_roles()
    agency = users.create_agency("bench", "Benchmark agency")
    group = users.create_group("bench-team", "Benchmark team", agency)
    roles = {r.code: r for r in db.session.execute(select(Role)).scalars()}
    password = secrets.token_urlsafe(24)
    caseworker = users.create_user("bench_caseworker", "Bench Caseworker", password, agency,
                                   roles[ROLE_CASEWORKER], [group], must_change_password=False)
    tracer = users.create_user("bench_tracer", "Bench Tracer", password, agency, roles[ROLE_TRACING_OFFICER],
                               [group], must_change_password=False)
    if not has_configuration():
        load_default_configuration()
    import_locations_csv(gen.locations_csv(gen.build_places()))
    db.session.commit()
    return caseworker, tracer, group


@contextlib.contextmanager
def form_lookups_cached():
    """Cache `fields_with_matching_tag` while loading: the form does not change during a
    load, and the app's helpers (denormalised_values, name_texts) ask it for every field
    of every record. The helpers themselves are the app's, unchanged."""
    import functools

    import forms.operations as operations
    original = operations.fields_with_matching_tag
    operations.fields_with_matching_tag = functools.lru_cache(maxsize=None)(
        lambda record_type, tag: tuple(original(record_type, tag)))
    try:
        yield
    finally:
        operations.fields_with_matching_tag = original


def load_phase(database_url: str, reset: bool, n_cases: int, n_traces: int, seed: int, mode: str) -> LoadResult:
    """Generate the data and store it; returns the truth keyed by database ids."""
    prepare_database(database_url, reset)
    app = create_bench_app(database_url)
    with app.app_context(), form_lookups_cached():
        caseworker, tracer, group = setup_organisation()
        loader = BulkLoader(caseworker, tracer, group, seed) if mode == "bulk" else OperationsLoader(caseworker, tracer)
        generator = gen.Generator(n_cases, n_traces, seed)
        generate_seconds = 0.0
        started = time.perf_counter()
        batches = generator.batches()
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            generate_seconds += time.perf_counter() - t0
            if batch is None:
                break
            loader.add(batch)
        loader.finish()
        truth_rows = generator.finish()
        insert_seconds = time.perf_counter() - started - generate_seconds
        from app.extensions import db
        from sqlalchemy import text
        db.session.commit()  # end the loader's transaction (SQLite: its BEGIN IMMEDIATE lock)
        db.session.remove()
        t0 = time.perf_counter()
        with db.engine.begin() as connection:  # planner statistics, as a live database has them
            connection.execute(text("ANALYZE"))
        insert_seconds += time.perf_counter() - t0
        truth: dict[str, str | None] = {}
        tags: dict[str, tuple[str, ...]] = {}
        interned: dict[tuple[str, ...], tuple[str, ...]] = {}
        for row in truth_rows:
            trace_id = loader.trace_ids[row.source_id]
            truth[trace_id] = loader.case_ids.get(row.case_source_id) if row.case_source_id else None
            key = tuple(row.tags)
            tags[trace_id] = interned.setdefault(key, key)
        try:
            overlap = gen.variant_overlap()
        except Exception as error:  # noqa: BLE001 - report, never fail the benchmark on it
            overlap = {"error": type(error).__name__}
        return LoadResult(truth, tags, loader.no_consent, loader.n_cases, loader.n_traces, loader.n_requests,
                          loader.n_keys, gen.summary_of(generator, truth_rows), overlap, generate_seconds,
                          insert_seconds, sorted(truth))


class BulkLoader:
    """Inserts records in batches, in the shape the app's operations give them."""

    def __init__(self, caseworker, tracer, group, seed: int):
        import uuid
        self.caseworker, self.tracer, self.group = caseworker, tracer, group
        self.rng = random.Random(f"bench-ids:{seed}")
        self.uuid = lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.case_short, self.request_short, self.trace_short = _short_ids(7), _short_ids(11), _short_ids(13)
        self.case_ids: dict[str, str] = {}
        self.trace_ids: dict[str, str] = {}
        self.no_consent: set[str] = set()
        self.n_cases = self.n_traces = self.n_requests = self.n_keys = 0
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.keys: list[tuple[str, str, str, str]] = []  # record_keys rows, the bulk of the data

    def _keys(self, record_type: str, record_id: str, data: dict, request_data: dict | None = None) -> None:
        # What app.records.search.index_names stores, computed with the same functions.
        from app.records.search import NAME_KIND, name_texts
        from matching.names import name_keys
        keys: set[str] = set()
        for text in name_texts(record_type, data):
            keys |= name_keys(text)
        self.keys.extend((record_type, record_id, NAME_KIND, key[:64]) for key in sorted(keys))
        self.n_keys += len(keys)
        # ... and what matching.tasks._index_matching_keys stores (parents' and caregiver's
        # names, the own name's spelling).
        try:
            from matching.engine import matching_keys
        except ImportError:  # an engine without matching keys
            return
        for kind, found in matching_keys(record_type, data, request_data).items():
            self.keys.extend((record_type, record_id, kind, key[:64]) for key in sorted(found))
            self.n_keys += len(found)

    def add(self, batch: gen.Batch) -> None:
        from app.records.values import denormalised_values, display_name
        from cases.models import STAGE_NEW
        from tracing.models import TRACE_OPEN
        for case in batch.cases:
            case_id = self.uuid()
            self.case_ids[case.source_id] = case_id
            values = denormalised_values("case", case.data)
            at = _at(case.registered_on)
            consent = bool(case.data.get("consent_for_tracing"))
            if not consent:
                self.no_consent.add(case_id)
            self.rows["cases"].append({
                "id": case_id, "short_id": self.case_short(), "data": case.data, "status": "open", "version": 1,
                "source_id": case.source_id, "created_at": at, "updated_at": at,
                "owner_id": self.caseworker.id, "agency_id": self.caseworker.agency_id,
                "created_by_id": self.caseworker.id, "updated_by_id": self.caseworker.id,
                "workflow_stage": STAGE_NEW, "display_name": values["display_name"], "sex": values["sex"],
                "age": values["age"], "location_code": values["location_code"],
                "phone_digits": values["phone_digits"], "is_consent_for_tracing": consent,
                "closed_at": None, "closure_reason": None})
            self.rows["case_groups"].append({"case_id": case_id, "group_id": self.group.id})
            self._keys("case", case_id, case.data)
            self.n_cases += 1
        for request in batch.requests:
            request_id = self.uuid()
            inquiry = datetime.strptime(request.data["inquiry_date"], "%Y-%m-%d").date()
            at = _at(inquiry)
            self.rows["tracing_requests"].append({
                "id": request_id, "short_id": self.request_short(), "data": request.data, "status": "open",
                "version": 1, "source_id": request.source_id, "created_at": at, "updated_at": at,
                "owner_id": self.tracer.id, "agency_id": self.tracer.agency_id, "created_by_id": self.tracer.id,
                "updated_by_id": self.tracer.id,
                "display_name": display_name("tracing_request", request.data, ("inquirer_name", "full_name")),
                "phone_digits": None, "inquiry_date": inquiry,
                "is_consent_for_tracing": bool(request.data.get("consent_for_tracing"))})
            self.rows["tracing_request_groups"].append({"tracing_request_id": request_id, "group_id": self.group.id})
            self._keys("tracing_request", request_id, request.data)
            self.n_requests += 1
            for trace in request.traces:
                trace_id = self.uuid()
                self.trace_ids[trace.source_id] = trace_id
                values = denormalised_values("trace", trace.data)
                self.rows["traces"].append({
                    "id": trace_id, "short_id": self.trace_short(), "data": trace.data, "status": "open",
                    "version": 1, "source_id": trace.source_id, "created_at": at, "updated_at": at,
                    "owner_id": self.tracer.id, "agency_id": self.tracer.agency_id,
                    "created_by_id": self.tracer.id, "updated_by_id": self.tracer.id,
                    "tracing_request_id": request_id, "tracing_status": TRACE_OPEN,
                    "display_name": values["display_name"], "sex": values["sex"], "age": values["age"],
                    "location_code": values["location_code"]})
                self._keys("trace", trace_id, trace.data, request.data)
                self.n_traces += 1
        if len(self.keys) + sum(len(rows) for rows in self.rows.values()) >= 50 * INSERT_BATCH:
            self._flush()

    def _flush(self) -> None:
        from sqlalchemy import insert

        from app.extensions import db
        metadata = db.metadata
        connection = db.session.connection()
        # Parents before children (foreign keys).
        for table in ("cases", "case_groups", "tracing_requests", "tracing_request_groups", "traces"):
            rows = self.rows.pop(table, [])
            for start in range(0, len(rows), INSERT_BATCH):
                db.session.execute(insert(metadata.tables[table]), rows[start:start + INSERT_BATCH])
        keys, self.keys = self.keys, []
        columns = "record_type, record_id, kind, key"
        if connection.dialect.name == "postgresql":
            raw = connection.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(f"COPY record_keys ({columns}) FROM STDIN") as copy:
                for row in keys:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" if connection.dialect.paramstyle == "qmark" else "%s" for _ in range(4))
            connection.exec_driver_sql(f"INSERT INTO record_keys ({columns}) VALUES ({marks})", keys)
        db.session.commit()

    def finish(self) -> None:
        self._flush()


class OperationsLoader:
    """Stores records through cases.operations.create_case and
    tracing.operations.create_tracing_request (validation, history, audit, hooks)."""

    def __init__(self, caseworker, tracer):
        self.caseworker, self.tracer = caseworker, tracer
        self.case_ids: dict[str, str] = {}
        self.trace_ids: dict[str, str] = {}
        self.no_consent: set[str] = set()
        self.n_cases = self.n_traces = self.n_requests = self.n_keys = 0

    def add(self, batch: gen.Batch) -> None:
        from app.extensions import db
        from cases.operations import create_case
        from tracing.operations import create_tracing_request
        for case in batch.cases:
            record = create_case(self.caseworker, dict(case.data), source_id=case.source_id)
            record.created_at = record.updated_at = _at(case.registered_on)  # registered in the past
            self.case_ids[case.source_id] = record.id
            if not record.is_consent_for_tracing:
                self.no_consent.add(record.id)
            self.n_cases += 1
        for request in batch.requests:
            inquiry = datetime.strptime(request.data["inquiry_date"], "%Y-%m-%d").date()
            made = create_tracing_request(self.tracer, dict(request.data), [dict(t.data) for t in request.traces],
                                          source_id=request.source_id,
                                          trace_source_ids=[t.source_id for t in request.traces])
            made.created_at = made.updated_at = _at(inquiry)
            for trace, row in zip(request.traces, made.traces, strict=True):
                row.created_at = row.updated_at = _at(inquiry)
                self.trace_ids[trace.source_id] = row.id
                self.n_traces += 1
            self.n_requests += 1
        db.session.commit()

    def finish(self) -> None:
        from sqlalchemy import func, select

        from app.extensions import db
        from app.records.models import RecordKey
        self.n_keys = db.session.scalar(select(func.count(RecordKey.id))) or 0


# ---------------------------------------------------------------------------------
# Quality: one outcome per trace, summarised the same way for both systems
# ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a system proposed for one trace."""

    true_band: str | None = None  # band of the expected case's proposal, if proposed
    first_credit: float = 0.0  # 1 if the expected case is proposed and scored highest (1/k if k tie)
    n_possible: int = 0  # proposals in likely + possible
    n_likely: int = 0


@dataclass
class Quality:
    expected: int
    bands: dict[str, tuple[int, int, float, float, float]]  # band -> (proposed, tp, precision, recall, f1)
    ranked_first: float
    proposals_per_trace: float
    false_alarms: dict[str, tuple[int, float, float]]  # negative tag -> (traces, with any, with likely)
    by_tag: dict[str, tuple[int, float, float]]  # tag -> (traces with an expected case, recall, ranked first)


def summarise(outcomes: dict[str, Outcome], truth: dict[str, str | None], no_consent: set[str],
              tags: dict[str, tuple[str, ...]]) -> Quality:
    expected = {t: c for t, c in truth.items() if c is not None and c not in no_consent}
    n_expected = max(len(expected), 1)
    bands = {}
    for label, accepted in (("likely", ("likely",)), ("likely + possible", ("likely", "possible"))):
        proposed = sum(o.n_likely if label == "likely" else o.n_possible for o in outcomes.values())
        tp = sum(1 for t in expected if outcomes.get(t) and outcomes[t].true_band in accepted)
        precision = tp / proposed if proposed else 0.0
        recall = tp / n_expected
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        bands[label] = (proposed, tp, precision, recall, f1)
    ranked_first = sum(outcomes[t].first_credit for t in expected if t in outcomes) / n_expected
    per_trace = sum(o.n_possible for o in outcomes.values()) / max(len(truth), 1)
    false_alarms = {}
    for tag in NEGATIVE_TAGS:
        ids = [t for t, ts in tags.items() if tag in ts]
        if ids:
            any_ = sum(1 for t in ids if outcomes.get(t) and outcomes[t].n_possible)
            likely = sum(1 for t in ids if outcomes.get(t) and outcomes[t].n_likely)
            false_alarms[tag] = (len(ids), any_ / len(ids), likely / len(ids))
    by_tag = {}
    tagged: dict[str, list[str]] = defaultdict(list)
    for t in expected:
        for tag in tags.get(t, ()):
            tagged[tag].append(t)
    for tag in gen.TAGS:
        ids = tagged.get(tag)
        if ids:
            recall = sum(1 for t in ids if outcomes.get(t) and outcomes[t].true_band) / len(ids)
            first = sum(outcomes[t].first_credit for t in ids if t in outcomes) / len(ids)
            by_tag[tag] = (len(ids), recall, first)
    return Quality(len(expected), bands, ranked_first, per_trace, false_alarms, by_tag)


def outcomes_from_proposals(rows: Iterable[tuple[str, str, float, str]],
                            expected: dict[str, str]) -> dict[str, Outcome]:
    """Outcomes from stored proposals: (trace_id, case_id, score, likelihood) rows."""
    by_trace: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for trace_id, case_id, score, likelihood in rows:
        by_trace[trace_id].append((case_id, float(score), likelihood))
    outcomes = {}
    for trace_id, proposals in by_trace.items():
        o = Outcome(n_possible=len(proposals), n_likely=sum(1 for *_x, band in proposals if band == "likely"))
        true_case = expected.get(trace_id)
        mine = [p for p in proposals if p[0] == true_case]
        if mine:
            score, band = mine[0][1], mine[0][2]
            o.true_band = band
            others = [s for c, s, _b in proposals if c != true_case]
            if not any(s > score for s in others):
                o.first_credit = 1 / (1 + sum(1 for s in others if s == score))
        outcomes[trace_id] = o
    return outcomes


def outcomes_from_baseline(run: baseline.BaselineRun, thresholds: baseline.Thresholds,
                           expected: dict[str, str]) -> dict[str, Outcome]:
    likely_bin, possible_bin = run.bin_of(thresholds.likely), run.bin_of(thresholds.possible)
    outcomes = {}
    for t in run.traces:
        o = Outcome(n_possible=sum(t.bins[possible_bin:]), n_likely=sum(t.bins[likely_bin:]))
        if t.trace_id in expected and t.true_bin is not None and t.true_bin >= possible_bin:
            o.true_band = "likely" if t.true_bin >= likely_bin else "possible"
            if t.higher == 0:
                o.first_credit = 1 / (1 + t.tied)
        outcomes[t.trace_id] = o
    return outcomes


# ---------------------------------------------------------------------------------
# The engine (imported lazily: it may not exist yet)
# ---------------------------------------------------------------------------------


class EngineAdapter:
    """Calls the engine's documented entry points, accepting the shapes it has had:

    * ``blocking_candidates(trace_id) -> [case_id]`` (or ``(person, "case")`` with
      ``trace_person``);
    * ``match_record("trace", trace_id)`` (engine or matching.tasks), else ``match_trace``;
    * ``run_all()``; without it, every trace is matched one by one (and the table says so).
    """

    def __init__(self, engine, tasks, indexes=None):
        import inspect
        self.engine, self.tasks, self.indexes = engine, tasks, indexes  # indexes: matching.index
        self.notes: list[str] = []
        fn = getattr(engine, "blocking_candidates", None)
        self.blocking = fn
        self.blocking_takes_id = False
        if fn is not None:
            params = list(inspect.signature(fn).parameters.values())
            first = params[0] if params else None
            self.blocking_takes_id = bool(first) and ("id" in first.name or first.annotation in (str, "str"))
            if not self.blocking_takes_id and not hasattr(engine, "trace_person"):
                self.blocking = None
        if self.blocking is None:
            self.notes.append("matching.engine has no usable blocking_candidates: pair completeness not measured")
        self.match_record = getattr(engine, "match_record", None) or getattr(tasks, "match_record", None)
        self.run_all_fn = getattr(engine, "run_all", None)
        if self.run_all_fn is None:
            self.notes.append("matching.engine has no run_all(): the full re-match matched each trace in turn "
                              "with match_record")

    @classmethod
    def load(cls) -> tuple[EngineAdapter | None, str]:
        import importlib
        try:
            engine = importlib.import_module("matching.engine")
        except ModuleNotFoundError as error:
            if error.name in ("matching.engine", "matching"):
                return None, "matching.engine does not exist yet: only the baseline was run."
            return None, f"matching.engine could not be imported ({error}): only the baseline was run."
        except Exception as error:  # noqa: BLE001 - a half-written engine must not stop the baseline
            return None, f"matching.engine failed to import ({type(error).__name__}: {error}): only the baseline ran."
        try:
            tasks = importlib.import_module("matching.tasks")
        except Exception:  # noqa: BLE001
            tasks = None
        try:
            indexes = importlib.import_module("matching.index")
        except Exception:  # noqa: BLE001 - an engine without in-memory indexes is measured through SQL
            indexes = None
        adapter = cls(engine, tasks, indexes)
        if adapter.match_record is None and not hasattr(engine, "match_trace"):
            return None, "matching.engine has neither match_record nor match_trace: only the baseline was run."
        return adapter, ""

    def candidates(self, trace_id: str) -> list[str]:
        index = self.case_index()
        if index is not None:
            from app.extensions import db
            from tracing.models import Trace
            return [case_id for case_id, _score in index.candidates(self.engine.trace_person(db.session.get(Trace, trace_id)))]
        if self.blocking_takes_id:
            return list(self.blocking(trace_id))
        from app.extensions import db
        from tracing.models import Trace
        trace = db.session.get(Trace, trace_id)
        return list(self.blocking(self.engine.trace_person(trace), "case"))

    def case_index(self):
        """The engine's in-memory case index (the bulk re-match's and the workers' blocking), if it
        has one: it ranks exactly as `blocking_candidates` does through SQL
        (tests/test_matching_index.py) and is far faster, so the pair-completeness pass can cover
        every trace at 100,000."""
        if getattr(self, "_index", None) is None and self.indexes is not None:
            self._index = self.indexes.record_index("case")
        return getattr(self, "_index", None)

    def forget_case_index(self) -> None:
        """So that what is measured next pays for building the indexes, as a fresh worker does."""
        self._index = None
        if self.indexes is not None:
            self.indexes.forget_indexes()

    def match_one(self, record_type: str, record_id: str) -> None:
        from app.extensions import db
        if self.match_record is not None:
            self.match_record(record_type, record_id)
        else:
            from cases.models import Case
            from tracing.models import Trace
            record = db.session.get(Trace if record_type == "trace" else Case, record_id)
            (self.engine.match_trace if record_type == "trace" else self.engine.match_case)(record)
        db.session.commit()

    def run_all(self, trace_ids: list[str], processes: int = 1) -> None:
        import inspect

        from app.extensions import db
        if self.run_all_fn is not None:
            if processes > 1 and "processes" in inspect.signature(self.run_all_fn).parameters:
                self.run_all_fn(processes=processes)
            else:
                self.run_all_fn()
            db.session.commit()
            return
        for done, trace_id in enumerate(trace_ids, start=1):
            self.match_one("trace", trace_id)
            if done % 500 == 0:
                db.session.remove()  # keep the identity map small


@dataclass
class EngineResult:
    available: bool
    message: str
    notes: list[str] = field(default_factory=list)
    completeness: float | None = None
    completeness_sample: int = 0
    candidates_mean: float = 0.0
    candidates_max: int = 0
    blocking_seconds: float = 0.0
    blocking_ms_median: float = 0.0
    latency_ms: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # type -> (median, p95, n)
    index_build_seconds: float | None = None  # a worker's in-memory indexes, built before its first record
    run_all_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    quality: Quality | None = None
    proposals_no_consent: int = 0
    # Reliability of the stored probabilities: (low, high, proposals, share that are the expected pair).
    reliability: list[tuple[float, float, int, float]] = field(default_factory=list)


def engine_phase(database_url: str, load: LoadResult, seed: int, blocking_sample: int, latency_sample: int,
                 skip_run_all: bool, processes: int = 1) -> EngineResult:
    adapter, message = EngineAdapter.load()
    if adapter is None:
        return EngineResult(False, message)
    from sqlalchemy import select

    from app.extensions import db
    app = create_bench_app(database_url)
    result = EngineResult(True, "", list(adapter.notes))
    expected = {t: c for t, c in load.truth.items() if c is not None and c not in load.no_consent}
    rng = random.Random(f"bench-sample:{seed}")
    with app.app_context():
        from cases.models import Case
        # 1. Pair completeness of blocking.
        if adapter.blocking is not None:
            ids = load.trace_ids if blocking_sample <= 0 or blocking_sample >= len(load.trace_ids) else \
                sorted(rng.sample(load.trace_ids, blocking_sample))
            kept = total = 0
            sizes = []
            timings = []
            started = time.perf_counter()
            for trace_id in ids:
                t0 = time.perf_counter()
                found = adapter.candidates(trace_id)
                timings.append(time.perf_counter() - t0)
                sizes.append(len(found))
                if trace_id in expected:
                    total += 1
                    kept += expected[trace_id] in set(found)
                if len(sizes) % 1000 == 0:
                    db.session.remove()
            result.blocking_seconds = time.perf_counter() - started
            result.completeness = kept / total if total else None
            result.completeness_sample = len(ids)
            result.candidates_mean = statistics.fmean(sizes) if sizes else 0.0
            result.candidates_max = max(sizes, default=0)
            result.blocking_ms_median = 1000 * statistics.median(timings) if timings else 0.0
            db.session.remove()
        # 2. One new record against everything of the other kind (median of a sample), in a
        # worker whose indexes are built (timed apart: a worker builds them once, then keeps
        # them up to date with what changed).
        case_ids = list(db.session.execute(select(Case.id).order_by(Case.id)).scalars())
        adapter.forget_case_index()
        if adapter.indexes is not None:
            started = time.perf_counter()
            adapter.indexes.record_index("case")
            adapter.indexes.record_index("trace")
            result.index_build_seconds = time.perf_counter() - started
            db.session.commit()
        for record_type, pool in (("trace", load.trace_ids), ("case", case_ids)):
            n = min(latency_sample, len(pool))
            if not n:
                continue
            timings = []
            failed = False
            for record_id in sorted(rng.sample(pool, n)):
                # As an rq worker runs a job: in an app context of its own (its own session,
                # request-level caches empty), whose setting up is timed too.
                t0 = time.perf_counter()
                with app.app_context():
                    try:
                        adapter.match_one(record_type, record_id)
                    except Exception as error:  # noqa: BLE001 - report and go on
                        db.session.rollback()
                        result.notes.append(f"matching one {record_type} failed: {type(error).__name__}: {error}")
                        failed = True
                    finally:
                        db.session.remove()
                if failed:
                    break
                timings.append(time.perf_counter() - t0)
            if timings:
                timings.sort()
                result.latency_ms[record_type] = (1000 * statistics.median(timings),
                                                  1000 * timings[int(0.95 * (len(timings) - 1))], len(timings))
            db.session.remove()
        # 3. The full re-match.
        if not skip_run_all:
            adapter.forget_case_index()
            started = time.perf_counter()
            adapter.run_all(load.trace_ids, processes)
            result.run_all_seconds = time.perf_counter() - started
            db.session.remove()
        # 4. Quality of what is stored.
        started = time.perf_counter()
        from matching import models as matching_models
        proposal = matching_models.MatchProposal
        pending = getattr(matching_models, "PENDING", "pending")
        rows = db.session.execute(
            select(proposal.trace_id, proposal.case_id, proposal.score, proposal.likelihood, proposal.probability)
            .where(proposal.status == pending).execution_options(yield_per=20_000))
        kept_rows = []
        bins = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001]
        tally = [[0, 0] for _ in bins[:-1]]
        for trace_id, case_id, score, likelihood, probability in rows:
            if case_id in load.no_consent:
                result.proposals_no_consent += 1
            kept_rows.append((trace_id, case_id, score, likelihood))
            for i in range(len(bins) - 1):
                if bins[i] <= (probability or 0.0) < bins[i + 1]:
                    tally[i][0] += 1
                    tally[i][1] += expected.get(trace_id) == case_id
                    break
        result.reliability = [(bins[i], min(bins[i + 1], 1.0), n, right / n if n else 0.0)
                              for i, (n, right) in enumerate(tally)]
        outcomes = outcomes_from_proposals(kept_rows, expected)
        del kept_rows
        result.quality = summarise(outcomes, load.truth, load.no_consent, load.tags)
        result.evaluate_seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------
# The baseline
# ---------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    blocking: str
    pairs_compared: int
    completeness: float
    thresholds: baseline.Thresholds
    read_seconds: float
    compare_seconds: float
    quality: Quality


def baseline_phase(database_url: str, load: LoadResult, workers: int, floor: float,
                   full_limit: int) -> BaselineResult:
    from sqlalchemy import select

    from app.extensions import db
    from cases.models import Case
    from tracing.models import Trace
    app = create_bench_app(database_url)
    started = time.perf_counter()
    with app.app_context():
        # The same eligibility as the engine: open cases with consent for tracing.
        cases = [(case_id, data) for case_id, data in db.session.execute(
            select(Case.id, Case.data).where(Case.status == "open", Case.is_consent_for_tracing.is_(True))
            .order_by(Case.id).execution_options(yield_per=20_000))]
        traces = [(trace_id, data) for trace_id, data in db.session.execute(
            select(Trace.id, Trace.data).order_by(Trace.id).execution_options(yield_per=20_000))]
        db.session.remove()
    read_seconds = time.perf_counter() - started
    expected = {t: c for t, c in load.truth.items() if c is not None and c not in load.no_consent}
    run = baseline.run_baseline(cases, traces, load.truth, floor=floor, full_limit=full_limit, workers=workers)
    del cases
    thresholds = baseline.choose_thresholds(run, expected, len(traces))
    in_block = sum(1 for t in run.traces if t.trace_id in expected and t.true_in_block)
    outcomes = outcomes_from_baseline(run, thresholds, expected)
    quality = summarise(outcomes, load.truth, load.no_consent, load.tags)
    return BaselineResult(run.blocking, run.pairs_compared, in_block / max(len(expected), 1), thresholds,
                          read_seconds, run.seconds, quality)


# ---------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _s(seconds: float) -> str:
    return f"{seconds:,.1f} s" if seconds >= 1 else f"{1000 * seconds:,.0f} ms"


def report(args, load_phase_result: PhaseResult, engine: PhaseResult | None, base: PhaseResult | None,
           database: str, out=sys.stdout) -> None:
    load: LoadResult = load_phase_result.value
    e: EngineResult | None = engine.value if engine else None
    b: BaselineResult | None = base.value if base else None
    expected = sum(1 for t, c in load.truth.items() if c is not None and c not in load.no_consent)
    unregistered = sum(1 for c in load.truth.values() if c is None)
    print(f"\nMatching benchmark: {load.cases:,} cases, {load.traces:,} traces in {load.requests:,} tracing "
          f"requests, seed {args.seed}, {database}", file=out)
    print(f"  traces with a registered child: {load.traces - unregistered:,} "
          f"({expected:,} proposable, {load.traces - unregistered - expected:,} whose case has no consent); "
          f"never registered: {unregistered:,}; record keys: {load.record_keys:,}", file=out)
    if isinstance(load.overlap, dict) and "pairs" in load.overlap:
        print(f"  generator variant pairs already in the engine's curated table: "
              f"{100 * load.overlap['known_to_engine_table']:.0f} % of {load.overlap['pairs']:,} "
              "(the rest the engine must find by itself)", file=out)
    if e is not None and not e.available:
        print(f"\n  ENGINE NOT RUN: {e.message}", file=out)
    for note in (e.notes if e and e.available else []):
        print(f"  note: {note}", file=out)
    rows: list[tuple[str, str, str]] = []

    def row(label: str, engine_value: str, baseline_value: str) -> None:
        rows.append((label, engine_value, baseline_value))

    eq = e.quality if e and e.available else None
    bq = b.quality if b else None
    if e and e.available and e.completeness is not None:
        sample = "" if e.completeness_sample >= load.traces else f" ({e.completeness_sample:,} sampled traces)"
        eng_pc = f"{_f(e.completeness)}{sample}"
    else:
        eng_pc = "n/a"
    row("Pair completeness of blocking", eng_pc, _f(b.completeness) if b else "n/a")
    row("  candidates per trace (mean / max)",
        f"{e.candidates_mean:,.1f} / {e.candidates_max:,}" if e and e.available and e.completeness is not None
        else "n/a",
        f"{b.pairs_compared / max(load.traces, 1):,.0f} ({b.blocking})" if b else "n/a")
    for band in ("likely", "likely + possible"):
        def pr(q: Quality | None) -> str:
            if q is None:
                return "n/a"
            proposed, _tp, p, r, f1 = q.bands[band]
            return f"{_f(p)} / {_f(r)} / {_f(f1)}"
        row(f"{band.capitalize()}: precision / recall / F1", pr(eq), pr(bq))
    row("True case ranked first", _f(eq.ranked_first) if eq else "n/a", _f(bq.ranked_first) if bq else "n/a")
    row("Proposals per trace", _f(eq.proposals_per_trace, 2) if eq else "n/a",
        _f(bq.proposals_per_trace, 2) if bq else "n/a")
    for tag, label in (("unregistered", "Never-registered traces with a proposal (any / likely)"),
                       ("no_consent", "Traces whose case lacks consent, with a proposal (any / likely)")):
        def fa(q: Quality | None) -> str:
            if q is None or tag not in q.false_alarms:
                return "n/a"
            _n, any_, likely = q.false_alarms[tag]
            return f"{_f(any_)} / {_f(likely)}"
        row(label, fa(eq), fa(bq))
    row("Proposals of cases without consent", str(e.proposals_no_consent) if e and e.available else "n/a",
        "0 (left out)" if b else "n/a")
    if b:
        row("  baseline thresholds (likely / possible)", "", f"ratio >= {b.thresholds.likely:g} / "
            f">= {b.thresholds.possible:g}")
    row("Time: generate + load (shared)", f"{_s(load_phase_result.seconds)} (generate {_s(load.generate_seconds)},"
        f" insert {_s(load.insert_seconds)})", "")
    if e and e.available:
        row("Time: blocking pass (in-memory index, incl. building it)", _s(e.blocking_seconds) +
            f" ({e.blocking_ms_median:.1f} ms median)" if e.completeness is not None else "n/a", "")
        if e.index_build_seconds is not None:
            row("Time: a worker builds its case and trace indexes (once)", _s(e.index_build_seconds), "")
        for record_type in ("trace", "case"):
            if record_type in e.latency_ms:
                median, p95, n = e.latency_ms[record_type]
                row(f"Time: match one new {record_type} (median / p95, n={n})",
                    f"{median:.1f} / {p95:.1f} ms", "")
        row(f"Time: full re-match (index + scoring + storing, {args.processes if 'postgresql' in database else 1} process(es))",
            _s(e.run_all_seconds) if not args.skip_run_all else "skipped",
            _s(b.compare_seconds) if b else "n/a")
        row("Time: reading proposals / names back", _s(e.evaluate_seconds), _s(b.read_seconds) if b else "n/a")
    elif b:
        row("Time: comparing (scoring)", "n/a", _s(b.compare_seconds))
        row("Time: reading names back", "n/a", _s(b.read_seconds))
    row("Time: total of the phase", _s(engine.seconds) if e and e.available else "n/a",
        _s(base.seconds) if base else "n/a")
    row("Peak memory (RSS, whole phase)", f"{engine.peak_rss_mb:,.0f} MB" if e and e.available else "n/a",
        f"{base.peak_rss_mb:,.0f} MB" if base else "n/a")
    if args.tracemalloc:
        row("Peak Python heap (tracemalloc)",
            f"{engine.peak_traced_mb:,.0f} MB" if e and e.available and engine.peak_traced_mb else "n/a",
            f"{base.peak_traced_mb:,.0f} MB" if base and base.peak_traced_mb else "n/a")
    row("Peak memory of generate + load", f"{load_phase_result.peak_rss_mb:,.0f} MB", "")
    width = max(len(r[0]) for r in rows)
    w1 = max(len("engine"), *(len(r[1]) for r in rows))
    print(f"\n{'':{width}}  {'engine':<{w1}}  baseline (rapidfuzz ratio)", file=out)
    for label, ev, bv in rows:
        print(f"{label:{width}}  {ev:<{w1}}  {bv}", file=out)
    print_reliability(e, out)
    if args.by_tag:
        print_by_tag(load, eq, bq, out)


def print_reliability(e: EngineResult | None, out=sys.stdout) -> None:
    """Stored probability against the share of proposals that are the true pair."""
    if e is None or not e.available or not e.reliability:
        return
    print("\nReliability of the engine's probabilities (pending proposals)", file=out)
    print(f"{'probability':<14}{'proposals':>10}{'right':>8}", file=out)
    for low, high, n, right in e.reliability:
        print(f"{low:.2f}-{high:.2f}    {n:>10,}{right:>8.3f}" if n else f"{low:.2f}-{high:.2f}    {0:>10}{'':>8}",
              file=out)


def print_by_tag(load: LoadResult, eq: Quality | None, bq: Quality | None, out=sys.stdout) -> None:
    shares = Counter(tag for tags in load.tags.values() for tag in tags)
    print("\nBy hard case (traces with a proposable true case: recall of likely + possible, ranked first)",
          file=out)
    print(f"{'hard case':32} {'traces':>7} {'share':>6}  {'engine R / first':>17}  {'baseline R / first':>19}",
          file=out)
    for tag in gen.TAGS:
        if tag in NEGATIVE_TAGS or not shares.get(tag):
            continue

        def cell(q: Quality | None) -> str:
            if q is None or tag not in q.by_tag:
                return "n/a"
            _n, recall, first = q.by_tag[tag]
            return f"{recall:.3f} / {first:.3f}"
        n = eq.by_tag[tag][0] if eq and tag in eq.by_tag else (bq.by_tag[tag][0] if bq and tag in bq.by_tag else 0)
        print(f"{tag:32} {n:7,} {100 * shares[tag] / max(load.traces, 1):5.1f}%  {cell(eq):>17}  {cell(bq):>19}",
              file=out)
    print("\nTraces without a proposable case (share with any proposal / with a likely one)", file=out)
    for tag in NEGATIVE_TAGS:
        if not shares.get(tag):
            continue

        def cell(q: Quality | None) -> str:
            if q is None or tag not in q.false_alarms:
                return "n/a"
            _n, any_, likely = q.false_alarms[tag]
            return f"{any_:.3f} / {likely:.3f}"
        print(f"{tag:32} {shares[tag]:7,} {100 * shares[tag] / max(load.traces, 1):5.1f}%  {cell(eq):>17}  "
              f"{cell(bq):>19}", file=out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--reset-database", action="store_true",
                        help="drop everything in --database-url first (it must otherwise be empty)")
    parser.add_argument("--keep-database", action="store_true", help="keep the temporary SQLite file")
    parser.add_argument("--load-mode", choices=("bulk", "operations"), default="bulk",
                        help="bulk inserts of the operations' shape (default) or the real operations (slow)")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-run-all", action="store_true", help="measure blocking and latency only")
    parser.add_argument("--blocking-sample", type=int, default=10_000,
                        help="traces whose blocking is checked (0: all)")
    parser.add_argument("--latency-sample", type=int, default=200, help="records matched one by one, per type")
    parser.add_argument("--workers", type=int, default=2, help="baseline worker processes")
    parser.add_argument("--processes", type=int, default=2,
                        help="processes sharing the engine's full re-match (PostgreSQL; SQLite always uses one)")
    parser.add_argument("--baseline-floor", type=float, default=baseline.DEFAULT_FLOOR)
    parser.add_argument("--baseline-full-limit", type=int, default=baseline.DEFAULT_FULL_LIMIT,
                        help="above this many pairs the baseline uses the first-letter shortcut")
    parser.add_argument("--by-tag", action=argparse.BooleanOptionalAction, default=True,
                        help="print recall per hard case")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python heap peaks (slower)")
    parser.add_argument("--no-isolate", action="store_true", help="run every phase in this process")
    args = parser.parse_args(argv)

    tmp = None
    if args.database_url:
        from config import normalise_database_url
        url = normalise_database_url(args.database_url)
        where = _safe_url(url)
    else:
        tmp = tempfile.mkdtemp(prefix="matching-bench-")
        url = f"sqlite:///{tmp}/bench.sqlite3"
        where = "SQLite (temporary file)" if not args.keep_database else f"SQLite {tmp}/bench.sqlite3"
    instance = tmp or tempfile.mkdtemp(prefix="matching-bench-instance-")
    os.environ["INSTANCE_PATH"] = instance  # never touch the repository's instance folder
    isolate = not args.no_isolate
    started = time.perf_counter()
    # Import the app's modules once, before forking, so that each phase does not pay for it
    # (no app, engine or connection is created here).
    import app  # noqa: F401
    import cases.operations  # noqa: F401
    import tracing.operations  # noqa: F401
    try:
        print(f"Generating and loading {args.cases:,} cases and {args.traces:,} traces ...", flush=True)
        loaded = run_phase(load_phase, url, args.reset_database, args.cases, args.traces, args.seed, args.load_mode,
                           isolate=isolate, trace_memory=False)
        engine = None
        if not args.skip_engine:
            print("Running the engine ...", flush=True)
            engine = run_phase(engine_phase, url, loaded.value, args.seed, args.blocking_sample, args.latency_sample,
                               args.skip_run_all, args.processes, isolate=isolate, trace_memory=args.tracemalloc)
            if not engine.value.available:
                print(f"  {engine.value.message}", flush=True)
        base = None
        if not args.skip_baseline:
            print("Running the baseline ...", flush=True)
            base = run_phase(baseline_phase, url, loaded.value, args.workers, args.baseline_floor,
                             args.baseline_full_limit, isolate=isolate, trace_memory=args.tracemalloc)
        report(args, loaded, engine, base, where)
        print(f"\nTotal wall time {_s(time.perf_counter() - started)}; harness process peak "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB (included in each phase's peak).")
    finally:
        if tmp and not args.keep_database:
            shutil.rmtree(tmp, ignore_errors=True)
        if instance != tmp:
            shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
