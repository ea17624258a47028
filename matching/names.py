"""Name normalisation, transliteration, tokens and phonetic keys for matching.

Everything here is pure Python (no database, no Flask) and cached, so the scorer and
the blocking jobs can call it millions of times. The public functions are:

``normalize_name(text)``
    Unicode NFKC + casefold, Latin diacritics stripped, Arabic script cleaned (short
    vowels and tatweel removed, alef/ya/ta-marbuta forms unified), Ge'ez script
    transliterated to Latin, punctuation turned into spaces, whitespace collapsed.
    Arabic script is *kept* so that Arabic entries can be compared with Arabic entries.
``transliterate(text)``
    Like ``normalize_name`` but Arabic (and Persian/Pashto/Kurdish/Urdu) letters become a Latin
    spelling: ``transliterate("محمد") == "mhmd"``; long vowels written in Arabic
    become vowels, unwritten short vowels stay unwritten (but a word-initial w/y gets
    one: ``transliterate("وليد") == "walid"``); ذ is read z.
``name_tokens(text)``
    Tokens of a name after particles are handled: articles (al-, el-, ar-, l-, ...), chain
    connectors (bin, ben, ibn, bint, ould, wad) and the Persian ezafe (-e) dropped, Abd-/Abu- prefixes and
    theophoric endings (-allah, -uddin) joined, so "Abd al-Rahman", "Abdul Rahman" and
    "Abdulrahman" all give one token.
``name_key(token)``
    A transliteration-aware phonetic key: consonant skeleton over classes of letters
    that transliterations confuse, plus the class of a word-initial vowel. Same-name
    spellings share a key (Mohamed / Muhammad / Maxamed -> ``MHMD``, Xasan / Hassan ->
    ``HSN``, Cabdi / Abdi -> ``ABD``).
``skeleton_key(token)``
    The script-neutral consonant skeleton (no vowel at all), for Arabic script against
    Latin: ``skeleton_key("محمد") == skeleton_key("Mohamed") == "MHMD"``.
``canonical_name(token)``
    The canonical key of the token's class in the curated variant table
    (``data/given_name_variants.txt``, and unambiguous abbreviations from
    ``data/nicknames.txt``), or the normalised token itself when the table does not
    know it.
``name_keys(text)``
    All blocking keys of all tokens of a name, with the skeletons of the other readings
    of their letters and of compounds written apart (see the function's docstring).

Design notes and measured numbers are in ``bench/name_keys.py``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "canonical_name",
    "has_arabic_script",
    "is_known_name",
    "name_key",
    "name_keys",
    "name_tokens",
    "nickname_targets",
    "normalize_name",
    "skeleton_key",
    "transliterate",
    "variant_table",
]

DATA_DIR = Path(__file__).with_name("data")

# ---------------------------------------------------------------------------------
# Character tables (built once at import; hot paths only call str.translate).
# ---------------------------------------------------------------------------------

_ARABIC_RANGE = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")

# Arabic/Persian/Pashto letters folded to the Arabic base letters we compare on.
_ARABIC_FOLD = {
    "\u0623": "\u0627",  # أ -> ا
    "\u0625": "\u0627",  # إ -> ا
    "\u0622": "\u0627",  # آ -> ا
    "\u0671": "\u0627",  # ٱ -> ا
    "\u0672": "\u0627",
    "\u0673": "\u0627",
    "\u0649": "\u064A",  # ى -> ي
    "\u06CC": "\u064A",  # Persian ی -> ي
    "\u06D0": "\u064A",  # Pashto ې -> ي
    "\u06CD": "\u064A",  # Pashto ۍ -> ي
    "\u0626": "\u064A",  # ئ -> ي
    "\u0624": "\u0648",  # ؤ -> و
    "\u0629": "\u0647",  # ة -> ه
    "\u06C0": "\u0647",  # ۀ -> ه
    "\u06C1": "\u0647",  # ہ -> ه
    # Kurdish (Sorani) and Urdu vowel letters: ە is the vowel e/a (ڕەزا = Reza, کاوە =
    # Kawe), ۆ the vowel o, ێ the vowel ê, Urdu ے a final e/ai.
    "\u06D5": "\u0627",  # ە -> ا
    "\u06C6": "\u0648",  # ۆ -> و
    "\u06CE": "\u064A",  # ێ -> ي
    "\u06D2": "\u064A",  # ے -> ي
    "\u06D3": "\u064A",  # ۓ -> ي
    "\u06A9": "\u0643",  # Persian ک -> ك
    "\u06AA": "\u0643",
    "\u0621": "",  # lone hamza
    "\u0640": "",  # tatweel
    "\u060C": " ",  # Arabic comma
    "\u061B": " ",  # Arabic semicolon
    "\u061F": " ",  # Arabic question mark
    "\u066A": " ",
    "\u066B": " ",
    "\u066C": " ",
    "\u06D4": " ",
}
# Harakat (short vowels, shadda, sukun, tanwin), superscript alef, Quranic marks.
for _cp in list(range(0x064B, 0x0660)) + [0x0670] + list(range(0x06D6, 0x06EE)):
    _ARABIC_FOLD[chr(_cp)] = ""
# Arabic-Indic digits: not part of a name.
for _cp in list(range(0x0660, 0x066A)) + list(range(0x06F0, 0x06FA)):
    _ARABIC_FOLD[chr(_cp)] = " "

# Latin letters that do not decompose under NFD, and marks for ayn/hamza.
_LATIN_SPECIAL = {
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ł": "l",
    "ı": "i",
    "ɔ": "o",  # Dinka/Nuer open o
    "ɛ": "e",  # Dinka/Nuer open e
    "ə": "e",
    "ɣ": "g",  # Dinka/Nuer gamma
    "ŋ": "ng",
    "ɖ": "d",
    "ɗ": "d",  # Hausa hooked d
    "ɓ": "b",  # Hausa hooked b
    "ƙ": "k",  # Hausa hooked k
    "ƴ": "y",
    "ş": "sh",  # Kurdish/Turkish
    "š": "sh",
    "č": "ch",
    "ž": "zh",
    "ğ": "g",
    "ç": "s",  # French cedilla (Fayçal); the Kurdish/Turkish ch reading is rarer here
    "ṣ": "s",
    "ḥ": "h",
    "ṭ": "t",
    "ḍ": "d",
    "ẓ": "z",
    "ḏ": "dh",
    "ṯ": "th",
    "ġ": "gh",
    "ḫ": "kh",
    # Ayn/hamza and apostrophes vanish inside a word: Caa'isha -> caaisha.
    "'": "",
    "\u2019": "",
    "\u2018": "",
    "\u02bf": "",
    "\u02be": "",
    "\u02bc": "",
    "\u02bb": "",
    "`": "",
    "\u00b4": "",
}


def _build_geez_table() -> dict[str, str]:
    """Ge'ez (Ethiopic) syllables -> Latin, Tigrinya/Amharic conventions.

    A syllable row has seven vowel orders (ä u i a e ə o) and usually an eighth
    labialised form. First order is written ``e`` (Tesfay, Gebre), sixth order (ə)
    is written as nothing.
    """
    vowels = ["e", "u", "i", "a", "e", "", "o", "wa"]
    rows = {
        0x1200: "h", 0x1208: "l", 0x1210: "h", 0x1218: "m", 0x1220: "s", 0x1228: "r",
        0x1230: "s", 0x1238: "sh", 0x1240: "q", 0x1250: "q", 0x1260: "b", 0x1268: "v",
        0x1270: "t", 0x1278: "ch", 0x1280: "h", 0x1290: "n", 0x1298: "ny", 0x12A0: "",
        0x12A8: "k", 0x12B8: "kh", 0x12C8: "w", 0x12D0: "", 0x12D8: "z", 0x12E0: "zh",
        0x12E8: "y", 0x12F0: "d", 0x12F8: "d", 0x1300: "j", 0x1308: "g", 0x1320: "t",
        0x1328: "ch", 0x1330: "p", 0x1338: "ts", 0x1340: "ts", 0x1348: "f", 0x1350: "p",
    }
    table: dict[str, str] = {}
    for base, cons in rows.items():
        for order, vowel in enumerate(vowels):
            cp = base + order
            if unicodedata.category(chr(cp)) != "Lo":
                continue
            if cons == "" and vowel == "":
                table[chr(cp)] = ""
            else:
                table[chr(cp)] = cons + (vowel if vowel else "")
    # Irregular labialised rows (qwa, hwa, kwa, xwa, gwa).
    for base, cons in {0x1248: "q", 0x1288: "h", 0x12B0: "k", 0x12C0: "kh", 0x1310: "g"}.items():
        for offset, vowel in zip((0, 2, 3, 4, 5), ("we", "wi", "wa", "we", "w")):
            table[chr(base + offset)] = cons + vowel
    # Ethiopic punctuation: word space, full stop, commas.
    for cp in range(0x1360, 0x1369):
        table[chr(cp)] = " "
    return table


_GEEZ = _build_geez_table()
_GEEZ_RANGE = re.compile(r"[\u1200-\u137F]")

_PRE_TABLE = str.maketrans({**_ARABIC_FOLD, **_LATIN_SPECIAL, **_GEEZ})
_NON_NAME = re.compile(r"[^\w\u0600-\u06FF]+|[\d_]+")
_SPACES = re.compile(r"\s+")

# Arabic (after folding) -> Latin. Vowel letters (ا و ي ه) are handled in context.
# ذ is read z, as Persian, Pashto, Urdu, Turkish and most spoken Arabic read it and as most
# Latin spellings write it (Zakir, Zabihullah, Huzaifa, Zulfiqar; ذاكر is "zakir" in Google's
# transliteration data); the scholarly "dh" spelling is the minority.
_AR_CONSONANTS = {
    "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d", "ذ": "z",
    "ر": "r", "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t", "ظ": "z",
    "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m", "ن": "n",
    "پ": "p", "چ": "ch", "ژ": "zh", "گ": "g", "ڤ": "v", "ڨ": "g", "ڭ": "g",
    "ټ": "t", "ډ": "d", "ړ": "r", "ږ": "zh", "ښ": "sh", "ځ": "z", "څ": "s", "ڼ": "n",
    # Kurdish (Sorani) ڕ (trilled r) and ڵ (velar l); Urdu retroflex ٹ ڈ ڑ and nun ghunna ں.
    "ڕ": "r", "ڵ": "l", "ٹ": "t", "ڈ": "d", "ڑ": "r", "ں": "n",
    "ع": "", "ء": "",
}
_AR_VOWEL_LETTERS = frozenset("اوي")


@functools.lru_cache(maxsize=262_144)
def normalize_name(text: str | None) -> str:
    """Normalise a name for comparison; Arabic script is kept (see module doc).

    >>> normalize_name("  Aïcha  EL-Amine ")
    'aicha el amine'
    >>> normalize_name("مُحَمَّـد")
    'محمد'
    """
    if not text:
        return ""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = s.translate(_PRE_TABLE)
    # Strip Latin diacritics (Arabic harakat are already gone).
    s = unicodedata.normalize("NFD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = unicodedata.normalize("NFC", s)
    s = _NON_NAME.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def has_arabic_script(text: str) -> bool:
    """True when the text contains Arabic-script letters."""
    return bool(_ARABIC_RANGE.search(text))


def _arabic_word_to_latin(word: str, h: str = "h") -> str:
    """Transliterate one folded Arabic word letter by letter, vowels from context.

    ``h`` is what ح and a consonantal ه become; the key path passes ``"x"`` (a letter
    the key reads as h) so that س+ح or ت+ه are never mistaken for the digraphs sh, th.
    """
    out: list[str] = []
    n = len(word)
    for i, ch in enumerate(word):
        nxt = word[i + 1] if i + 1 < n else ""
        if ch == "ا":
            out.append("a")
        elif ch == "و":
            # Consonant w at the start or before alef/ya (Marwan, Walid); long u/o otherwise.
            # A word-initial w/y before a consonant carries an unwritten short vowel (a word
            # that starts with a vowel starts with alef), so one is supplied: وليد -> walid,
            # يحيى -> yahia; without it the key would read the w/y as a vowel.
            if i == 0:
                out.append("wa" if nxt and nxt not in _AR_VOWEL_LETTERS else "w")
            else:
                out.append("w" if nxt in ("ا", "ي") else "u")
        elif ch == "ي":
            if i == 0:
                out.append("ya" if nxt and nxt not in _AR_VOWEL_LETTERS else "y")
            else:
                out.append("y" if nxt in ("ا", "و") else "i")
        elif ch == "ه":
            # Word-final ha is almost always a folded ta marbuta (-a).
            out.append("a" if i == n - 1 and i > 0 else h)
        elif ch == "ع":
            # Initial ayn carries a vowel we cannot see; 'a' is by far the most common.
            out.append("a" if i == 0 and nxt not in _AR_VOWEL_LETTERS else "")
        elif ch == "ح":
            out.append(h)
        elif ch == "ھ":
            # Urdu do-chashmi he: an h at the start of a word; after a letter it only marks
            # an aspirate (بھٹو = Bhutto), which Latin spellings write h or not at all.
            out.append(h if i == 0 else "")
        elif ch in _AR_CONSONANTS:
            out.append(_AR_CONSONANTS[ch])
        elif "\u0600" <= ch <= "\u06ff":
            continue
        else:
            out.append(ch)
    return "".join(out)


_AR_WORD = re.compile(r"[\u0600-\u06FF]+")
_INITIAL_HAMZA_I = re.compile(r"(?:(?<=\s)|^)\u0625")  # إ at the start of a word
_FINAL_ALEF_MAQSURA = re.compile(r"\u0649(?=\s|$)")


def transliterate(text: str | None) -> str:
    """Arabic (and Persian/Pashto) script -> Latin; Ge'ez is already Latin after normalising.

    Long vowels written in Arabic become vowels (و -> u/w, ي -> i/y, ا -> a, final
    ة -> a); unwritten short vowels stay unwritten (except after a word-initial w/y, which
    is always a consonant: وليد -> walid), so the result is a skeleton that
    ``skeleton_key`` can compare with Latin spellings. ذ is read z (ذاكر -> zakir).

    >>> transliterate("محمد")
    'mhmd'
    >>> transliterate("إِبْرَاهِيم")
    'ibrahim'
    """
    return _transliterate(text, "h")


@functools.lru_cache(maxsize=262_144)
def _transliterate(text: str | None, h: str) -> str:
    if not text:
        return ""
    raw = unicodedata.normalize("NFKC", text)
    # Hamza under alef at a word start means /i/; alef maqsura at the end means /a/.
    raw = _INITIAL_HAMZA_I.sub("i", raw)
    raw = _FINAL_ALEF_MAQSURA.sub("a", raw)
    s = normalize_name(raw)
    if not has_arabic_script(s):
        return s
    s = _AR_WORD.sub(lambda m: _arabic_word_to_latin(m.group(0), h), s)
    return _SPACES.sub(" ", s).strip()


# ---------------------------------------------------------------------------------
# Curated data: particles, variant table, nicknames.
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Particles:
    articles: frozenset[str]
    assimilated: frozenset[str]
    connectors: frozenset[str]
    join_always: frozenset[str]
    join_if_attribute: frozenset[str]
    join_to_previous: frozenset[str]
    divine_attributes: frozenset[str]
    compound_endings: frozenset[str]


def _read_lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                yield line


@functools.cache
def _particles() -> _Particles:
    sections: dict[str, set[str]] = {}
    current = ""
    for line in _read_lines(DATA_DIR / "particles.txt"):
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, set())
            continue
        sections.setdefault(current, set()).add(normalize_name(line))
    get = lambda name: frozenset(sections.get(name, ()))  # noqa: E731
    return _Particles(
        articles=get("articles"),
        assimilated=get("assimilated_articles"),
        connectors=get("connectors") | {"بن", "ابن", "بنت", "ولد"},
        join_always=get("join_always") | {"عبد", "ابو", "ابي"},
        join_if_attribute=get("join_if_attribute"),
        join_to_previous=get("join_to_previous") | {"الله", "الدين"},
        divine_attributes=get("divine_attributes"),
        compound_endings=get("compound_endings"),
    )


def _parse_table(path: Path) -> dict[str, tuple[str, ...]]:
    """Read ``canonical = a, b, c`` lines into canonical -> spellings (normalised)."""
    classes: dict[str, tuple[str, ...]] = {}
    for line in _read_lines(path):
        if "=" not in line:
            raise ValueError(f"{path.name}: expected 'canonical = a, b': {line!r}")
        head, rest = line.split("=", 1)
        canonical = normalize_name(head)
        spellings = tuple(
            dict.fromkeys(
                _join_compact(normalize_name(item)) for item in rest.split(",") if item.strip()
            )
        )
        if canonical in classes:
            raise ValueError(f"{path.name}: class {canonical!r} defined twice")
        classes[canonical] = spellings
    return classes


def _join_compact(value: str) -> str:
    """Table entries are single tokens; 'abdul rahman' in a table means 'abdulrahman'."""
    return value.replace(" ", "")


@functools.cache
def variant_table() -> dict[str, str]:
    """Spelling -> canonical key, from ``data/given_name_variants.txt`` (read once).

    Raises ``ValueError`` if a spelling is listed in two classes.
    """
    mapping: dict[str, str] = {}
    for canonical, spellings in _parse_table(DATA_DIR / "given_name_variants.txt").items():
        for spelling in (canonical, *spellings):
            other = mapping.get(spelling)
            if other is not None and other != canonical:
                raise ValueError(
                    f"given_name_variants.txt: {spelling!r} is in both {other!r} and {canonical!r}"
                )
            mapping[spelling] = canonical
    return mapping


@functools.cache
def _nicknames() -> dict[str, tuple[str, ...]]:
    table = _parse_table(DATA_DIR / "nicknames.txt")
    known = set(variant_table().values())
    for short, targets in table.items():
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise ValueError(f"nicknames.txt: {short!r} points to unknown names {unknown}")
    return table


def nickname_targets(token: str) -> tuple[str, ...]:
    """Canonical names a short form can stand for (``"abdi"`` -> all Abd- names)."""
    return _nicknames().get(normalize_name(token), ())


_ABD_PREFIX = re.compile(r"^(?:abdoul|abdool|abdul|abdel|abdal|abdil|abdol|abdur|abdus|abdun|abdou|abdu|abdi|abd)")


@functools.lru_cache(maxsize=262_144)
def canonical_name(token: str) -> str:
    """Canonical key of the token's class in the curated table, else the normalised token.

    Unambiguous short forms count as the name they stand for (``Mhd`` -> ``muhammad``).

    >>> canonical_name("Mohamed") == canonical_name("Muhammad") == canonical_name("Mhd")
    True
    """
    norm = _join_compact(normalize_name(token))
    table = variant_table()
    if norm in table:
        return table[norm]
    targets = _nicknames().get(norm, ())
    if len(targets) == 1:
        return targets[0]
    # Abd- compounds not listed with this linking vowel: Abdrahman, Abdoulkarim.
    match = _ABD_PREFIX.match(norm)
    if match and len(norm) > match.end() + 2:
        alt = "abdul" + norm[match.end():]
        if alt in table:
            return table[alt]
    return norm


def is_known_name(token: str) -> bool:
    """True when the curated variant table (or nickname table) knows this spelling."""
    norm = _join_compact(normalize_name(token))
    return norm in variant_table() or norm in _nicknames()


# ---------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------

_AR_ARTICLE_KEEP = frozenset({"الله", "الياس", "اليسع", "الي"})


@functools.lru_cache(maxsize=262_144)
def _tokens_cached(text: str) -> tuple[str, ...]:
    p = _particles()
    words = normalize_name(text).split()
    if not words:
        return ()
    # Pass 1: drop articles and chain connectors that stand before another word.
    kept: list[str] = []
    last = len(words) - 1
    for i, w in enumerate(words):
        if i < last:
            nxt = words[i + 1]
            if w in p.connectors or w in p.articles:
                continue
            if w in p.assimilated and nxt.startswith(w[1:]):
                continue
        if len(w) > 3 and w.startswith("ال") and w not in _AR_ARTICLE_KEEP:
            w = w[2:]
        kept.append(w)
    # Pass 2: join prefixes to the next word and theophoric endings to the previous one.
    out: list[str] = []
    i = 0
    while i < len(kept):
        w = kept[i]
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if nxt is not None and (
            w in p.join_always or (w in p.join_if_attribute and nxt in p.divine_attributes)
        ):
            kept[i + 1] = w + nxt
            i += 1
            continue
        if out and w in p.join_to_previous:
            out[-1] = out[-1] + w
        else:
            out.append(w)
        i += 1
    return tuple(out)


def name_tokens(text: str | None) -> list[str]:
    """Normalised tokens of a name with particles and prefixes handled.

    >>> name_tokens("Abd al-Rahman bin Ali AL-HASHIMI")
    ['abdrahman', 'ali', 'hashimi']
    >>> name_tokens("Abdul Rahman") == name_tokens("Abdulrahman") == ['abdulrahman']
    True
    """
    if not text:
        return []
    return list(_tokens_cached(text))


# ---------------------------------------------------------------------------------
# Phonetic key
# ---------------------------------------------------------------------------------

# Multi-letter sequences first (longest first), then single letters. Upper case =
# consonant class, lower case = vowel (or glide decided later).
_DIGRAPHS = {
    "sch": "X", "dzh": "J", "tch": "X", "tsh": "X",  # Luba and Swahili tsh: Tshibangu / Chibangu / Tchibangu
    "sh": "X", "ch": "X", "zh": "J", "dj": "J", "dz": "Z", "kh": "K", "gh": "J",
    "th": "S", "dh": "D", "ph": "F", "ck": "K", "ts": "S", "tz": "S",
    # South Asian aspirates: the h only marks breath (Khadijha, Bhuiyan).
    "jh": "J", "bh": "B",
}
_SINGLE = {
    "b": "B", "p": "B", "f": "F", "v": "w", "w": "w", "k": "K", "q": "K", "g": "J",
    "j": "J", "s": "S", "z": "Z", "t": "D", "d": "D", "h": "H", "x": "H", "l": "L",
    "m": "M", "n": "N", "r": "R", "y": "y",
    "a": "a", "e": "e", "i": "i", "o": "o", "u": "u",
}
_DIGRAPH_RE = re.compile("|".join(sorted(_DIGRAPHS, key=len, reverse=True)))
# Somali spellings: x, a doubled vowel, or c before a consonant (Cabdi, Cumar: see
# _symbols). A word-final c is not Somali evidence: French and English spellings end in c
# for k (Rafic, Chafic, Tarec), where Somali ends in the ayn only rarely.
_SOMALI_RE = re.compile(
    r"x|aa|ii|uu|c(?=[b-df-gj-np-tv-z])|^c(?:abd|umar|usmaan|ismaan|iise|aasha|aysha|ali$|aliyu$)"
)
# In Somali orthography c is the ayn; Somali has no "ch", so a c before h is not the ayn
# but the French/English ch of a non-Somali spelling with a doubled vowel (Chaimaa = Shaima).
_SOMALI_AYN = re.compile(r"c(?!h)")
_SOFT_C = re.compile(r"c(?=[eiy])")
_FINAL_H = re.compile(r"(?<=[a-z])(?<![sckdtgpzjb])[hx]$")
_ALLAHI = re.compile(r"(?<=l)(a+)hi$")  # -llahi, genitive of Allah (Abdullahi = Abdullah)
# Fula/Mande feminine suffix on Arabic names: Aminata, Fatoumata, Halimatou = Amina ...
_FULA_SUFFIX = re.compile(r"(?<=[a-z]{3}a)(?:tou|tu|ta)$")
_INITIAL_OU_W = re.compile(r"^ou(?=[aeiy])")  # French ou- before a vowel is w: Oualid
# A word-initial i before another vowel is the glide y (Portuguese/French spellings: Iahia =
# Yahya, Iaqub = Yaqub); an Arabic name never starts with i followed by a vowel.
_INITIAL_I_GLIDE = re.compile(r"^i(?=[aeou])")
_ITALIAN_SC = re.compile(r"sc(?=[ei])")  # Italian-era Somali spellings: Abdirascid
# th is the Arabic tha (Uthman = Usman, Athman, Haitham, Harith, Thabit) except inside a
# word after a consonant + a, where it is a South Asian spelling of t or a t+h sequence
# (Fathima = Fatima, Fathma, Sathar = Sattar). Not before a final vowel, where it is
# usually t + h (Fathi = Fethi, فتحي).
_TH_AS_T = re.compile(r"(?<=[b-df-hj-np-tv-z]a)th(?=[a-z]{2})")
# Fula/Mande forms of Muhammad and Mahmud elide the h syllable: Mamadou, Mamady,
# Mamoudou are read Mahamadou, Mahamoudou.
_MAMADOU = re.compile(r"^mam(?=[aeiou]+d)")
_VOWELS = frozenset("aeiou")
_INITIAL_CLASS = {"a": "A", "e": "I", "i": "I", "o": "U", "u": "U"}


def _letters(token: str) -> str:
    if has_arabic_script(token):
        t = _transliterate(token, "x")
        return "".join(ch for ch in t if "a" <= ch <= "z")
    t = normalize_name(token)
    return _restore_known("".join(ch for ch in t if "a" <= ch <= "z"))


# Rules that undo a change only when the curated variant table (the lexicon of known
# names) confirms the result, so they cannot invent a name out of an unrelated word:
# a joined article before a known name (Alhassan, Alamin, Arrashid), the same with the h
# of the name lost after the article (Alassane = al-Hassane), a lost initial h (Usain =
# Husain, Awa = Hawa) and the West African feminine -t (Aishat, Aminat, Hafsat; also when
# the table lists the -t form itself in the same class as the short one: Hamzat = Hamza).
_JOINED_ARTICLE = re.compile(r"^(?:al|el|ul|il|ol|a([tdrzsnl])(?=\1))(?=[a-z]{3})")
_VOWEL_START = re.compile(r"^[aeiou]")


def _known(letters: str) -> bool:
    return letters in variant_table()


def _same_class(letters: str, shorter: str) -> bool:
    """``shorter`` is a known name and ``letters`` is unknown or in the same class."""
    table = variant_table()
    return shorter in table and (letters not in table or table[letters] == table[shorter])


def _restore_known(letters: str) -> str:
    if len(letters) < 4:
        return letters
    match = _JOINED_ARTICLE.match(letters)
    if match:
        rest = letters[match.end():]
        if _known(rest):
            return rest
        if _VOWEL_START.match(rest) and _known("h" + rest):
            return "h" + rest
    if letters.endswith("at") and _same_class(letters, letters[:-1]):
        return letters[:-1]
    if _known(letters):
        return letters
    if _VOWEL_START.match(letters) and _known("h" + letters):
        return "h" + letters
    return letters


def _symbols(letters: str) -> list[str]:
    """Letters -> class symbols (consonant classes upper case, vowels lower case)."""
    letters = _INITIAL_I_GLIDE.sub("y", letters)
    letters = _ITALIAN_SC.sub("sh", _TH_AS_T.sub("t", _MAMADOU.sub("maham", letters)))
    if _SOMALI_RE.search(letters):
        # Somali orthography: c is the ayn (Cabdi = Abdi), x the pharyngeal h (Xasan).
        letters = _SOMALI_AYN.sub("", letters)
    else:
        letters = _SOFT_C.sub("s", letters.replace("ch", "sh")).replace("c", "k")
    letters = _INITIAL_OU_W.sub("w", _FULA_SUFFIX.sub("", letters))
    # A word-final h/x is dropped: ta marbuta or Allah's h (Aishah, Abdullah, Abdullahi),
    # a final Arabic h that Latin spellings keep or drop (Sameh / سامح), or a Somali
    # final x (Faarax = Farah). Not the h of a digraph (Darwish).
    letters = _FINAL_H.sub("", _ALLAHI.sub(r"\1", letters))
    letters = _DIGRAPH_RE.sub(lambda m: _DIGRAPHS[m.group(0)], letters)
    return [_SINGLE.get(ch, ch) for ch in letters if ch in _SINGLE or ch.isupper()]


def _glides_to_vowels(sym: list[str]) -> list[str]:
    """y and w (and v) are consonants only at the start of a word, before a vowel
    (Yusuf, Walid, Vahid); inside a word they are written or left out so freely
    (Maryam/Mariam, Abdulwahab/Abdelouahab, Anwar/Anouar, Dawud/Daoud) that they count
    as part of a vowel."""
    out: list[str] = []
    n = len(sym)
    for i, s in enumerate(sym):
        if s in ("y", "w"):
            consonant = i == 0 and i + 1 < n and sym[i + 1] in _VOWELS
            out.append(s.upper() if consonant else ("i" if s == "y" else "u"))
        else:
            out.append(s)
    return out


@functools.lru_cache(maxsize=524_288)
def _key_parts(token: str) -> tuple[str, str]:
    """(initial vowel class or '', consonant skeleton) of one token."""
    return _parts_of_letters(_letters(token))


def _parts_of_letters(letters: str) -> tuple[str, str]:
    if not letters:
        return "", ""
    sym = _glides_to_vowels(_symbols(letters))
    initial = _INITIAL_CLASS.get(sym[0], "") if sym else ""
    if initial and _initial_cluster(sym):
        # Before a consonant cluster the first vowel is unstressed and written a, i, e
        # or u at will (Ibrahim/Ebrahim/Abrahim, Ismail/Esmail, Imran/Emran/Umran,
        # Uthman/Athman): one class for all of them.
        initial = "A"
    consonants: list[str] = []
    prev = ""
    for s in sym:
        if s.isupper():
            if s != prev:  # geminates and same-class clusters collapse: mm, tt, td
                consonants.append(s)
            prev = s
        else:
            prev = ""
    skel = "".join(consonants)
    # Abd- names: the article after Abd is written ul/el/al/i/u or assimilated, so
    # drop it when a second element follows (Abdulkadir = Abdikadir = Abdelkader).
    if skel.startswith("BDL") and len(skel) > 3 and initial == "A":
        skel = "BD" + skel[3:]
    # Abu before a b-initial name fuses in Somali and Fula/French spellings: Abu Bakr =
    # Abokor = Abiikar = Boubacar (Bou- is Abu without its a).
    if skel.startswith("BB") and len(skel) >= 4 and initial in ("A", ""):
        initial, skel = "A", skel[1:]
    return initial, skel


def _initial_cluster(sym: list[str]) -> bool:
    """True when the word's first vowel(s) stand before two different consonant classes."""
    i = 0
    while i < len(sym) and not sym[i].isupper():
        i += 1
    return i + 1 < len(sym) and sym[i + 1].isupper() and sym[i + 1] != sym[i]


