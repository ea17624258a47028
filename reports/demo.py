"""Demo data for the dashboards (`flask seed demo`): the demo cases moved along the workflow.

The demo seeder of app.records registers every case at the "new" stage; a living system
has cases in assessment, with a case plan and receiving services. Each open demo case
draws its stage from its own source id, so running the seeder again changes nothing.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import select

from app.extensions import db
from app.seeding import register_demo_seeder

# Share of open demo cases at each stage, in workflow order (out of 100).
STAGE_SHARES = (("new", 30), ("assessment", 30), ("case_plan", 20), ("services", 20))
COMMENT = "Demo data: moved along the workflow"


def demo_stage(source_id: str) -> str:
    """The stage a demo case belongs at, drawn from its source id (stable across runs)."""
    draw = int(hashlib.sha256(source_id.encode()).hexdigest()[:8], 16) % 100
    for stage, share in STAGE_SHARES:
        if draw < share:
            return stage
        draw -= share
    return STAGE_SHARES[-1][0]


def seed_demo_stages() -> str:
    """Demo seeder (after the demo records): open demo cases still "new" go to their drawn stage,
    with a history entry, as a caseworker's progress would."""
    from app.db import utcnow
    from app.records.models import STATUS_OPEN
    from app.records.operations import record_change
    from cases.models import STAGE_NEW, Case
    cases = db.session.execute(select(Case).where(
        Case.source_id.startswith("demo-"), Case.status == STATUS_OPEN, Case.workflow_stage == STAGE_NEW)).scalars()
    moved = 0
    for case in cases:
        stage = demo_stage(case.source_id)
        if stage == STAGE_NEW:
            continue
        case.workflow_stage, case.updated_at = stage, utcnow()
        db.session.flush()
        record_change(case, "update", case.owner,
                      [{"field": "@workflow_stage", "old": STAGE_NEW, "new": stage}], COMMENT)
        moved += 1
    db.session.flush()
    return f"Demo workflow: {moved} open case(s) moved beyond the 'new' stage."


register_demo_seeder(30, seed_demo_stages)
