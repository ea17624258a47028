"""In-memory indexes of the records that may be proposed: blocking without a query per record.

A `RecordIndex` holds every matchable record of one type (cases; or traces, with what their
tracing request adds): its `Person` view, its first-stage attributes as arrays, its name keys
as postings (arrays of positions), and each key's document frequency over every record of the
type. It ranks candidates exactly as the SQL path (`engine.ranked_candidates`) does — the same
ids, order and scores (tests/test_matching_index.py) — with a few array operations per key
instead of a Python loop over every holder of a common key, and without a query.

Long-lived processes (rq workers, a full re-match and its forked processes) keep one index per
type and bring it up to date before each use (`record_index`):

* Nothing changed (the newest `updated_at` of the records, and of their tracing requests for
  traces, and the newest key row are the same as last time): used as it is, two cheap queries.
* Some records changed: only those are read again (their row, eligibility and keys); their old
  position is marked dead and the new one appended. Changed means stamped at or after the last
  marks minus `REFRESH_LAG`, so a transaction that committed a little after a later one is not
  missed; records already applied with the same stamp are skipped, and records applied
  recently that are no longer there (a rolled-back transaction) are read again and dropped.
  A change committed more than `REFRESH_LAG` after its stamp (a long import) is seen at the
  next full rebuild; meanwhile it was matched from its own side when saved, and a proposal
  is never made to a record that is no longer eligible: the engine checks eligibility in the
  database before it stores one (`engine._still_eligible`).
* Many changed (more than `REBUILD_SHARE` of the index, at least `REBUILD_MIN`), many dead
  positions, a change of the form definitions' matching tags, of the consent setting or of the
  database, or the index older than MATCHING_INDEX_MAX_AGE seconds (a safety net for a
  transaction that stayed open longer than `REFRESH_LAG` between stamping and committing):
  rebuilt in full.

Records are never deleted by the application (cases and traces are closed), but a record that
disappears is dropped by the same path. With MATCHING_MEMORY_INDEX off, one-record matching uses
the SQL path instead (each worker then needs no memory for the indexes).
"""
from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.records.models import RecordKey
from app.records.search import NAME_KIND
from matching import engine
from matching.engine import (
    AGE_CLOSE_BONUS,
    AGE_PENALTY_MAX,
    AGE_PENALTY_PER_YEAR,
    AGE_TOLERANCE,
    AGE_TOLERANCE_ESTIMATED,
    COMMON_MAX_YEARS,
    COVER_BONUS,
    FIRST_STAGE_KEEP,
    FIRST_STAGE_POOL,
    PLACE_BONUS,
    RELATIVE_KIND,
    SEX_PENALTY,
    SEX_SLIP_YEARS,
    SPELLING_KIND,
    Attributes,
    Person,
)

REFRESH_LAG = timedelta(seconds=10)
REBUILD_SHARE = 0.10
REBUILD_MIN = 5_000
DEFAULT_MAX_AGE = 900.0  # seconds (MATCHING_INDEX_MAX_AGE)
_SEX_NUMBER = {"": 0, "male": 1, "female": 2}
_PLACE_LEVELS = 3  # the place itself, one level up, two levels up: what PLACE_BONUS rewards
_KINDS = (NAME_KIND, RELATIVE_KIND, SPELLING_KIND)  # what engine.lookups reads

Kind = tuple[str, str]