def name_key(token: str) -> str:
    """Transliteration-aware phonetic key of one token.

    The key is the class of a word-initial vowel (A for a, I for e/i, U for o/u) followed
    by the consonant skeleton. Letter classes merge what transliterations confuse:
    b/p/bh; f/ph; k/q/c/kh/ck; j/g/dj/gh/zh/jh; s/ss/th/ts/soft c; z; t/d/dh; h/x;
    sh/ch/sch (and Italian sc before e/i); w/v; l; m; n; r. Rules: Somali spellings
    (x, doubled vowels, c before a consonant) make c the silent ayn (Cabdi = Abdi);
    y, w and v inside a word are vowels; doubled letters collapse; a word-final h/x is
    dropped (Fatimah = Fatima, Faarax = Farah) and -llahi reads -llah; the Fula suffix
    -ta/-tou after a is dropped (Aminata = Amina); French ou- before a vowel is w
    (Oualid); the article inside Abd- names is ignored (Abdulkadir = Abdikadir).
    Added rules: th is t after a consonant + a inside a word (Fathima = Fatima), the ث
    class elsewhere (Uthman = Usman = Athman); the first vowel before a consonant cluster
    is one class (Ibrahim = Abrahim, Uthman = Athman); Abu fused with a b-name is one b
    (Abokor = Abubakar = Boubacar); Fula Mamadou/Mamoudou keep Muhammad's/Mahmud's h;
    a word-initial i before a vowel is y (Iahia = Yahya). Checked against the curated
    variant table (so they only produce known names): a joined article before a known name
    (Alhassan, Alassane = al-Hassane, Alamin), a lost initial h (Usain = Husain) and the
    West African feminine -t (Aishat, Aminat, Hamzat). Arabic-script tokens are
    transliterated first (a word-initial w/y is a consonant, ذ is z; Kurdish and Urdu letters
    are read: ڕ ڵ ە ۆ ێ, ٹ ڈ ڑ ں ے, and ھ after a letter is an aspirate). A word-final c is
    k, not the Somali ayn (Rafic = Rafik), and a Somali-looking word keeps its ch (Chaimaa =
    Shaima). Spellings that differ in z/s/d, g/gh/q, kh/h, initial j/y or di/j keep
    different keys; ``name_keys`` lets them meet for blocking.
    Measured numbers: bench/name_keys.py.

    >>> name_key("Mohamed") == name_key("Muhammad") == name_key("Maxamed") == "MHMD"
    True
    >>> name_key("Cabdi") == name_key("Abdi")
    True
    """
    initial, skel = _key_parts(token)
    return (initial + skel) or "_"


