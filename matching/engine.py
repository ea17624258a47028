"""The matching engine: which registered cases may be the child a relative is looking for.

1. **Views.** A case or a trace becomes a `Person`: the values of the fields tagged for
   matching in the form definitions (names by part, sex, age and whether it is estimated,
   date of birth, locations, date of separation, parents' and relatives' names, language,
   nationality, ethnicity, religion). A trace also brings its inquirer's name and
   relationship from its tracing request.
2. **Blocking.** Candidates share name keys (transliteration-aware phonetic keys and
   consonant skeletons, kept in `record_keys` on every save) of the child's names or of
   its parents' and caregiver's names (kind "relative"). A cheap first stage ranks them by
   the rarity of the keys shared per name token, sex, birth year and place of separation;
   a very common key ("Mohamed") is split by a second key (compatible sex and birth year),
   so it cannot flood the candidates. A second stage re-ranks the best `FIRST_STAGE_POOL`
   by how the child's own name compares on both sides, and the best `FIRST_STAGE_KEEP`
   within `COMPARE_MARGIN` points of the best are compared in full. Long-lived processes rank
   with in-memory indexes of the cases and of the traces (`matching.index`), kept up to date
   from the database, instead of a query per record; `ranked_candidates` is the same ranking
   through SQL (used with MATCHING_MEMORY_INDEX off).
3. **Scoring.** A Fellegi-Sunter model: every comparator returns a level; each level has
   m = P(level | same child) and u = P(level | different children); the evidence weight is
   log2(m/u). Weights add up with a prior into a match weight, turned into a calibrated
   probability (`WEIGHT_SCALE`, fitted on the benchmark: pairs shown 90 % are right ~90 %).
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

import functools
import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import current_app
from sqlalchemy import String, and_, cast, func, or_, select

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

# Calibration (bench/README.md, "Matching results"): the evidence weights below are not independent
# (names, the given name, the name frequency and the parents' names all say much the same), so
# their plain sum is overconfident: pairs shown "> 99 %" were right 89 % of the time. The match
# weight is therefore scaled before it becomes a probability, and the prior and the scale were
# fitted (logistic regression) on the blocking candidates of the 10,000 x 10,000 benchmark, so
# that pairs shown 90 % are right about 90 % of the time; the prior then follows the number of
# cases (`prior_for`). Fitted again when the inquirer stopped counting twice (the mother asking
# is the trace's mother) and siblings' shared parents were capped (SIBLING_FAMILY_CAP): the sum
# is less overconfident, the scale went from 0.6 to 0.82 and the prior from -14.4 to -12.85.
# The thresholds follow: `likely` is right about 19 times in 20 on that benchmark (at 10,000 and
# at 100,000); `possible` keeps nearly every true pair the blocking keeps, and a `possible` pair
# is proposed only within DEFAULT_MARGIN bits of the trace's best candidate (its odds at least
# 1/128 of the best's): a trace with one strong candidate does not bring a dozen weak namesakes
# into the queue, and the threshold can be low enough for a child registered with her given name
# alone. Chosen on the benchmark (bench/README.md, fourth round): possible 0.01 with no margin
# gave recall 0.972 / 0.914 with 2.44 / 3.13 proposals per trace at 10,000 / 100,000; 0.0025
# within 7 bits gives 0.981 / 0.935 with 2.12 / 2.95.
DEFAULT_LIKELY = 0.8
DEFAULT_POSSIBLE = 0.0025
DEFAULT_MARGIN = 7.0
DEFAULT_PRIOR = -12.85  # log2 odds that a candidate pair is the same child before any evidence,
PRIOR_REFERENCE_CASES = 10_000  # ... with this many cases (see prior_for)
PRIOR_MIN_CASES = 2_000
WEIGHT_SCALE = 0.82    # calibrated log2 odds = WEIGHT_SCALE * (prior + summed weights)

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
    # Weak evidence: recorded by different people from what a frightened child or a relative
    # said, so a disagreement costs about one bit (was up to 2.6: it sank true pairs).
    "language": {"same": (0.8, 0.4), "different": (0.2, 0.6)},
    "nationality": {"same": (0.8, 0.5), "different": (0.2, 0.5)},
    "ethnicity": {"same": (0.7, 0.3), "different": (0.3, 0.7)},
    "religion": {"same": (0.8, 0.6), "different": (0.2, 0.4)},
}
# Term frequency: a shared name token whose key is held by a share f of cases adds
# log2(TF_REFERENCE / f), clamped, so rare names count more and common ones less.
TF_REFERENCE = 0.01
TF_CLAMP = 3.0
# Each of the child's names agreeing beyond two adds this many bits to the whole-name weight
# (nicknames and other names, the comparators' optional fields, are not counted).
NAMES_TOKEN_BONUS = 1.5
TF_PSEUDO_RECORDS = 1000
MATCHED_TOKEN_LEVELS = {"exact", "variant", "nickname", "phonetic", "transliteration"}
FULLY_PAIRED_NAME_LEVELS = {"exact", "variant", "phonetic", "fuzzy_high", "fuzzy_low"}
OWN_NAME_AGREES = MATCHED_TOKEN_LEVELS | {"fuzzy_high", "fuzzy_low"}

# Tags whose change may change a match (a rejected pair may come back only after one of these).
MATCHING_TAGS = ("given_name", "middle_name", "family_name", "full_name", "nickname", "other_name", "sex",
                 "date_of_birth", "age", "location", "date_of_separation", "mother_name", "father_name",
                 "caregiver_name", "inquirer_name", "relationship", "language", "nationality", "ethnicity",
                 "religion")
NAME_PARTS = {"given_name": "given", "middle_name": "middle", "family_name": "family", "full_name": "full",
              "nickname": "nickname", "other_name": "other"}
CATEGORICAL = ("language", "nationality", "ethnicity", "religion")
# When the child's own name differs, the parents' and the inquirer's names agreeing count for at
# most this many bits together: siblings share them (bench/README.md, "2026-11-29, second round").
SIBLING_FAMILY_CAP = 8.0


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
    dob_approximate: bool = False      # the date of birth marked approximate (worked out from an age)
    locations: list[str] = field(default_factory=list)
    date_of_separation: str | None = None
    mother_name: str | None = None
    father_name: str | None = None
    caregiver_name: str | None = None
    family_details: list[dict] = field(default_factory=list)
    inquirer_name: str | None = None
    relationship: str | None = None
    categorical: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def core_token_count(self) -> int:
        """How many name tokens the given, middle, family and full names hold."""
        return sum(len(name_tokens(value)) for part in _CORE_NAME_PARTS for value in self.names.get(part, []))

    @functools.cached_property
    def names_key(self) -> tuple:
        """`names` in the form the name comparisons take (made once per person)."""
        return cmp.name_parts_key(self.names)

    @property
    def core_names_text(self) -> str:
        """The given, middle, family and full names in reading order (not the nickname nor
        other names: another spelling of the name is not its chain)."""
        return " ".join(value for part in _CORE_NAME_PARTS for value in self.names.get(part, []))


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
    person.dob_approximate = any(data.get(f"{key}_approximate") for key in tags["date_of_birth"])
    person.age_estimated = bool(data.get("age_is_estimated")) or person.dob_approximate
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
    margin: float = DEFAULT_MARGIN  # a `possible` pair this many bits behind the trace's best is not proposed

    @functools.cached_property
    def best(self) -> dict[str, float]:
        """The most each comparator can add (0 when it is left out: a missing value)."""
        return {comparator: max(0.0, *(round(w, 3) for w in levels.values()))
                for comparator, levels in self.weights.items()}


def _weights(parameters: Mapping) -> dict[str, dict[str, float]]:
    weights = {}
    for comparator, levels in DEFAULT_PARAMETERS.items():
        merged = dict(levels)
        merged.update({level: tuple(mu) for level, mu in (parameters.get(comparator) or {}).items()})
        weights[comparator] = {level: math.log2(m / u) for level, (m, u) in merged.items() if m > 0 and u > 0}
    return weights


def prior_for(prior: float, cases: int) -> float:
    """The prior in force with `cases` registered cases.

    A trace's child is one child among all the cases, so the odds that a candidate is that
    child fall as the number of cases grows: one bit each time it doubles. The configured
    prior holds at PRIOR_REFERENCE_CASES (where it was fitted); fitted again at 100,000 it came
    out 3.4 bits lower, where this gives 3.3 (bench/README.md). Below PRIOR_MIN_CASES it no
    longer rises.
    """
    return prior - math.log2(max(cases, PRIOR_MIN_CASES) / PRIOR_REFERENCE_CASES)


def current_settings(cases: int | None = None) -> Settings:
    """The configuration in force (the newest row); created with the defaults on first use.
    `cases` is the number of cases (counted when not given): the prior depends on it."""
    config = db.session.execute(select(MatchingConfig).order_by(MatchingConfig.id.desc()).limit(1)).scalar_one_or_none()
    if config is None:
        config = MatchingConfig(likely_threshold=DEFAULT_LIKELY, possible_threshold=DEFAULT_POSSIBLE,
                                parameters={}, note="defaults")
        db.session.add(config)
        db.session.flush()
    parameters = config.parameters or {}
    cases = _record_count("case") if cases is None else cases
    return Settings(config.id, config.likely_threshold, config.possible_threshold,
                    prior_for(float(parameters.get("prior", DEFAULT_PRIOR)), cases), _weights(parameters),
                    float(parameters.get("margin", DEFAULT_MARGIN)))


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


AGES_APART = ("near", "different")  # age levels that also count after dates of birth that differ


def _compare_ages(trace: Person, case: Person) -> cmp.Comparison:
    return cmp.compare_age(_age_at(trace, trace.age_date), _age_at(case, case.age_date),
                           estimated_a=trace.age_estimated, estimated_b=case.age_estimated,
                           years_between=_years_between(trace, case))


def compare(trace: Person, case: Person, settings: Settings, frequencies: Mapping[str, float] | None = None,
            ancestors=None, explain: bool = True, floor: float | None = None) -> tuple[float, list[dict] | None]:
    """The match weight of a pair and its per-comparator explanation, strongest first.

    With `explain=False` only the weight is computed (the explanation is None): most pairs
    a trace is compared with are never proposed, and the bulk re-match explains only those
    that are (the weight is the same either way). With a `floor` too, a pair that cannot
    reach it stops before the parents' and inquirer's names (more than half of the work) are
    compared, or after the mother's or the father's, as soon as what is left cannot lift it
    to `floor`; an upper bound of its weight below `floor` is returned instead of the weight.
    """
    evidence: list[dict] = []
    summed = 0.0
    weights = settings.weights

    def add(comparator: str, result: cmp.Comparison, extra=None, at_most: float | None = None) -> None:
        nonlocal summed
        level = str(result.level)
        if level == "missing":
            return
        weight = round(weights.get(comparator, {}).get(level, 0.0), 3)
        if at_most is not None:
            weight = min(weight, at_most)
        summed += weight
        if explain:
            item = {"comparator": comparator, "level": level, "weight": weight,
                    "similarity": round(float(result.similarity), 3)}
            if extra:
                item.update(extra() if callable(extra) else extra)
            evidence.append(item)

    names = cmp.compare_names(trace.names_key, case.names_key)
    fully_paired = str(names.level) in FULLY_PAIRED_NAME_LEVELS
    one_word = min(trace.core_token_count, case.core_token_count) == 1
    given = cmp.compare_given_names(trace.names_key, case.names_key)
    given_level = str(given.level)
    # Every token of the shorter name found in the other but the first tokens differ: the order
    # was swapped or the chain written from another end, not a sibling's own name (a sibling's
    # own name is left unpaired: "partial"). The names comparator says it; given_name does not.
    given_counts = not (fully_paired and given_level == "different")
    names_extra = lambda: {"tokens": [{"a": m.a, "b": m.b, "level": str(m.level)}  # noqa: E731
                                      for m in getattr(names, "matches", ())]}
    if fully_paired and one_word and given_level in OWN_NAME_AGREES:
        pass  # a one-word name found as the other's own name is the given_name comparison again:
        # counted twice, it made every sparse namesake ("Hayatullah") look like the child
    elif fully_paired and one_word and not given_counts:
        # A one-word name found among the other's later names (a chain written from the other
        # end, or the father's name): no stronger than the own name agreeing would be.
        add("names", names, names_extra, at_most=round(weights.get("given_name", {}).get("exact", 0.0), 3))
    else:
        add("names", names, names_extra)
        agreeing = _agreeing_names(names) if fully_paired else 0
        if agreeing > 2:
            # The level says how well the shorter name is found, not how much of it: a third
            # (fourth ...) name agreeing is rarer by chance than two (a namesake "Fatima Xuseen"
            # against "Faaduma Maxammed Xasan", the child written in full on both sides).
            bonus = NAMES_TOKEN_BONUS * (agreeing - 2)
            summed += bonus
            if explain:
                evidence[-1]["weight"] = round(evidence[-1]["weight"] + bonus, 3)
                evidence[-1]["agreeing_names"] = agreeing
    if str(names.level) not in ("missing", "different") and frequencies is not None:
        tf = 0.0
        for match in getattr(names, "matches", ()):
            if str(match.level) in MATCHED_TOKEN_LEVELS:
                share = frequencies.get(name_key(match.b)) or frequencies.get("", TF_REFERENCE)
                tf += max(-TF_CLAMP, min(TF_CLAMP, math.log2(TF_REFERENCE / share)))
        if tf:
            weight = round(tf / 2, 3)
            summed += weight
            if explain:
                evidence.append({"comparator": "name_frequency", "level": "rare" if tf > 0 else "common",
                                 "weight": weight, "similarity": 0.0})
    if given_counts:
        add("given_name", given)
    add("sex", cmp.compare_sex(trace.sex, case.sex))
    age = None
    if trace.date_of_birth and case.date_of_birth and not (trace.dob_approximate or case.dob_approximate):
        born = cmp.compare_dates(trace.date_of_birth, case.date_of_birth)
        add("date_of_birth", born)
        if str(born.level) == "different":
            # Dates that differ by more than a typo or a year: how far apart, as ages (with the
            # tolerance of estimates): beyond it, the ages disagree too (a namesake years older).
            age = _compare_ages(trace, case)
            if str(age.level) not in AGES_APART:
                age = None
    else:
        age = _compare_ages(trace, case)
    if age is not None:
        add("age", age)
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
    # Parents' and the inquirer's names agreeing say "the same family"; when the child's own
    # name differs that is a brother or sister as often as the child: together they count for
    # at most SIBLING_FAMILY_CAP (each item is marked "family_shared" in the explanation).
    budget = [SIBLING_FAMILY_CAP] if given_level == "different" else None
    bounded = floor is not None and not explain
    if bounded:
        categorical_most = _categorical_bound(trace, case, settings.best)
        most = settings.prior + summed + _family_bound(trace, case, settings.best, budget) + categorical_most
        if most < floor - FLOOR_MARGIN:
            return most, None

    def add_family(comparator: str, result: cmp.Comparison, extra: dict | None = None) -> None:
        weight = round(weights.get(comparator, {}).get(str(result.level), 0.0), 3)
        if budget is None or weight <= 0:
            add(comparator, result, extra)
            return
        allowed = round(min(weight, budget[0]), 3)
        budget[0] -= allowed
        shared = {"family_shared": True} if allowed < weight else {}
        add(comparator, result, {**(extra or {}), **shared}, at_most=allowed)

    compared_parents = set()
    for parent in ("mother_name", "father_name"):
        a, b = getattr(trace, parent), getattr(case, parent)
        if a and b:
            add_family(parent, cmp.compare_chain_names(a, b))
            compared_parents.add(parent)
            if bounded:  # checked again before each further name (the inquirer's costs most)
                most = settings.prior + summed + categorical_most \
                    + _family_bound(trace, case, settings.best, budget, after=parent)
                if most < floor - FLOOR_MARGIN:
                    return most, None
    chain = _father_and_chain(trace, case)
    if chain is not None:
        # The father's name recorded on one side only, and the other side's chain: agreeing, it
        # is the father's name (disagreeing it says nothing: later names may be a family or clan name).
        result = cmp.compare_chain_names(*chain)
        if str(result.level) in FULLY_PAIRED_NAME_LEVELS:
            add_family("father_name", result, {"compared_with": "child_name_chain"})
    # (the mother asking for her child is the trace's mother: when both records name her, she
    # was compared above, and the inquirer adds nothing)
    if trace.inquirer_name and cmp.relationship_field(trace.relationship) not in compared_parents:
        relatives = {"mother_name": case.mother_name, "father_name": case.father_name,
                     "caregiver_name": case.caregiver_name, "family_details": case.family_details,
                     "child_name": case.core_names_text}
        if any(relatives[k] for k in ("mother_name", "father_name", "caregiver_name", "family_details")):
            result = cmp.compare_relative_name(trace.inquirer_name, trace.relationship, relatives)
            if result.details.get("compared_with") in compared_parents:
                pass  # the inquirer found as the mother or father compared above
            elif str(result.level) != "different" or (not result.details.get("fallback")
                                                       and cmp.names_one_person(trace.relationship)):
                # An aunt's name differing from the recorded mother's, or one sibling's from
                # another's, says nothing: only the one mother, father or caregiver can disagree.
                add_family("inquirer", result, {"compared_with": result.details.get("compared_with")})
    for tag in CATEGORICAL:
        if tag in trace.categorical and tag in case.categorical:
            add(tag, cmp.compare_categorical(trace.categorical[tag], case.categorical[tag]))
    score = settings.prior + summed
    if not explain:
        return score, None
    evidence.sort(key=lambda item: -abs(item["weight"]))
    return score, evidence


def _agreeing_names(names: cmp.NameComparison) -> int:
    """How many of the child's own names (not nicknames or other names) agree at a matched level."""
    return sum(1 for m in names.matches if str(m.level) in MATCHED_TOKEN_LEVELS
               and m.field_a not in cmp.MATCHED_OPTIONAL_FIELDS and m.field_b not in cmp.MATCHED_OPTIONAL_FIELDS)


