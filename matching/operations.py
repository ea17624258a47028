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