def skeleton_key(token: str) -> str:
    """Script-neutral consonant skeleton of one token (no vowel information at all).

    Coarser than ``name_key`` (Mohamed and Mahmoud share ``MHMD``); meant for Arabic
    script against Latin, where short vowels are not written.
    """
    return _key_parts(token)[1] or "_"


# Letters that spellings of one name write in ways a single key cannot follow without
# merging different names (Said/Zaid, Hamid/Hamza): the blocking keys follow them instead,
# as extra ~skeletons (scoring still tells the names apart):
#  * z: Somali has no z and writes s (Casiis = Aziz, Sahra = Zahra, Xamsa = Hamza), and the
#    letters ض ذ ظ are written d/dh in Arabic and z in Persian, Urdu, Pashto and Turkish
#    (Ramadan = Ramazan, Dhakir = Zakir, Reda = Reza): a skeleton with Z also gets its S
#    and its D reading;
#  * g, gh, kh, an initial j and di before a vowel: other readings of these letters that
#    spellings of one name exchange (see _letter_readings) give extra skeletons;
#  * same-class letters with only a vowel between them: Arabic script writes no short vowel,
#    so a Latin skeleton also gets the skeleton with such a pair written once.
# The readings were chosen on the development held-out lists (1-3) and checked against the
# collision rates of bench/name_keys.py section 3.
_ALTERNATE_Z = ("S", "D")


