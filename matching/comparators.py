"""Field comparators for matching cases and traces.

Every comparator returns a :class:`Comparison`: a **level** (a short string from a small,
ordered set, strongest agreement first), a **similarity** in [0, 1] and ``details`` for
explanations. The levels are what a Fellegi-Sunter model attaches its probabilities to:
for each comparator and level it keeps ``m = P(level | same child)`` and
``u = P(level | different children)``; the level's weight is ``log2(m / u)``. Levels are
therefore chosen to be mutually exclusive, exhaustive, and few enough to estimate.
``missing`` always means "no evidence" (weight 0 by convention).

Level sets (in order):

* names (:func:`compare_names`, :func:`compare_relative_name`): ``exact``, ``variant``,
  ``phonetic``, ``fuzzy_high``, ``fuzzy_low``, ``partial``, ``different``, ``missing``
* one name token / the child's own given name (:func:`compare_tokens`,
  :func:`compare_given_names`): ``exact``, ``variant``, ``nickname``, ``phonetic``,
  ``transliteration``, ``fuzzy_high``, ``fuzzy_low``, ``initial``, ``different``,
  ``missing``
* age: ``exact``, ``within_tolerance``, ``near``, ``different``, ``missing``
* dates: ``exact``, ``day_month_swapped``, ``typo``, ``same_year``, ``off_by_one_year``,
  ``different``, ``missing``
* sex: ``same``, ``uncertain``, ``different``, ``missing``
* location: ``same_site``, ``same_district``, ``same_region``, ``same_country``,
  ``different``, ``missing``
* weak categorical evidence: ``same``, ``different``, ``missing``

Name comparison is order-free across all name fields, handles chain names of different
lengths, split and joined compounds, nicknames, Arabic script against Latin and typos,
and records which token matched which (:class:`TokenMatch`) so the review queue can say
"Mohamed and Muhammad are spellings of the same name". Explanations are built on demand
through Flask-Babel, so they follow the user's language.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rapidfuzz.distance import OSA, JaroWinkler

from .names import (
    canonical_name,
    has_arabic_script,
    is_known_name,
    key_readings,
    name_key,
    name_tokens,
    nickname_targets,
    normalize_name,
    skeleton_key,
    transliterate,
)

__all__ = [
    "AgeLevel",
    "CategoricalLevel",
    "Comparison",
    "DateLevel",
    "LocationLevel",
    "NameComparison",
    "NameLevel",
    "SexLevel",
    "TokenLevel",
    "TokenMatch",
    "compare_age",
    "compare_categorical",
    "compare_dates",
    "compare_given_names",
    "compare_locations",
    "compare_names",
    "compare_relative_name",
    "names_one_person",
    "compare_sex",
    "compare_tokens",
]


# ---------------------------------------------------------------------------------
# Levels and result types
# ---------------------------------------------------------------------------------


class TokenLevel(StrEnum):
    """How two name tokens agree (strongest first)."""

    EXACT = "exact"  # same after normalisation
    VARIANT = "variant"  # same class in the curated table, or split/joined compound
    NICKNAME = "nickname"  # one is a known short form of the other
    PHONETIC = "phonetic"  # same transliteration-aware key
    TRANSLITERATION = "transliteration"  # Arabic script vs Latin, same skeleton
    FUZZY_HIGH = "fuzzy_high"  # one typo (edit or transposition), or Jaro-Winkler >= 0.93
    FUZZY_LOW = "fuzzy_low"  # Jaro-Winkler >= 0.85 or two edits on long names
    INITIAL = "initial"  # a one-letter initial and a name starting with it
    DIFFERENT = "different"
    MISSING = "missing"


class NameLevel(StrEnum):
    """How two whole names agree (strongest first); see :func:`compare_names`."""

    EXACT = "exact"
    VARIANT = "variant"
    PHONETIC = "phonetic"
    FUZZY_HIGH = "fuzzy_high"
    FUZZY_LOW = "fuzzy_low"
    PARTIAL = "partial"
    DIFFERENT = "different"
    MISSING = "missing"


class AgeLevel(StrEnum):
    EXACT = "exact"
    WITHIN_TOLERANCE = "within_tolerance"
    NEAR = "near"
    DIFFERENT = "different"
    MISSING = "missing"


class DateLevel(StrEnum):
    EXACT = "exact"
    DAY_MONTH_SWAPPED = "day_month_swapped"
    TYPO = "typo"
    SAME_YEAR = "same_year"
    OFF_BY_ONE_YEAR = "off_by_one_year"
    DIFFERENT = "different"
    MISSING = "missing"


class SexLevel(StrEnum):
    SAME = "same"
    UNCERTAIN = "uncertain"  # "other" against male/female
    DIFFERENT = "different"
    MISSING = "missing"  # absent or recorded as unknown


class LocationLevel(StrEnum):
    SAME_SITE = "same_site"
    SAME_DISTRICT = "same_district"  # common ancestor one level up
    SAME_REGION = "same_region"  # two levels up
    SAME_COUNTRY = "same_country"  # three or more levels up
    DIFFERENT = "different"
    MISSING = "missing"


class CategoricalLevel(StrEnum):
    SAME = "same"
    DIFFERENT = "different"
    MISSING = "missing"


_TOKEN_RANK = {level: rank for rank, level in enumerate(TokenLevel)}
_ONE_WORD_CHECKED = frozenset({NameLevel.VARIANT, NameLevel.PHONETIC, NameLevel.FUZZY_HIGH, NameLevel.FUZZY_LOW})
_STRONG_TOKEN_LEVELS = frozenset(
    {
        TokenLevel.EXACT,
        TokenLevel.VARIANT,
        TokenLevel.NICKNAME,
        TokenLevel.PHONETIC,
        TokenLevel.TRANSLITERATION,
    }
)

# Field names of a person's name; tokens of OPTIONAL_FIELDS may match but their absence
# on the other record is no evidence against.
NAME_FIELDS = ("given", "middle", "family", "nickname", "other")
OPTIONAL_FIELDS = frozenset({"nickname", "nicknames", "other", "other_names", "alias", "aliases"})
# The field a token match names for a token of an optional field (`_tokens_of`): not the child's own names.
MATCHED_OPTIONAL_FIELDS = ("nickname", "other")


@dataclass(frozen=True)
class Comparison:
    """Result of one comparator: a level, a similarity in [0, 1] and details."""

    level: str
    similarity: float
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_missing(self) -> bool:
        return self.level == "missing"


def _field_label(name: str) -> str:
    from flask_babel import gettext as _

    labels = {
        "given": _("given name"),
        "middle": _("middle name"),
        "family": _("family name"),
        "nickname": _("nickname"),
        "other": _("other name"),
    }
    return labels.get(name, name.replace("_", " "))


def _display(token: str) -> str:
    return token if has_arabic_script(token) else token.title()


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """One pairing of name tokens: which token of each record, how they agree, where."""

    a: str
    b: str
    level: TokenLevel
    similarity: float
    field_a: str
    field_b: str
    joined: bool = False  # one side is two adjacent tokens written apart

    def explanation(self) -> str:
        """The match in plain words, in the current user's language."""
        from flask_babel import gettext as _

        a, b = _display(self.a), _display(self.b)
        if self.joined:
            text = _("%(a)s and %(b)s are the same name written apart and joined", a=a, b=b)
        elif self.level == TokenLevel.EXACT:
            text = _("%(a)s is the same name on both records", a=a)
        elif self.level == TokenLevel.VARIANT:
            text = _("%(a)s and %(b)s are spellings of the same name", a=a, b=b)
        elif self.level == TokenLevel.NICKNAME:
            short, full = (a, b) if len(self.a) <= len(self.b) else (b, a)
            text = _("%(short)s is a short form of %(full)s", short=short, full=full)
        elif self.level == TokenLevel.PHONETIC:
            text = _(
                "%(a)s and %(b)s sound the same once transliteration differences are set aside",
                a=a,
                b=b,
            )
        elif self.level == TokenLevel.TRANSLITERATION:
            text = _("%(a)s and %(b)s are the same name in two scripts", a=a, b=b)
        elif self.level == TokenLevel.FUZZY_HIGH:
            text = _("%(a)s and %(b)s differ by a small typing difference", a=a, b=b)
        elif self.level == TokenLevel.FUZZY_LOW:
            text = _("%(a)s and %(b)s are similar", a=a, b=b)
        elif self.level == TokenLevel.INITIAL:
            text = _("%(a)s may be the initial of %(b)s", a=a, b=b)
        else:
            text = _("%(a)s and %(b)s are different names", a=a, b=b)
        if self.field_a != self.field_b:
            text += " " + _(
                "(%(field_a)s on one record, %(field_b)s on the other)",
                field_a=_field_label(self.field_a),
                field_b=_field_label(self.field_b),
            )
        return text


