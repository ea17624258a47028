"""Demo referrals (`flask seed demo`): so that a fresh `make run` shows each side of the workflow.

Three open demo cases of the demo caseworker get the consent to share recorded, then: one
referral waits for the demo supervisor's approval, one was approved and waits for the demo
service provider's answer, one was accepted by them. Runs once: nothing is added when a demo
case already has a referral.
"""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.seeding import register_demo_seeder

DEMO_REFERRALS = (
    ("legal", ["basic_identity", "protection"], "Needs a birth certificate and legal status.", "pending"),
    ("psychosocial", ["basic_identity", "protection", "case_plan"], "Nightmares since separation.", "sent"),
    ("health", ["basic_identity"], "Follow-up of a chest infection.", "accepted"),
)


def seed_demo_referrals() -> str:
    from app.users.models import Agency, User
    from cases.models import Case
    from cases.operations import update_case
    from workflows import operations as ops
    from workflows.models import Referral
    users = {u.username: u for u in db.session.execute(select(User).where(
        User.username.in_(("caseworker", "supervisor", "provider")))).scalars()}
    agency = db.session.execute(select(Agency).where(Agency.code == "irc")).scalar_one_or_none()
    if len(users) < 3 or agency is None:
        return "Demo referrals: left out (demo users or agency missing)."
    caseworker = users["caseworker"]
    cases = db.session.execute(select(Case).where(
        Case.source_id.startswith("demo-"), Case.owner_id == caseworker.id, Case.status == "open")
        .order_by(Case.source_id).limit(len(DEMO_REFERRALS))).scalars().all()
    if not cases or db.session.execute(select(Referral.id).where(
            Referral.case_id.in_([c.id for c in cases]))).first():
        return "Demo referrals: already there."
    for case, (service, sections, reason, state) in zip(cases, DEMO_REFERRALS):
        if not ops.has_sharing_consent(case):
            update_case(case, caseworker, {**case.data, ops.REFERRAL_CONSENT_FIELD: True}, case.version)
        referral = ops.refer_case(case, caseworker, service_type=service, recipient_agency_id=agency.id,
                                  recipient_user_id=None, sections=sections, reason=reason)
        if state in ("sent", "accepted"):
            ops.approve_referral(referral, users["supervisor"], "Demo data")
        if state == "accepted":
            ops.accept_referral(referral, users["provider"])
    db.session.flush()
    return f"Demo referrals: {len(cases)} added (waiting for approval, sent, accepted)."


register_demo_seeder(40, seed_demo_referrals)
