"""Retention: anonymising closed records once they are older than the retention period.

Humanitarian data protection keeps a child's personal data no longer than it is needed.
An administrator runs the job (`flask records anonymise`, or the Retention page, which
queues it as a background job). Every case closed more than RETENTION_CLOSED_YEARS ago,
and every closed tracing request (with its traces) not touched for as long, loses its
personal fields:

* the form data keeps only statistics: sex, the age rounded down to its age band, and
  locations cut to the top RETENTION_LOCATION_LEVELS levels of the hierarchy (a region,
  not a camp); names, phones, dates of birth and free text are gone;
* the indexed copies (display name, phone digits), the source id from another system
  and the closure reason are cleared;
* history diffs keep which field changed and the status changes, never the values or
  comments; notes are deleted; flag texts are cleared; the record's name and blocking
  keys (the search index) are deleted, so a name search no longer finds it;
* photos and documents are deleted from disk and marked deleted;
* notes on the matching decisions, verifications and reunifications of its proposals
  are cleared, as is each proposal's per-field explanation detail;
* other modules clear their own text about the record through `register_anonymiser`.

Status, stage, dates of creation and closure, owner, agency and groups stay, so the
dashboards still count the record. Each run writes one audit entry with its counts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, or_, select, update

from app.audit.operations import record_audit
from app.db import utcnow
from app.extensions import db
from app.jobs.operations import task
from app.permissions import ROLE_ADMINISTRATOR, register_permission
from app.records.models import (
    STATUS_CLOSED,
    RecordAttachment,
    RecordChange,
    RecordFlag,
    RecordKey,
    RecordNote,
)

RECORDS_ANONYMISE = register_permission(
    "records", "anonymise", _l("Anonymise closed records past the retention period"),
    (ROLE_ADMINISTRATOR,), is_admin=True)

# Lower bounds of the age bands kept after anonymisation (0-4, 5-11, 12-17, 18 and over).
AGE_BAND_FLOORS = (0, 5, 12, 18)
# Matching tags whose values are kept as they are: categories, not identities.
KEPT_TAGS = ("sex", "relationship")
BATCH_SIZE = 200
ANONYMISE_TASK = "records.anonymise"


# Other modules' own free text about a record (referral reasons, approval comments, notification
# messages...): each registers a scrubber, called with the record type and the ids anonymised in
# the batch, inside the same transaction. It should only flush.
_SCRUBBERS: list[Callable[[str, list[str]], None]] = []


def register_anonymiser(scrubber: Callable[[str, list[str]], None]) -> Callable:
    """Have `scrubber(record_type, record_ids)` clear a module's personal data about anonymised records."""
    if scrubber not in _SCRUBBERS:
        _SCRUBBERS.append(scrubber)
    return scrubber


@dataclass
class RetentionResult:
    """What a run did (or, in a dry run, would do). `files` are the paths to delete once committed."""

    cases: int = 0
    tracing_requests: int = 0
    traces: int = 0
    notes: int = 0
    attachments: int = 0
    history_rows: int = 0
    files: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"cases": self.cases, "tracing_requests": self.tracing_requests, "traces": self.traces,
                "notes": self.notes, "attachments": self.attachments, "history_rows": self.history_rows}


def retention_cutoff(now: datetime | None = None, years: int | None = None) -> datetime:
    """Records closed before this moment are due: now minus RETENTION_CLOSED_YEARS."""
    now = now or utcnow()
    years = current_app.config["RETENTION_CLOSED_YEARS"] if years is None else years
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February in a year that has none
        return now.replace(year=now.year - years, day=28)


def _due_queries(cutoff: datetime):
    from cases.models import Case
    from tracing.models import Trace, TracingRequest
    cases = select(Case.id).where(Case.status == STATUS_CLOSED, Case.closed_at < cutoff,
                                  Case.anonymised_at.is_(None))
    # A tracing request has no closing date of its own: closing it is its last update.
    requests = select(TracingRequest.id).where(TracingRequest.status == STATUS_CLOSED,
                                               TracingRequest.updated_at < cutoff,
                                               TracingRequest.anonymised_at.is_(None))
    traces = select(Trace.id).where(Trace.tracing_request_id.in_(requests), Trace.anonymised_at.is_(None))
    return cases, requests, traces