FLOOR_MARGIN = 1e-6  # a bound this close to the floor is compared in full (rounding)


def _family_bound(trace: Person, case: Person, best: Mapping[str, float], budget: list[float] | None,
                  after: str | None = None) -> float:
    """The most the parents' and inquirer's names can still add to a pair (see `compare`),
    compared in this order: mother, father, inquirer; `after` one of them was compared,
    only those after it are counted (`budget`, what the sibling cap still allows, is spent)."""
    most = 0.0
    if after is None and trace.mother_name and case.mother_name:
        most += best.get("mother_name", 0.0)
    if after != "father_name" and ((trace.father_name and case.father_name) or _father_and_chain(trace, case)):
        most += best.get("father_name", 0.0)
    if trace.inquirer_name and (case.mother_name or case.father_name or case.caregiver_name or case.family_details):
        asking = cmp.relationship_field(trace.relationship)  # already compared when both name this parent
        if not (asking in ("mother_name", "father_name") and getattr(trace, asking) and getattr(case, asking)):
            most += best.get("inquirer", 0.0)
    return min(most, budget[0]) if budget is not None else most


def _father_and_chain(trace: Person, case: Person) -> tuple[str, str] | None:
    """(father's name, chain) when one side records the child by its own name alone, with its
    father's name, and the other does not record the father but writes names after the child's
    own name (`comparators.chain_of`: in chain naming, the father's and grandfather's), as
    (trace side, case side). (When both sides write a chain, the whole-name comparison has
    compared it already.)"""
    if trace.father_name and not case.father_name and trace.core_token_count == 1:
        chain = cmp.chain_of(case.names_key)
        return (trace.father_name, chain) if chain else None
    if case.father_name and not trace.father_name and case.core_token_count == 1:
        chain = cmp.chain_of(trace.names_key)
        return (chain, case.father_name) if chain else None
    return None


