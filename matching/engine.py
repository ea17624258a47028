"""The matching engine: which registered cases may be the child a relative is looking for.

1. **Views.** A case or a trace becomes a `Person`: the values of the fields tagged for
   matching in the form definitions (names by part, sex, age and whether it is estimated,
   date of birth, locations, date of separation, parents' and relatives' names, language,
   nationality, ethnicity, religion). A trace also brings its inquirer's name and
   relationship from its tracing request.
2. **Blocking.** Candidates share name keys (transliteration-aware phonetic keys and
   consonant skeletons, kept in `record_keys` on every save). Keys are weighed by rarity
   (inverse document frequency); the best `MAX_CANDIDATES` by summed key weight are
   scored, so a very common name ("Mohamed") cannot explode a block while a rare shared
   name always gets through.
3. **Scoring.** A Fellegi-Sunter model: every comparator returns a level; each level has
   m = P(level | same child) and u = P(level | different children); the evidence weight is
   log2(m/u). Weights add up with a prior into a match weight, turned into a probability.
   Name agreement is adjusted by term frequency: sharing a rare name counts more than
   sharing "Mohamed". Defaults below work with no training; `estimate_parameters` can
   re-estimate m and u from reviewers' decisions. Pairs at or above the `possible`
   threshold are proposed; at or above `likely`, proposed as likely.
4. **Respect.** Cases and tracing requests without consent for tracing are never proposed
   (MATCHING_REQUIRE_CONSENT); closed cases and traces that are confirmed, reunified or
   closed are not matched; a decided pair keeps its decision; a rejected pair comes back
   only if a field that matters changed and the new score is higher than when rejected.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import current_app
from sqlalchemy import func, select

from app.db import utcnow
from app.extensions import db
from app.records.models import STATUS_CLOSED, RecordKey
from app.records.search import NAME_KIND
from matching import comparators as cmp
from matching.models import (
    CONFIRMED,
    LIKELY,
    PENDING,
    POSSIBLE,
    REJECTED,
    SUPERSEDED,
    MatchingConfig,
    MatchProposal,
)
from matching.names import name_key, name_keys, name_tokens

MAX_CANDIDATES = 200
DEFAULT_LIKELY = 0.9
DEFAULT_POSSIBLE = 0.3
DEFAULT_PRIOR = -9.0  # log2 odds that a candidate pair is the same child before any evidence

# m and u per comparator level (documented defaults; an administrator can override them).
DEFAULT_PARAMETERS: dict[str, dict[str, tuple[float, float]]] = {
    "names": {
        "exact": (0.30, 0.0004), "variant": (0.35, 0.002), "phonetic": (0.15, 0.004),
        "fuzzy_high": (0.08, 0.006), "fuzzy_low": (0.04, 0.02), "partial": (0.06, 0.10),
        "different": (0.02, 0.87),
    },
    "given_name": {
        "exact": (0.55, 0.02), "variant": (0.20, 0.01), "nickname": (0.04, 0.002),
        "phonetic": (0.08, 0.01), "transliteration": (0.04, 0.004), "fuzzy_high": (0.04, 0.01),
        "fuzzy_low": (0.02, 0.03), "initial": (0.01, 0.04), "different": (0.02, 0.87),
    },
    "sex": {"same": (0.95, 0.5), "uncertain": (0.03, 0.03), "different": (0.02, 0.47)},
    "age": {"exact": (0.25, 0.06), "within_tolerance": (0.62, 0.25), "near": (0.09, 0.19),
            "different": (0.04, 0.50)},
    "date_of_birth": {"exact": (0.45, 0.002), "day_month_swapped": (0.05, 0.0005), "typo": (0.08, 0.002),
                      "same_year": (0.2, 0.07), "off_by_one_year": (0.12, 0.13), "different": (0.10, 0.80)},
    "location": {"same_site": (0.45, 0.06), "same_district": (0.22, 0.12), "same_region": (0.15, 0.22),
                 "same_country": (0.13, 0.45), "different": (0.05, 0.15)},
    "date_of_separation": {"exact": (0.35, 0.01), "day_month_swapped": (0.03, 0.001), "typo": (0.05, 0.005),
                           "same_year": (0.30, 0.30), "off_by_one_year": (0.12, 0.25),
                           "different": (0.15, 0.43)},
    "mother_name": {"exact": (0.30, 0.001), "variant": (0.25, 0.004), "phonetic": (0.12, 0.008),
                    "fuzzy_high": (0.06, 0.01), "fuzzy_low": (0.04, 0.03), "partial": (0.08, 0.10),
                    "different": (0.15, 0.85)},
    "father_name": {"exact": (0.30, 0.001), "variant": (0.25, 0.004), "phonetic": (0.12, 0.008),
                    "fuzzy_high": (0.06, 0.01), "fuzzy_low": (0.04, 0.03), "partial": (0.08, 0.10),
                    "different": (0.15, 0.85)},
    "inquirer": {"exact": (0.30, 0.001), "variant": (0.25, 0.004), "phonetic": (0.12, 0.008),
                 "fuzzy_high": (0.06, 0.01), "fuzzy_low": (0.04, 0.03), "partial": (0.10, 0.10),
                 "different": (0.13, 0.85)},
    "language": {"same": (0.9, 0.4), "different": (0.1, 0.6)},
    "nationality": {"same": (0.92, 0.5), "different": (0.08, 0.5)},
    "ethnicity": {"same": (0.85, 0.3), "different": (0.15, 0.7)},
    "religion": {"same": (0.9, 0.6), "different": (0.1, 0.4)},
}
# Term frequency: a shared name token whose key is held by a share f of cases adds
# log2(TF_REFERENCE / f), clamped, so rare names count more and common ones less.
TF_REFERENCE = 0.01
TF_CLAMP = 3.0
MATCHED_TOKEN_LEVELS = {"exact", "variant", "nickname", "phonetic", "transliteration"}

# Tags whose change may change a match (a rejected pair may come back only after one of these).
MATCHING_TAGS = ("given_name", "middle_name", "family_name", "full_name", "nickname", "other_name", "sex",
                 "date_of_birth", "age", "location", "date_of_separation", "mother_name", "father_name",
                 "caregiver_name", "inquirer_name", "relationship", "language", "nationality", "ethnicity",
                 "religion")
NAME_PARTS = {"given_name": "given", "middle_name": "middle", "family_name": "family", "full_name": "full",
              "nickname": "nickname", "other_name": "other"}
CATEGORICAL = ("language", "nationality", "ethnicity", "religion")


# --- views ---------------------------------------------------------------------------------

@dataclass
class Person:
    """What the engine knows of one child, from either side."""

    record_type: str
    id: str
    names: dict[str, list[str]] = field(default_factory=dict)
    sex: str | None = None
    age: float | None = None
    age_estimated: bool = False
    age_date: date | None = None       # the date the age refers to
    date_of_birth: str | None = None
    locations: list[str] = field(default_factory=list)
    date_of_separation: str | None = None
    mother_name: str | None = None
    father_name: str | None = None
    caregiver_name: str | None = None
    family_details: list[dict] = field(default_factory=list)
    inquirer_name: str | None = None
    relationship: str | None = None
    categorical: dict[str, str] = field(default_factory=dict)

    @property
    def all_names_text(self) -> str:
        return " ".join(token for values in self.names.values() for token in values)


def _tagged(record_type: str) -> dict[str, list[str]]:
    from forms.operations import fields_with_matching_tag
    return {tag: fields_with_matching_tag(record_type, tag) for tag in MATCHING_TAGS}


def _first(data: Mapping, keys: Iterable[str]):
    for key in keys:
        value = data.get(key)
        if value not in (None, "", []):
            return value
    return None


def _as_date(value) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def person_from(record_type: str, record_id: str, data: Mapping, created_at: datetime | None,
                tags: dict[str, list[str]], request_data: Mapping | None = None,
                request_tags: dict[str, list[str]] | None = None) -> Person:
    person = Person(record_type, record_id)
    for tag, part in NAME_PARTS.items():
        values = [str(data[key]).strip() for key in tags.get(tag, []) if isinstance(data.get(key), str)
                  and data[key].strip()]
        if values:
            person.names[part] = values
    sex = _first(data, tags["sex"])
    person.sex = str(sex) if sex else None
    age = _first(data, tags["age"])
    try:
        person.age = float(age) if age is not None else None
    except (TypeError, ValueError):
        person.age = None
    person.age_estimated = bool(data.get("age_is_estimated")) or any(
        data.get(f"{key}_approximate") for key in tags["date_of_birth"])
    dob = _first(data, tags["date_of_birth"])
    person.date_of_birth = str(dob) if dob else None
    person.locations = [str(data[key]) for key in tags["location"] if data.get(key)]
    separation = _first(data, tags["date_of_separation"])
    person.date_of_separation = str(separation) if separation else None
    for tag in ("mother_name", "father_name", "caregiver_name"):
        value = _first(data, tags[tag])
        setattr(person, tag, str(value) if value else None)
    for row in data.get("family_details") or []:
        if isinstance(row, Mapping) and row.get("relation_name"):
            person.family_details.append({"name": row.get("relation_name"), "relationship": row.get("relation")})
    for tag in CATEGORICAL:
        value = _first(data, tags[tag])
        if value:
            person.categorical[tag] = value if isinstance(value, str) else ";".join(map(str, value))
    if record_type == "case":
        person.age_date = created_at.date() if created_at else None  # age as told at registration
    else:
        person.age_date = _as_date(person.date_of_separation)
    if request_data is not None and request_tags is not None:
        inquirer = _first(request_data, request_tags["inquirer_name"] or ["relation_name"])
        person.inquirer_name = str(inquirer) if inquirer else None
        relationship = _first(request_data, request_tags["relationship"] or ["relation"])
        person.relationship = str(relationship) if relationship else None
        if person.age_date is None:
            person.age_date = _as_date(request_data.get("inquiry_date")) or (
                created_at.date() if created_at else None)
        for tag in ("language", "nationality"):
            if tag not in person.categorical:
                value = _first(request_data, request_tags[tag])
                if value:
                    person.categorical[tag] = str(value)
    return person


def case_person(case, tags=None) -> Person:
    return person_from("case", case.id, case.data or {}, case.created_at, tags or _tagged("case"))


def trace_person(trace, tags=None, request_tags=None) -> Person:
    return person_from("trace", trace.id, trace.data or {}, trace.created_at, tags or _tagged("trace"),
                       trace.tracing_request.data or {}, request_tags or _tagged("tracing_request"))


# --- parameters -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    version: int
    likely: float
    possible: float
    prior: float
    weights: dict[str, dict[str, float]]


def _weights(parameters: Mapping) -> dict[str, dict[str, float]]:
    weights = {}
    for comparator, levels in DEFAULT_PARAMETERS.items():
        merged = dict(levels)
        merged.update({level: tuple(mu) for level, mu in (parameters.get(comparator) or {}).items()})
        weights[comparator] = {level: math.log2(m / u) for level, (m, u) in merged.items() if m > 0 and u > 0}
    return weights


def current_settings() -> Settings:
    """The configuration in force (the newest row); created with the defaults on first use."""
    config = db.session.execute(select(MatchingConfig).order_by(MatchingConfig.id.desc()).limit(1)).scalar_one_or_none()
    if config is None:
        config = MatchingConfig(likely_threshold=DEFAULT_LIKELY, possible_threshold=DEFAULT_POSSIBLE,
                                parameters={}, note="defaults")
        db.session.add(config)
        db.session.flush()
    parameters = config.parameters or {}
    return Settings(config.id, config.likely_threshold, config.possible_threshold,
                    float(parameters.get("prior", DEFAULT_PRIOR)), _weights(parameters))


# --- scoring ------------------------------------------------------------------------------------

def _years_between(trace: Person, case: Person) -> float:
    if trace.age_date and case.age_date:
        return (case.age_date - trace.age_date).days / 365.25
    return 0.0


def _age_at(person: Person, when: date | None) -> float | None:
    born = _as_date(person.date_of_birth)
    if born and when:
        return (when - born).days / 365.25
    return person.age


def compare(trace: Person, case: Person, settings: Settings, frequencies: Mapping[str, float] | None = None,
            ancestors=None) -> tuple[float, list[dict]]:
    """The match weight of a pair and its per-comparator explanation, strongest first."""
    evidence: list[dict] = []

    def add(comparator: str, result: cmp.Comparison, extra: dict | None = None) -> None:
        level = str(result.level)
        if level == "missing":
            return
        weight = settings.weights.get(comparator, {}).get(level, 0.0)
        item = {"comparator": comparator, "level": level, "weight": round(weight, 3),
                "similarity": round(float(result.similarity), 3)}
        if extra:
            item.update(extra)
        evidence.append(item)

    names = cmp.compare_names(trace.names, case.names)
    matches = [{"a": m.a, "b": m.b, "level": str(m.level)} for m in getattr(names, "matches", ())]
    add("names", names, {"tokens": matches})
    if str(names.level) not in ("missing", "different") and frequencies is not None:
        tf = 0.0
        for match in getattr(names, "matches", ()):
            if str(match.level) in MATCHED_TOKEN_LEVELS:
                share = max(frequencies.get(name_key(match.b), 0.0), 1e-5)
                tf += max(-TF_CLAMP, min(TF_CLAMP, math.log2(TF_REFERENCE / share)))
        if tf:
            evidence.append({"comparator": "name_frequency", "level": "rare" if tf > 0 else "common",
                             "weight": round(tf / 2, 3), "similarity": 0.0})
    add("given_name", cmp.compare_given_names(trace.names, case.names))
    add("sex", cmp.compare_sex(trace.sex, case.sex))
    if trace.date_of_birth and case.date_of_birth:
        add("date_of_birth", cmp.compare_dates(trace.date_of_birth, case.date_of_birth))
    else:
        add("age", cmp.compare_age(_age_at(trace, trace.age_date), _age_at(case, case.age_date),
                                   estimated_a=trace.age_estimated, estimated_b=case.age_estimated,
                                   years_between=_years_between(trace, case)))
    if trace.locations and case.locations:
        ancestors = ancestors or _ancestors
        best = None
        for a in trace.locations:
            for b in case.locations:
                result = cmp.compare_locations(a, b, ancestors(a), ancestors(b))
                if best is None or result.similarity > best.similarity:
                    best = result
        add("location", best)
    if trace.date_of_separation and case.date_of_separation:
        add("date_of_separation", cmp.compare_dates(trace.date_of_separation, case.date_of_separation))
    for parent in ("mother_name", "father_name"):
        a, b = getattr(trace, parent), getattr(case, parent)
        if a and b:
            add(parent, cmp.compare_names(a, b))
    if trace.inquirer_name:
        relatives = {"mother_name": case.mother_name, "father_name": case.father_name,
                     "caregiver_name": case.caregiver_name, "family_details": case.family_details,
                     "child_name": case.all_names_text}
        if any(relatives[k] for k in ("mother_name", "father_name", "caregiver_name", "family_details")):
            result = cmp.compare_relative_name(trace.inquirer_name, trace.relationship, relatives)
            add("inquirer", result, {"compared_with": result.details.get("compared_with")})
    for tag in CATEGORICAL:
        if tag in trace.categorical and tag in case.categorical:
            add(tag, cmp.compare_categorical(trace.categorical[tag], case.categorical[tag]))
    score = settings.prior + sum(item["weight"] for item in evidence)
    evidence.sort(key=lambda item: -abs(item["weight"]))
    return score, evidence


def probability(score: float) -> float:
    if score > 50:
        return 1.0
    odds = 2.0 ** score
    return odds / (1.0 + odds)


def likelihood_of(p: float, settings: Settings) -> str | None:
    if p >= settings.likely:
        return LIKELY
    if p >= settings.possible:
        return POSSIBLE
    return None


def _ancestors(code: str) -> list[str]:
    """Location ancestors, memoised for the current request or job (scoring asks for the same
    few codes thousands of times)."""
    from flask import g

    from forms.definitions import location_ancestors
    memo = g.setdefault("_matching_ancestors", {})
    if code not in memo:
        memo[code] = location_ancestors(code)
    return memo[code]


# --- blocking ------------------------------------------------------------------------------------

def person_keys(person: Person) -> set[str]:
    keys: set[str] = set()
    for values in person.names.values():
        for value in values:
            keys |= name_keys(value)
    return keys


def key_frequencies(keys: Iterable[str], record_type: str = "case") -> dict[str, float]:
    """Share of `record_type` records holding each key (name-key document frequency)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    total = _record_count(record_type)
    rows = db.session.execute(
        select(RecordKey.key, func.count(RecordKey.id)).where(
            RecordKey.record_type == record_type, RecordKey.kind == NAME_KIND, RecordKey.key.in_(keys))
        .group_by(RecordKey.key)).all()
    return {key: count / total for key, count in rows}