def count_due(now: datetime | None = None) -> dict[str, int]:
    """How many cases, tracing requests and traces the next run would anonymise."""
    cutoff = retention_cutoff(now)
    counts = {}
    for name, query in zip(("cases", "tracing_requests", "traces"), _due_queries(cutoff)):
        counts[name] = db.session.scalar(select(func.count()).select_from(query.subquery()))
    return counts


def age_band_floor(age) -> int | None:
    """The lower bound of the age band `age` falls in (7 -> 5)."""
    try:
        age = int(age)
    except (TypeError, ValueError):
        return None
    return max((floor for floor in AGE_BAND_FLOORS if floor <= age), default=0)


def location_at_level(code, levels: int | None = None) -> str | None:
    """The ancestor of `code` at most `levels` deep from the top (a camp becomes its region)."""
    from forms.operations import location_ancestors
    if not code:
        return None
    levels = current_app.config["RETENTION_LOCATION_LEVELS"] if levels is None else levels
    chain = list(reversed(location_ancestors(code)))  # top first
    if not chain or levels <= 0:
        return None  # an unknown place may itself be identifying
    return chain[min(levels, len(chain)) - 1]


def kept_values(record_type: str, data: dict) -> dict:
    """The statistical values of a record's form data; everything else is dropped."""
    from forms.models import LOCATION
    from forms.operations import get_definition
    kept = {}
    for item in get_definition(record_type).fields:
        value = (data or {}).get(item.key)
        if value in (None, "", [], {}):
            continue
        if item.matching_tag in KEPT_TAGS and isinstance(value, str):
            kept[item.key] = value
        elif item.matching_tag == "age":
            band = age_band_floor(value)
            if band is not None:
                kept[item.key] = band
        elif item.type == LOCATION:
            place = location_at_level(value)
            if place:
                kept[item.key] = place
    return kept


def _scrub_side_tables(record_type: str, record_id: str, result: RetentionResult) -> None:
    from app.records.attachments import _path_for
    changes = db.session.execute(select(RecordChange).where(
        RecordChange.record_type == record_type, RecordChange.record_id == record_id)).scalars()
    for row in changes:
        # Status and stage changes ("@status") are statistics; field values and comments may name people.
        row.changes = [change if str(change.get("field", "")).startswith("@")
                       else {"field": change.get("field"), "old": None, "new": None}
                       for change in (row.changes or [])]
        row.comment = None
        result.history_rows += 1
    result.notes += db.session.execute(delete(RecordNote).where(
        RecordNote.record_type == record_type, RecordNote.record_id == record_id)).rowcount
    db.session.execute(update(RecordFlag).where(
        RecordFlag.record_type == record_type, RecordFlag.record_id == record_id,
    ).values(reason="", resolution=None))
    db.session.execute(delete(RecordKey).where(RecordKey.record_type == record_type,
                                               RecordKey.record_id == record_id))
    attachments = db.session.execute(select(RecordAttachment).where(
        RecordAttachment.record_type == record_type, RecordAttachment.record_id == record_id)).scalars()
    for attachment in attachments:
        result.files.append(_path_for(attachment.storage_name))
        if not attachment.is_deleted:
            result.attachments += 1
        attachment.is_deleted, attachment.original_name, attachment.sha256 = True, "", ""


def _scrub_matching(case_ids: list[str], trace_ids: list[str]) -> None:
    from matching.models import MatchDecision, MatchProposal, MatchReunification, MatchVerification
    if not case_ids and not trace_ids:
        return
    proposals = select(MatchProposal.id).where(or_(MatchProposal.case_id.in_(case_ids),
                                                   MatchProposal.trace_id.in_(trace_ids)))
    db.session.execute(update(MatchDecision).where(MatchDecision.proposal_id.in_(proposals))
                       .values(note=None))
    db.session.execute(update(MatchVerification).where(MatchVerification.proposal_id.in_(proposals))
                       .values(note=None))
    db.session.execute(update(MatchReunification).where(MatchReunification.proposal_id.in_(proposals))
                       .values(place="", with_whom=""))
    for proposal in db.session.execute(select(MatchProposal).where(MatchProposal.id.in_(proposals))).scalars():
        proposal.comparison = [{**item, "details": {}} for item in (proposal.comparison or [])]