def _categorical_bound(trace: Person, case: Person, best: Mapping[str, float]) -> float:
    if not trace.categorical or not case.categorical:
        return 0.0
    return sum(best.get(tag, 0.0) for tag in CATEGORICAL if tag in trace.categorical and tag in case.categorical)


def score_floor(settings: Settings) -> float | None:
    """The lowest weight whose probability reaches the `possible` band (None: every weight does)."""
    if settings.possible <= 0:
        return None
    return _score_at(settings.possible)


def _score_at(p: float) -> float:
    """The weight whose probability is `p` (-inf for 0, inf for 1)."""
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    return math.log2(p / (1.0 - p)) / WEIGHT_SCALE


def probability(score: float) -> float:
    """The calibrated probability that a pair with this match weight is the same child."""
    log_odds = WEIGHT_SCALE * score
    if log_odds > 50:
        return 1.0
    odds = 2.0 ** log_odds
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
#
# Candidates share name keys (`record_keys`, kind "name": the child's own names) or the keys of
# the names of its parents and caregiver (kind "relative", kept by matching.tasks on every save):
# a child whose only recorded name has a typo is still found through a father's name that is the
# chain name on the other side. A cheap first stage ranks every record that shares a key:
# each token of the record being matched adds the rarity (idf) of its best shared key, the
# child's own given name counts more and relatives' names less, then a different sex or a
# distant birth year costs points. The second stage adds points for the level at which the
# child's own name compares (siblings share every other name) to the best FIRST_STAGE_POOL; the
# best FIRST_STAGE_KEEP within COMPARE_MARGIN points of the best are compared in full.
# A common key ("Mohamed", shared by more than COMMON_SHARE of the records) is split by a
# second key: it only brings records of a compatible sex and birth year, so a very common
# name never floods the candidates and a true pair is not crowded out by namesakes.

RELATIVE_KIND = "relative"
RELATIVE_TAGS = ("mother_name", "father_name", "caregiver_name")
# The child's own name spelt letter by letter (kind "spelling"): the name itself and every form
# with one letter left out, so that a typo the phonetic keys do not survive ("Marysm" / "Maryam",
# "Gracce" / "Grace", "Khagera" / "Khatera") still shares a key: both sides give "marym". Only
# the own name (a record registered with its given name alone has nothing else to be found by),
# and the first two tokens joined ("Gebre Medhin" / "Gebremedhin"). bench/README.md, fourth round.
SPELLING_KIND = "spelling"
SPELLING_MIN_LETTERS = 4        # shorter names keep only themselves (3-letter forms of "Ali" ...)
SPELLING_TOKEN_WEIGHT = 0.8     # of the own name's weight: one letter may be another name's
FIRST_STAGE_KEEP = 60
COMPARE_MARGIN = 18.0  # ... and only those within this many points of the best
COMMON_SHARE = 0.02
COMMON_MIN = 200
COMMON_MAX_YEARS = 8.0          # a common key only brings records born within this many years
SEX_SLIP_YEARS = 1.0            # ... and of the other sex only when born within this many years
GIVEN_TOKEN_WEIGHT = 1.5
RELATIVE_TOKEN_WEIGHT = 0.5
SEX_PENALTY = 4.0
AGE_TOLERANCE = 2.0             # years of birth-year difference that cost nothing
AGE_TOLERANCE_ESTIMATED = 4.0   # ... when either age is an estimate
AGE_PENALTY_PER_YEAR = 1.5
AGE_PENALTY_MAX = 6.0
AGE_CLOSE_BONUS = 1.0           # birth years within a year: namesakes of other ages rank lower
PLACE_BONUS = {0: 2.0, 1: 1.0, 2: 0.5}  # same place, one level up (district), two (region)
# A record whose own names (given, middle, family) are all among the names of the record being
# matched ranks above namesakes with a name of their own that is not: "Shabnam" registered alone
# against a trace for "Shabnum Asad Tokhi", among a hundred "Shabnam Karimi" of her age (at
# 100,000 records such a child ranked beyond the first stage: bench/README.md, third round).
COVER_BONUS = 3.0
# The second stage: the best FIRST_STAGE_POOL of the first are re-ranked by how the child's own
# name (the first given token) compares on both sides, which separates the child from siblings
# and cousins who share every other name (measured: bench/README.md, "Matching results, 2026-11-29 round").
FIRST_STAGE_POOL = 150
FIRST_STAGE_PROTECT = 10  # the first stage's best this many are compared whatever the second stage says
OWN_NAME_POINTS = {"exact": 4.0, "variant": 4.0, "nickname": 3.0, "phonetic": 3.0, "transliteration": 3.0,
                   "fuzzy_high": 2.0, "fuzzy_low": 1.0, "different": -1.0}
_OPPOSITE_SEX = {"male": "female", "female": "male"}
_OWN_NAME_PARTS = ("given", "full")
_CORE_NAME_PARTS = ("given", "middle", "family", "full")
_NAME_PART_ORDER = ("given", "middle", "family", "full", "nickname", "other")


@dataclass(frozen=True)
class BlockingToken:
    """The keys of one name token of the record being matched, and how much sharing it counts."""

    keys: frozenset[str]
    weight: float
    relative: bool
    spelling: frozenset[str] = frozenset()  # the own name's spelling keys (kind "spelling")


@dataclass(frozen=True)
class Attributes:
    """What the first stage knows of a record besides its keys."""

    sex: str            # "male", "female" or "" (unknown, other)
    birth_year: float | None
    estimated: bool
    place: tuple[str, ...] = ()  # the place of separation and its ancestors, nearest first
    names: int = 0      # tokens of the child's own names (given, middle, family, full)


def person_keys(person: Person) -> set[str]:
    keys: set[str] = set()
    for values in person.names.values():
        for value in values:
            keys |= name_keys(value)
    return keys


def relative_texts(record_type: str, data: Mapping, request_data: Mapping | None = None) -> list[str]:
    """The names of a record's mother, father and caregiver (fields tagged for matching). For a
    trace, the inquirer's name too (`request_data`: its tracing request's values) when the
    inquirer is the child's mother, father or caregiver and the trace does not name that
    relative itself: a mother looking for her child seldom writes her own name twice."""
    from app.records.search import name_texts
    texts = name_texts(record_type, data, RELATIVE_TAGS)
    if record_type == "trace" and request_data:
        request_tags = _tagged("tracing_request")
        inquirer = _first(request_data, request_tags["inquirer_name"] or ["relation_name"])
        relationship = _first(request_data, request_tags["relationship"] or ["relation"])
        named = _first(data, _tagged("trace").get(cmp.relationship_field(_text(relationship)) or "", []))
        inquirer = _asking_relative(_text(inquirer), _text(relationship), _text(named))
        if inquirer:
            texts.append(inquirer)
    return texts


def _text(value) -> str | None:
    """A form value as Person holds it (str() of what is set)."""
    return str(value) if value else None