@dataclass(frozen=True)
class NameComparison(Comparison):
    """A :class:`Comparison` of two names with the token pairs that matched."""

    matches: tuple[TokenMatch, ...] = ()
    unmatched_a: tuple[str, ...] = ()
    unmatched_b: tuple[str, ...] = ()

    def explanations(self) -> list[str]:
        """One sentence per matched token pair, strongest first."""
        return [m.explanation() for m in self.matches]


# ---------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Info:
    """Everything compare_tokens needs about one token, computed once per token."""

    latin: str
    canonical: str
    known: bool
    nick: tuple[str, ...]
    arabic: bool
    key: str
    skeleton: str
    single: str  # doubled letters written once (Aishha -> Aisha)
    readings: frozenset[tuple[str, str]]  # names.key_readings


@functools.lru_cache(maxsize=524_288)
def _info(token: str) -> _Info:
    arabic = has_arabic_script(token)
    return _Info(
        latin=transliterate(token) if arabic else token,
        canonical=canonical_name(token),
        known=is_known_name(token),
        nick=nickname_targets(token),
        arabic=arabic,
        key=name_key(token),
        skeleton=skeleton_key(token),
        single=_undoubled(token),
        readings=key_readings(token),
    )


@functools.lru_cache(maxsize=1_048_576)
def compare_tokens(a: str, b: str) -> tuple[TokenLevel, float]:
    """Compare two normalised name tokens (as returned by ``name_tokens``).

    Returns ``(level, similarity)``. Order of tests: exact; same class in the curated
    variant table; known nickname; if the table knows both tokens as *different* names
    (Mohamed / Mahmoud, Hassan / Hussein, Karim / Karima) they are ``different`` whatever
    their keys say; same phonetic key (Latin), or one of the other readings of their letters
    that spellings of one name exchange (``names.key_readings``: Yagoub = Yacoub, Ridwan =
    Rizwan), or same skeleton (Arabic script against Latin); initial; then Jaro-Winkler /
    optimal-string-alignment typo levels.
    """
    if not a or not b:
        return TokenLevel.MISSING, 0.0
    if a == b:
        return TokenLevel.EXACT, 1.0
    ia, ib = _info(a), _info(b)
    if ia.canonical == ib.canonical:
        return TokenLevel.VARIANT, 0.95
    if ib.canonical in ia.nick or ia.canonical in ib.nick:
        return TokenLevel.NICKNAME, 0.85
    ruled = _joined_article(a, b) or _joined_article(b, a) or _spelling_rule(a, b)
    if ruled is not None:
        return ruled
    jw = JaroWinkler.similarity(ia.latin, ib.latin)
    if ia.known and ib.known and not (ia.nick or ib.nick):
        # Two names the curated table knows to be different (siblings' names).
        return TokenLevel.DIFFERENT, round(jw, 3)
    if ia.arabic == ib.arabic:
        if ia.key == ib.key or (not ia.arabic and not ia.readings.isdisjoint(ib.readings)):
            return TokenLevel.PHONETIC, round(max(0.85, jw), 3)
    elif ia.skeleton == ib.skeleton:
        return TokenLevel.TRANSLITERATION, round(max(0.85, jw), 3)
    if len(a) == 1 or len(b) == 1:
        short, long_ = (a, b) if len(a) == 1 else (b, a)
        if long_.startswith(short):
            return TokenLevel.INITIAL, 0.5
        return TokenLevel.DIFFERENT, 0.0
    if jw < 0.8:
        return TokenLevel.DIFFERENT, round(jw, 3)
    edits = OSA.distance(ia.latin, ib.latin)
    shortest = min(len(ia.latin), len(ib.latin))
    if jw >= 0.93 or (edits == 1 and shortest >= 4):
        return TokenLevel.FUZZY_HIGH, round(jw, 3)
    if jw >= 0.85 or (edits == 2 and shortest >= 6):
        return TokenLevel.FUZZY_LOW, round(jw, 3)
    return TokenLevel.DIFFERENT, round(jw, 3)


