"""Benchmark of the matching name keys (run by hand, not by the test suite).

    .venv/bin/python bench/name_keys.py            # from the repository root

Prints, as Markdown tables:

Sections 1-3 are printed once per held-out file: matching/data/heldout_variant_pairs.tsv,
matching/data/heldout_variant_pairs_2.tsv, matching/data/heldout_variant_pairs_3.tsv and
matching/data/heldout_variant_pairs_4.tsv (all four looked at since, so now development sets)
and matching/data/heldout_variant_pairs_5.tsv (the sealed fifth set: for it the per-group table
and the list of failing pairs are not printed unless ``--show-sealed-failures`` is given); a
side-by-side summary of all five follows.

1. agreement on the HELD-OUT same-name pairs:
   how often two spellings of one name get the same code, for our ``name_key`` and for
   jellyfish's soundex, metaphone, NYSIIS and match-rating codex. Baselines get the same
   input as our key: tokens after ``name_tokens`` (particles handled, compounds joined),
   Arabic script transliterated by ``matching.names.transliterate``, letters a-z only;
2. Arabic script against Latin on the held-out "script:*" rows: ``name_key``,
   ``skeleton_key``, and the skeleton when the transliteration is done by the
   ``anyascii`` or ``unidecode`` packages instead of ours (if they are importable);
3. collision rates on DISTINCT names: pairs of different classes of the curated variant
   table (one canonical spelling each, and every spelling pair across classes), and pairs
   of different held-out groups, for each single code and for our blocking key sets
   (``name_keys``: two names collide when they share any key); plus our colliding pairs;
4. agreement inside the curated table's classes (the development set the rules were
   written against -- not a fair test, shown for contrast);
5. speed: keys per second, cold (caches cleared) and warm, for ours and jellyfish, and
   ``compare_names`` pairs per second.

The held-out file is read here only; matching/ code never reads it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jellyfish  # noqa: E402

from matching import comparators, names  # noqa: E402

HELDOUT = ROOT / "matching" / "data" / "heldout_variant_pairs.tsv"
# Second set: collected before the key rules of the round that added it were changed, sealed
# until that round ended (its failures were looked at since: now a development set too).
HELDOUT_2 = ROOT / "matching" / "data" / "heldout_variant_pairs_2.tsv"
# Third set: collected before the key rules of the round that added it were changed, sealed
# until that round ended; its failures were looked at in the next round (a development set now).
HELDOUT_3 = ROOT / "matching" / "data" / "heldout_variant_pairs_3.tsv"
# Fourth set: collected before the key rules of the round that added it were changed, sealed
# until that round ended; its failures have been looked at while rules were tuned since (a
# development set now).
HELDOUT_4 = ROOT / "matching" / "data" / "heldout_variant_pairs_4.tsv"
# Fifth, sealed test set: collected with the rules as they stand, measured once, and not used
# to change any rule (the first four files are development sets).
HELDOUT_5 = ROOT / "matching" / "data" / "heldout_variant_pairs_5.tsv"
# Files whose failing pairs are not printed (so that nobody tunes rules on them).
SEALED = frozenset({HELDOUT_5.name})


def read_heldout(path: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        a, b, group, langs, _sources = line.split("\t")
        rows.append((a, b, group, langs))
    return rows


def latin_letters(text: str) -> str:
    """Input for the baselines: our tokens, transliterated, joined, a-z only."""
    tokens = names.name_tokens(text)
    joined = "".join(names.transliterate(t) if names.has_arabic_script(t) else t for t in tokens)
    return "".join(ch for ch in joined if "a" <= ch <= "z")


def our_key(text: str) -> str:
    return " ".join(names.name_key(t) for t in names.name_tokens(text))


def our_skeleton(text: str) -> str:
    return " ".join(names.skeleton_key(t) for t in names.name_tokens(text))


BASELINES: dict[str, Callable[[str], str]] = {
    "soundex": jellyfish.soundex,
    "metaphone": jellyfish.metaphone,
    "nysiis": jellyfish.nysiis,
    "match_rating_codex": jellyfish.match_rating_codex,
}


def encoders() -> dict[str, Callable[[str], str]]:
    enc: dict[str, Callable[[str], str]] = {"name_key (ours)": our_key}
    for label, fn in BASELINES.items():
        enc[label] = lambda text, fn=fn: fn(latin_letters(text)) if latin_letters(text) else ""
    return enc


def agreement(pairs: list[tuple[str, str]], fn: Callable[[str], str]) -> float:
    if not pairs:
        return float("nan")
    return sum(1 for a, b in pairs if fn(a) and fn(a) == fn(b)) / len(pairs)


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def section_heldout(rows: list[tuple[str, str, str, str]], sealed: bool = False) -> None:
    latin = [(a, b) for a, b, g, _ in rows if not g.startswith("script:")]
    script = [(a, b) for a, b, g, _ in rows if g.startswith("script:")]
    print(f"## 1. Held-out same-name pairs ({len(latin)} Latin-Latin, {len(script)} Arabic-Latin)\n")
    body = []
    for label, fn in encoders().items():
        body.append([label, pct(agreement(latin, fn)), pct(agreement(script, fn))])
    print(table(["code", "agreement Latin-Latin", "agreement Arabic script-Latin"], body))
    # What blocking and comparison see: these also use the curated variant table, which
    # was written by hand by someone who had read the same public sources, so they are
    # NOT an independent test (the rows above are).
    def blocking(a: str, b: str) -> bool:
        return bool(names.name_keys(a) & names.name_keys(b))

    def compared(levels: tuple[str, ...]) -> Callable[[str, str], bool]:
        return lambda a, b: comparators.compare_names(a, b).level in levels

    strong = ("exact", "variant", "phonetic")
    weak = (*strong, "fuzzy_high", "fuzzy_low")
    print("\nWith the curated table (not independent of the sources, see module doc):\n")
    print(
        table(
            ["method", "Latin-Latin", "Arabic script-Latin"],
            [
                [
                    label,
                    pct(sum(fn(a, b) for a, b in latin) / len(latin)),
                    pct(sum(fn(a, b) for a, b in script) / len(script)),
                ]
                for label, fn in (
                    ("name_keys overlap (blocking keys incl. ~skeletons)", blocking),
                    ("compare_names level exact/variant/phonetic", compared(strong)),
                    ("compare_names level fuzzy_low or better", compared(weak)),
                )
            ],
        )
    )
    if sealed:
        print(
            "\nSealed file: the per-group table and the failing pairs are not printed"
            " (--show-sealed-failures prints them, once the file is no longer sealed)."
        )
        return
    # Per group, and our failures, so a reader can judge them.
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for a, b, g, _ in rows:
        if not g.startswith("script:"):
            groups[g].append((a, b))
    print("\nPer name group (ours):\n")
    print(
        table(
            ["group", "pairs", "name_key", "soundex", "metaphone"],
            [
                [
                    g,
                    str(len(p)),
                    pct(agreement(p, our_key)),
                    pct(agreement(p, encoders()["soundex"])),
                    pct(agreement(p, encoders()["metaphone"])),
                ]
                for g, p in sorted(groups.items(), key=lambda kv: -len(kv[1]))
            ],
        )
    )
    fails = [(a, b, our_key(a), our_key(b)) for a, b in latin if our_key(a) != our_key(b)]
    print(f"\nOur Latin-Latin disagreements ({len(fails)}):")
    print("; ".join(f"{a}={ka} / {b}={kb}" for a, b, ka, kb in fails))


def section_script(rows: list[tuple[str, str, str, str]]) -> None:
    script = [(a, b) for a, b, g, _ in rows if g.startswith("script:")]
    print(f"\n## 2. Arabic script against Latin ({len(script)} pairs)\n")
    body = [
        ["name_key (ours, our transliteration)", pct(agreement(script, our_key))],
        ["skeleton_key (ours, our transliteration)", pct(agreement(script, our_skeleton))],
        [
            "canonical_name or skeleton (what compare_tokens uses)",
            pct(
                sum(
                    1
                    for a, b in script
                    if comparators.compare_names(a, b).level
                    in ("exact", "variant", "phonetic")
                )
                / len(script)
            ),
        ],
    ]
    for module_name in ("anyascii", "unidecode"):
        fn = _external_transliterator(module_name)
        if fn is None:
            body.append([f"skeleton via {module_name}", "not installed"])
            continue

        def skel(text: str, fn: Callable[[str], str] = fn) -> str:
            tokens = names.name_tokens(text)
            return " ".join(
                names.skeleton_key(fn(t).lower()) if names.has_arabic_script(t) else names.skeleton_key(t)
                for t in tokens
            )

        body.append([f"skeleton via {module_name} transliteration", pct(agreement(script, skel))])
    print(table(["method", "agreement"], body))


def _external_transliterator(module_name: str) -> Callable[[str], str] | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, module_name) if hasattr(module, module_name) else module.unidecode


def table_classes() -> dict[str, list[str]]:
    classes: dict[str, list[str]] = defaultdict(list)
    for spelling, canonical in names.variant_table().items():
        classes[canonical].append(spelling)
    return {c: sorted(v, key=lambda s: (s != c, s)) for c, v in classes.items()}


def collisions(groups: dict[str, list[str]], fn: Callable[[str], str]) -> tuple[float, float, list[str]]:
    """(canonical-pair collision rate, spelling-pair collision rate, example pairs)."""
    heads = [(g, g if g in spellings else spellings[0]) for g, spellings in groups.items()]
    codes = {g: fn(s) for g, s in heads}
    pairs = list(itertools.combinations(heads, 2))
    canon_hits = [(g1, g2) for (g1, _), (g2, _) in pairs if codes[g1] and codes[g1] == codes[g2]]
    by_code: dict[str, Counter[str]] = defaultdict(Counter)
    total_spellings = 0
    for g, spellings in groups.items():
        for s in spellings:
            code = fn(s)
            if code:
                by_code[code][g] += 1
                total_spellings += 1
    same_code_pairs = 0
    for counter in by_code.values():
        counts = list(counter.values())
        same_code_pairs += (sum(counts) ** 2 - sum(c * c for c in counts)) // 2
    all_pairs = 0
    sizes = [len(v) for v in groups.values()]
    all_pairs = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    examples = [f"{g1}/{g2}" for g1, g2 in canon_hits]
    return len(canon_hits) / len(pairs), same_code_pairs / all_pairs, examples


def keyset_collisions(groups: dict[str, list[str]]) -> tuple[float, float]:
    """Like ``collisions`` but for the blocking keys: two names collide when their
    ``name_keys`` sets share any key (canonical keys, skeletons and their readings).
    Returns (headword-pair rate, spelling-pair rate)."""
    heads = {g: (g if g in v else v[0]) for g, v in groups.items()}
    head_keys = {g: names.name_keys(s) for g, s in heads.items()}
    by_key: dict[str, set[str]] = defaultdict(set)
    for g, keys in head_keys.items():
        for key in keys:
            by_key[key].add(g)
    head_hits = sum(len(set().union(*(by_key[k] for k in keys)) - {g}) for g, keys in head_keys.items())
    n = len(groups)
    spellings = [(g, s) for g, v in groups.items() for s in v]
    spelling_keys = [names.name_keys(s) for _, s in spellings]
    by_key_i: dict[str, set[int]] = defaultdict(set)
    for i, keys in enumerate(spelling_keys):
        for key in keys:
            by_key_i[key].add(i)
    spelling_hits = 0
    for i, keys in enumerate(spelling_keys):
        near = set().union(*(by_key_i[k] for k in keys)) if keys else set()
        spelling_hits += sum(1 for j in near if j > i and spellings[j][0] != spellings[i][0])
    sizes = [len(v) for v in groups.values()]
    all_pairs = (sum(sizes) ** 2 - sum(x * x for x in sizes)) // 2
    return head_hits / 2 / (n * (n - 1) / 2), spelling_hits / all_pairs


def section_collisions(rows: list[tuple[str, str, str, str]]) -> None:
    print("\n## 3. Collisions between DIFFERENT names (lower is better)\n")
    classes = {c: v for c, v in table_classes().items() if not names.has_arabic_script(c)}
    classes = {c: [s for s in v if not names.has_arabic_script(s)] for c, v in classes.items()}
    held: dict[str, list[str]] = defaultdict(list)
    for a, b, g, _ in rows:
        if g.startswith("script:"):
            continue
        for s in (a, b):
            if s not in held[g]:
                held[g].append(s)
    body = []
    examples = {}
    for label, fn in encoders().items():
        c1, s1, ex = collisions(classes, fn)
        c2, s2, _ = collisions(held, fn)
        body.append([label, pct(c1), pct(s1), pct(c2), pct(s2)])
        examples[label] = ex
    k1, t1 = keyset_collisions(classes)
    k2, t2 = keyset_collisions(held)
    body.append(["name_keys sets share a key (ours, blocking)", pct(k1), pct(t1), pct(k2), pct(t2)])
    n_cls = len(classes)
    print(
        table(
            [
                "code",
                f"table: canonical pairs ({n_cls * (n_cls - 1) // 2})",
                "table: all spelling pairs across classes",
                f"held-out: headword pairs ({len(held) * (len(held) - 1) // 2})",
                "held-out: spelling pairs across groups",
            ],
            body,
        )
    )
    ours = examples["name_key (ours)"]
    print(f"\nOur colliding canonical pairs in the table ({len(ours)}): " + ", ".join(ours))
    print(
        "\nNote: compare_tokens does not call these 'phonetic': when the curated table knows both"
        " names as different classes (Mohamed/Mahmoud, Karim/Karima) it reports 'different'."
    )


def section_dev() -> None:
    print("\n## 4. Inside the curated table's classes (development data, for contrast)\n")
    classes = {c: [s for s in v if not names.has_arabic_script(s)] for c, v in table_classes().items()}
    pairs = [(c, s) for c, v in classes.items() for s in v if s != c and not names.has_arabic_script(c)]
    body = [[label, pct(agreement(pairs, fn))] for label, fn in encoders().items()]
    print(table([f"code (canonical x spelling, {len(pairs)} pairs)", "agreement"], body))


def _clear_caches() -> None:
    for fn in (
        names.normalize_name,
        names._transliterate,  # noqa: SLF001
        names._key_parts,  # noqa: SLF001
        names._tokens_cached,  # noqa: SLF001
        names.canonical_name,
        names._name_keys_cached,  # noqa: SLF001
        names._alternate_skeletons,  # noqa: SLF001
        comparators.compare_tokens,
        comparators._info,  # noqa: SLF001
        comparators._shape,  # noqa: SLF001
    ):
        fn.cache_clear()


def section_speed(rows: list[tuple[str, str, str, str]]) -> None:
    print("\n## 5. Speed (one core)\n")
    rng = random.Random(5)
    base = sorted({t for a, b, *_ in rows for t in names.name_tokens(a) + names.name_tokens(b)})
    base += sorted({s for v in table_classes().values() for s in v})
    # Distinct tokens: real spellings plus suffixed copies, so the cold run never hits a cache.
    letters = "abdhiklmnorsuy"
    tokens = [t + "".join(rng.choice(letters) for _ in range(3)) for t in base for _ in range(4)]
    tokens = list(dict.fromkeys(tokens))
    body = []
    _clear_caches()
    t0 = time.perf_counter()
    for t in tokens:
        names.name_key(t)
    cold = len(tokens) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(5):
        for t in tokens:
            names.name_key(t)
    warm = 5 * len(tokens) / (time.perf_counter() - t0)
    body.append(["name_key (ours)", f"{cold:,.0f}", f"{warm:,.0f}"])
    latin_tokens = [t for t in tokens if not names.has_arabic_script(t)]
    for label, fn in BASELINES.items():
        t0 = time.perf_counter()
        for t in latin_tokens:
            fn(t)
        rate = len(latin_tokens) / (time.perf_counter() - t0)
        body.append([f"jellyfish.{label}", f"{rate:,.0f}", "(no cache)"])
    print(table([f"code ({len(tokens):,} distinct tokens)", "keys/s cold", "keys/s warm (cached)"], body))

    full_names = [" ".join(rng.sample(base, 3)) for _ in range(20_000)]
    _clear_caches()
    t0 = time.perf_counter()
    for n in full_names:
        names.name_keys(n)
    rate = len(full_names) / (time.perf_counter() - t0)
    pairs = [(rng.choice(full_names), rng.choice(full_names)) for _ in range(20_000)]
    timings = []
    t0 = time.perf_counter()
    for a, b in pairs:
        s = time.perf_counter()
        comparators.compare_names(a, b)
        timings.append(time.perf_counter() - s)
    cmp_rate = len(pairs) / (time.perf_counter() - t0)
    # One record against a block of candidates whose names come from a skewed pool, as
    # in real data (many Mohameds): the per-record cost the scorer will pay.
    pool = base[:400]
    weights = [1 / (rank + 1) for rank in range(len(pool))]
    records = [" ".join(rng.choices(pool, weights, k=3)) for _ in range(2_000)]
    _clear_caches()
    t0 = time.perf_counter()
    per_record = []
    for probe in records[:200]:
        s = time.perf_counter()
        for candidate in records[200:700]:
            comparators.compare_names(probe, candidate)
        per_record.append(time.perf_counter() - s)
    block_rate = 200 * 500 / (time.perf_counter() - t0)
    print(
        f"\nOne record against 500 candidates (names from a Zipf-like pool of 400 spellings, "
        f"caches cold at start): median {1e3 * statistics.median(per_record):.1f} ms per record, "
        f"{block_rate:,.0f} comparisons/s."
    )
    print(
        f"\nname_keys on 3-token names, cold: {rate:,.0f} names/s. "
        f"compare_names on random 3-token pairs: {cmp_rate:,.0f} pairs/s "
        f"(median {1e6 * statistics.median(timings):.0f} µs, "
        f"p99 {1e6 * sorted(timings)[int(0.99 * len(timings))]:.0f} µs)."
    )


def summary(files: list[tuple[str, list[tuple[str, str, str, str]]]]) -> None:
    """One table with the headline numbers of every held-out file, side by side."""
    print("\n## Summary: headline numbers per held-out file\n")
    header = ["measure"] + [label for label, _ in files]
    body: list[list[str]] = []
    split = []
    for _, rows in files:
        latin = [(a, b) for a, b, g, _ in rows if not g.startswith("script:")]
        script = [(a, b) for a, b, g, _ in rows if g.startswith("script:")]
        split.append((rows, latin, script))
    body.append(["Latin-Latin pairs / Arabic-Latin pairs"] + [f"{len(l)} / {len(s)}" for _, l, s in split])
    for label, fn in encoders().items():
        body.append([f"{label}: Latin-Latin"] + [pct(agreement(l, fn)) for _, l, _ in split])
    body.append(["name_key (ours): Arabic-Latin"] + [pct(agreement(s, our_key)) for _, _, s in split])

    def overlap(pairs: list[tuple[str, str]]) -> str:
        if not pairs:
            return "n/a"
        return pct(sum(bool(names.name_keys(a) & names.name_keys(b)) for a, b in pairs) / len(pairs))

    body.append(["name_keys overlap: Latin-Latin"] + [overlap(l) for _, l, _ in split])
    body.append(["name_keys overlap: Arabic-Latin"] + [overlap(s) for _, _, s in split])
    for label, fn in encoders().items():
        cells = []
        for rows, _, _ in split:
            held: dict[str, list[str]] = defaultdict(list)
            for a, b, g, _ in rows:
                if g.startswith("script:"):
                    continue
                for x in (a, b):
                    if x not in held[g]:
                        held[g].append(x)
            c, sp, _ = collisions(held, fn)
            cells.append(f"{pct(c)} / {pct(sp)}")
        body.append([f"{label}: distinct-group collisions (headwords / spellings)"] + cells)
    held_by_file = []
    for rows, _, _ in split:
        held: dict[str, list[str]] = defaultdict(list)
        for a, b, g, _ in rows:
            if not g.startswith("script:"):
                for x in (a, b):
                    if x not in held[g]:
                        held[g].append(x)
        held_by_file.append(held)
    body.append(["name_keys sets (blocking): distinct-group collisions (headwords / spellings)"]
                + ["%s / %s" % tuple(pct(x) for x in keyset_collisions(h)) for h in held_by_file])
    classes = {c: [x for x in v if not names.has_arabic_script(x)] for c, v in table_classes().items()
               if not names.has_arabic_script(c)}
    c1, s1, _ = collisions(classes, our_key)
    body.append(["name_key (ours): curated-table collisions (canonical / spellings)"]
                + [f"{pct(c1)} / {pct(s1)}"] * len(files))
    k1, t1 = keyset_collisions(classes)
    body.append(["name_keys sets (blocking): curated-table collisions (canonical / spellings)"]
                + [f"{pct(k1)} / {pct(t1)}"] * len(files))
    print(table(header, body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--heldout", type=Path, action="append",
        help="held-out file(s) to report (default: all matching/data/heldout_variant_pairs*.tsv)",
    )
    parser.add_argument(
        "--show-sealed-failures", action="store_true",
        help="also print the per-group table and failing pairs of the sealed held-out file",
    )
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    paths = args.heldout or [p for p in (HELDOUT, HELDOUT_2, HELDOUT_3, HELDOUT_4, HELDOUT_5) if p.exists()]
    files = [(p.name, read_heldout(p)) for p in paths]
    for label, rows in files:
        print(f"\n# Held-out file: {label}\n")
        section_heldout(rows, sealed=label in SEALED and not args.show_sealed_failures)
        section_script(rows)
        section_collisions(rows)
    summary(files)
    section_dev()
    if not args.no_speed:
        section_speed(files[0][1])


if __name__ == "__main__":
    main()