def _asking_relative(inquirer: str | None, relationship: str | None, named: str | None) -> str | None:
    """The inquirer's name when the inquirer is the child's mother, father or caregiver and the
    trace does not name that relative itself (`named`): one rule for the keys a trace stores
    (`relative_texts`) and the tokens it blocks with (`blocking_tokens`)."""
    inquirer = (inquirer or "").strip()
    if inquirer and cmp.relationship_field(relationship) and not (named or "").strip():
        return inquirer
    return None


def _inquirer_as_relative(person: Person) -> str | None:
    """`relative_texts`'s inquirer, from a trace's Person (the names its relative keys hold)."""
    field = cmp.relationship_field(person.relationship)
    return _asking_relative(person.inquirer_name, person.relationship, getattr(person, field) if field else None)


def inquirer_is_relative(trace) -> bool:
    """Do the trace's relative keys hold its inquirer's name (see `relative_texts`)?"""
    data, request_data = trace.data or {}, trace.tracing_request.data or {}
    return len(relative_texts("trace", data, request_data)) > len(relative_texts("trace", data))


def relative_keys_of(texts: Iterable[str]) -> set[str]:
    keys: set[str] = set()
    for text in texts:
        keys |= name_keys(text)
    return keys


def matching_keys(record_type: str, data: Mapping, request_data: Mapping | None = None) -> dict[str, set[str]]:
    """The keys the matcher keeps beside a record's name keys, by kind: its parents' and
    caregiver's names ("relative", cases and traces) and its own name's spelling ("spelling")."""
    if record_type not in ("case", "trace"):
        return {}
    return {RELATIVE_KIND: relative_keys_of(relative_texts(record_type, data, request_data)),
            SPELLING_KIND: set(spelling_keys(own_name_value(record_type, data)))}


MATCHING_KINDS = (RELATIVE_KIND, SPELLING_KIND)


def index_matching_keys(record, kinds: Iterable[str] = MATCHING_KINDS) -> None:
    """Replace the record's matching keys of `kinds` (see `matching_keys`)."""
    from sqlalchemy import delete, insert
    kinds = tuple(kinds)
    request_data = record.tracing_request.data if record.RECORD_TYPE == "trace" else None
    found = matching_keys(record.RECORD_TYPE, record.data or {}, request_data)
    db.session.execute(delete(RecordKey).where(RecordKey.record_type == record.RECORD_TYPE,
                                               RecordKey.record_id == record.id, RecordKey.kind.in_(kinds)))
    rows = [{"record_type": record.RECORD_TYPE, "record_id": record.id, "kind": kind, "key": key[:64]}
            for kind in kinds for key in sorted(found.get(kind, ()))]
    if rows:
        db.session.execute(insert(RecordKey), rows)


def index_all_keys(batch: int = 1000) -> int:
    """Rewrite every record's name keys (kind "name": cases, traces, tracing requests) and its
    matching keys (kinds "relative" and "spelling": cases, traces) with the key rules in force.
    Needed after the rules of `matching.names` change and for records saved before a kind
    existed; returns the number of keys written.

    Works in batches, each its own transaction, beside live saves and matching jobs. A batch
    locks its records (FOR UPDATE; a trace with its tracing request) but skips those another
    transaction holds (SKIP LOCKED): a caseworker's save in progress (of the record, or of the
    request whose traces it re-keys), or a matching job marking traces "match proposed". Waiting
    for them while holding the rest of the batch could close a deadlock with a job that locks
    the same traces in another order. The skipped records are re-keyed at the end, one per
    transaction, each waiting for its holder to finish; so a save either commits first (and
    its new name is keyed here) or waits for the batch and then writes its own keys. Commits.
    """
    from sqlalchemy import delete, insert

    from app.records.search import name_texts
    from cases.models import Case
    from tracing.models import Trace, TracingRequest
    written = 0

    def rekey(model, record_type: str, ids: list[str], skip_locked: bool) -> set[str]:
        """Re-key the records of `ids` that can be locked; returns the ids that were."""
        rows: list[dict] = []
        query = select(model.id, model.data).where(model.id.in_(ids)).order_by(model.id)
        locked = model
        if record_type == "trace":
            # The inquirer may be the child's mother or father (relative_texts): the request is
            # locked too, so a request being saved (which re-keys its traces) is waited for.
            query = query.add_columns(TracingRequest.data).join(
                TracingRequest, TracingRequest.id == Trace.tracing_request_id)
            locked = (Trace, TracingRequest)
        found = db.session.execute(query.with_for_update(of=locked, skip_locked=skip_locked)).all()
        for record_id, data, *request in found:
            data = data or {}
            kinds = {NAME_KIND: relative_keys_of(name_texts(record_type, data)),
                     **matching_keys(record_type, data, request[0] if request else None)}
            rows.extend({"record_type": record_type, "record_id": record_id, "kind": kind, "key": key[:64]}
                        for kind, keys in kinds.items() for key in sorted(keys))
        db.session.execute(delete(RecordKey).where(
            RecordKey.record_type == record_type, RecordKey.record_id.in_([row[0] for row in found]),
            RecordKey.kind.in_((NAME_KIND, *MATCHING_KINDS))))
        if rows:
            db.session.execute(insert(RecordKey), rows)
        db.session.commit()
        nonlocal written
        written += len(rows)
        return {row[0] for row in found}

    for model, record_type in ((Case, "case"), (Trace, "trace"), (TracingRequest, "tracing_request")):
        ids = list(db.session.execute(select(model.id).order_by(model.id)).scalars())
        db.session.commit()
        held: list[str] = []
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            done = rekey(model, record_type, chunk, skip_locked=True)
            held.extend(record_id for record_id in chunk if record_id not in done)
        for record_id in held:  # held by another transaction a moment ago (or deleted since)
            rekey(model, record_type, [record_id], skip_locked=False)
    return written


def blocking_tokens(person: Person) -> list[BlockingToken]:
    """One entry per name token: the child's own names, then the parents' and caregiver's."""
    tokens: list[BlockingToken] = []
    first = True
    for part in (*_NAME_PART_ORDER, *(p for p in person.names if p not in _NAME_PART_ORDER)):
        for value in person.names.get(part, []):
            for token in name_tokens(value):
                keys = frozenset(name_keys(token))
                if keys:
                    own = first and part in _OWN_NAME_PARTS
                    tokens.append(BlockingToken(keys, GIVEN_TOKEN_WEIGHT if own else 1.0, False,
                                                spelling_keys(value) if own else frozenset()))
                first = False
    for value in (person.mother_name, person.father_name, person.caregiver_name, _inquirer_as_relative(person)):
        for token in name_tokens(value):
            keys = frozenset(name_keys(token))
            if keys:
                tokens.append(BlockingToken(keys, RELATIVE_TOKEN_WEIGHT, True))
    return tokens


def _own_value(values: Iterable) -> str | None:
    for value in values:
        if isinstance(value, str) and name_tokens(value):
            return value
    return None


def own_name_token(person: Person) -> str | None:
    """The child's own name: the first token of the given (or full) name, if recorded."""
    value = _own_value(value for part in _OWN_NAME_PARTS for value in person.names.get(part, []))
    return name_tokens(value)[0] if value else None


def own_name_value(record_type: str, data: Mapping) -> str | None:
    """The form value holding a record's own name (the first given or full name with a token)."""
    from forms.operations import fields_with_matching_tag
    return _own_value(data.get(key) for tag in ("given_name", "full_name")
                      for key in fields_with_matching_tag(record_type, tag))


def own_name_of(record_type: str, data: Mapping) -> str | None:
    """`own_name_token` from a record's form values (fields tagged given or full name)."""
    value = own_name_value(record_type, data)
    return name_tokens(value)[0] if value else None


@functools.lru_cache(maxsize=65_536)
def spelling_keys(value: str | None) -> frozenset[str]:
    """The spelling keys (kind "spelling") of the value holding the own name: its first token in
    Latin letters with doubled letters written once, the same with one letter left out (from
    SPELLING_MIN_LETTERS letters), and the first two tokens joined."""
    tokens = name_tokens(value or "")
    if not tokens:
        return frozenset()
    forms = [cmp.latin_single(token) for token in tokens[:2]]
    own = forms[0]
    keys = {own}
    if len(own) >= SPELLING_MIN_LETTERS:
        keys.update(own[:i] + own[i + 1:] for i in range(len(own)))
    if len(forms) > 1:
        keys.add(cmp.undoubled(own + forms[1]))
    return frozenset(key for key in keys if len(key) >= 2)


