"""A live re-key (`flask matching run` rewriting every record's name keys) beside saves and
matching jobs, on PostgreSQL: each interleaving ends with the keys of the data as saved, no
save lost, and no deadlock.

The interleavings are forced, not left to chance: a save or a job holds its row locks while
the re-key runs, or the re-key is paused holding a batch while a save comes in; the test
waits until PostgreSQL reports the other side waiting for a lock before letting go.
"""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, select, text

from app.extensions import db
from app.records.models import RecordKey
from cases.models import Case
from matching.engine import NAME_KIND, index_all_keys, matching_keys, relative_keys_of
from tests.test_matching_engine import register_child, search_for_child

pytestmark = pytest.mark.usefixtures("default_forms")

WAIT = 20  # seconds: a side that does not get there by then has failed


@pytest.fixture
def postgres(app, committed):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite serialises every transaction; the interleavings need PostgreSQL (as in CI)")


def stored_keys(record_type: str, record_id: str) -> list[tuple[str, str]]:
    db.session.expire_all()
    return sorted(db.session.execute(select(RecordKey.kind, RecordKey.key).where(
        RecordKey.record_type == record_type, RecordKey.record_id == record_id)).all())


def expected_keys(record_type: str, data: dict, request_data: dict | None = None) -> list[tuple[str, str]]:
    from app.records.search import name_texts
    kinds = {NAME_KIND: relative_keys_of(name_texts(record_type, data)),
             **matching_keys(record_type, data, request_data)}
    return sorted((kind, key) for kind, keys in kinds.items() for key in keys)


def every_record_keyed_as_saved() -> None:
    """Every case, trace and request holds exactly the keys its stored data gives, once."""
    from tracing.models import Trace, TracingRequest
    for model, record_type in ((Case, "case"), (Trace, "trace"), (TracingRequest, "tracing_request")):
        for record in db.session.execute(select(model)).scalars():
            request_data = record.tracing_request.data if record_type == "trace" else None
            assert stored_keys(record_type, record.id) == expected_keys(record_type, record.data or {}, request_data), \
                (record_type, record.data)


def wait_for_lock_waiter(app) -> None:
    """Until another connection of this database waits for a row lock."""
    deadline = time.monotonic() + WAIT
    with app.app_context():
        while time.monotonic() < deadline:
            waiting = db.session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
            db.session.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("nobody came to wait for the lock")


class Side(threading.Thread):
    """A thread with its own app context (own session and connection); errors are kept."""

    def __init__(self, app, work):
        super().__init__(daemon=True)
        self.app, self.work, self.error, self.result = app, work, None, None

    def run(self):
        with self.app.app_context():
            try:
                self.result = self.work()
            except BaseException as error:  # noqa: BLE001 - reported by the test
                db.session.rollback()
                self.error = error
            finally:
                db.session.remove()

    def finish(self):
        self.join(WAIT)
        assert not self.is_alive(), "still running: a deadlock or a lost wake-up"
        if self.error is not None:
            raise self.error
        return self.result


def setup_records(app, make, children=("Muhammad", "Ahmed", "Fatima", "Aisha", "Omar", "Yusuf")):
    with app.app_context():
        agency = make.agency()
        officer, caseworker = make.user("tracing_officer", agency=agency), make.user("caseworker", agency=agency)
        db.session.commit()
        cases = [register_child(caseworker, name_first=first) for first in children]
        traces = [search_for_child(officer, name_first=first) for first in children[:3]]
        return caseworker.id, [c.id for c in cases], [t.id for t in traces]


