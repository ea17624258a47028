"""The naive baseline the matching engine is compared with (see bench/README.md).

Every trace is compared with every case on one string, the concatenated full name
(``name_first name_middle name_last``, lower-cased with punctuation removed by
``rapidfuzz.utils.default_process``), with ``rapidfuzz.fuzz.ratio``. Pairs scoring at or
above a threshold are proposed. Cases without consent for tracing are left out, as the
engine leaves them out.

Two thresholds are tuned **on the evaluated data itself** (an oracle the engine does not
get, so the baseline's numbers are optimistic):

* ``likely + possible``: the lowest threshold that keeps the average number of
  proposals per trace at or below ``MAX_PROPOSALS_PER_TRACE`` (the engine's target), so
  the baseline's recall is measured with the same review budget;
* ``likely``: the threshold with the best F1 at or above that one.

Above ``full_limit`` compared pairs (default 2e8, i.e. beyond about 14,000 x 14,000) a
trace is only compared with the cases whose given name starts with the same letter: the
first-letter shortcut the benchmark brief allows at 100,000 x 100,000. It loses every
true pair whose given names start differently (Cabdi / Abdi, Xasan / Hassan, swapped
names, Arabic script against Latin); the loss is reported as the baseline's pair
completeness.

Scores are counted in half-point bins from ``floor`` (default 60) up: per trace a small
histogram, so any threshold can be evaluated afterwards without keeping pairs. Memory is
O(cases + traces); the comparisons run in ``workers`` forked processes.
"""
from __future__ import annotations

import multiprocessing
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process, utils

MAX_PROPOSALS_PER_TRACE = 3.0
DEFAULT_FLOOR = 60.0
DEFAULT_FULL_LIMIT = 200_000_000
NAME_KEYS = ("name_first", "name_middle", "name_last")


def full_name(data: dict) -> str:
    """The baseline's view of a record: its name fields joined, normalised by rapidfuzz."""
    return utils.default_process(" ".join(str(data.get(k) or "") for k in NAME_KEYS))


def first_letter(data: dict) -> str:
    given = utils.default_process(str(data.get("name_first") or ""))
    return given[:1]


@dataclass
class TraceScores:
    """What the baseline found for one trace (scores in half-point bins from the floor)."""

    trace_id: str
    true_bin: int | None  # bin of the true case's score (None: below floor, not compared, or no true case)
    true_in_block: bool  # the true case was among the compared cases (first-letter shortcut)
    higher: int  # other cases scoring strictly above the true case
    tied: int  # other cases with exactly the true case's score
    bins: array  # count of compared cases per bin (true case included)


@dataclass
class BaselineRun:
    floor: float
    blocking: str  # "all pairs" or "first letter of the given name"
    pairs_compared: int
    seconds: float
    traces: list[TraceScores] = field(default_factory=list)

    def bin_of(self, threshold: float) -> int:
        return max(0, int(round((threshold - self.floor) * 2)))

    def threshold_of(self, index: int) -> float:
        return self.floor + index / 2


# Shared with forked workers (read-only after fork).
_CASE_NAMES: list[str] = []
_CASE_IDS: list[str] = []
_BLOCKS: dict[str, tuple[list[str], list[int]]] = {}
_FLOOR = DEFAULT_FLOOR
_USE_BLOCKS = False


def _score_chunk(chunk: Sequence[tuple[str, str, str, str | None]]) -> tuple[list[TraceScores], int]:
    nbins = int((100 - _FLOOR) * 2) + 1
    out: list[TraceScores] = []
    compared = 0
    for trace_id, name, letter, true_case in chunk:
        if _USE_BLOCKS:
            names, indices = _BLOCKS.get(letter, ([], []))
        else:
            names, indices = _CASE_NAMES, None
        compared += len(names)
        bins = array("H", bytes(2 * nbins))
        true_bin = None
        true_in_block = False
        scores: list[int] = []
        true_score = None
        if name and names:
            for _choice, score, index in process.extract(name, names, scorer=fuzz.ratio, score_cutoff=_FLOOR,
                                                        limit=None):
                b = min(int((score - _FLOOR) * 2), nbins - 1)
                if bins[b] < 65535:
                    bins[b] += 1
                case_id = _CASE_IDS[indices[index] if indices is not None else index]
                if case_id == true_case:
                    true_score = score
                else:
                    scores.append(score)
        if true_case is not None:
            if _USE_BLOCKS:
                true_in_block = true_case in _BLOCK_MEMBERS.get(letter, ())
            else:
                true_in_block = true_case in _CASE_SET
        higher = tied = 0
        if true_score is not None:
            true_bin = min(int((true_score - _FLOOR) * 2), nbins - 1)
            higher = sum(1 for s in scores if s > true_score)
            tied = sum(1 for s in scores if s == true_score)
        out.append(TraceScores(trace_id, true_bin, true_in_block, higher, tied, bins))
    return out, compared