def _letter_readings(letters: str) -> list[str]:
    """Other readings of a word's letters, for the alternate blocking skeletons."""
    readings = []
    if "g" in letters:
        # g and gh for qaf: Persian gh (Sadegh = Sadeq), and the g of Egyptian, Sudanese,
        # Libyan, Gulf and Bedouin speech, which pronounce qaf g (Gaddafi = Qaddafi,
        # Gassim = Qasim). The key keeps g with j (Egyptian Gamal = Jamal).
        readings.append(letters.replace("gh", "q").replace("g", "q"))
    if "kh" in letters:
        # kh read as h: Swahili, Hausa, Fula and Turkic spellings write kha as h
        # (Khamis = Hamisi, Shaikh = Shehu, Khadija = Hadiza).
        readings.append(letters.replace("kh", "H"))
    if letters.startswith("j") and letters[1:2] in _VOWELS:
        # German, Scandinavian and Balkan spellings write the initial y as j
        # (Johannes = Yohannes, Jusuf = Yusuf, Jasmin = Yasmin).
        readings.append("y" + letters[1:])
    if "di" in letters:
        # French spellings of West African names write j as di before a vowel
        # (Tidiane = Tijani, Diallo = Jallow); not at the word's end (Nadia).
        reading = _DI_AS_J.sub("j", letters)
        if reading != letters:
            readings.append(reading)
    return readings