def rerank_by_own_name(pool: list[tuple[str, float]], own: str | None, own_of: Mapping[str, str | None],
                       limit: int) -> list[tuple[str, float]]:
    """The second stage: the first stage's score plus OWN_NAME_POINTS for the level at which
    the child's own name compares with each candidate's; the best `limit`, best first."""
    if own is None:
        ranked = pool[:limit]
    else:
        rescored = []
        for record_id, score in pool:
            other = own_of.get(record_id)
            if other is not None:
                score += OWN_NAME_POINTS.get(str(cmp.compare_tokens(own, other)[0]), 0.0)
            rescored.append((record_id, score))
        ranked = heapq.nsmallest(limit, rescored, key=lambda item: (-item[1], item[0]))
    if ranked:  # far behind the best, a candidate is not worth a full comparison
        floor = ranked[0][1] - COMPARE_MARGIN
        ranked = [item for item in ranked if item[1] >= floor]
    if own is not None:
        # The first stage's best few are compared whatever their own names say: a child whose
        # own name was written so differently that it does not compare (a swapped or unknown
        # spelling), but whose other names, parents and place put it near the top, is not
        # pushed out by namesakes of the own name.
        kept = {record_id for record_id, _score in ranked}
        missing = [item for item in rescored[:FIRST_STAGE_PROTECT] if item[0] not in kept]
        if missing:
            ranked = ranked[:max(0, limit - len(missing))] + missing
    return ranked


def _sex_code(value) -> str:
    sex = cmp._sex(str(value)) if value else "unknown"
    return sex if sex in _OPPOSITE_SEX else ""


def _year_of(when: date | None, age: float | None) -> float | None:
    if when is None or age is None:
        return None
    return when.year + when.timetuple().tm_yday / 366.0 - float(age) - 0.5


def person_attributes(person: Person, ancestors=None) -> Attributes:
    place = tuple((ancestors or _ancestors)(person.locations[0])) if person.locations else ()
    born = _as_date(person.date_of_birth)
    if born is not None:
        return Attributes(_sex_code(person.sex), born.year + born.timetuple().tm_yday / 366.0,
                          person.dob_approximate, place, person.core_token_count)
    return Attributes(_sex_code(person.sex), _year_of(person.age_date, person.age), person.age_estimated, place,
                      person.core_token_count)