def _joined_article(long_: str, short: str) -> tuple[TokenLevel, float] | None:
    """"Alzoubi" / "Zoubi", "Elhadi" / "Hadi": the article written joined to the name on one
    side and apart (so dropped as a particle) on the other."""
    if long_[:2] not in ("al", "el") or len(long_) < 5:
        return None
    rest, other = _info(long_[2:]), _info(short)
    if long_[2:] == short or rest.canonical == other.canonical:
        return TokenLevel.VARIANT, 0.9
    if rest.arabic == other.arabic and rest.key == other.key and (rest.known or len(short) >= 4):
        return TokenLevel.PHONETIC, 0.85
    return None


def _undoubled(token: str) -> str:
    return "".join(c for i, c in enumerate(token) if i == 0 or c != token[i - 1])


undoubled = _undoubled


def latin_single(token: str) -> str:
    """A normalised token in Latin letters (Arabic script transliterated), doubled letters once."""
    return _undoubled(_info(token).latin)


def _spelling_rule(a: str, b: str) -> tuple[TokenLevel, float] | None:
    """Spellings of one name the curated table does not hold, found by rule: Somali writes the
    ayn others drop as C (Caisha / Aisha, Cumar / Umar), and doubled letters are written or not
    (Aishha / Aysha, Bashiir / Bashir)."""
    for x, y in ((a, b), (b, a)):
        if len(x) >= 4 and x[0] == "c" and x[1] in "aeiou" and _info(x[1:]).canonical == _info(y).canonical:
            return TokenLevel.VARIANT, 0.9
    single_a, single_b = _info(a).single, _info(b).single
    if (single_a != a or single_b != b) and len(single_a) >= 3 and (
            single_a == single_b or _info(single_a).canonical == _info(single_b).canonical):
        return TokenLevel.PHONETIC, 0.9
    return None


# ---------------------------------------------------------------------------------
# Whole names
# ---------------------------------------------------------------------------------

NameParts = Mapping[str, "str | Sequence[str] | None"] | str | tuple | None


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    field: str
    pos: int  # position in the whole name (reading order of the fields)
    optional: bool
    members: tuple[int, ...]  # indices of the single tokens it covers (2 for a bigram)