_DI_AS_J = re.compile(r"di(?=[aeou][a-z])")
_REPEATED_CLASS = re.compile(r"(.)\1+")


@functools.lru_cache(maxsize=262_144)
def _alternate_skeletons(token: str) -> tuple[str, ...]:
    skel = skeleton_key(token)
    alternates = {skel.replace("Z", z) for z in _ALTERNATE_Z} if "Z" in skel else set()
    letters = _letters(token)
    for reading in _letter_readings(letters):
        alternates.add(_parts_of_letters(reading)[1])
    # Arabic script does not write short vowels, so two letters of one class with only a
    # short vowel between them read as one (مقتدى = Muqtada): a Latin skeleton with such a
    # pair also gets the skeleton with the pair written once (three letters at least).
    merged = _REPEATED_CLASS.sub(r"\1", skel)
    if merged != skel and len(merged) >= 3 and not has_arabic_script(token):
        alternates.add(merged)
    alternates.discard(skel)
    alternates.discard("")
    return tuple(sorted(alternates))


@functools.lru_cache(maxsize=262_144)
def key_readings(token: str) -> frozenset[tuple[str, str]]:
    """(initial vowel class, skeleton) of a token's key and of each of its other readings (the
    alternate skeletons above): two Latin spellings that share one are read as one name by
    `comparators.compare_tokens` (Yagoub = Yacoub, Ridwan = Rizwan, Sundiata = Sunjata,
    Kazim = Kadhim), unless the curated table knows them as different names (Said / Zaid)."""
    initial, skel = _key_parts(token)
    return frozenset((initial, reading) for reading in (skel, *_alternate_skeletons(token)) if reading)