def _record_count(record_type: str) -> int:
    from cases.models import Case
    from tracing.models import Trace
    model = Case if record_type == "case" else Trace
    return max(db.session.scalar(select(func.count(model.id))) or 1, 1)


def blocking_candidates(person: Person, other_type: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """Ids of `other_type` records sharing name keys with `person`, rarest shared keys first."""
    keys = person_keys(person)
    if not keys:
        return []
    frequencies = key_frequencies(keys, other_type)
    idf = {key: -math.log(max(share, 1e-6)) for key, share in frequencies.items()}
    rows = db.session.execute(select(RecordKey.record_id, RecordKey.key).where(
        RecordKey.record_type == other_type, RecordKey.kind == NAME_KIND,
        RecordKey.key.in_(sorted(frequencies)))).all()
    weight: dict[str, float] = {}
    for record_id, key in rows:
        weight[record_id] = weight.get(record_id, 0.0) + idf.get(key, 0.0)
    ranked = sorted(weight.items(), key=lambda item: (-item[1], item[0]))
    return [record_id for record_id, _w in ranked[:limit]]


# --- proposals -------------------------------------------------------------------------------------

def _eligible_case_ids(ids: list[str]) -> set[str]:
    from cases.models import Case
    query = select(Case.id).where(Case.id.in_(ids), Case.status != STATUS_CLOSED)
    if current_app.config.get("MATCHING_REQUIRE_CONSENT", True):
        query = query.where(Case.is_consent_for_tracing.is_(True))
    return set(db.session.execute(query).scalars())


def trace_is_matchable(trace) -> bool:
    from tracing.models import TRACE_CLOSED, TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED
    if trace.status == STATUS_CLOSED or trace.tracing_status in (TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED,
                                                                   TRACE_CLOSED):
        return False
    if current_app.config.get("MATCHING_REQUIRE_CONSENT", True) and not trace.tracing_request.is_consent_for_tracing:
        return False
    return True


def match_trace(trace, changed: bool = True) -> list[MatchProposal]:
    """Score `trace` against its candidate cases and store proposals. Returns the pending ones."""
    from cases.models import Case
    settings = current_settings()
    if not trace_is_matchable(trace):
        _withdraw(trace_id=trace.id)
        return []
    person = trace_person(trace)
    candidate_ids = blocking_candidates(person, "case")
    eligible = _eligible_case_ids(candidate_ids) if candidate_ids else set()
    cases = db.session.execute(select(Case).where(Case.id.in_(eligible))).scalars().all() if eligible else []
    frequencies = key_frequencies(person_keys(person), "case")
    case_tags = _tagged("case")
    scored = []
    for case in cases:
        score, evidence = compare(person, case_person(case, case_tags), settings, frequencies)
        scored.append((case.id, score, evidence))
    return _store(trace.id, scored, settings, changed, by_trace=True)


def match_case(case, changed: bool = True) -> list[MatchProposal]:
    """Score `case` against the open traces that may be this child."""
    from tracing.models import Trace
    settings = current_settings()
    consent_needed = current_app.config.get("MATCHING_REQUIRE_CONSENT", True)
    if case.status == STATUS_CLOSED or (consent_needed and not case.is_consent_for_tracing):
        _withdraw(case_id=case.id)
        return []
    person = case_person(case)
    candidate_ids = blocking_candidates(person, "trace")
    traces = [t for t in db.session.execute(select(Trace).where(Trace.id.in_(candidate_ids))).scalars()
              if trace_is_matchable(t)] if candidate_ids else []
    trace_tags, request_tags = _tagged("trace"), _tagged("tracing_request")
    case_keys = person_keys(person)
    frequencies = key_frequencies(case_keys, "case")
    stored = []
    for trace in traces:
        score, evidence = compare(trace_person(trace, trace_tags, request_tags), person, settings, frequencies)
        stored.extend(_store(trace.id, [(case.id, score, evidence)], settings, changed, by_trace=False))
    return stored


def _withdraw(trace_id: str | None = None, case_id: str | None = None) -> None:
    """Pending proposals of a record that may no longer be matched are superseded."""
    query = select(MatchProposal).where(MatchProposal.status == PENDING)
    query = query.where(MatchProposal.trace_id == trace_id) if trace_id else query.where(
        MatchProposal.case_id == case_id)
    for proposal in db.session.execute(query).scalars():
        proposal.status, proposal.updated_at = SUPERSEDED, utcnow()
        proposal.decision_reason = "not_matchable"


def _store(trace_id: str, scored: list[tuple[str, float, list]], settings: Settings, changed: bool,
           by_trace: bool) -> list[MatchProposal]:
    query = select(MatchProposal).where(MatchProposal.trace_id == trace_id)
    if not by_trace:
        query = query.where(MatchProposal.case_id.in_([case_id for case_id, *_ in scored]))
    existing = {p.case_id: p for p in db.session.execute(query).scalars()}
    confirmed = db.session.scalar(select(func.count(MatchProposal.id)).where(
        MatchProposal.trace_id == trace_id, MatchProposal.status == CONFIRMED))
    if confirmed:
        return []  # a confirmed trace stops generating proposals
    pending = []
    now = utcnow()
    seen = set()
    for case_id, score, evidence in scored:
        seen.add(case_id)
        p = probability(score)
        band = likelihood_of(p, settings)
        proposal = existing.get(case_id)
        if proposal is None:
            if band is None:
                continue
            proposal = MatchProposal(trace_id=trace_id, case_id=case_id, status=PENDING, created_at=now)
            db.session.add(proposal)
        elif proposal.status == REJECTED:
            # Only a relevant change and a higher score bring a rejected pair back.
            if not (changed and band and proposal.rejected_score is not None and score > proposal.rejected_score):
                continue
            proposal.status, proposal.decided_at, proposal.decided_by_id = PENDING, None, None
        elif proposal.status == SUPERSEDED:
            if band is None or proposal.decision_reason not in ("score_dropped", "not_matchable"):
                continue
            proposal.status = PENDING
        elif proposal.status == PENDING and band is None:
            proposal.status, proposal.decision_reason = SUPERSEDED, "score_dropped"
        if band is not None:
            proposal.likelihood = band
        proposal.score, proposal.probability = round(score, 4), round(p, 6)
        proposal.comparison, proposal.engine_version, proposal.updated_at = evidence, settings.version, now
        if proposal.status == PENDING:
            pending.append(proposal)
    if by_trace:
        for case_id, proposal in existing.items():
            if case_id not in seen and proposal.status == PENDING:
                proposal.status, proposal.decision_reason, proposal.updated_at = SUPERSEDED, "score_dropped", now
    db.session.flush()
    if pending:
        _mark_proposed(trace_id)
    return pending


def _mark_proposed(trace_id: str) -> None:
    """A trace with a pending proposal moves to "match proposed" (from open or in progress)."""
    from app.records.operations import record_change
    from tracing.models import TRACE_IN_PROGRESS, TRACE_MATCH_PROPOSED, TRACE_OPEN, Trace
    trace = db.session.get(Trace, trace_id)
    if trace is not None and trace.tracing_status in (TRACE_OPEN, TRACE_IN_PROGRESS):
        before = trace.tracing_status
        trace.tracing_status = TRACE_MATCH_PROPOSED
        db.session.flush()
        record_change(trace, "match_proposed", None,
                      [{"field": "@tracing_status", "old": before, "new": TRACE_MATCH_PROPOSED}])