def _parts_key(parts: NameParts) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The hashable form of a name the comparisons work on (a key already made is returned as
    is: a caller comparing one name with many makes it once, `name_parts_key`)."""
    if parts is None:
        return ()
    if isinstance(parts, tuple):
        return parts
    if isinstance(parts, str):
        return (("given", (parts,)),)
    items = []
    for field_name, value in parts.items():
        if value is None:
            continue
        items.append((field_name, (value,) if isinstance(value, str) else tuple(value)))
    return tuple(items)


name_parts_key = _parts_key


def _tokens_of(
    key: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[list[_Tok], list[_Tok]]:
    """(single tokens, adjacent-pair joins) of a name key (read through its cached `_shape`)."""
    singles: list[_Tok] = []
    joins: list[_Tok] = []
    ordered = sorted(key, key=lambda kv: NAME_FIELDS.index(kv[0]) if kv[0] in NAME_FIELDS else 99)
    for field_name, values in ordered:
        optional = field_name in OPTIONAL_FIELDS
        canonical_field = "nickname" if field_name in ("nickname", "nicknames") else (
            "other" if optional else field_name
        )
        for v in values:
            tokens = name_tokens(v)
            start = len(singles)
            for t in tokens:
                singles.append(_Tok(t, canonical_field, len(singles), optional, (len(singles),)))
            for k in range(start, len(singles) - 1):
                joins.append(
                    _Tok(
                        singles[k].text + singles[k + 1].text,
                        canonical_field,
                        k,
                        optional,
                        (k, k + 1),
                    )
                )
    return singles, joins


@dataclass(frozen=True, slots=True)
class _Shape:
    """What comparing a name needs besides its tokens, worked out once per name."""

    singles: list[_Tok]
    joins: list[_Tok]
    core: tuple[bool, ...]  # per single token: core (nickname and other names are not, unless all are)
    core_count: int
    core_texts: tuple[str, ...]  # the core tokens, in order (what is left unpaired when nothing pairs)


# One cache for a name's tokens and shape (two caches of 262,144 names held about 100 MB more
# in each process of a full re-match at 100,000).
@functools.lru_cache(maxsize=262_144)
def _shape(key: tuple[tuple[str, tuple[str, ...]], ...]) -> _Shape:
    singles, joins = _tokens_of(key)
    all_optional = all(t.optional for t in singles)
    core = tuple(all_optional or not t.optional for t in singles)
    return _Shape(singles, joins, core, sum(core), tuple(t.text for t, c in zip(singles, core) if c))


def compare_names(a_parts: NameParts, b_parts: NameParts) -> NameComparison:
    """Order-free comparison of two people's names.

    ``a_parts`` / ``b_parts`` map name fields (``given``, ``middle``, ``family``,
    ``nickname``, ``other`` -- any other key is treated as a core field) to a string or a
    list of strings; a plain string is one full name. Every token of one record may pair
    with any token of the other, so "Ali Hassan Omar" meets "Omar Ali" and swapped given
    and family names meet. Two adjacent tokens may pair with one joined token ("Abdul
    Rahman" / "Abdulrahman", "Mohamed Amin" / "Mohamedamin"). Tokens are paired greedily,
    strongest level first, preferring the same field and position.

    Levels (shorter name = the one with fewer core tokens; nickname/other fields are
    optional and never count against a match):

    * ``exact`` -- same tokens, same fields, same order, all identical
    * ``variant`` -- every token of the shorter name paired at exact/variant level
      (covers reordering, swapped fields, chain names of different lengths, split/joined)
    * ``phonetic`` -- ... and the weakest pair is nickname / phonetic / transliteration
    * ``fuzzy_high`` / ``fuzzy_low`` -- ... and the weakest pair is a typo level
    * ``partial`` -- some token of the shorter name is unpaired, but another paired at
      phonetic level or better (siblings; namesakes sharing a father's name)
    * ``different`` -- nothing paired at phonetic level or better
    * ``missing`` -- a side has no name

    ``similarity`` is Dice-like: paired token similarity summed over both records divided
    by their total core tokens. ``details`` has ``extra_tokens`` (difference in core
    token counts), ``reordered`` and ``swapped_fields``.
    """
    return _compare_names_cached(_parts_key(a_parts), _parts_key(b_parts))


def compare_chain_names(a_parts: NameParts, b_parts: NameParts) -> NameComparison:
    """`compare_names` for the name of a relative (a parent, the inquirer, a brother or sister
    in the family details), written as a chain: own name, then father's, then grandfather's.

    A one-word name found only as a later token of the other's chain is that person's father's
    or grandfather's name, not theirs: "Hêmin" (a brother the case records) in "Fatime Hemin
    Halo" (the sister asking) is their father. Such a pair is ``partial`` (the same family, not
    the same person), not a full agreement. A one-word name found as the chain's own name (its
    first token, or the first two joined: "Abdulrahman" / "Abdul Rahman Ali") keeps its level.
    """
    result = compare_names(a_parts, b_parts)
    if result.level not in _ONE_WORD_CHECKED or len(result.matches) != 1:
        return result
    shape_a, shape_b = _shape(_parts_key(a_parts)), _shape(_parts_key(b_parts))
    if shape_a.core_count == 1 and shape_b.core_count > 1:
        longer, text = shape_b, result.matches[0].b
    elif shape_b.core_count == 1 and shape_a.core_count > 1:
        longer, text = shape_a, result.matches[0].a
    else:
        return result
    own = longer.core_texts[0]
    if text == own or (result.matches[0].joined and text.startswith(own)):
        return result
    return NameComparison(NameLevel.PARTIAL, result.similarity, {**result.details, "later_name": True},
                          matches=result.matches, unmatched_a=result.unmatched_a, unmatched_b=result.unmatched_b)


def chain_of(parts: NameParts) -> str | None:
    """A child's names after its own name (the first core token), in reading order: in chain
    naming (Somali, Arabic, Eritrean ...) its father's and grandfather's names. None when the
    name has a single word."""
    texts = _shape(_parts_key(parts)).core_texts
    return " ".join(texts[1:]) if len(texts) > 1 else None


_Candidate = tuple[tuple[Any, ...], _Tok, _Tok, TokenLevel, float, bool]


def _candidates(
    side_a: Sequence[_Tok], side_b: Sequence[_Tok], joined: bool
) -> list[_Candidate]:
    out: list[_Candidate] = []
    rank = _TOKEN_RANK
    for ta in side_a:
        for tb in side_b:
            if joined:
                long_, short = (ta.text, tb.text) if len(ta.members) > 1 else (tb.text, ta.text)
                if long_[:1] != short[:1] or abs(len(long_) - len(short)) > 3:
                    continue
            level, sim = compare_tokens(ta.text, tb.text)
            if level is TokenLevel.DIFFERENT or level is TokenLevel.MISSING:
                continue
            if joined and level not in _STRONG_TOKEN_LEVELS:
                continue  # a join is only believed when it really is the same name
            order = (
                rank[level],
                -sim,
                ta.field != tb.field,
                abs(ta.pos - tb.pos),
                ta.optional or tb.optional,
            )
            out.append((order, ta, tb, level, sim, joined))
    return out


def _assign(candidates: list[_Candidate]) -> tuple[list[_Candidate], set[int], set[int]]:
    """Greedy one-to-one pairing, strongest candidates first."""
    candidates.sort(key=lambda c: c[0])
    used_a: set[int] = set()
    used_b: set[int] = set()
    chosen: list[_Candidate] = []
    for cand in candidates:
        ta, tb = cand[1], cand[2]
        if not (used_a.isdisjoint(ta.members) and used_b.isdisjoint(tb.members)):
            continue
        used_a.update(ta.members)
        used_b.update(tb.members)
        chosen.append(cand)
    return chosen, used_a, used_b


# Whole-name pairs rarely repeat (about one call in 16 in a bulk re-match: the same parents'
# names against the same candidates); a small cache keeps those and costs little memory (at
# 262,144 entries it held about 500 MB of explanations).
@functools.lru_cache(maxsize=16_384)
def _compare_names_cached(
    key_a: tuple[tuple[str, tuple[str, ...]], ...],
    key_b: tuple[tuple[str, tuple[str, ...]], ...],
) -> NameComparison:
    shape_a, shape_b = _shape(key_a), _shape(key_b)
    singles_a, joins_a = shape_a.singles, shape_a.joins
    singles_b, joins_b = shape_b.singles, shape_b.joins
    if not singles_a or not singles_b:
        return NameComparison(NameLevel.MISSING, 0.0)

    single_candidates = _candidates(singles_a, singles_b, False)
    chosen, used_a, used_b = _assign(list(single_candidates))
    # Split/joined compounds only matter when something is left over or weak, and only
    # a join starting with the same letter as a leftover token can pair with it.
    if joins_a or joins_b:
        strong_a = {i for c in chosen if c[3] in (TokenLevel.EXACT, TokenLevel.VARIANT) for i in c[1].members}
        strong_b = {i for c in chosen if c[3] in (TokenLevel.EXACT, TokenLevel.VARIANT) for i in c[2].members}
        loose_a = [t for i, t in enumerate(singles_a) if i not in strong_a]
        loose_b = [t for i, t in enumerate(singles_b) if i not in strong_b]
        letters_a = {t.text[:1] for t in loose_a}
        letters_b = {t.text[:1] for t in loose_b}
        useful_a = [j for j in joins_a if j.text[:1] in letters_b and strong_a.isdisjoint(j.members)]
        useful_b = [j for j in joins_b if j.text[:1] in letters_a and strong_b.isdisjoint(j.members)]
        if useful_a or useful_b:
            extra = _candidates(useful_a, loose_b, True) + _candidates(loose_a, useful_b, True)
            if extra:
                chosen, used_a, used_b = _assign(single_candidates + extra)

    core_a, core_b = shape_a.core_count, shape_b.core_count
    if not chosen:  # nothing pairs: what the steps below give for no pair, at once
        return NameComparison(NameLevel.DIFFERENT, 0.0,
                              {"extra_tokens": abs(core_a - core_b), "reordered": False, "swapped_fields": False},
                              matches=(), unmatched_a=shape_a.core_texts, unmatched_b=shape_b.core_texts)
    core_flags_a, core_flags_b = shape_a.core, shape_b.core
    matches: list[TokenMatch] = []
    weights_a = weights_b = 0.0
    for _order, ta, tb, level, sim, joined in chosen:
        level_out = TokenLevel.VARIANT if joined and level == TokenLevel.EXACT else level
        matches.append(TokenMatch(ta.text, tb.text, level_out, sim, ta.field, tb.field, joined))
        weights_a += sim * _core_members(ta.members, core_flags_a)
        weights_b += sim * _core_members(tb.members, core_flags_b)

    unmatched_a = tuple(t.text for i, t in enumerate(singles_a) if core_flags_a[i] and i not in used_a)
    unmatched_b = tuple(t.text for i, t in enumerate(singles_b) if core_flags_b[i] and i not in used_b)
    similarity = round(min(1.0, (weights_a + weights_b) / (core_a + core_b)), 3)

    # The shorter name decides whether everything it says is confirmed.
    short_unmatched = len(unmatched_a) if core_a <= core_b else len(unmatched_b)
    if core_a == core_b:
        short_unmatched = min(len(unmatched_a), len(unmatched_b))
    relevant = [m for m in matches
                if not (m.field_a in MATCHED_OPTIONAL_FIELDS and m.field_b in MATCHED_OPTIONAL_FIELDS)]
    details = {
        "extra_tokens": abs(core_a - core_b),
        "reordered": _reordered(matches, singles_a, singles_b),
        "swapped_fields": any(
            {m.field_a, m.field_b} == {"given", "family"} for m in matches
        ),
    }
    if short_unmatched == 0 and relevant:
        worst = max((m.level for m in relevant), key=_TOKEN_RANK.__getitem__)
        if (
            worst == TokenLevel.EXACT
            and not unmatched_a
            and not unmatched_b
            and core_a == core_b
            and not details["reordered"]
            and all(m.field_a == m.field_b and not m.joined for m in relevant)
        ):
            level = NameLevel.EXACT
        elif worst in (TokenLevel.EXACT, TokenLevel.VARIANT):
            level = NameLevel.VARIANT
        elif worst in (TokenLevel.NICKNAME, TokenLevel.PHONETIC, TokenLevel.TRANSLITERATION):
            level = NameLevel.PHONETIC
        elif worst == TokenLevel.FUZZY_HIGH:
            level = NameLevel.FUZZY_HIGH
        else:
            level = NameLevel.FUZZY_LOW
    elif any(m.level in _STRONG_TOKEN_LEVELS for m in relevant):
        level = NameLevel.PARTIAL
    else:
        level = NameLevel.DIFFERENT
    matches.sort(key=lambda m: (_TOKEN_RANK[m.level], -m.similarity))
    return NameComparison(
        level,
        similarity,
        details,
        matches=tuple(matches),
        unmatched_a=unmatched_a,
        unmatched_b=unmatched_b,
    )


def _core_members(members: tuple[int, ...], core_flags: list[bool]) -> int:
    """How many of a token's members (one token, or the two of a join) are core tokens."""
    if len(members) == 1:
        return 1 if core_flags[members[0]] else 0
    return sum(1 for i in members if core_flags[i])