@functools.lru_cache(maxsize=131_072)
def _name_keys_cached(text: str, skeletons: bool) -> frozenset[str]:
    keys: set[str] = set()
    tokens = _tokens_cached(text)
    if skeletons and len(tokens) > 1:
        # Compound names are written joined or apart (Ahmadinejad = Ahmady Nejad,
        # Akhundzada = Akhund Zadah, Abdiqasim = Abdu l-Qasim): a token that is the
        # first part of such compounds (Abdu, Abdi) or the last (-nejad, -zadeh, -zai,
        # -khel) also gives the skeleton of the two neighbours written as one word.
        p = _particles()
        for first, second in zip(tokens, tokens[1:]):
            if first in p.join_if_attribute or second in p.compound_endings:
                keys.add("~" + skeleton_key(first + second))
    for token in tokens:
        keys.add(name_key(token))
        canonical = canonical_name(token)
        if canonical != _join_compact(normalize_name(token)):
            keys.add(name_key(canonical))
        for target in nickname_targets(token):
            keys.add(name_key(target))
        if skeletons:
            keys.add("~" + skeleton_key(token))
            keys.update("~" + alternate for alternate in _alternate_skeletons(token))
    keys.discard("_")
    keys.discard("~_")
    return frozenset(keys)


def name_keys(text: str | None, *, skeletons: bool = True) -> set[str]:
    """All keys of all tokens of a name, for blocking and search.

    For each token: its ``name_key``; the ``name_key`` of its canonical name when the
    curated table knows the token (so ``Mhd`` also gets ``MHMD``); the keys of the names
    a nickname may stand for; and, unless ``skeletons=False``, its ``skeleton_key``
    prefixed with ``~`` (script-neutral, lets Arabic-script records meet Latin ones), plus
    the skeletons of its other readings, which spellings of one name exchange: z as s and
    as d (Casiis = Aziz, Ramazan = Ramadan), g and gh as q (Sadegh = Sadeq, Gaddafi =
    Qaddafi), kh as h (Khamis = Hamisi, Shaikh = Shehu), an initial j as y (Johannes =
    Yohannes), di before a vowel as j (Tidiane = Tijani), and two same-class letters with only
    a vowel between them as one (Muqtada = مقتدى). With ``skeletons``, two neighbouring tokens
    of which the first is an Abd- short form (Abdu) or the second a compound ending
    (``[compound_endings]`` of data/particles.txt: -nejad, -zadeh, -zai, -khel ...) also give
    the skeleton of the two written as one word (Ahmady Nejad = Ahmadinejad).

    >>> sorted(name_keys("Mhd Xasan", skeletons=False))
    ['HSN', 'MHD', 'MHMD']
    """
    if not text:
        return set()
    return set(_name_keys_cached(text, skeletons))