def rekey_while_held(app, holder_work, batch: int = 1000):
    """`holder_work(hold)` runs in a thread of its own and calls `hold()` once it holds its
    locks; the re-key then runs until PostgreSQL reports it waiting for them, the holder goes
    on, and both must finish (a deadlock, an error or a hang fails the test). Returns what
    the holder returned."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        holding.set()
        assert release.wait(WAIT)

    holder = Side(app, lambda: holder_work(hold))
    holder.start()
    assert holding.wait(WAIT)
    rekey = Side(app, lambda: index_all_keys(batch=batch))
    rekey.start()
    wait_for_lock_waiter(app)  # the re-key did what it could and now waits for what is held
    assert rekey.is_alive()
    release.set()
    result = holder.finish()
    assert rekey.finish() > 0
    return result


def save_name(caseworker_id: str, case_id: str, first: str, father: str, hold=None) -> int:
    """A caseworker renames a child and her father (as the edit form does); `hold`, if given,
    is called after the save is flushed (row locked, keys written) and before it commits."""
    from app.users.models import User
    from cases.operations import update_case
    user = db.session.get(User, caseworker_id)
    case = db.session.get(Case, case_id)
    data = {**case.data, "name_first": first, "father_name": father}
    update_case(case, user, data, case.version)
    if hold:
        hold()
    db.session.commit()
    return case.version


def test_a_rekey_waits_for_a_save_in_progress_and_keys_the_new_name(app, make, postgres):
    caseworker_id, case_ids, _ = setup_records(app, make)
    target = case_ids[2]
    version = rekey_while_held(app, lambda hold: save_name(caseworker_id, target, "Zainab", "Kidane Girmay", hold),
                               batch=2)
    assert version >= 2
    with app.app_context():
        case = db.session.get(Case, target)
        assert case.data["name_first"] == "Zainab" and case.data["father_name"] == "Kidane Girmay"
        assert ("relative", "KDN") in stored_keys("case", target)
        every_record_keyed_as_saved()


def test_a_save_arriving_while_a_rekey_batch_is_held_writes_its_own_keys_after_it(app, make, postgres):
    caseworker_id, case_ids, _ = setup_records(app, make)
    target = sorted(case_ids)[1]
    locked, release = threading.Event(), threading.Event()
    rekey_thread: list[threading.Thread] = []

    def pause_after_locking(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread() in rekey_thread and "FOR UPDATE" in statement \
                and "FROM cases" in statement and not locked.is_set():
            locked.set()
            assert release.wait(WAIT)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", pause_after_locking)
    try:
        rekey = Side(app, lambda: index_all_keys(batch=1000))
        rekey_thread.append(rekey)
        rekey.start()
        assert locked.wait(WAIT)  # the re-key holds every case, with their old data read
        save = Side(app, lambda: save_name(caseworker_id, target, "Zainab", "Kidane Girmay"))
        save.start()
        wait_for_lock_waiter(app)  # the save waits for the batch
        assert save.is_alive()
        release.set()
        assert rekey.finish() > 0
        assert save.finish() >= 2
    finally:
        event.remove(engine, "after_cursor_execute", pause_after_locking)
    with app.app_context():
        assert db.session.get(Case, target).data["name_first"] == "Zainab"
        assert ("relative", "KDN") in stored_keys("case", target)
        every_record_keyed_as_saved()


def test_a_rekey_and_a_matching_job_holding_traces_do_not_deadlock(app, make, postgres):
    """A matching job marks several traces "match proposed" in one transaction. A re-key batch
    that waited for one of them while holding the others could close a circle with the job
    asking for one it holds (PostgreSQL would then abort one of them)."""
    from matching.engine import _mark_proposed
    from tracing.models import TRACE_MATCH_PROPOSED, Trace
    _caseworker_id, _case_ids, trace_ids = setup_records(app, make)
    with app.app_context():
        db.session.execute(Trace.__table__.update().values(tracing_status="open"))
        db.session.commit()
    first, second = sorted(trace_ids)[:2]

    def job(hold):
        _mark_proposed(second)  # the job holds the later trace ...
        hold()
        _mark_proposed(first)  # ... then asks for the earlier one
        db.session.commit()

    rekey_while_held(app, job)
    with app.app_context():
        statuses = set(db.session.execute(select(Trace.tracing_status).where(
            Trace.id.in_((first, second)))).scalars())
        assert statuses == {TRACE_MATCH_PROPOSED}
        every_record_keyed_as_saved()


def test_a_rekey_waits_for_a_tracing_request_save_that_renames_the_asking_mother(app, make, postgres):
    """The mother who asks is her trace's relative (engine.relative_texts): a request saved
    with her corrected name while the re-key runs must not leave the old name's keys behind."""
    from app.users.models import User
    from tracing.models import Trace, TracingRequest
    from tracing.operations import update_tracing_request
    setup_records(app, make)  # the requests are the mother's (tests.test_matching_engine.search_for_child)
    with app.app_context():
        trace = db.session.execute(select(Trace).order_by(Trace.id)).scalars().first()
        request_id, trace_id = trace.tracing_request_id, trace.id
        officer_id = trace.tracing_request.owner_id

    def rename(hold):
        request = db.session.get(TracingRequest, request_id)
        update_tracing_request(request, db.session.get(User, officer_id),
                               {**request.data, "relation_name": "Zainab Kidane"}, request.version)
        hold()
        db.session.commit()

    rekey_while_held(app, rename)
    with app.app_context():
        keys = {key for kind, key in stored_keys("trace", trace_id) if kind == "relative"}
        assert {"ZNB", "KDN"} <= keys and not {"AMN", "YSF"} & keys  # Zainab Kidane, not Aminah Yousef
        every_record_keyed_as_saved()