def _place_bonus(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    if not a or not b:
        return 0.0
    index_b = {code: j for j, code in reversed(list(enumerate(b)))}
    best = min((max(i, index_b[code]) for i, code in enumerate(a) if code in index_b), default=None)
    return PLACE_BONUS.get(best, 0.0) if best is not None else 0.0


def row_attributes(record_type: str, sex, age, created_at, location_code=None, ancestors=None,
                   names: int = 0) -> Attributes:
    """Attributes from a record's indexed columns (what a SQL candidate row carries).

    A case's age is told at registration (`created_at`); a trace's at separation, which may
    be years before the inquiry (`created_at`), so a trace's birth year is an estimate.
    """
    if isinstance(created_at, str):
        created_at = _as_date(created_at)
    when = created_at.date() if isinstance(created_at, datetime) else created_at
    place = tuple((ancestors or _ancestors)(location_code)) if location_code else ()
    return Attributes(_sex_code(sex), _year_of(when, age), record_type == "trace", place, names)


def _compatible(query: Attributes, other: Attributes) -> bool:
    """May a record reached only through a common key be this child? (the second key: the sex,
    unless the birth years agree within SEX_SLIP_YEARS, for the sex is written wrong now and
    then; and the birth year)"""
    if query.birth_year is not None and other.birth_year is not None:
        gap = abs(query.birth_year - other.birth_year)
        if gap > COMMON_MAX_YEARS:
            return False
        if gap <= SEX_SLIP_YEARS:
            return True
    return not (query.sex and other.sex and _OPPOSITE_SEX[query.sex] == other.sex)


def lookups(token: BlockingToken) -> Iterator[tuple[str, str, float]]:
    """(kind, key, weight) of each posting list a blocking token reads: its keys among the
    records' names and their relatives' names, then the own name's spelling keys (a typo the
    other keys miss)."""
    for key in token.keys:
        for kind in (NAME_KIND, RELATIVE_KIND):
            yield kind, key, RELATIVE_TOKEN_WEIGHT if kind == RELATIVE_KIND or token.relative else token.weight
    for key in token.spelling:
        yield SPELLING_KIND, key, token.weight * SPELLING_TOKEN_WEIGHT


def _is_common(count: int, total: int) -> bool:
    return count > max(COMMON_MIN, COMMON_SHARE * total)


def rank_candidates(tokens: list[BlockingToken], postings: Mapping[tuple[str, str], Iterable[str]],
                    counts: Mapping[tuple[str, str], int], total: int, query: Attributes,
                    attributes: Mapping[str, Attributes], limit: int = FIRST_STAGE_KEEP) -> list[tuple[str, float]]:
    """The first stage: the `limit` best (record id, cheap score) sharing a key, best first.

    `postings` maps (kind, key) to the ids holding it; `counts` gives each key's document
    frequency among `total` records (its idf); `attributes` the candidates' sex and birth year.
    """
    total = max(total, 1)
    score: dict[str, float] = {}
    covered: dict[str, int] = {}  # own-name tokens of the query found among a record's own names
    counted: set[frozenset[str]] = set()  # a name written twice ("Mohamed Ahmed Mohamed") covers one name
    for token in tokens:
        best: dict[str, float] = {}
        own: set[str] | None = None if token.relative or token.keys in counted else set()
        if own is not None:
            counted.add(token.keys)
        for kind, key, weight in lookups(token):
            ids = postings.get((kind, key))
            if not ids:
                continue
            count = counts.get((kind, key), 0) or 1
            # Smoothed idf: a key every record holds still makes a candidate (a small database).
            value = math.log((total + 1) / count) * weight
            common = _is_common(count, total)
            for record_id in ids:
                if common and not _compatible(query, attributes[record_id]):
                    continue
                if best.get(record_id, -1.0) < value:
                    best[record_id] = value
                if own is not None and kind == NAME_KIND:
                    own.add(record_id)
        for record_id, value in best.items():
            score[record_id] = score.get(record_id, 0.0) + value
        for record_id in own or ():
            covered[record_id] = covered.get(record_id, 0) + 1
    for record_id in score:
        other = attributes[record_id]
        if query.sex and other.sex and query.sex != other.sex:
            score[record_id] -= SEX_PENALTY
        if query.birth_year is not None and other.birth_year is not None:
            tolerance = AGE_TOLERANCE_ESTIMATED if (query.estimated or other.estimated) else AGE_TOLERANCE
            gap = abs(query.birth_year - other.birth_year) - tolerance
            if gap > 0:
                score[record_id] -= min(AGE_PENALTY_MAX, gap * AGE_PENALTY_PER_YEAR)
            elif abs(query.birth_year - other.birth_year) <= 1.0:
                score[record_id] += AGE_CLOSE_BONUS
        if query.place and other.place:
            score[record_id] += _place_bonus(query.place, other.place)
        if other.names and covered.get(record_id, 0) >= other.names:
            score[record_id] += COVER_BONUS
    return heapq.nsmallest(limit, score.items(), key=lambda item: (-item[1], item[0]))


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
    found = {key: _smoothed_share(count, total) for key, count in rows}
    found[""] = _smoothed_share(0, total)  # the share of a key no record holds
    return found


def _smoothed_share(count: int, total: int) -> float:
    """A key's share of the records, shrunk towards TF_REFERENCE by TF_PSEUDO_RECORDS: in a
    small database every name is "common" (one case in one holds it) and would cost points."""
    return (count + TF_PSEUDO_RECORDS * TF_REFERENCE) / (total + TF_PSEUDO_RECORDS)


def _record_count(record_type: str) -> int:
    from cases.models import Case
    from tracing.models import Trace
    model = Case if record_type == "case" else Trace
    return max(db.session.scalar(select(func.count(model.id))) or 1, 1)


def _eligible_filter(other_type: str):
    """SQL conditions on the other side's records that may be proposed at all."""
    from cases.models import Case
    from tracing.models import TRACE_CLOSED, TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED, Trace, TracingRequest
    consent_needed = current_app.config.get("MATCHING_REQUIRE_CONSENT", True)
    if other_type == "case":
        conditions = [Case.status != STATUS_CLOSED]
        if consent_needed:
            conditions.append(Case.is_consent_for_tracing.is_(True))
        return Case, conditions
    conditions = [Trace.status != STATUS_CLOSED,
                  Trace.tracing_status.notin_((TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED, TRACE_CLOSED))]
    if consent_needed:  # as `trace_is_matchable`: the tracing request's consent
        conditions.append(Trace.tracing_request_id.in_(
            select(TracingRequest.id).where(TracingRequest.is_consent_for_tracing.is_(True))))
    return Trace, conditions


IN_CHUNK = 5_000  # ids per IN (...) list


def by_ids(query, column, ids: Iterable[str] | None):
    """`query` restricted to `ids` (sorted, in chunks of IN_CHUNK), or as it is for None."""
    if ids is None:
        yield query
        return
    ids = sorted(set(ids))
    for start in range(0, len(ids), IN_CHUNK):
        yield query.where(column.in_(ids[start:start + IN_CHUNK]))


def ranked_candidates(person: Person, other_type: str, limit: int = FIRST_STAGE_KEEP) -> list[tuple[str, float]]:
    """Both blocking stages through SQL: (id, score) of the `other_type` candidates worth a
    full comparison, best first (what `RecordIndex.candidates` gives from memory)."""
    tokens = blocking_tokens(person)
    keys = sorted({key for token in tokens for key in token.keys})
    spellings = sorted({key for token in tokens for key in token.spelling})
    if not keys and not spellings:
        return []
    model, conditions = _eligible_filter(other_type)
    # Two narrow queries (who holds each key; then the attributes of each distinct candidate
    # that may be proposed) cost less than one join repeating a candidate's columns per key.
    # Core statements on the session's connection: the ORM's row processing would cost more.
    connection = db.session.connection()
    rk, table = RecordKey.__table__.c, model.__table__.c
    found: dict[tuple[str, str], list[str]] = {}
    for kind, key, record_id in connection.execute(
            select(rk.kind, rk.key, rk.record_id).where(rk.record_type == other_type, or_(
                and_(rk.kind.in_((NAME_KIND, RELATIVE_KIND)), rk.key.in_(keys)),
                and_(rk.kind == SPELLING_KIND, rk.key.in_(spellings))))).all():
        found.setdefault((kind, key), []).append(record_id)
    if not found:
        return []
    counts = {kk: len(holders) for kk, holders in found.items()}  # every record, as the idf wants
    total = _record_count(other_type)
    ids = sorted({record_id for holders in found.values() for record_id in holders})
    memo: dict[str, list[str]] = {}

    def ancestors(code: str) -> list[str]:
        if code not in memo:
            memo[code] = _ancestors(code)
        return memo[code]
    # The registration date as text (YYYY-MM-DD...): converting thousands of timestamps to
    # datetime objects would cost more than the whole ranking.
    created = func.substr(cast(table.created_at, String), 1, 10)
    from forms.operations import fields_with_matching_tag
    own_fields = [key for tag, part in NAME_PARTS.items() if part in _CORE_NAME_PARTS
                  for key in fields_with_matching_tag(other_type, tag)]
    attributes: dict[str, Attributes] = {}
    for query in by_ids(select(table.id, table.sex, table.age, created, table.location_code,
                               *(model.data[key].as_string() for key in own_fields)).where(*conditions),
                        table.id, ids):
        for record_id, sex, age, created_at, location_code, *names in connection.execute(query).all():
            attributes[record_id] = row_attributes(other_type, sex, age, created_at, location_code, ancestors,
                                                   sum(len(name_tokens(name)) for name in names if name))
    postings = {kk: [record_id for record_id in holders if record_id in attributes] for kk, holders in found.items()}
    pool = rank_candidates(tokens, postings, counts, total, person_attributes(person, ancestors), attributes,
                           max(limit, FIRST_STAGE_POOL))
    own = own_name_token(person)
    # The second stage needs each candidate's own name: only the given/full name fields of the pool.
    fields = [key for tag in ("given_name", "full_name") for key in fields_with_matching_tag(other_type, tag)]
    own_of: dict[str, str | None] = {}
    if own is not None and pool and fields:
        for record_id, *values in connection.execute(select(table.id, *(model.data[key].as_string() for key in fields))
                                                     .where(table.id.in_([record_id for record_id, _ in pool]))):
            own_of[record_id] = own_name_of(other_type, dict(zip(fields, values)))
    return rerank_by_own_name(pool, own, own_of, limit)


def blocking_candidates(person: Person, other_type: str, limit: int = FIRST_STAGE_KEEP) -> list[str]:
    """Ids of the `other_type` records worth comparing in full with `person`, best first."""
    return [record_id for record_id, _score in ranked_candidates(person, other_type, limit)]


# --- proposals -------------------------------------------------------------------------------------

def trace_is_matchable(trace) -> bool:
    from tracing.models import TRACE_CLOSED, TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED
    if trace.status == STATUS_CLOSED or trace.tracing_status in (TRACE_MATCH_CONFIRMED, TRACE_REUNIFIED,
                                                                   TRACE_CLOSED):
        return False
    if current_app.config.get("MATCHING_REQUIRE_CONSENT", True) and not trace.tracing_request.is_consent_for_tracing:
        return False
    return True


def _memory_index() -> bool:
    """One-record matching ranks with this process's in-memory indexes (matching.index) unless
    MATCHING_MEMORY_INDEX is off; then through SQL (`ranked_candidates`), with the same result."""
    return bool(current_app.config.get("MATCHING_MEMORY_INDEX", True))


def _score_pairs(pairs: Iterable[tuple[str, Person, Person]], settings: Settings, frequencies: Mapping[str, float],
                 existing: Mapping[str, MatchProposal], ancestors=None, outrank: bool = False,
                 bars: Mapping[str, float] | None = None) -> tuple[list[tuple[str, float, list | None]], float | None]:
    """(id, score, explanation) for each (id, trace, case), and the bar used (below).

    Only pairs that are stored are explained, when `_store` stores them: a pair in a band or
    with a proposal already carries a function that explains it (most pairs in the `possible`
    band of a trace with a strong candidate are outranked, never stored); the weight is the
    same either way. A pair without a proposal that cannot reach the `possible` band carries
    an upper bound of its weight (below the band) instead of the weight, and no explanation:
    it is not stored either way.

    With `outrank` (all the pairs are one trace's candidates, best ranked first), a pair that
    cannot come within the margin of the best pair scored so far, nor reach the `likely` band,
    is outranked whatever its weight: it stops early too, and carries an upper bound below
    that bar (`_store` then drops it as outranked). The highest bar so far is returned (None
    when no pair stopped early against a bar above the `possible` band): it holds only if that
    best pair is stored, which `_eligible_scored` checks. `bars` (a case's pairs, by trace id): the
    bar of each pair given, the same way (its trace's best stored proposal less the margin)."""
    scored = []
    floor = score_floor(settings)
    likely = _score_at(settings.likely) if outrank else None
    best = None
    bar = None
    for other_id, trace, case in pairs:
        known = other_id in existing
        limit = None
        if not known:  # a pair with a proposal gets its true weight (a pending one that drops is stored so)
            limit = floor
            above = min(best - settings.margin, likely) if best is not None else (bars or {}).get(other_id)
            if above is not None and (floor is None or above > floor):
                limit = above
        score, evidence = compare(trace, case, settings, frequencies, ancestors, explain=False, floor=limit)
        if limit is None or score >= limit:  # the true weight (only a stopped pair's is a bound, below the limit)
            if outrank and not (known and existing[other_id].status == REJECTED) and (best is None or score > best):
                best = score
        elif limit != floor:
            bar = limit
        if known or likelihood_of(probability(score), settings) is not None:
            evidence = functools.partial(_explanation, trace, case, settings, frequencies, ancestors)
        scored.append((other_id, score, evidence))
    return scored, bar


def _trace_pairs(person: Person, candidate_ids: list[str], index, settings: Settings,
                 existing: Mapping[str, MatchProposal], outrank: bool = True):
    """`_score_pairs` of a trace's candidates from the in-memory case `index` (best ranked first)."""
    return _score_pairs(((case_id, person, index.persons[case_id]) for case_id in candidate_ids), settings,
                        index.frequencies(person), existing, index.ancestors, outrank=outrank)


def _eligible_scored(person: Person, candidate_ids: list[str], index, settings: Settings,
                     existing: Mapping[str, MatchProposal], scored: list[tuple[str, float, list | None]],
                     bar: float | None, eligible: set[str] | None = None) -> list[tuple[str, float, list | None]]:
    """`scored` (`_trace_pairs`) without the pairs to cases no longer eligible (`_still_eligible`).
    If the best pair its bar was set by is one of those (or rejected), the bar does not hold:
    the candidates are scored again without it."""
    kept = _still_eligible("case", scored, settings, eligible)
    if bar is not None:
        best = _best_of(kept, existing)
        if best is None or best - settings.margin < bar:
            scored, _ = _trace_pairs(person, candidate_ids, index, settings, existing, outrank=False)
            kept = _still_eligible("case", scored, settings)
    return kept


def _explanation(trace: Person, case: Person, settings: Settings, frequencies: Mapping[str, float],
                 ancestors) -> list[dict]:
    return compare(trace, case, settings, frequencies, ancestors)[1]


def _proposed_ids(scored: Iterable[tuple[str, float, list | None]], settings: Settings) -> set[str]:
    return {other_id for other_id, score, _ in scored if likelihood_of(probability(score), settings)}


def _eligible_among(other_type: str, ids: Iterable[str]) -> set[str]:
    """Those of `ids` that may be proposed now, read from the database."""
    found: set[str] = set()
    model, conditions = _eligible_filter(other_type)
    for query in by_ids(select(model.id).where(*conditions), model.id, ids):
        found.update(db.session.execute(query).scalars())
    return found


def _still_eligible(other_type: str, scored: list[tuple[str, float, list | None]], settings: Settings,
                    eligible: set[str] | None = None) -> list[tuple[str, float, list | None]]:
    """`scored` without the pairs that would be proposed to a record no longer eligible (consent
    withdrawn, closed, confirmed ...), read from the database (or `eligible`, read for a whole
    chunk): an in-memory index may be a few seconds behind such a change, a proposal never is."""
    proposed = _proposed_ids(scored, settings)
    if not proposed:
        return scored
    eligible = _eligible_among(other_type, proposed) if eligible is None else eligible
    return [item for item in scored if item[0] in eligible or item[0] not in proposed]


def match_trace(trace, changed: bool = True) -> list[MatchProposal]:
    """Score `trace` against its candidate cases and store proposals. Returns the pending ones."""
    from cases.models import Case
    if not trace_is_matchable(trace):
        _withdraw(trace_id=trace.id)
        return []
    person = trace_person(trace)
    if _memory_index():
        from matching.index import record_index
        index = record_index("case")
        settings = current_settings(index.total)
        existing = {p.case_id: p for p in db.session.execute(
            select(MatchProposal).where(MatchProposal.trace_id == trace.id)).scalars()}
        candidate_ids = [case_id for case_id, _ in index.candidates(person)]
        scored, bar = _trace_pairs(person, candidate_ids, index, settings, existing)
        scored = _eligible_scored(person, candidate_ids, index, settings, existing, scored, bar)
        return _store(trace.id, scored, settings, changed, by_trace=True, existing=existing)
    settings = current_settings()
    candidate_ids = blocking_candidates(person, "case")  # matchable cases only (consent, not closed)
    cases = db.session.execute(select(Case).where(Case.id.in_(candidate_ids))).scalars().all() \
        if candidate_ids else []
    frequencies = key_frequencies(person_keys(person), "case")
    case_tags = _tagged("case")
    scored = []
    for case in cases:
        score, evidence = compare(person, case_person(case, case_tags), settings, frequencies)
        scored.append((case.id, score, evidence))
    return _store(trace.id, scored, settings, changed, by_trace=True)


def match_case(case, changed: bool = True) -> list[MatchProposal]:
    """Score `case` against the open traces that may be this child."""
    from sqlalchemy.orm import selectinload

    from tracing.models import Trace
    consent_needed = current_app.config.get("MATCHING_REQUIRE_CONSENT", True)
    if case.status == STATUS_CLOSED or (consent_needed and not case.is_consent_for_tracing):
        _withdraw(case_id=case.id)
        return []
    person = case_person(case)
    if _memory_index():
        from matching.index import record_index
        traces, cases = record_index("trace"), record_index("case")
        settings = current_settings(cases.total)
        candidate_ids = [trace_id for trace_id, _ in traces.candidates(person)]
        existing = {p.trace_id: p for p in db.session.execute(
            select(MatchProposal).where(MatchProposal.case_id == case.id)).scalars()}
        confirmed, others = _proposals_of_traces(candidate_ids, case.id)
        pairs = ((trace_id, traces.persons[trace_id], person) for trace_id in candidate_ids
                 if trace_id not in confirmed)  # a confirmed trace stops generating proposals
        # A pair far behind its trace's best pending proposal (and not likely) is outranked: it stops early.
        likely = _score_at(settings.likely)
        bars = {trace_id: min(best - settings.margin, likely) for trace_id, (best, _low) in others.items()}
        scored, _ = _score_pairs(pairs, settings, cases.frequencies(person), existing, cases.ancestors, bars=bars)
        return _store_for_case(case.id, _still_eligible("trace", scored, settings), settings, changed, existing,
                               others=others)
    settings = current_settings()
    candidate_ids = blocking_candidates(person, "trace")
    traces = [t for t in db.session.execute(select(Trace).where(Trace.id.in_(candidate_ids)).order_by(Trace.id)
                                            .options(selectinload(Trace.tracing_request))).scalars()
              if trace_is_matchable(t)] if candidate_ids else []
    trace_tags, request_tags = _tagged("trace"), _tagged("tracing_request")
    case_keys = person_keys(person)
    frequencies = key_frequencies(case_keys, "case")
    existing = {p.trace_id: p for p in db.session.execute(
        select(MatchProposal).where(MatchProposal.case_id == case.id)).scalars()}
    scored = []
    for trace in traces:
        score, evidence = compare(trace_person(trace, trace_tags, request_tags), person, settings, frequencies)
        scored.append((trace.id, score, evidence))
    return _store_for_case(case.id, scored, settings, changed, existing)


def _proposals_of_traces(trace_ids: Iterable[str], case_id: str,
                         ) -> tuple[set[str], dict[str, tuple[float, float | None]]]:
    """For a case's pairs with these traces: the traces with a confirmed match, and per trace
    the best score of its pending proposals with other cases and the lowest of its possible
    ones. (Every proposal of these traces is read, a few each, and filtered here: with the
    status in the query PostgreSQL reads the status index, every pending proposal, 40 ms at
    100,000.)"""
    confirmed: set[str] = set()
    others: dict[str, tuple[float, float | None]] = {}
    for query in by_ids(select(MatchProposal.trace_id, MatchProposal.case_id, MatchProposal.status,
                               MatchProposal.likelihood, MatchProposal.score), MatchProposal.trace_id, trace_ids):
        for trace_id, other_case, status, likelihood, score in db.session.execute(query):
            if status == CONFIRMED:
                confirmed.add(trace_id)
            if status != PENDING or other_case == case_id:
                continue
            best, low = others.get(trace_id, (score, None))
            if likelihood == POSSIBLE:
                low = score if low is None else min(low, score)
            others[trace_id] = (max(best, score), low)
    return confirmed, others


def _store_for_case(case_id: str, scored: list[tuple[str, float, list | None]], settings: Settings, changed: bool,
                    existing: Mapping[str, MatchProposal],
                    others: Mapping[str, tuple[float, float | None]] | None = None) -> list[MatchProposal]:
    """Store a case's pair with each trace of `scored` ((trace id, score, explanation)); returns
    the pending proposals. A trace's best candidate is the better of this pair and the trace's
    other pending proposals (as stored): a `possible` pair more than the margin behind it is not
    proposed. A pair that becomes a trace's new best by more than the margin queues that trace's
    matching, which sends its proposals now too far behind out (the trace's own job changes the
    trace's proposals: a case job writes only its own pairs)."""
    from matching.tasks import queue_trace_matching
    proposed = {trace_id for trace_id, score, _ in scored if likelihood_of(probability(score), settings)}
    if others is None:  # per trace: the best score of its other pending proposals, the lowest possible one
        others = _proposals_of_traces(proposed, case_id)[1]
    stored = []
    # In trace id order, as every job that marks several traces "match proposed" does:
    # two jobs locking the same traces never wait for each other in a circle.
    for trace_id, score, evidence in sorted(scored, key=lambda item: item[0]):
        proposal = existing.get(trace_id)
        if proposal is None and trace_id not in proposed:
            continue  # nothing to store: no proposal, and the pair is in no band
        other_best, other_low = others.get(trace_id, (None, None))
        pending = _store(trace_id, [(case_id, score, evidence)], settings, changed, by_trace=False,
                         existing={case_id: proposal} if proposal else {}, flush=False, mark=False,
                         best=score if other_best is None else max(score, other_best))
        stored.extend(pending)
        if pending and other_low is not None and other_low < score - settings.margin:
            queue_trace_matching(trace_id)  # a possible proposal of the trace is now too far behind
    db.session.flush()
    _mark_many_proposed(proposal.trace_id for proposal in stored)
    return stored


def match_trace_ids(trace_ids: list[str], changed: bool = False, index=None) -> int:
    """Match a chunk of traces against the in-memory case index (the bulk path of a full re-match).

    Gives the same proposals as `match_trace` on each trace, without a query per candidate:
    the traces, their requests and their existing proposals are read once for the chunk.
    Returns the number of pending proposals stored. The caller commits.
    """
    from sqlalchemy.orm import selectinload

    from tracing.models import Trace
    if not trace_ids:
        return 0
    if index is None:
        from matching.index import record_index
        index = record_index("case")
    settings = current_settings(index.total)
    trace_tags, request_tags = _tagged("trace"), _tagged("tracing_request")
    traces = db.session.execute(select(Trace).where(Trace.id.in_(trace_ids)).order_by(Trace.id).options(
        selectinload(Trace.tracing_request))).scalars().all()  # stored (and locked) in id order
    existing: dict[str, dict[str, MatchProposal]] = {}
    for proposal in db.session.execute(select(MatchProposal).where(MatchProposal.trace_id.in_(trace_ids))).scalars():
        existing.setdefault(proposal.trace_id, {})[proposal.case_id] = proposal
    matched = []
    for trace in traces:
        if not trace_is_matchable(trace):
            _withdraw(trace_id=trace.id)
            continue
        person = trace_person(trace, trace_tags, request_tags)
        mine = existing.get(trace.id, {})
        candidate_ids = [case_id for case_id, _ in index.candidates(person)]
        matched.append((trace.id, person, candidate_ids, mine, *_trace_pairs(person, candidate_ids, index, settings, mine)))
    eligible = _eligible_among("case", {case_id for *_, scored, _bar in matched
                                        for case_id in _proposed_ids(scored, settings)})
    pending = 0
    proposed = []
    for trace_id, person, candidate_ids, mine, scored, bar in matched:
        scored = _eligible_scored(person, candidate_ids, index, settings, mine, scored, bar, eligible)
        stored = _store(trace_id, scored, settings, changed, by_trace=True, existing=mine, flush=False, mark=False)
        pending += len(stored)
        if stored:
            proposed.append(trace_id)
    db.session.flush()
    _mark_many_proposed(proposed)  # one flush for the chunk, not one per trace
    return pending


def run_all(chunk_size: int = 500, changed: bool = False, progress=None, processes: int = 1) -> int:
    """Re-match every trace in this process, chunk by chunk, committing after each chunk.

    `flask matching run` shares the same chunks among rq workers as jobs; this is the
    single-machine form (benchmark, small installations). With `processes` > 1 (PostgreSQL
    only: SQLite has one writer) the chunks are shared by that many forked processes, which
    start with the case index built here (copy-on-write) instead of building their own. A
    chunk commits on its own: if one fails, the error is raised, chunks not started are
    cancelled, and the chunks already committed stay (running again re-matches everything).
    Returns the pending proposals stored.
    """
    from tracing.models import Trace
    from matching.index import record_index
    ids = list(db.session.execute(select(Trace.id).order_by(Trace.id)).scalars())
    index = record_index("case")
    current_settings()  # created here if missing, so that every process scores with one version
    db.session.commit()
    chunks = [ids[start:start + chunk_size] for start in range(0, len(ids), chunk_size)]
    pending = done = 0
    if processes > 1 and db.engine.dialect.name != "sqlite" and len(chunks) > 1:
        import gc
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        db.session.remove()
        db.engine.dispose()  # no connection may be shared with the forked processes
        gc.collect()
        gc.freeze()  # the index's objects are not touched by the collector: fewer pages copied
        app = current_app._get_current_object()
        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_chunk_worker_start, initargs=(app,)) as executor:
                futures = [executor.submit(_chunk_worker_match, chunk, changed) for chunk in chunks]
                try:
                    for future in as_completed(futures):
                        size, stored = future.result()  # a chunk's error (or a dead process) is raised here
                        pending, done = pending + stored, done + size
                        if progress is not None:
                            progress(done, len(ids))
                except BaseException:
                    executor.shutdown(wait=True, cancel_futures=True)
                    raise
        finally:
            gc.unfreeze()
        return pending
    for chunk in chunks:
        pending += match_trace_ids(chunk, changed=changed, index=index)
        db.session.commit()
        db.session.expunge_all()  # keep the identity map small; the index holds plain values
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))
    return pending