def _anonymise_record(record, now: datetime, user, result: RetentionResult) -> None:
    record.data = kept_values(record.RECORD_TYPE, record.data or {})
    record.display_name = ""
    record.source_id = None
    record.anonymised_at = now
    for column, value in (("phone_digits", None), ("closure_reason", None)):
        if hasattr(record, column):
            setattr(record, column, value)
    if hasattr(record, "age"):
        record.age = age_band_floor(record.age) if record.age is not None else None
    if hasattr(record, "location_code"):
        record.location_code = location_at_level(record.location_code)
    _scrub_side_tables(record.RECORD_TYPE, record.id, result)
    db.session.add(RecordChange(record_type=record.RECORD_TYPE, record_id=record.id, action="anonymise",
                                user_id=getattr(user, "id", None), version=record.version + 1, changes=[]))


def anonymise_batch(user=None, *, now: datetime | None = None, limit: int = BATCH_SIZE) -> RetentionResult:
    """Anonymise up to `limit` due records (cases first, then tracing requests with their traces).

    Flushes only; the caller commits and then deletes `result.files` (remove_files), so a
    rolled-back run never loses a file whose record still refers to it.
    """
    from cases.models import Case
    from tracing.models import Trace, TracingRequest
    now = now or utcnow()
    cutoff = retention_cutoff(now)
    cases_due, requests_due, _traces_due = _due_queries(cutoff)
    result = RetentionResult()
    case_ids = list(db.session.execute(cases_due.order_by(Case.id).limit(limit)).scalars())
    for case in db.session.execute(select(Case).where(Case.id.in_(case_ids))).scalars():
        _anonymise_record(case, now, user, result)
        result.cases += 1
    trace_ids: list[str] = []
    request_ids: list[str] = []
    room = limit - len(case_ids)
    if room > 0:
        request_ids = list(db.session.execute(requests_due.order_by(TracingRequest.id).limit(room)).scalars())
        for request in db.session.execute(select(TracingRequest).where(TracingRequest.id.in_(request_ids))).scalars():
            _anonymise_record(request, now, user, result)
            result.tracing_requests += 1
        for trace in db.session.execute(select(Trace).where(Trace.tracing_request_id.in_(request_ids),
                                                            Trace.anonymised_at.is_(None))).scalars():
            _anonymise_record(trace, now, user, result)
            trace_ids.append(trace.id)
            result.traces += 1
    _scrub_matching(case_ids, trace_ids)
    for record_type, ids in (("case", case_ids), ("tracing_request", request_ids), ("trace", trace_ids)):
        if ids:
            for scrubber in _SCRUBBERS:
                scrubber(record_type, ids)
    db.session.flush()
    return result


def record_retention_audit(counts: dict[str, int], user=None, dry_run: bool = False) -> None:
    """One audit entry per run (or dry run), with its counts and the period in force."""
    detail = {**counts, "years": current_app.config["RETENTION_CLOSED_YEARS"], "dry_run": dry_run}
    record_audit("records.anonymise", "retention", None, detail=detail, user=user)


def remove_files(paths: list[Path]) -> int:
    """Delete anonymised records' files from disk (after the commit); returns how many were there."""
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def run_retention(user=None, *, dry_run: bool = False, now: datetime | None = None,
                  progress=None) -> dict[str, int]:
    """Anonymise every due record, committing batch by batch; returns the counts.

    A dry run counts what is due and changes nothing but the audit trail. Interrupted runs
    resume where they stopped: anonymised records are no longer due.
    """
    now = now or utcnow()
    if dry_run:
        counts = count_due(now)
        record_retention_audit(counts, user=user, dry_run=True)
        db.session.commit()
        return counts
    due = count_due(now)
    total = due["cases"] + due["tracing_requests"]
    totals = RetentionResult().counts()
    done = 0
    while True:
        result = anonymise_batch(user, now=now)
        db.session.commit()
        remove_files(result.files)
        for key, value in result.counts().items():
            totals[key] += value
        step = result.cases + result.tracing_requests
        if not step:
            break
        done += step
        if progress is not None:
            progress(min(done, total), total)
    record_retention_audit(totals, user=user)
    db.session.commit()
    return totals


@task(ANONYMISE_TASK)
def anonymise_closed_records(user_id: int | None = None, job_id: int | None = None) -> None:
    """The background job the Retention page queues: anonymise every due record."""
    from app.jobs.operations import set_progress
    from app.users.models import User
    user = db.session.get(User, user_id) if user_id else None

    def progress(done: int, total: int) -> None:
        if job_id:
            set_progress(job_id, done, total)

    run_retention(user, progress=progress)
