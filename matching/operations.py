"""Operations on the matching engine's settings: change them (a new engine version),
and re-estimate m and u from the decisions reviewers have made."""
from __future__ import annotations

from collections import Counter

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.audit.operations import record_audit
from app.extensions import db
from app.permissions import ROLE_ADMINISTRATOR, register_permission
from matching.engine import DEFAULT_PARAMETERS, current_settings
from matching.models import CONFIRMED, REJECTED, MatchingConfig, MatchProposal

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
                  note: str = "") -> MatchingConfig:
    """Store new settings as a new engine version; proposals made from now on record it."""
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
    if errors:
        raise SettingsError(errors)
    if prior is not None:
        clean["prior"] = prior
    config = MatchingConfig(likely_threshold=likely, possible_threshold=possible, parameters=clean,
                            created_by_id=getattr(actor, "id", None), note=(note or "")[:500])
    db.session.add(config)
    db.session.flush()
    record_audit("matching.settings_changed", "matching_config", config.id,
                 detail={"likely": likely, "possible": possible, "overridden": sorted(clean)}, user=actor)
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
    record_audit("match.undo", "match_proposal", proposal.id, detail={"previous": previous}, user=user)
