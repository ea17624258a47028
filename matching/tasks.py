"""Matching jobs: one record after a save, or a chunk of traces during a full re-match."""
from __future__ import annotations

from app.extensions import db
from app.jobs.operations import enqueue, set_progress, task
from app.records.hooks import on_record_saved

MATCH_RECORD = "matching.match_record"
MATCH_TRACES = "matching.match_traces"
PROGRESS_EVERY = 100


def relevant_fields(record_type: str) -> set[str]:
    """Field keys whose change can change a match (fields with a matching tag)."""
    from forms.operations import fields_with_matching_tag

    from matching.engine import MATCHING_TAGS
    keys = {key for tag in MATCHING_TAGS for key in fields_with_matching_tag(record_type, tag)}
    return keys | {"consent_for_tracing", "@status", "@tracing_status"}


def _fields_tagged(record_type: str, tags) -> set[str]:
    from forms.operations import fields_with_matching_tag
    return {key for tag in tags for key in fields_with_matching_tag(record_type, tag)}


@on_record_saved
def _index_matching_keys(record, changed_fields: set[str]) -> None:
    """Keep the keys of the parents' and caregiver's names (blocking finds a child through them
    when the child's own name is missing or misspelt) and of the own name's spelling in step."""
    if record.RECORD_TYPE not in ("case", "trace"):
        return
    from matching.engine import (
        RELATIVE_KIND,
        RELATIVE_TAGS,
        SPELLING_KIND,
        index_matching_keys,
        inquirer_is_relative,
    )
    kinds = []
    relevant = bool(changed_fields & _fields_tagged(record.RECORD_TYPE, RELATIVE_TAGS))
    if record.RECORD_TYPE == "trace" and not relevant:
        # A trace's keys may hold its inquirer's name (engine.relative_texts): a change of its
        # request (the inquirer, the relationship) or a new trace whose inquirer is a parent.
        relevant = any(field.startswith("tracing_request.") for field in changed_fields) \
            or inquirer_is_relative(record)
    if relevant:
        kinds.append(RELATIVE_KIND)
    if changed_fields & _fields_tagged(record.RECORD_TYPE, ("given_name", "full_name")):
        kinds.append(SPELLING_KIND)
    if kinds:
        index_matching_keys(record, kinds)


@on_record_saved
def _queue_matching(record, changed_fields: set[str]) -> None:
    """Every saved case or trace is matched again in the background (deduplicated per record)."""
    if record.RECORD_TYPE not in ("case", "trace"):
        return
    relevant = bool(changed_fields & relevant_fields(record.RECORD_TYPE)) or any(
        field.startswith("tracing_request.") for field in changed_fields)
    if not relevant:
        return
    enqueue(MATCH_RECORD, {"record_type": record.RECORD_TYPE, "record_id": record.id},
            dedupe_key=f"match:{record.RECORD_TYPE}:{record.id}")


def queue_trace_matching(trace_id: str) -> None:
    """Match the trace again: a case became its best candidate, or a reviewer rejected one (the
    candidates held back behind it come forward: engine.DEFAULT_MARGIN). Nothing in the trace
    changed, so a rejected pair stays rejected (`changed=False`)."""
    enqueue(MATCH_RECORD, {"record_type": "trace", "record_id": trace_id, "changed": False},
            dedupe_key=f"rematch:trace:{trace_id}")


@task(MATCH_RECORD)
def match_record(record_type: str, record_id: str, changed: bool = True) -> None:
    """Match one case or trace as it is now (idempotent: proposals are upserted per pair).
    `changed`: the record was saved (a rejected pair may come back if it now scores higher)."""
    from cases.models import Case
    from matching.engine import match_case, match_trace
    from tracing.models import Trace
    if record_type == "case":
        case = db.session.get(Case, record_id)
        if case is not None:
            match_case(case, changed)
    elif record_type == "trace":
        trace = db.session.get(Trace, record_id)
        if trace is not None:
            match_trace(trace, changed)
    db.session.commit()


@task(MATCH_TRACES)
def match_traces(trace_ids: list[str], run: str, job_id: int | None = None) -> None:
    """A chunk of a full re-match (`flask matching run`); many workers share the chunks.

    The traces are matched against the worker's in-memory case index (built on the first
    chunk, then kept up to date: matching.index), in slices so the job shows progress.
    """
    from matching.engine import match_trace_ids
    from matching.index import record_index
    index = record_index("case")
    for start in range(0, len(trace_ids), PROGRESS_EVERY):
        match_trace_ids(trace_ids[start:start + PROGRESS_EVERY], changed=False, index=index)
        if job_id:
            set_progress(job_id, min(start + PROGRESS_EVERY, len(trace_ids)), len(trace_ids))
    db.session.commit()