_WORKER_CONTEXT: list = []


def _chunk_worker_start(app) -> None:
    """In a process forked by `run_all`: an app context, its own connections, the inherited index."""
    context = app.app_context()
    context.push()
    _WORKER_CONTEXT.append(context)
    db.engine.dispose(close=False)  # the parent's pooled connections belong to the parent


def _chunk_worker_match(chunk: list[str], changed: bool) -> tuple[int, int]:
    try:
        from matching.index import held_index
        stored = match_trace_ids(chunk, changed=changed, index=held_index("case"))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        db.session.expunge_all()
    return len(chunk), stored


def _withdraw(trace_id: str | None = None, case_id: str | None = None) -> None:
    """Pending proposals of a record that may no longer be matched are superseded. A case's
    traces are matched again: the candidates held back behind it (the margin) come forward."""
    from matching.tasks import queue_trace_matching
    query = select(MatchProposal).where(MatchProposal.status == PENDING)
    query = query.where(MatchProposal.trace_id == trace_id) if trace_id else query.where(
        MatchProposal.case_id == case_id)
    for proposal in db.session.execute(query).scalars():
        proposal.status, proposal.updated_at = SUPERSEDED, utcnow()
        proposal.decision_reason = "not_matchable"
        if case_id:
            queue_trace_matching(proposal.trace_id)