class RecordIndex:
    """Every matchable record of `record_type` ("case" or "trace") in memory; see the module."""

    def __init__(self, record_type: str, stamp=None):
        if record_type not in ("case", "trace"):
            raise ValueError(f"no index for {record_type!r} records")
        self.record_type = record_type
        self.stamp = stamp
        self.built = time.monotonic()
        self._place_numbers: dict[str, int] = {}
        self._tags = engine._tagged(record_type)
        self._request_tags = engine._tagged("tracing_request") if record_type == "trace" else None
        self.marks = self._marks()  # read first: what changes while loading is read again next time
        self.known: set[str] = set(db.session.execute(select(self._model.id)).scalars())
        self.persons: dict[str, Person] = {}
        self.own_names: dict[str, str | None] = {}
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.recent: dict[str, tuple] = {}
        # Per position (grown by `_append`): sex, birth year, estimated, place codes, still current.
        self.sex = np.zeros(0, dtype=np.int8)
        self.birth = np.zeros(0, dtype=np.float64)
        self.estimated = np.zeros(0, dtype=bool)
        self.names = np.zeros(0, dtype=np.int16)  # tokens of the child's own names
        self.place = np.full((0, _PLACE_LEVELS), -1, dtype=np.int32)
        self.alive = np.zeros(0, dtype=bool)
        self.dead = 0
        self.counts: dict[Kind, int] = {}
        self.postings: dict[Kind, np.ndarray] = {}
        self.keys_of: dict[str, tuple[Kind, ...]] = {}
        rows = sorted(self._records(None), key=lambda row: row[0].id)  # positions in id order at first
        since = self._since(self.marks)
        self.recent = {person.id: stamps for person, _attributes, stamps in rows if self._within(stamps, since)}
        keys: dict[str, list[Kind]] = {}
        for kind, key, record_id in self._key_rows(None):
            keys.setdefault(record_id, []).append((kind, key))
        for record_id, held in keys.items():
            self.keys_of[record_id] = tuple(held)
            for kk in held:
                self.counts[kk] = self.counts.get(kk, 0) + 1
        self._append(rows)

    # --- what it holds ----------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Every record of the type, matchable or not (the document frequencies' denominator)."""
        return max(len(self.known), 1)

    @property
    def size(self) -> int:
        return len(self.position)

    @property
    def _model(self):
        if self.record_type == "case":
            from cases.models import Case
            return Case
        from tracing.models import Trace
        return Trace

    def _marks(self) -> tuple:
        """What changes when a record of the type (or its tracing request) or any key row changes."""
        from tracing.models import TracingRequest
        model = self._model
        marks = [db.session.scalar(select(func.max(model.updated_at)))]
        if self.record_type == "trace":
            marks.append(db.session.scalar(select(func.max(TracingRequest.updated_at))))
        marks.append(db.session.scalar(select(func.max(RecordKey.id))))
        return tuple(marks)

    @staticmethod
    def _since(marks: tuple) -> tuple[datetime | None, ...]:
        """For each stamp column (the records', their tracing requests'), the time from which a
        change is read again: its newest stamp minus REFRESH_LAG (None: the table is empty)."""
        return tuple(None if mark is None else mark - REFRESH_LAG for mark in marks[:-1])

    @staticmethod
    def _within(stamps: tuple, since: tuple) -> bool:
        return any(s is not None and start is not None and s >= start for s, start in zip(stamps, since))

    def _records(self, ids: Iterable[str] | None) -> Iterator[tuple[Person, Attributes, tuple]]:
        """(person, attributes, stamps) of the matchable records (all of them, or of `ids`)."""
        from tracing.models import Trace, TracingRequest
        model, conditions = engine._eligible_filter(self.record_type)
        columns = [model.id, model.data, model.created_at, model.sex, model.age, model.location_code,
                   model.updated_at]
        if self.record_type == "trace":
            columns += [TracingRequest.data, TracingRequest.updated_at]
        query = select(*columns).where(*conditions)
        if self.record_type == "trace":
            query = query.join(TracingRequest, TracingRequest.id == Trace.tracing_request_id)
        for query in engine.by_ids(query, model.id, ids):
            for row in db.session.execute(query.execution_options(yield_per=2000)):
                record_id, data, created_at, sex, age, location_code, updated_at, *request = row
                if request:
                    person = engine.person_from("trace", record_id, data or {}, created_at, self._tags,
                                                request[0] or {}, self._request_tags)
                    stamps = (updated_at, request[1])
                else:
                    person = engine.person_from("case", record_id, data or {}, created_at, self._tags)
                    stamps = (updated_at,)
                yield person, engine.row_attributes(self.record_type, sex, age, created_at, location_code,
                                                    self.ancestors, person.core_token_count), stamps

    def _key_rows(self, ids: Iterable[str] | None) -> Iterator[tuple[str, str, str]]:
        rk = RecordKey.__table__.c
        query = select(rk.kind, rk.key, rk.record_id).where(rk.record_type == self.record_type,
                                                             rk.kind.in_(_KINDS))
        for query in engine.by_ids(query, rk.record_id, ids):
            yield from db.session.execute(query.execution_options(yield_per=20000))

    def _append(self, rows: list[tuple[Person, Attributes, tuple]]) -> None:
        """New positions for these matchable records (their keys already in `keys_of`)."""
        if not rows:
            return
        start = len(self.ids)
        sex, birth, estimated, names = [], [], [], []
        place = np.full((len(rows), _PLACE_LEVELS), -1, dtype=np.int32)
        new_postings: dict[Kind, list[int]] = {}
        for offset, (person, attributes, _stamps) in enumerate(rows):
            position = start + offset
            self.ids.append(person.id)
            self.position[person.id] = position
            self.persons[person.id] = person
            self.own_names[person.id] = engine.own_name_token(person)
            sex.append(_SEX_NUMBER[attributes.sex])
            birth.append(np.nan if attributes.birth_year is None else attributes.birth_year)
            estimated.append(attributes.estimated)
            names.append(min(attributes.names, 32767))
            for level, code in enumerate(attributes.place[:_PLACE_LEVELS]):
                place[offset, level] = self._place_number(code)
            for kk in set(self.keys_of.get(person.id, ())):
                new_postings.setdefault(kk, []).append(position)
        self.sex = np.concatenate([self.sex, np.array(sex, dtype=np.int8)])
        self.birth = np.concatenate([self.birth, np.array(birth, dtype=np.float64)])
        self.estimated = np.concatenate([self.estimated, np.array(estimated, dtype=bool)])
        self.names = np.concatenate([self.names, np.array(names, dtype=np.int16)])
        self.place = np.concatenate([self.place, place])
        self.alive = np.concatenate([self.alive, np.ones(len(rows), dtype=bool)])
        for kk, positions in new_postings.items():
            added = np.array(positions, dtype=np.int32)
            held = self.postings.get(kk)
            self.postings[kk] = added if held is None else np.concatenate([held, added])

    # --- keeping up to date -----------------------------------------------------------------

    def refresh(self, stamp) -> bool:
        """Bring the index up to date; False when it must be rebuilt instead (see the module)."""
        max_age = float(current_app.config.get("MATCHING_INDEX_MAX_AGE", DEFAULT_MAX_AGE))
        if stamp != self.stamp or time.monotonic() - self.built > max_age:
            return False
        marks = self._marks()
        if marks == self.marks:
            return True
        since = self._since(self.marks)
        if since[0] is None:
            return False  # there were no records: read them all
        window = self._window(since)
        self.recent = {record_id: stamps for record_id, stamps in self.recent.items()
                       if self._within(stamps, since)}
        changed = {record_id for record_id, stamps in window.items() if self.recent.get(record_id) != stamps}
        changed |= {record_id for record_id in self.recent if record_id not in window}
        if marks[-1] is not None and (self.marks[-1] is None or marks[-1] > self.marks[-1]):
            rk = RecordKey.__table__.c
            changed |= set(db.session.execute(select(rk.record_id).distinct().where(
                rk.record_type == self.record_type, rk.id > (self.marks[-1] or 0))).scalars())
        if len(changed) > max(REBUILD_MIN, REBUILD_SHARE * self.size):
            return False
        self._apply(changed)
        self.recent = window
        self.marks = marks
        return self.dead <= max(REBUILD_MIN, REBUILD_SHARE * self.size)

    def _window(self, since: tuple[datetime | None, ...]) -> dict[str, tuple]:
        """Stamps of every record (matchable or not) stamped at or after `since` (per column)."""
        from tracing.models import Trace, TracingRequest
        if self.record_type == "case":
            model = self._model
            return {record_id: (updated_at,) for record_id, updated_at in db.session.execute(
                select(model.id, model.updated_at).where(model.updated_at >= since[0]))}
        found = {}
        base = select(Trace.id, Trace.updated_at, TracingRequest.updated_at).join(
            TracingRequest, TracingRequest.id == Trace.tracing_request_id)
        conditions = [Trace.updated_at >= since[0]]
        if since[1] is not None:
            conditions.append(TracingRequest.updated_at >= since[1])
        for condition in conditions:
            for record_id, updated_at, request_updated_at in db.session.execute(base.where(condition)):
                found[record_id] = (updated_at, request_updated_at)
        return found

    def _apply(self, changed: set[str]) -> None:
        """Read these records again: drop what the index held of them, add what they are now."""
        if not changed:
            return
        model = self._model
        existing: set[str] = set()
        for query in engine.by_ids(select(model.id), model.id, changed):
            existing.update(db.session.execute(query).scalars())
        keys: dict[str, list[Kind]] = {}
        for kind, key, record_id in self._key_rows(changed):
            keys.setdefault(record_id, []).append((kind, key))
        for record_id in changed:
            position = self.position.pop(record_id, None)
            if position is not None:
                self.alive[position] = False
                self.dead += 1
                self.persons.pop(record_id, None)
                self.own_names.pop(record_id, None)
            for kk in self.keys_of.pop(record_id, ()):
                left = self.counts.get(kk, 0) - 1
                if left > 0:
                    self.counts[kk] = left
                else:
                    self.counts.pop(kk, None)
            if record_id in existing:
                self.known.add(record_id)
                held = self.keys_of[record_id] = tuple(keys.get(record_id, ()))
                for kk in held:
                    self.counts[kk] = self.counts.get(kk, 0) + 1
            else:
                self.known.discard(record_id)
        self._append(list(self._records(changed)))

    # --- ranking ------------------------------------------------------------------------------

    def _place_number(self, code: str) -> int:
        number = self._place_numbers.get(code)
        if number is None:
            number = self._place_numbers[code] = len(self._place_numbers)
        return number

    def ancestors(self, code: str) -> list[str]:
        """Location ancestors, memoised for both indexes (a case is compared with traces'
        places and the other way round) until either is rebuilt."""
        found = _PLACES.get(code)
        if found is None:
            from forms.definitions import location_ancestors
            found = _PLACES[code] = location_ancestors(code)
        return found

    def candidates(self, person: Person, limit: int = FIRST_STAGE_KEEP) -> list[tuple[str, float]]:
        """Both stages, as `engine.ranked_candidates` gives them."""
        pool = self.first_stage(person, max(limit, FIRST_STAGE_POOL))
        return engine.rerank_by_own_name(pool, engine.own_name_token(person), self.own_names, limit)

    def first_stage(self, person: Person, limit: int) -> list[tuple[str, float]]:
        """`engine.rank_candidates` over the whole index, with arrays: the same ids, scores and order.

        Only the positions the query's posting lists hold are looked at (a few thousand of the
        index's records): their sorted union, the place of each list's positions in it, and
        every score over that union, token by token in the same order (the same floating-point
        sums as `rank_candidates`). The one array of the index's size, `slot`, is neither filled
        nor scanned: written and read at those positions only."""
        query = engine.person_attributes(person, self.ancestors)
        total = self.total
        query_sex = _SEX_NUMBER[query.sex]
        opposite = _SEX_NUMBER[engine._OPPOSITE_SEX[query.sex]] if query.sex else -1
        counted: set[frozenset[str]] = set()  # a name written twice covers one name
        parts: list[np.ndarray] = []  # the positions of each posting list read (a common key's filtered)
        part_of: dict[Kind, int] = {}  # a list read by several tokens is read once
        tokens: list[tuple[list[tuple[int, float]], list[int] | None]] = []  # per token: (part, value), own-name parts
        for token in engine.blocking_tokens(person):
            own = None if token.relative or token.keys in counted else []
            if own is not None:
                counted.add(token.keys)
            read: list[tuple[int, float]] = []
            for kind, key, weight in engine.lookups(token):
                kk = (kind, key)
                part = part_of.get(kk)
                count = self.counts.get(kk, 0) or 1
                if part is None:
                    ids = self.postings.get(kk)
                    if ids is None:
                        continue
                    if engine._is_common(count, total):
                        ids = ids.compress(self._compatible(query, ids, opposite))
                    part = part_of[kk] = len(parts)
                    parts.append(ids)
                read.append((part, math.log((total + 1) / count) * weight))  # as rank_candidates
                if own is not None and kind == NAME_KIND:
                    own.append(part)
            tokens.append((read, own))
        if not parts:
            return []
        # The union of the positions read (each list holds a position once), and where in it
        # each list's positions are: `slot` is written at the union's positions and read only there.
        held = np.sort(np.concatenate(parts))
        first = np.empty(len(held), dtype=bool)
        first[:1] = True
        np.not_equal(held[1:], held[:-1], out=first[1:])
        union = held.compress(first).astype(np.intp)  # int32 positions would be converted by every gather
        size = len(union)
        slot = np.empty(len(self.ids), dtype=np.intp)
        slot[union] = np.arange(size)
        places = [slot.take(ids) for ids in parts]
        score = np.zeros(size, dtype=np.float64)
        touched = np.zeros(size, dtype=bool)
        covered = np.zeros(size, dtype=np.int16)  # own-name tokens of the query found among a record's own names
        best = np.empty(size, dtype=np.float64)
        for read, own in tokens:
            best.fill(-1.0)  # as rank_candidates: a value must beat -1
            for part, value in read:
                np.maximum.at(best, places[part], value)
            if own is not None:
                mine = np.zeros(size, dtype=bool)
                for part in own:
                    mine[places[part]] = True
                covered += mine
            beaten = best > -1.0
            touched |= beaten
            # The records that hold the token get their value added, the others -0.0 (-1.0 * 0),
            # which leaves any float as it is: the same sums as adding to the holders only.
            np.multiply(best, beaten, out=best)
            score += best
        kept = np.flatnonzero(touched & self.alive.take(union))
        if not len(kept):
            return []
        found = union.take(kept)
        values = score.take(kept)  # a copy, adjusted in place below: the same operations as `rank_candidates`
        if query_sex:
            other = self.sex.take(found)
            values[np.flatnonzero((other != 0) & (other != query_sex))] -= SEX_PENALTY
        if query.birth_year is not None:
            difference = np.abs(query.birth_year - self.birth.take(found))  # NaN: unknown, compares False
            if query.estimated:
                gap = difference - AGE_TOLERANCE_ESTIMATED
            else:
                tolerance = np.array([AGE_TOLERANCE, AGE_TOLERANCE_ESTIMATED])
                gap = difference - tolerance.take(self.estimated.take(found).view(np.int8))
            over = gap > 0
            far = np.flatnonzero(over)
            values[far] -= np.minimum(AGE_PENALTY_MAX, gap.take(far) * AGE_PENALTY_PER_YEAR)
            values[np.flatnonzero(~over & (difference <= 1.0))] += AGE_CLOSE_BONUS
        if query.place:
            values = values + self._place_bonus(query.place, found)
        names = self.names.take(found)
        values[np.flatnonzero((names > 0) & (covered.take(kept) >= names))] += COVER_BONUS
        if len(found) > limit:
            cut = np.partition(-values, limit - 1)[limit - 1]  # the limit-th best score, negated
            keep = -values <= cut  # ties at the cut stay: the order below decides among them
            found, values = found.compress(keep), values.compress(keep)
        order = np.argsort(-values, kind="stable")  # nearly sorted already: the sort below compares little
        ranked = sorted(zip(map(self.ids.__getitem__, found.take(order).tolist()), values.take(order).tolist()),
                        key=lambda item: (-item[1], item[0]))
        return ranked[:limit]

    def _compatible(self, query: Attributes, ids: np.ndarray, opposite: int) -> np.ndarray:
        """The second key of a common key: compatible sex and birth year (`engine._compatible`)."""
        keep = self.sex.take(ids) != opposite
        if query.birth_year is not None:
            gap = np.abs(self.birth.take(ids) - query.birth_year)  # NaN (unknown) compares False
            keep |= gap <= SEX_SLIP_YEARS
            keep &= ~(gap > COMMON_MAX_YEARS)
        return keep

    def _place_bonus(self, query_place: tuple[str, ...], found: np.ndarray) -> np.ndarray:
        """`engine._place_bonus` for every found position: the best level a code is shared at
        (per level of the records' places, what each place number shares with the query; the
        extra last entry, never written, is read for "no place", -1)."""
        worth = np.zeros((_PLACE_LEVELS, len(self._place_numbers) + 1), dtype=np.float64)
        for i, code in enumerate(query_place[:_PLACE_LEVELS]):
            number = self._place_numbers.get(code)
            if number is None:
                continue
            for j in range(_PLACE_LEVELS):
                worth[j, number] = max(worth[j, number], PLACE_BONUS.get(max(i, j), 0.0))
        places = self.place.take(found, axis=0)
        bonus = worth[0].take(places[:, 0])
        for j in range(1, _PLACE_LEVELS):
            np.maximum(bonus, worth[j].take(places[:, j]), out=bonus)
        return bonus

    def frequencies(self, person: Person) -> dict[str, float]:
        """As engine.key_frequencies(engine.person_keys(person), record_type)."""
        found = {key: engine._smoothed_share(self.counts[(NAME_KIND, key)], self.total)
                 for key in engine.person_keys(person) if (NAME_KIND, key) in self.counts}
        found[""] = engine._smoothed_share(0, self.total)
        return found