_BLOCK_MEMBERS: dict[str, frozenset[str]] = {}
_CASE_SET: frozenset[str] = frozenset()


def run_baseline(cases: Iterable[tuple[str, dict]], traces: Iterable[tuple[str, dict]],
                 truth: dict[str, str | None], *, floor: float = DEFAULT_FLOOR,
                 full_limit: int = DEFAULT_FULL_LIMIT, workers: int = 2, chunk: int = 500) -> BaselineRun:
    """Score every trace against the cases. `cases` yields (id, data) of the cases that
    may be proposed (consented, open); `traces` yields (id, data); `truth` maps a trace
    id to its true case id (or None)."""
    global _CASE_NAMES, _CASE_IDS, _BLOCKS, _FLOOR, _USE_BLOCKS, _BLOCK_MEMBERS, _CASE_SET
    started = time.perf_counter()
    case_ids: list[str] = []
    case_names: list[str] = []
    blocks: dict[str, tuple[list[str], list[int]]] = {}
    for case_id, data in cases:
        name = full_name(data)
        index = len(case_ids)
        case_ids.append(case_id)
        case_names.append(name)
        names, indices = blocks.setdefault(first_letter(data), ([], []))
        names.append(name)
        indices.append(index)
    trace_rows = [(trace_id, full_name(data), first_letter(data), truth.get(trace_id)) for trace_id, data in traces]
    use_blocks = len(case_ids) * len(trace_rows) > full_limit
    _CASE_NAMES, _CASE_IDS, _BLOCKS, _FLOOR, _USE_BLOCKS = case_names, case_ids, blocks, float(floor), use_blocks
    if use_blocks:
        _BLOCK_MEMBERS = {letter: frozenset(case_ids[i] for i in indices) for letter, (_n, indices) in blocks.items()}
        _CASE_SET = frozenset()
    else:
        _CASE_SET = frozenset(case_ids)
        _BLOCK_MEMBERS = {}
    chunks = [trace_rows[i:i + chunk] for i in range(0, len(trace_rows), chunk)]
    results: list[TraceScores] = []
    compared = 0
    if workers > 1 and len(chunks) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            for scored, n in pool.imap(_score_chunk, chunks):
                results += scored
                compared += n
    else:
        for part in chunks:
            scored, n = _score_chunk(part)
            results += scored
            compared += n
    run = BaselineRun(float(floor), "first letter of the given name" if use_blocks else "all pairs", compared,
                      time.perf_counter() - started, results)
    _CASE_NAMES, _CASE_IDS, _BLOCKS, _BLOCK_MEMBERS, _CASE_SET = [], [], {}, {}, frozenset()
    return run


@dataclass(frozen=True)
class Thresholds:
    likely: float
    possible: float


def choose_thresholds(run: BaselineRun, expected: dict[str, str], n_traces: int) -> Thresholds:
    """The review budget first: `possible` is the lowest threshold that keeps the average
    number of proposals per trace at or below MAX_PROPOSALS_PER_TRACE; `likely` is the
    threshold with the best F1 among those at or above it.

    `expected` maps the traces that have a proposable true case to that case."""
    nbins = int((100 - run.floor) * 2) + 1
    all_pairs = [0] * nbins
    true_pairs = [0] * nbins
    for t in run.traces:
        for i, n in enumerate(t.bins):
            all_pairs[i] += n
        if t.true_bin is not None and t.trace_id in expected:
            true_pairs[t.true_bin] += 1
    # Suffix sums: pairs at or above each bin.
    at_least_all = list(reversed(list(_cumulative(reversed(all_pairs)))))
    at_least_true = list(reversed(list(_cumulative(reversed(true_pairs)))))
    total_expected = max(len(expected), 1)
    possible = next((i for i in range(nbins) if at_least_all[i] <= MAX_PROPOSALS_PER_TRACE * max(n_traces, 1)),
                    nbins - 1)
    best_f1, best = -1.0, possible
    for i in range(possible, nbins):
        proposed, tp = at_least_all[i], at_least_true[i]
        if not proposed:
            continue
        precision, recall = tp / proposed, tp / total_expected
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_f1 + 1e-12:
            best_f1, best = f1, i
    return Thresholds(run.threshold_of(best), run.threshold_of(possible))


def _cumulative(values: Iterable[int]) -> Iterable[int]:
    total = 0
    for v in values:
        total += v
        yield total