# Superseded proposals that come back as pending when their pair is proposed again.
_RETURNING = ("score_dropped", "not_matchable", "outranked")


def _best_of(scored: Iterable[tuple[str, float, list | None]], existing: Mapping[str, MatchProposal]) -> float | None:
    """The best score of a trace's candidates, leaving out the pairs a reviewer rejected."""
    return max((score for case_id, score, _ in scored
                if not (case_id in existing and existing[case_id].status == REJECTED)), default=None)


def _store(trace_id: str, scored: list[tuple[str, float, list]], settings: Settings, changed: bool,
           by_trace: bool, existing: dict[str, MatchProposal] | None = None,
           flush: bool = True, mark: bool = True, best: float | None = None) -> list[MatchProposal]:
    """Upsert the proposals of one trace. `existing` (all the trace's proposals by case id) may
    be passed by a caller that read them for many traces at once; one that stores for many
    traces may mark them "match proposed" at once too (`mark=False`, `_mark_many_proposed`).
    A `possible` pair more than `settings.margin` bits behind the trace's best candidate is not
    proposed (a pending one is superseded as "outranked"): the best is `best` for a case job,
    and the best pair of `scored` that is not rejected when all the trace's candidates are
    scored (`by_trace`)."""
    if existing is not None:
        confirmed = any(p.status == CONFIRMED for p in existing.values())
    else:
        query = select(MatchProposal).where(MatchProposal.trace_id == trace_id)
        if not by_trace:
            query = query.where(MatchProposal.case_id.in_([case_id for case_id, *_ in scored]))
        existing = {p.case_id: p for p in db.session.execute(query).scalars()}
        confirmed = db.session.scalar(select(func.count(MatchProposal.id)).where(
            MatchProposal.trace_id == trace_id, MatchProposal.status == CONFIRMED))
    if confirmed:
        return []  # a confirmed trace stops generating proposals
    if by_trace:
        best = _best_of(scored, existing)
    pending = []
    now = utcnow()
    seen = set()
    for case_id, score, evidence in scored:
        seen.add(case_id)
        p = probability(score)
        band = likelihood_of(p, settings)
        outranked = band == POSSIBLE and best is not None and score < best - settings.margin
        if outranked:
            band = None
        proposal = existing.get(case_id)
        if proposal is None:
            if band is None:
                continue
            proposal = MatchProposal(trace_id=trace_id, case_id=case_id, status=PENDING, created_at=now)
            db.session.add(proposal)
        elif proposal.status == REJECTED:
            # Only a relevant change and a higher score bring a rejected pair back.
            # (compared as stored: a score equal to the rejected one is not higher by its rounding)
            if not (changed and band and proposal.rejected_score is not None
                    and round(score, 4) > proposal.rejected_score):
                continue
            proposal.status, proposal.decided_at, proposal.decided_by_id = PENDING, None, None
        elif proposal.status == SUPERSEDED:
            if band is None or proposal.decision_reason not in _RETURNING:
                continue
            proposal.status, proposal.decision_reason = PENDING, None
        elif proposal.status == PENDING and band is None:
            proposal.status, proposal.decision_reason = SUPERSEDED, "outranked" if outranked else "score_dropped"
        if band is not None:
            proposal.likelihood = band
        proposal.score, proposal.probability = round(score, 4), round(p, 6)
        if callable(evidence):  # explained now that it is stored (`_score_pairs`)
            evidence = evidence()
        proposal.comparison, proposal.engine_version, proposal.updated_at = evidence, settings.version, now
        if proposal.status == PENDING:
            pending.append(proposal)
    if by_trace:
        for case_id, proposal in existing.items():
            if case_id not in seen and proposal.status == PENDING:
                proposal.status, proposal.decision_reason, proposal.updated_at = SUPERSEDED, "score_dropped", now
    if flush:
        db.session.flush()
    if pending and mark:
        _mark_proposed(trace_id)
    return pending


def _mark_proposed(trace_id: str) -> None:
    """A trace with a pending proposal moves to "match proposed" (from open or in progress)."""
    from tracing.models import Trace
    _mark_traces([db.session.get(Trace, trace_id)])


def _mark_many_proposed(trace_ids: Iterable[str]) -> None:
    """`_mark_proposed` for many traces (a case job, a chunk of a re-match): only those still to
    be moved are read, and they are flushed together."""
    from tracing.models import TRACE_IN_PROGRESS, TRACE_OPEN, Trace
    ids = sorted(set(trace_ids))
    for query in by_ids(select(Trace).where(Trace.tracing_status.in_((TRACE_OPEN, TRACE_IN_PROGRESS)))
                        .order_by(Trace.id), Trace.id, ids):
        _mark_traces(db.session.execute(query).scalars().all())


def _mark_traces(traces) -> None:
    from app.records.operations import record_change
    from tracing.models import TRACE_IN_PROGRESS, TRACE_MATCH_PROPOSED, TRACE_OPEN
    moved = []
    for trace in traces:
        if trace is None or trace.tracing_status not in (TRACE_OPEN, TRACE_IN_PROGRESS):
            continue
        moved.append((trace, trace.tracing_status))
        trace.tracing_status = TRACE_MATCH_PROPOSED
    if not moved:
        return
    db.session.flush()  # each trace's new version, which its history row records
    for trace, before in moved:
        record_change(trace, "match_proposed", None,
                      [{"field": "@tracing_status", "old": before, "new": TRACE_MATCH_PROPOSED}])