_INDEXES: dict[str, RecordIndex] = {}
_PLACES: dict[str, list[str]] = {}  # location code -> its ancestors, nearest first


def _stamp(record_type: str) -> tuple:
    """What makes an index unusable as it is: another database, consent rule or set of matching tags."""
    tags = engine._tagged(record_type)
    request_tags = engine._tagged("tracing_request") if record_type == "trace" else {}
    return (str(db.engine.url), current_app.config.get("MATCHING_REQUIRE_CONSENT", True),
            tuple(sorted((tag, tuple(keys)) for tag, keys in tags.items())),
            tuple(sorted((tag, tuple(keys)) for tag, keys in request_tags.items())))


def record_index(record_type: str) -> RecordIndex:
    """This process's index of `record_type` records, brought up to date (or rebuilt)."""
    stamp = _stamp(record_type)
    index = _INDEXES.get(record_type)
    if index is None or not index.refresh(stamp):
        _INDEXES.pop(record_type, None)  # the old one may be collected while the new one is built
        _PLACES.clear()  # the location hierarchy is read again with the records
        index = _INDEXES[record_type] = RecordIndex(record_type, stamp)
        # Millions of long-lived objects made every full collection of the cyclic garbage
        # collector scan them all: matching one case against 100,000 traces took 66 ms instead
        # of 30. Garbage first, then what is alive now is left out of later collections (an
        # index dropped later is still freed: it holds no reference cycles).
        gc.collect()
        gc.freeze()
    return index


def held_index(record_type: str) -> RecordIndex | None:
    """The index this process holds, as it is (a forked process of a full re-match uses its parent's)."""
    return _INDEXES.get(record_type)


def forget_indexes() -> None:
    """Drop this process's indexes (a benchmark that measures building them, a test database reset)."""
    _INDEXES.clear()
    _PLACES.clear()