def _reordered(matches: list[TokenMatch], singles_a: list[_Tok], singles_b: list[_Tok]) -> bool:
    """True when paired tokens appear in a different relative order or field."""
    if any(m.field_a != m.field_b for m in matches):
        return True
    pos_a = {t.text: t.pos for t in singles_a}  # (the last position of a token written twice)
    pos_b = {t.text: t.pos for t in singles_b}
    order = [pos_b.get(m.b, 0) for m in sorted(matches, key=lambda m: pos_a.get(m.a, 0))]
    return order != sorted(order)


def _own_name_tokens(parts: NameParts) -> tuple[list[_Tok], list[_Tok]]:
    """Tokens of the whole name, but only when the own (given) name is recorded."""
    key = _parts_key(parts)
    if not isinstance(parts, str):
        given = next((values for field_name, values in key if field_name == "given"), ())
        if not any(name_tokens(g) for g in given):
            return [], []
    shape = _shape(key)
    singles, joins = shape.singles, shape.joins
    core = [t for t in singles if not t.optional]
    return core, [j for j in joins if not j.optional]


def compare_given_names(a_parts: NameParts, b_parts: NameParts) -> Comparison:
    """Compare the child's own given name on both records.

    This is what separates siblings (same father, same family name, different given
    name) from the same child: only the *first* given token of each record -- the
    person's own name in a chain name -- is compared, with the first two tokens joined
    as an alternative ("Abdi Rashid" / "Abdirashid"). If the own names differ, a swap is
    looked for: A's own name matching B's family name (or a later chain element) while B's
    own name matches one of A's later tokens gives the weaker of the two levels and
    ``details["swapped"] = True``. Levels are the :class:`TokenLevel` values.
    """
    core_a, joins_a = _own_name_tokens(a_parts)
    core_b, joins_b = _own_name_tokens(b_parts)
    if not core_a or not core_b:
        return Comparison(TokenLevel.MISSING, 0.0)
    best = _best_pair([core_a[0]], [core_b[0]])
    if best[0] not in _STRONG_TOKEN_LEVELS:
        # Split against joined own name: "Abdi Rashid" / "Abdirashid".
        joined = _best_pair(
            [core_a[0], *[j for j in joins_a if j.members[0] == 0]],
            [core_b[0], *[j for j in joins_b if j.members[0] == 0]],
        )
        if joined[0] in _STRONG_TOKEN_LEVELS:
            best = joined
    if best[0] not in (TokenLevel.DIFFERENT, TokenLevel.FUZZY_LOW, TokenLevel.INITIAL):
        return Comparison(best[0], best[1], {"a": best[2], "b": best[3], "swapped": False})
    # Swapped order: A's own name appears later in B and B's own name later in A.
    a_in_b = _best_pair([core_a[0]], core_b[1:])
    b_in_a = _best_pair([core_b[0]], core_a[1:])
    if a_in_b[0] in _STRONG_TOKEN_LEVELS and b_in_a[0] in _STRONG_TOKEN_LEVELS:
        worst = max(a_in_b[0], b_in_a[0], key=_TOKEN_RANK.__getitem__)
        sim = round(min(a_in_b[1], b_in_a[1]) * 0.95, 3)
        return Comparison(worst, sim, {"a": core_a[0].text, "b": core_b[0].text, "swapped": True})
    return Comparison(best[0], best[1], {"a": best[2], "b": best[3], "swapped": False})


