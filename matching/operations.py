"""Operations on the matching engine's settings: change them (a new engine version),
and re-estimate m and u from the decisions reviewers have made."""
from __future__ import annotations

from collections import Counter

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.audit.operations import record_audit
from app.extensions import db
from app.i18n import N_
from app.permissions import ROLE_ADMINISTRATOR, register_permission
from matching.engine import DEFAULT_PARAMETERS, current_settings
from matching.models import CONFIRMED, REJECTED, MatchingConfig, MatchProposal
from matching.tasks import queue_trace_matching

MATCHING_CONFIGURE = register_permission("matching", "configure", _l("Change the matching engine's weights and thresholds"),
                                         (ROLE_ADMINISTRATOR,), is_admin=True)
SMOOTHING = 1.0  # add-one smoothing so a level never seen keeps a finite weight


class SettingsError(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def current_config() -> MatchingConfig:
    current_settings()  # creates the default row on first use
    return db.session.execute(select(MatchingConfig).order_by(MatchingConfig.id.desc()).limit(1)).scalar_one()


def effective_parameters(config: MatchingConfig) -> dict[str, dict[str, list[float]]]:
    """Defaults overlaid with the configuration's overrides: {comparator: {level: [m, u]}}."""
    merged = {}
    overrides = config.parameters or {}
    for comparator, levels in DEFAULT_PARAMETERS.items():
        merged[comparator] = {level: list(overrides.get(comparator, {}).get(level, mu)) for level, mu in levels.items()}
    return merged


def save_settings(likely: float, possible: float, parameters: dict, prior: float | None, actor,
                  note: str = "", margin: float | None = None) -> MatchingConfig:
    """Store new settings as a new engine version; proposals made from now on record it.
    `prior` and `margin` (engine.DEFAULT_MARGIN) are kept with the parameters when given."""
    errors: dict[str, list[str]] = {}
    if not (0 < possible < 1):
        errors.setdefault("possible_threshold", []).append(_("Use a probability between 0 and 1."))
    if not (0 < likely < 1):
        errors.setdefault("likely_threshold", []).append(_("Use a probability between 0 and 1."))
    elif not errors and likely < possible:
        errors.setdefault("likely_threshold", []).append(_("The likely threshold cannot be below the possible one."))
    clean: dict = {}
    for comparator, levels in (parameters or {}).items():
        if comparator not in DEFAULT_PARAMETERS:
            errors.setdefault(comparator, []).append(_("Unknown comparator."))
            continue
        for level, pair in (levels or {}).items():
            key = f"{comparator}.{level}"
            if level not in DEFAULT_PARAMETERS[comparator]:
                errors.setdefault(key, []).append(_("Unknown level."))
                continue
            try:
                m, u = (float(pair[0]), float(pair[1]))
            except (TypeError, ValueError, IndexError, KeyError):
                errors.setdefault(key, []).append(_("Give m and u as two numbers."))
                continue
            if not (0 < m <= 1 and 0 < u <= 1):
                errors.setdefault(key, []).append(_("m and u are probabilities above 0 and at most 1."))
                continue
            if [m, u] != list(DEFAULT_PARAMETERS[comparator][level]):
                clean.setdefault(comparator, {})[level] = [m, u]
    if prior is not None and not (-30 <= prior <= 10):
        errors.setdefault("prior", []).append(_("Use a number from -30 to 10."))
    if margin is not None and not (0 <= margin <= 50):
        errors.setdefault("margin", []).append(_("Use a number of bits from 0 to 50."))
    if errors:
        raise SettingsError(errors)
    if prior is not None:
        clean["prior"] = prior
    if margin is not None:
        clean["margin"] = margin
    config = MatchingConfig(likely_threshold=likely, possible_threshold=possible, parameters=clean,
                            created_by_id=getattr(actor, "id", None), note=(note or "")[:500])
    db.session.add(config)
    db.session.flush()
    record_audit("matching.settings_changed", "matching_config", config.id,
                 detail={"likely": likely, "possible": possible, "margin": margin, "overridden": sorted(clean)},
                 user=actor)
    return config


def estimate_from_decisions(min_decisions: int = 20) -> dict:
    """m and u per comparator level from decided proposals.

    m is the share of each level among confirmed pairs, u its share among rejected pairs
    (add-one smoothed). Rejected pairs are look-alikes, not random pairs, so u is an
    overestimate for strong levels: the estimate is conservative, which is the safe side
    for children. Returns {"parameters": ..., "confirmed": n, "rejected": n} or raises
    SettingsError when there are too few decisions.
    """
    rows = db.session.execute(select(MatchProposal.status, MatchProposal.comparison).where(
        MatchProposal.status.in_((CONFIRMED, REJECTED)))).all()
    confirmed = [c for status, c in rows if status == CONFIRMED]
    rejected = [c for status, c in rows if status == REJECTED]
    if len(confirmed) < min_decisions or len(rejected) < min_decisions:
        raise SettingsError({"decisions": [_("At least %(n)d confirmed and %(n)d rejected proposals are needed "
                                             "(now %(c)d and %(r)d).", n=min_decisions, c=len(confirmed),
                                             r=len(rejected))]})

    def shares(comparisons) -> dict[str, Counter]:
        counts: dict[str, Counter] = {}
        for comparison in comparisons:
            for item in comparison or []:
                if item.get("comparator") in DEFAULT_PARAMETERS:
                    counts.setdefault(item["comparator"], Counter())[item["level"]] += 1
        return counts

    m_counts, u_counts = shares(confirmed), shares(rejected)
    parameters = {}
    for comparator, levels in DEFAULT_PARAMETERS.items():
        m_total = sum(m_counts.get(comparator, Counter()).values()) + SMOOTHING * len(levels)
        u_total = sum(u_counts.get(comparator, Counter()).values()) + SMOOTHING * len(levels)
        parameters[comparator] = {
            level: [round((m_counts.get(comparator, Counter())[level] + SMOOTHING) / m_total, 5),
                    round((u_counts.get(comparator, Counter())[level] + SMOOTHING) / u_total, 5)]
            for level in levels}
    return {"parameters": parameters, "confirmed": len(confirmed), "rejected": len(rejected)}


# --- review: claim, confirm, reject, defer, undo ------------------------------------------------

from datetime import timedelta  # noqa: E402

from sqlalchemy import or_, update  # noqa: E402

from app.db import utcnow  # noqa: E402
from app.permissions import ROLE_SUPERVISOR, ROLE_TRACING_OFFICER  # noqa: E402
from app.records.operations import record_change  # noqa: E402
from matching.models import PENDING, SUPERSEDED, MatchDecision  # noqa: E402

MATCHES_REVIEW = register_permission("matches", "review", _l("Review proposed matches: confirm, reject, defer"),
                                     (ROLE_TRACING_OFFICER, ROLE_SUPERVISOR))
MATCHES_UNDO = register_permission("matches", "undo", _l("Undo a decision on a match"), (ROLE_SUPERVISOR,))
CLAIM_MINUTES = 15
REJECTION_REASONS = {
    "different_child": _l("Different child"),
    "sibling": _l("A sibling of the child sought"),
    "insufficient_information": _l("Insufficient information"),
    "duplicate_record": _l("Duplicate record"),
    "other": _l("Other"),
}


class DecisionError(Exception):
    """A refused decision (someone decided first, a claim by someone else, a missing reason)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


def _decide(proposal: MatchProposal, user, to_status: str, **values) -> None:
    """Flip a pending proposal atomically: of two reviewers deciding at once, exactly one wins."""
    now = utcnow()
    result = db.session.execute(update(MatchProposal).where(
        MatchProposal.id == proposal.id, MatchProposal.status == PENDING,
        or_(MatchProposal.claimed_by_id.is_(None), MatchProposal.claimed_by_id == user.id,
            MatchProposal.claimed_until < now),
    ).values(status=to_status, decided_by_id=user.id, decided_at=now, updated_at=now, claimed_by_id=None,
             claimed_until=None, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(proposal)
        if proposal.status != PENDING:
            raise DecisionError(_("Someone else decided this proposal first."))
        raise DecisionError(_("Another reviewer is working on this proposal."))
    db.session.refresh(proposal)


def _remember(proposal: MatchProposal, action: str, user, reason: str | None = None, note: str | None = None):
    db.session.add(MatchDecision(proposal_id=proposal.id, action=action, user_id=getattr(user, "id", None),
                                 reason=reason, note=(note or "").strip()[:4000] or None, score=proposal.score))


def claim_proposal(proposal: MatchProposal, user) -> bool:
    """Hold a pending proposal for `CLAIM_MINUTES`; False if someone else holds it."""
    now = utcnow()
    result = db.session.execute(update(MatchProposal).where(
        MatchProposal.id == proposal.id, MatchProposal.status == PENDING,
        or_(MatchProposal.claimed_by_id.is_(None), MatchProposal.claimed_by_id == user.id,
            MatchProposal.claimed_until < now),
    ).values(claimed_by_id=user.id, claimed_until=now + timedelta(minutes=CLAIM_MINUTES))
        .execution_options(synchronize_session=False))
    db.session.refresh(proposal)
    return result.rowcount == 1


def confirm_match(proposal: MatchProposal, user, note: str = "") -> None:
    """The case is the child sought. The trace stops matching; its other proposals are superseded;
    the trace becomes match_confirmed and both records' histories say so."""
    from tracing.models import TRACE_MATCH_CONFIRMED
    _decide(proposal, user, "confirmed", decision_reason=None, decision_note=(note or "").strip() or None)
    _remember(proposal, "confirm", user, note=note)
    others = db.session.execute(select(MatchProposal).where(
        MatchProposal.trace_id == proposal.trace_id, MatchProposal.id != proposal.id,
        MatchProposal.status == PENDING)).scalars().all()
    for other in others:
        other.status, other.decision_reason, other.updated_at = SUPERSEDED, "trace_confirmed", utcnow()
        _remember(other, "supersede", user, reason="trace_confirmed")
    trace, case = proposal.trace, proposal.case
    before = trace.tracing_status
    trace.tracing_status, trace.updated_at = TRACE_MATCH_CONFIRMED, utcnow()
    db.session.flush()
    record_change(trace, "match_confirmed", user,
                  [{"field": "@tracing_status", "old": before, "new": TRACE_MATCH_CONFIRMED},
                   {"field": "@matched_case", "old": None, "new": case.short_id}])
    record_change(case, "match_confirmed", user, [{"field": "@matched_trace", "old": None, "new": trace.short_id}])
    record_audit("match.confirm", "match_proposal", proposal.id,
                 detail={"trace": trace.id, "case": case.id, "superseded": len(others)}, user=user)
    _notify_owners(proposal, user, "match_confirmed",
                   N_("Match confirmed: case %(case)s is the child sought by trace %(trace)s"))


def _notify_owners(proposal: MatchProposal, user, kind: str, message: str) -> None:
    """Tell the owners of the case and of the trace's tracing request (issue #6). The link is the
    comparison for those who may review matches, otherwise their own record (no dead links)."""
    from app.notifications.operations import notify, relative_url
    from app.permissions import can
    trace, case = proposal.trace, proposal.case
    tracing_request = trace.tracing_request
    params = {"case": case.short_id, "trace": trace.short_id}
    told: set[int] = set()
    for owner, record, endpoint in ((case.owner, case, "cases.show_case"),
                                    (tracing_request.owner, tracing_request, "tracing.show_tracing_request")):
        if owner is None or owner.id in told:
            continue
        told.add(owner.id)
        url = (relative_url("matches.show", proposal_id=proposal.id) if can(owner, MATCHES_REVIEW)
               else relative_url(endpoint, record_id=record.id))
        notify([owner], kind, message, params, actor=user, record=record, url=url)


def reject_match(proposal: MatchProposal, user, reason: str, note: str = "") -> None:
    """Not the child sought. The pair stays rejected unless a relevant change scores it higher."""
    if reason not in REJECTION_REASONS:
        raise DecisionError(_("Choose why this is not the child."), status=422)
    if reason == "other" and not (note or "").strip():
        raise DecisionError(_("Say why in the note."), status=422)
    _decide(proposal, user, "rejected", decision_reason=reason, decision_note=(note or "").strip() or None,
            rejected_score=proposal.score)
    _remember(proposal, "reject", user, reason=reason, note=note)
    record_audit("match.reject", "match_proposal", proposal.id, detail={"reason": reason}, user=user)
    queue_trace_matching(proposal.trace_id)  # candidates held back behind this one come forward


def defer_match(proposal: MatchProposal, user, note: str) -> None:
    """Leave the proposal pending with a note (e.g. waiting for a photo); the claim is released."""
    if not (note or "").strip():
        raise DecisionError(_("Say what you are waiting for."), status=422)
    if proposal.status != PENDING:
        raise DecisionError(_("Someone else decided this proposal first."))
    proposal.claimed_by_id, proposal.claimed_until = None, None
    _remember(proposal, "defer", user, note=note)
    record_audit("match.defer", "match_proposal", proposal.id, user=user)


def undo_decision(proposal: MatchProposal, user, reason: str) -> None:
    """A supervisor takes a confirmation or rejection back; the proposal is pending again."""
    from tracing.models import TRACE_MATCH_CONFIRMED, TRACE_MATCH_PROPOSED
    if not (reason or "").strip():
        raise DecisionError(_("Say why the decision is undone."), status=422)
    previous = proposal.status
    from matching.models import MatchReunification
    if db.session.scalar(select(MatchReunification.id).where(MatchReunification.proposal_id == proposal.id).limit(1)):
        raise DecisionError(_("The child has been reunified with this family: the confirmation cannot be undone."))
    result = db.session.execute(update(MatchProposal).where(
        MatchProposal.id == proposal.id, MatchProposal.status.in_(("confirmed", "rejected"))
    ).values(status=PENDING, decided_by_id=None, decided_at=None, decision_reason=None, decision_note=None,
             updated_at=utcnow()).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise DecisionError(_("This proposal has no decision to undo."))
    db.session.refresh(proposal)
    _remember(proposal, "undo", user, reason=previous, note=reason)
    if previous == "confirmed":
        restored = db.session.execute(select(MatchProposal).where(
            MatchProposal.trace_id == proposal.trace_id, MatchProposal.status == SUPERSEDED,
            MatchProposal.decision_reason == "trace_confirmed")).scalars().all()
        for other in restored:
            other.status, other.decision_reason, other.updated_at = PENDING, None, utcnow()
            _remember(other, "repropose", user, reason="undo")
        trace = proposal.trace
        if trace.tracing_status == TRACE_MATCH_CONFIRMED:
            trace.tracing_status, trace.updated_at = TRACE_MATCH_PROPOSED, utcnow()
            db.session.flush()
            record_change(trace, "match_undone", user, [{"field": "@tracing_status", "old": TRACE_MATCH_CONFIRMED,
                                                         "new": TRACE_MATCH_PROPOSED}], reason)
        _notify_owners(proposal, user, "match_undone",
                       N_("Confirmed match undone: case %(case)s and trace %(trace)s are under review again"))
    queue_trace_matching(proposal.trace_id)  # the pair is a candidate again: the others are weighed against it
    record_audit("match.undo", "match_proposal", proposal.id, detail={"previous": previous}, user=user)


# --- after confirmation: verification and reunification ----------------------------------------

from datetime import date  # noqa: E402

from app.records import hooks  # noqa: E402
from matching.models import (  # noqa: E402
    VERIFICATION_FAILED,
    VERIFICATION_METHODS,
    VERIFICATION_OUTCOMES,
    VERIFIED,
    MatchReunification,
    MatchVerification,
)

VERIFICATION_METHOD_LABELS = {
    "child_interview": _l("Interview of the child"),
    "inquirer_interview": _l("Interview of the inquirer"),
    "documents": _l("Documents"),
    "photo_recognition": _l("Photo recognition"),
}
VERIFICATION_OUTCOME_LABELS = {VERIFIED: _l("Verified: the same child and family"),
                               VERIFICATION_FAILED: _l("Failed: not the family sought")}


class FollowUpError(Exception):
    """A refused verification or reunification: field-level messages (422) or a wrong state (409)."""

    def __init__(self, errors: dict[str, list[str]], status: int = 422):
        super().__init__(errors)
        self.errors = errors
        self.status = status


def _lock(proposal: MatchProposal) -> MatchProposal:
    """Re-read the proposal under a row lock, so two people recording at once are serialised."""
    return db.session.execute(select(MatchProposal).where(MatchProposal.id == proposal.id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one()


def verifications_of(proposal: MatchProposal) -> list[MatchVerification]:
    return db.session.execute(select(MatchVerification).where(MatchVerification.proposal_id == proposal.id)
                              .order_by(MatchVerification.id)).scalars().all()


def current_verification(proposal: MatchProposal) -> MatchVerification | None:
    """The verification of the proposal's current confirmation (none if it was undone and re-confirmed)."""
    if proposal.status != CONFIRMED:
        return None
    rows = [v for v in verifications_of(proposal)
            if proposal.decided_at is None or v.verified_at >= proposal.decided_at]
    return rows[-1] if rows else None


def current_reunification(proposal: MatchProposal) -> MatchReunification | None:
    verification = current_verification(proposal)
    if verification is None:
        return None
    return db.session.execute(select(MatchReunification).where(
        MatchReunification.verification_id == verification.id).order_by(MatchReunification.id.desc())
        .limit(1)).scalar_one_or_none()


def verify_match(proposal: MatchProposal, user, methods, outcome: str, note: str = "") -> MatchVerification:
    """Record how a confirmed match was verified and the outcome.

    "failed": the pair is rejected (verification_failed), the trace goes back to tracing
    (in_progress) and is matched again; the trace's other proposals set aside by the
    confirmation are pending again. "verified": the reunification may be recorded.
    """
    from tracing.models import TRACE_IN_PROGRESS, TRACE_MATCH_CONFIRMED
    note = (note or "").strip()
    errors: dict[str, list[str]] = {}
    if isinstance(methods, str):
        methods = [methods]
    chosen = [m for m in VERIFICATION_METHODS if m in set(methods or [])]
    if not chosen:
        errors.setdefault("methods", []).append(_("Choose how the match was verified."))
    elif len(set(methods)) != len(chosen):
        errors.setdefault("methods", []).append(_("Choose a listed value."))
    if outcome not in VERIFICATION_OUTCOMES:
        errors.setdefault("outcome", []).append(_("Choose the outcome."))
    elif outcome == VERIFICATION_FAILED and not note:
        errors.setdefault("note", []).append(_("Say why the verification failed."))
    if len(note) > 4000:
        errors.setdefault("note", []).append(_("Use at most 4000 characters."))
    if errors:
        raise FollowUpError(errors)
    proposal = _lock(proposal)
    if proposal.status != CONFIRMED:
        raise FollowUpError({"status": [_("Only a confirmed match can be verified.")]}, status=409)
    if current_verification(proposal) is not None:
        raise FollowUpError({"status": [_("This match has already been verified.")]}, status=409)
    now = utcnow()
    verification = MatchVerification(proposal_id=proposal.id, methods=chosen, outcome=outcome, note=note or None,
                                     verified_by_id=user.id, verified_at=now)
    db.session.add(verification)
    db.session.flush()
    trace, case = proposal.trace, proposal.case
    restored: list[MatchProposal] = []
    if outcome == VERIFICATION_FAILED:
        proposal.status, proposal.decision_reason, proposal.decision_note = REJECTED, "verification_failed", note
        proposal.rejected_score, proposal.decided_by_id, proposal.decided_at = proposal.score, user.id, now
        proposal.updated_at = now
        _remember(proposal, "verify_failed", user, reason="verification_failed", note=note)
        queue_trace_matching(proposal.trace_id)  # as after a rejection
        restored = db.session.execute(select(MatchProposal).where(
            MatchProposal.trace_id == proposal.trace_id, MatchProposal.status == SUPERSEDED,
            MatchProposal.decision_reason == "trace_confirmed")).scalars().all()
        for other in restored:
            other.status, other.decision_reason, other.updated_at = PENDING, None, now
            _remember(other, "repropose", user, reason="verification_failed")
        before = trace.tracing_status
        if before == TRACE_MATCH_CONFIRMED:
            trace.tracing_status, trace.updated_by_id, trace.updated_at = TRACE_IN_PROGRESS, user.id, now
        db.session.flush()
        record_change(trace, "verification_failed", user,
                      [{"field": "@tracing_status", "old": before, "new": trace.tracing_status},
                       {"field": "@matched_case", "old": case.short_id, "new": None}], note)
        record_change(case, "verification_failed", user,
                      [{"field": "@matched_trace", "old": trace.short_id, "new": None}], note)
        hooks.record_saved(trace, {"@tracing_status"})
    else:
        _remember(proposal, "verify", user, reason=VERIFIED, note=note)
        db.session.flush()
        record_change(trace, "match_verified", user, [{"field": "@verification", "old": None, "new": VERIFIED}])
        record_change(case, "match_verified", user, [{"field": "@verification", "old": None, "new": VERIFIED}])
    record_audit("match.verify", "match_proposal", proposal.id,
                 detail={"outcome": outcome, "methods": chosen, "trace": trace.id, "case": case.id,
                         "reproposed": len(restored)}, user=user)
    return verification


def record_reunification(proposal: MatchProposal, user, reunified_on, place: str, with_whom: str,
                         follow_up_due) -> MatchReunification:
    """The child went back to the family: only after a verified verification. The trace becomes
    reunified (and can then be closed with the tracing close operations)."""
    from tracing.models import TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED
    place, with_whom = (place or "").strip(), (with_whom or "").strip()
    errors: dict[str, list[str]] = {}
    if not isinstance(reunified_on, date):
        errors.setdefault("reunified_on", []).append(_("Enter a date (YYYY-MM-DD)."))
    elif reunified_on > date.today():
        errors.setdefault("reunified_on", []).append(_("The date cannot be in the future."))
    if not place:
        errors.setdefault("place", []).append(_("Say where the child was reunified."))
    elif len(place) > 500:
        errors.setdefault("place", []).append(_("Use at most 500 characters."))
    if not with_whom:
        errors.setdefault("with_whom", []).append(_("Say with whom the child was reunified."))
    elif len(with_whom) > 500:
        errors.setdefault("with_whom", []).append(_("Use at most 500 characters."))
    if not isinstance(follow_up_due, date):
        errors.setdefault("follow_up_due", []).append(_("Enter a date (YYYY-MM-DD)."))
    elif isinstance(reunified_on, date) and follow_up_due < reunified_on:
        errors.setdefault("follow_up_due", []).append(_("The follow-up cannot be due before the reunification."))
    if errors:
        raise FollowUpError(errors)
    proposal = _lock(proposal)
    verification = current_verification(proposal)
    if verification is None or verification.outcome != VERIFIED:
        raise FollowUpError({"status": [_("Record a successful verification before the reunification.")]},
                            status=409)
    if current_reunification(proposal) is not None:
        raise FollowUpError({"status": [_("The reunification has already been recorded.")]}, status=409)
    trace, case = proposal.trace, proposal.case
    if trace.tracing_status != TRACE_MATCH_CONFIRMED:
        raise FollowUpError({"status": [_("The trace is no longer waiting for reunification.")]}, status=409)
    now = utcnow()
    reunification = MatchReunification(proposal_id=proposal.id, verification_id=verification.id,
                                       reunified_on=reunified_on, place=place, with_whom=with_whom,
                                       follow_up_due=follow_up_due, recorded_by_id=user.id, recorded_at=now)
    db.session.add(reunification)
    trace.tracing_status, trace.updated_by_id, trace.updated_at = TRACE_REUNIFIED, user.id, now
    _remember(proposal, "reunify", user)
    db.session.flush()
    record_change(trace, "reunified", user, [{"field": "@tracing_status", "old": TRACE_MATCH_CONFIRMED,
                                              "new": TRACE_REUNIFIED}])
    record_change(case, "reunified", user, [{"field": "@reunified_with", "old": None, "new": trace.short_id}])
    hooks.record_saved(trace, {"@tracing_status"})
    record_audit("match.reunify", "match_proposal", proposal.id,
                 detail={"trace": trace.id, "case": case.id, "verification": verification.id}, user=user)
    return reunification
