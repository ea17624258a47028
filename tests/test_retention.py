"""Retention: closed records past the retention period lose their personal data (names,
phones, dates of birth, free text, files, history values, notes, search keys), keep their
statistics, and the run is audited; open and recent records are untouched."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.db import utcnow
from app.extensions import db
from app.jobs.models import JobRecord
from app.records.models import RecordAttachment, RecordChange, RecordKey, RecordNote
from app.records.operations import add_flag, add_note
from app.records.retention import age_band_floor, count_due, run_retention
from app.records.search import search_records
from cases.models import Case
from cases.operations import close_case, create_case
from tracing.models import Trace, TracingRequest
from tracing.operations import close_tracing_request, create_tracing_request

pytestmark = pytest.mark.usefixtures("default_forms")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NAME = "Xaliimo"
CHILD = {"name_first": NAME, "name_last": "Cabdullaahi", "sex": "female", "age": 7, "date_of_birth": "2017-03-02",
         "phone": "+252 61 555 0101", "separation_details": f"{NAME} was lost at the market",
         "location_current": "camp-a", "mother_name": "Hawo Cabdi", "consent_for_tracing": True}


@pytest.fixture
def places(admin):
    from forms.operations import create_location
    create_location({"code": "so", "type": "country", "names": {"en": "Somalia"}}, admin)
    create_location({"code": "gedo", "parent": "so", "type": "region", "names": {"en": "Gedo"}}, admin)
    create_location({"code": "camp-a", "parent": "gedo", "type": "camp", "names": {"en": "Camp A"}}, admin)
    db.session.flush()


@pytest.fixture
def admin(make):
    return make.user("administrator")


def old_closed_case(worker, data=None, years_ago=6):
    """A case registered and closed `years_ago` years back, with a note, a flag and a photo."""
    with time_machine.travel(utcnow() - timedelta(days=365 * years_ago + 30), tick=False):
        case = create_case(worker, dict(data or CHILD))
        db.session.flush()
        add_note(case, worker, f"Met {NAME} at the clinic", subject=f"{NAME} visit")
        add_flag(case, worker, f"{NAME} at risk")
        close_case(case, worker, f"{NAME} went home to her mother")
        db.session.flush()
    return case


def attach_photo(case, worker):
    from werkzeug.datastructures import FileStorage

    from app.records.attachments import _path_for, store_attachment
    attachment = store_attachment(case, "photos", "photo", FileStorage(io.BytesIO(PNG), filename=f"{NAME}.png"),
                                  worker)
    case.data = {**case.data, "photos": [attachment.id]}
    db.session.flush()
    return _path_for(attachment.storage_name)


def test_old_closed_case_is_anonymised_and_recent_or_open_ones_are_not(app, make, admin, places):
    worker = make.user("caseworker")
    old = old_closed_case(worker)
    photo = attach_photo(old, worker)
    assert photo.exists()
    recent = old_closed_case(worker, years_ago=1)
    with time_machine.travel(utcnow() - timedelta(days=365 * 8), tick=False):
        still_open = create_case(worker, dict(CHILD))
    db.session.flush()
    assert count_due() == {"cases": 1, "tracing_requests": 0, "traces": 0}

    counts = run_retention(admin)
    assert counts["cases"] == 1 and counts["notes"] == 1 and counts["attachments"] == 1
    db.session.expire_all()

    case = db.session.get(Case, old.id)
    assert case.anonymised_at is not None and case.status == "closed" and case.closed_at is not None
    # Statistics stay: sex, the age band, the region (not the camp); personal fields are gone.
    assert case.data == {"sex": "female", "age": 5, "location_current": "gedo"}
    assert (case.sex, case.age, case.location_code) == ("female", 5, "gedo")
    assert case.display_name == "" and case.phone_digits is None and case.closure_reason is None
    assert not photo.exists()
    assert all(a.is_deleted and a.original_name == "" for a in db.session.execute(
        select(RecordAttachment).where(RecordAttachment.record_id == case.id)).scalars())
    # The name survives nowhere: history, notes, flags, search keys.
    history = db.session.execute(select(RecordChange).where(RecordChange.record_id == case.id)).scalars().all()
    assert "anonymise" in {row.action for row in history}
    assert NAME not in repr([(row.changes, row.comment) for row in history])
    assert any(c["field"] == "@status" and c["new"] == "closed" for row in history for c in row.changes)
    assert db.session.scalar(select(func.count(RecordNote.id)).where(RecordNote.record_id == case.id)) == 0
    assert db.session.scalar(select(func.count(RecordKey.id)).where(RecordKey.record_id == case.id)) == 0
    from app.records.models import RecordFlag
    assert NAME not in repr(db.session.execute(select(RecordFlag.reason).where(
        RecordFlag.record_id == case.id)).scalars().all())
    found = {c.id for c in search_records(Case, select(Case), NAME)}
    assert old.id not in found and {recent.id, still_open.id} <= found

    # The recent closed case and the old open one keep everything.
    for untouched in (recent, still_open):
        row = db.session.get(Case, untouched.id)
        assert row.anonymised_at is None and row.data["name_first"] == NAME and row.phone_digits
    assert db.session.scalar(select(func.count(RecordNote.id)).where(RecordNote.record_id == recent.id)) == 1

    audit = db.session.execute(select(AuditEntry).where(AuditEntry.action == "records.anonymise")).scalar_one()
    assert audit.detail["cases"] == 1 and audit.detail["dry_run"] is False and audit.user_id == admin.id
    assert NAME not in repr(audit.detail)
    # A second run finds nothing more to do.
    assert run_retention(admin)["cases"] == 0


def test_closed_tracing_request_and_its_traces_are_anonymised(app, make, admin):
    officer = make.user("tracing_officer")
    with time_machine.travel(utcnow() - timedelta(days=365 * 7), tick=False):
        request = create_tracing_request(
            officer, {"relation_name": "Hawo Cabdi", "relation": "mother", "relation_phone": "+252 61 555 0199", "inquiry_date": "2019-05-01",
                      "inquiry_notes": f"Looking for {NAME}", "consent_for_tracing": True},
            [{"name_first": NAME, "name_last": "Cabdi", "sex": "female", "age": 13,
              "distinguishing_features": "scar on the left hand"}])
        db.session.flush()
        close_tracing_request(request, officer, f"{NAME} found by the family")
        db.session.flush()
    open_request = create_tracing_request(officer, {"relation_name": "Hawo Cabdi", "relation": "mother", "inquiry_date": "2026-01-01",
                                                    "consent_for_tracing": True},
                                          [{"name_first": NAME, "sex": "female", "age": 13}])
    db.session.flush()
    assert count_due() == {"cases": 0, "tracing_requests": 1, "traces": 1}
    counts = run_retention(admin)
    assert counts["tracing_requests"] == 1 and counts["traces"] == 1
    db.session.expire_all()
    stored = db.session.get(TracingRequest, request.id)
    assert stored.anonymised_at and stored.data == {"relation": "mother"} and stored.display_name == ""
    assert stored.phone_digits is None
    trace = db.session.execute(select(Trace).where(Trace.tracing_request_id == request.id)).scalar_one()
    assert trace.data == {"sex": "female", "age": 12} and trace.display_name == "" and trace.age == 12
    history = db.session.execute(select(RecordChange).where(
        RecordChange.record_id.in_([request.id, trace.id]))).scalars().all()
    assert NAME not in repr([(row.changes, row.comment) for row in history])
    assert db.session.scalar(select(func.count(RecordKey.id)).where(RecordKey.record_id == trace.id)) == 0
    kept = db.session.get(TracingRequest, open_request.id)
    assert kept.anonymised_at is None and kept.display_name == "Hawo Cabdi"


def test_dry_run_changes_nothing_but_is_audited(app, make, admin, places):
    old = old_closed_case(make.user("caseworker"))
    counts = run_retention(admin, dry_run=True)
    assert counts == {"cases": 1, "tracing_requests": 0, "traces": 0}
    db.session.expire_all()
    assert db.session.get(Case, old.id).data["name_first"] == NAME
    audit = db.session.execute(select(AuditEntry).where(AuditEntry.action == "records.anonymise")).scalar_one()
    assert audit.detail["dry_run"] is True


def test_age_bands():
    assert [age_band_floor(a) for a in (0, 4, 5, 11, 12, 17, 18, 40, None, "x")] == [0, 0, 5, 5, 12, 12, 18, 18,
                                                                                    None, None]


def test_retention_period_is_a_setting(app, make, admin, places):
    old_closed_case(make.user("caseworker"), years_ago=3)
    assert count_due()["cases"] == 0
    app.config["RETENTION_CLOSED_YEARS"] = 2
    try:
        assert count_due()["cases"] == 1
    finally:
        app.config["RETENTION_CLOSED_YEARS"] = 5


def test_page_shows_the_count_and_queues_the_job_for_administrators_only(app, make, login_as, places):
    old = old_closed_case(make.user("caseworker"))
    db.session.commit()
    web, admin = login_as("administrator")
    page = web.get("/admin/retention")
    assert page.status_code == 200 and "Anonymise these records" in page.get_data(as_text=True)
    # Without the CSRF token the button does nothing (S7).
    assert web.client.post("/admin/retention").status_code == 400
    response = web.form("/admin/retention", token_from="/admin/retention")
    assert response.status_code == 302
    # Without Redis the job ran in-process after the request.
    job = db.session.execute(select(JobRecord).where(JobRecord.task == "records.anonymise")).scalar_one()
    db.session.expire_all()
    assert job.status == "done"
    assert db.session.get(Case, old.id).anonymised_at is not None
    actions = set(db.session.execute(select(AuditEntry.action)).scalars())
    assert {"records.anonymise_requested", "records.anonymise"} <= actions
    assert "Nothing is due" in web.get("/admin/retention").get_data(as_text=True)
    other, _ = login_as("supervisor")
    assert other.get("/admin/retention").status_code == 403
    assert other.form("/admin/retention", token_from="/").status_code == 403


def test_cli_dry_run_and_run(app, make, places):
    old = old_closed_case(make.user("caseworker"))
    admin = make.user("administrator")
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["records", "anonymise", "--dry-run", "--as", admin.username])
    assert result.exit_code == 0, result.output
    assert "cases: 1" in result.output and "dry run" in result.output
    db.session.expire_all()
    assert db.session.get(Case, old.id).anonymised_at is None
    result = runner.invoke(args=["records", "anonymise", "--as", admin.username])
    assert result.exit_code == 0, result.output
    assert "Anonymised: cases: 1" in result.output
    db.session.expire_all()
    assert db.session.get(Case, old.id).anonymised_at is not None


def test_other_modules_scrub_their_own_text_through_a_registered_anonymiser(app, make, admin, places):
    from app.records import retention
    seen = []

    def scrubber(record_type, ids):
        seen.append((record_type, sorted(ids)))

    old = old_closed_case(make.user("caseworker"))
    retention.register_anonymiser(scrubber)
    try:
        run_retention(admin)
    finally:
        retention._SCRUBBERS.remove(scrubber)
    assert seen == [("case", [old.id])]


def test_an_anonymised_record_cannot_be_edited_or_reopened(app, make, admin, places):
    from app.records.operations import RecordError
    from cases.operations import reopen_case, update_case
    from tracing.operations import reopen_tracing_request, update_trace
    worker = make.user("caseworker")
    old = old_closed_case(worker)
    officer = make.user("tracing_officer")
    with time_machine.travel(utcnow() - timedelta(days=365 * 7), tick=False):
        request = create_tracing_request(officer, {"relation_name": "Hawo Ali", "relation": "mother",
                                                   "inquiry_date": "2019-05-01"},
                                         [{"name_first": NAME, "sex": "female"}])
        close_tracing_request(request, officer, "Family found")
        db.session.flush()
    run_retention(admin)
    db.session.expire_all()
    case = db.session.get(Case, old.id)
    request = db.session.get(TracingRequest, request.id)
    for attempt in (lambda: reopen_case(case, worker, "New concern"),
                    lambda: add_note(case, worker, f"Met {NAME} again"),
                    lambda: add_flag(case, worker, f"{NAME} seen"),
                    lambda: attach_photo(case, worker),
                    lambda: update_case(case, worker, {"name_first": NAME}, case.version),
                    lambda: reopen_tracing_request(request, officer, "Not them"),
                    lambda: update_trace(request.traces[0], officer, {"name_first": NAME}, None)):
        with pytest.raises(RecordError) as refused:
            attempt()
        assert "anonymised" in refused.value.errors["status"][0]