def _best_pair(side_a: Sequence[_Tok], side_b: Sequence[_Tok]) -> tuple[TokenLevel, float, str, str]:
    best: tuple[TokenLevel, float, str, str] = (TokenLevel.DIFFERENT, 0.0, "", "")
    for ta in side_a:
        for tb in side_b:
            level, sim = compare_tokens(ta.text, tb.text)
            if (_TOKEN_RANK[level], -sim) < (_TOKEN_RANK[best[0]], -best[1]):
                best = (level, sim, ta.text, tb.text)
    if not best[2] and side_a and side_b:
        best = (TokenLevel.DIFFERENT, 0.0, side_a[0].text, side_b[0].text)
    return best


# ---------------------------------------------------------------------------------
# Relatives
# ---------------------------------------------------------------------------------

_RELATIONSHIP_FIELD = {
    "mother": "mother_name",
    "mom": "mother_name",
    "mum": "mother_name",
    "mere": "mother_name",
    "maman": "mother_name",
    "ام": "mother_name",
    "hooyo": "mother_name",
    "father": "father_name",
    "dad": "father_name",
    "pere": "father_name",
    "papa": "father_name",
    "اب": "father_name",
    "aabo": "father_name",
    "caregiver": "caregiver_name",
    "guardian": "caregiver_name",
    "foster parent": "caregiver_name",
    "tuteur": "caregiver_name",
    "tutrice": "caregiver_name",
}


# A sibling's chain name after its own name is the father's and grandfather's: the same as the
# child's (Somali, Arabic, Eritrean naming), so a brother asking is also compared on that part.
_SIBLING_RELATIONSHIPS = frozenset({"sibling", "brother", "sister", "half brother", "half sister", "frere",
                                    "soeur", "demi frere", "demi soeur", "اخ", "اخت", "walaal", "walaalo"})


def names_one_person(relationship: str | None) -> bool:
    """True when the relationship names one person the case may record (mother, father,
    caregiver), not one of several (a sibling, an aunt, a grandparent)."""
    return normalize_name(relationship or "") in _RELATIONSHIP_FIELD


@functools.lru_cache(maxsize=4096)
def relationship_field(relationship: str | None) -> str | None:
    """The case field that records the relative `relationship` names ("mother" -> mother_name)."""
    return _RELATIONSHIP_FIELD.get(normalize_name(relationship or ""))


def compare_relative_name(
    inquirer_name: NameParts,
    relationship: str | None,
    case_names: Mapping[str, Any],
) -> NameComparison:
    """Compare the inquirer's name with the case's relative named by ``relationship``.

    ``relationship`` is the inquirer's relationship to the child (mother, father,
    caregiver, or any other: aunt, grandfather, sibling ...). ``case_names`` may hold
    ``mother_name``, ``father_name``, ``caregiver_name`` (strings or name-part dicts),
    ``family_details`` (a list of ``{"name": ..., "relationship": ...}`` dicts or plain
    names) and ``child_name`` (the child's full name: for a father, the child's chain name
    after its first token *is* the father's name).

    The relative the relationship points to is compared first (mother -> ``mother_name``,
    family-details entries with the same relationship ...). Only when the case records no
    such relative are all recorded relatives tried (``details["fallback"] = True``).
    Levels are those of :func:`compare_names`; ``details["compared_with"]`` says which
    recorded relative gave the result.
    """
    rel = normalize_name(relationship or "")
    expected_field = _RELATIONSHIP_FIELD.get(rel)
    targets: list[tuple[str, NameParts]] = []
    sibling_chain = None  # (the inquirer's chain after the own name, the child's)
    if rel in _SIBLING_RELATIONSHIPS and case_names.get("child_name"):
        own = name_tokens(_as_text(inquirer_name))[1:]
        child = name_tokens(_as_text(case_names["child_name"]))[1:]
        if own and child:
            sibling_chain = (" ".join(own), " ".join(child))
    if expected_field and case_names.get(expected_field):
        targets.append((expected_field, case_names[expected_field]))
    for index, entry in enumerate(case_names.get("family_details") or ()):
        if isinstance(entry, Mapping):
            entry_rel = normalize_name(str(entry.get("relationship") or ""))
            same = entry_rel == rel or (
                expected_field is not None and _RELATIONSHIP_FIELD.get(entry_rel) == expected_field
            )
            if same and entry.get("name"):
                targets.append((f"family_details[{index}]", entry["name"]))
    if expected_field == "father_name" and case_names.get("child_name"):
        chain = name_tokens(_as_text(case_names["child_name"]))[1:]
        if chain:
            targets.append(("child_name_chain", " ".join(chain)))
    fallback = False
    if not targets and not sibling_chain:
        fallback = True
        for key in ("mother_name", "father_name", "caregiver_name"):
            if case_names.get(key):
                targets.append((key, case_names[key]))
        for index, entry in enumerate(case_names.get("family_details") or ()):
            name = entry.get("name") if isinstance(entry, Mapping) else entry
            if name:
                targets.append((f"family_details[{index}]", name))
    if not (targets or sibling_chain) or not inquirer_name:
        return NameComparison(NameLevel.MISSING, 0.0, {"fallback": fallback})
    order = list(NameLevel)
    best: NameComparison | None = None
    best_field = ""
    pairs = [(target_field, inquirer_name, target) for target_field, target in targets]
    if sibling_chain:
        pairs.append(("child_name_chain", *sibling_chain))
    for target_field, query, target in pairs:
        result = compare_chain_names(query, target)
        if best is None or (order.index(result.level), -result.similarity) < (
            order.index(best.level),
            -best.similarity,
        ):
            best, best_field = result, target_field
    assert best is not None
    details = {**best.details, "compared_with": best_field, "fallback": fallback}
    return NameComparison(
        best.level,
        best.similarity,
        details,
        matches=best.matches,
        unmatched_a=best.unmatched_a,
        unmatched_b=best.unmatched_b,
    )


def _as_text(value: NameParts) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for v in value.values():
        if isinstance(v, str):
            parts.append(v)
        elif v:
            parts.extend(v)
    return " ".join(parts)


# ---------------------------------------------------------------------------------
# Age and dates
# ---------------------------------------------------------------------------------


def compare_age(
    age_a: float | None,
    age_b: float | None,
    *,
    estimated_a: bool = False,
    estimated_b: bool = False,
    years_between: float = 0.0,
) -> Comparison:
    """Compare two ages in years, allowing for estimates and for time passing.

    ``years_between`` is the time from the date ``age_a`` refers to until the date
    ``age_b`` refers to (for a trace: separation; for a case: registration), so the
    expected ``age_b`` is ``age_a + years_between``: a child 7 at separation is about 9
    two years later. The tolerance is 1 year for ages given in whole years, plus, for each
    estimated side, 1 year and a tenth of that age ("about 7" covers 6 to 8 and more as
    children get older).

    Levels: ``exact`` (both exact, within half a year of the expected age),
    ``within_tolerance``, ``near`` (within twice the tolerance), ``different``,
    ``missing``. ``details`` has ``expected`` (expected age_b), ``difference`` and
    ``tolerance``.
    """
    if age_a is None or age_b is None:
        return Comparison(AgeLevel.MISSING, 0.0)
    try:
        a, b, drift = float(age_a), float(age_b), float(years_between or 0.0)
    except (TypeError, ValueError):
        return Comparison(AgeLevel.MISSING, 0.0)
    expected = a + drift
    diff = abs(expected - b)
    tolerance = 1.0
    if estimated_a:
        tolerance += 1.0 + 0.1 * max(a, 0.0)
    if estimated_b:
        tolerance += 1.0 + 0.1 * max(b, 0.0)
    details = {
        "expected": round(expected, 2),
        "difference": round(diff, 2),
        "tolerance": round(tolerance, 2),
    }
    if diff <= 0.5 and not (estimated_a or estimated_b):
        return Comparison(AgeLevel.EXACT, 1.0, details)
    similarity = round(max(0.0, 1.0 - diff / (2.0 * tolerance)), 3)
    if diff <= tolerance:
        return Comparison(AgeLevel.WITHIN_TOLERANCE, similarity, details)
    if diff <= 2.0 * tolerance:
        return Comparison(AgeLevel.NEAR, similarity, details)
    return Comparison(AgeLevel.DIFFERENT, similarity, details)


def _parse_date(value: dt.date | str | None) -> tuple[int, int | None, int | None] | None:
    """(year, month, day) from a date or an ISO-like string ('2015', '2015-03', '2015-03-07')."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.year, value.month, value.day
    if isinstance(value, dt.date):
        return value.year, value.month, value.day
    text = str(value).strip()
    if not text:
        return None
    parts = text.replace("/", "-").replace(".", "-").split("-")
    try:
        numbers = [int(p) for p in parts if p]
    except ValueError:
        return None
    if not numbers or not (1000 <= numbers[0] <= 2999):
        return None
    year = numbers[0]
    month = numbers[1] if len(numbers) > 1 else None
    day = numbers[2] if len(numbers) > 2 else None
    if month is not None and not 1 <= month <= 12:
        return None
    if day is not None and not 1 <= day <= 31:
        return None
    return year, month, day


def compare_dates(a: dt.date | str | None, b: dt.date | str | None) -> Comparison:
    """Compare two dates (of birth, usually) with typo and day-month-swap tolerance.

    Accepts ``date`` objects or ISO strings; year-only and year-month strings are
    compared at the precision they have. Levels, tested in this order: ``exact``;
    ``day_month_swapped`` (07/03 against 03/07, same year); ``typo`` (one digit differs
    in YYYYMMDD, or two adjacent digits transposed); ``same_year``; ``off_by_one_year``
    (years one apart and the dates less than 18 months apart); ``different``;
    ``missing``. ``details["days_apart"]`` is given for full dates.
    """
    pa, pb = _parse_date(a), _parse_date(b)
    if pa is None or pb is None:
        return Comparison(DateLevel.MISSING, 0.0)
    (ya, ma, da), (yb, mb, db) = pa, pb
    details: dict[str, Any] = {}
    full = None not in (ma, da, mb, db)
    if full:
        try:
            days = abs((dt.date(ya, ma, da) - dt.date(yb, mb, db)).days)  # type: ignore[arg-type]
        except ValueError:
            days = None
        if days is not None:
            details["days_apart"] = days
        if pa == pb:
            return Comparison(DateLevel.EXACT, 1.0, details)
        if ya == yb and ma == db and da == mb and ma != da:
            return Comparison(DateLevel.DAY_MONTH_SWAPPED, 0.9, details)
        sa, sb = f"{ya:04d}{ma:02d}{da:02d}", f"{yb:04d}{mb:02d}{db:02d}"
        if _one_digit_typo(sa, sb):
            return Comparison(DateLevel.TYPO, 0.85, details)
        if ya == yb:
            return Comparison(DateLevel.SAME_YEAR, 0.5, details)
        if abs(ya - yb) == 1 and days is not None and days <= 548:
            return Comparison(DateLevel.OFF_BY_ONE_YEAR, 0.35, details)
        return Comparison(DateLevel.DIFFERENT, 0.0, details)
    # Partial dates: compare what both sides have.
    if ya == yb:
        if ma is not None and mb is not None and ma == mb and (da is None or db is None or da == db):
            return Comparison(DateLevel.SAME_YEAR, 0.6, {"partial": True})
        return Comparison(DateLevel.SAME_YEAR, 0.5, {"partial": True})
    if abs(ya - yb) == 1:
        return Comparison(DateLevel.OFF_BY_ONE_YEAR, 0.35, {"partial": True})
    if _one_digit_typo(f"{ya:04d}", f"{yb:04d}"):
        return Comparison(DateLevel.TYPO, 0.6, {"partial": True})
    return Comparison(DateLevel.DIFFERENT, 0.0, {"partial": True})


def _one_digit_typo(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diffs = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(diffs) == 1:
        return True
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


# ---------------------------------------------------------------------------------
# Sex, locations, weak evidence
# ---------------------------------------------------------------------------------

_SEX_VALUES = {
    "m": "male", "male": "male", "boy": "male", "man": "male", "masculin": "male",
    "homme": "male", "garcon": "male", "ذكر": "male", "wiil": "male", "lab": "male",
    "f": "female", "female": "female", "girl": "female", "woman": "female",
    "feminin": "female", "femme": "female", "fille": "female", "انثى": "female",
    "انثي": "female", "gabar": "female", "dhedig": "female",
    "o": "other", "other": "other", "autre": "other", "intersex": "other", "اخر": "other",
    "u": "unknown", "unknown": "unknown", "inconnu": "unknown", "غير معروف": "unknown",
}


def _sex(value: str | None) -> str:
    norm = normalize_name(value or "")
    return _SEX_VALUES.get(norm, "unknown" if not norm else norm)


def compare_sex(a: str | None, b: str | None) -> Comparison:
    """Compare recorded sex; a strong discriminator when both are known.

    Values are normalised (m/male/boy/masculin/ذكر -> male, f/female/girl/féminin/أنثى
    -> female, other, unknown). Levels: ``same``; ``uncertain`` when one side is
    "other" and the other male/female; ``different``; ``missing`` when either side is
    absent or unknown.
    """
    sa, sb = _sex(a), _sex(b)
    if "unknown" in (sa, sb):
        return Comparison(SexLevel.MISSING, 0.0)
    if sa == sb:
        return Comparison(SexLevel.SAME, 1.0)
    if "other" in (sa, sb):
        return Comparison(SexLevel.UNCERTAIN, 0.5)
    return Comparison(SexLevel.DIFFERENT, 0.0)


def compare_locations(
    code_a: str | None,
    code_b: str | None,
    ancestors_a: Sequence[str] = (),
    ancestors_b: Sequence[str] = (),
) -> Comparison:
    """Compare two places through the location hierarchy.

    ``ancestors_*`` are the codes of the place's ancestors, nearest first (camp ->
    district -> region -> country). The level is the distance to the nearest common
    ancestor from the deeper of the two places: same code ``same_site``; one level up
    (two camps of one district, or a camp and its own district) ``same_district``; two
    levels ``same_region``; three or more ``same_country``; no common ancestor
    ``different``; a missing code ``missing``. The names describe hierarchy distance, not
    the type of the places.
    """
    if not code_a or not code_b:
        return Comparison(LocationLevel.MISSING, 0.0)
    if code_a == code_b:
        return Comparison(LocationLevel.SAME_SITE, 1.0)
    chain_a = [code_a, *ancestors_a]
    index_b = {code: i for i, code in reversed(list(enumerate([code_b, *ancestors_b])))}
    best: int | None = None
    for i, code in enumerate(chain_a):
        j = index_b.get(code)
        if j is not None:
            distance = max(i, j)
            best = distance if best is None else min(best, distance)
    if best is None:
        return Comparison(LocationLevel.DIFFERENT, 0.0)
    if best <= 1:
        return Comparison(LocationLevel.SAME_DISTRICT, 0.75, {"levels_up": best})
    if best == 2:
        return Comparison(LocationLevel.SAME_REGION, 0.5, {"levels_up": best})
    return Comparison(LocationLevel.SAME_COUNTRY, 0.25, {"levels_up": best})


_UNKNOWN_VALUES = frozenset({"", "unknown", "inconnu", "other", "autre", "none", "n a", "na"})


def _categorical_values(value: str | Iterable[str] | None) -> set[str]:
    if value is None:
        return set()
    items = [value] if isinstance(value, str) else list(value)
    return {v for v in (normalize_name(str(item)) for item in items) if v not in _UNKNOWN_VALUES}


def compare_categorical(
    a: str | Iterable[str] | None, b: str | Iterable[str] | None
) -> Comparison:
    """Weak evidence: language, nationality, ethnicity, religion (lookup codes or labels).

    Either side may be a list (a child speaks several languages); any shared value is
    ``same``. ``unknown``/``other`` count as missing. Levels: ``same``, ``different``,
    ``missing``.
    """
    va, vb = _categorical_values(a), _categorical_values(b)
    if not va or not vb:
        return Comparison(CategoricalLevel.MISSING, 0.0)
    shared = va & vb
    if shared:
        return Comparison(CategoricalLevel.SAME, 1.0, {"shared": sorted(shared)})
    return Comparison(CategoricalLevel.DIFFERENT, 0.0)
