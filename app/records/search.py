"""Finding records by short id, phone or name.

Names are matched through their keys (matching.names.name_keys: transliteration-aware
phonetic keys of every token), so "Mohamed" finds "Muhammad" and "Xasan" finds
"Hassan", then ranked by string similarity. Only records in the caller's scope
are ever looked at: the caller passes its already scoped query.
"""
from __future__ import annotations

import re

from rapidfuzz import fuzz
from sqlalchemy import delete, insert, or_, select

from app.extensions import db
from app.records.models import RecordKey

NAME_KIND = "name"
NAME_TAGS = ("given_name", "middle_name", "family_name", "full_name", "nickname", "other_name", "inquirer_name")
MAX_CANDIDATES = 2000


def name_texts(record_type: str, data: dict, tags: tuple[str, ...] = NAME_TAGS) -> list[str]:
    """Every name-like value of a record: the fields tagged with one of `tags` (by default the
    given/family/... name, nickname and other name tags), in tag order."""
    from forms.operations import fields_with_matching_tag
    texts = []
    for tag in tags:
        for key in fields_with_matching_tag(record_type, tag):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                texts.append(value.strip())
    return texts


def index_names(record, kind: str = NAME_KIND, tags: tuple[str, ...] = NAME_TAGS) -> None:
    """Replace the record's name keys of `kind`, made from the fields tagged with `tags` (call
    after its data changed; the record id must be set). The matcher keeps the parents' names
    as another kind."""
    from matching.names import name_keys
    keys = set()
    for text in name_texts(record.RECORD_TYPE, record.data or {}, tags):
        keys |= name_keys(text)
    db.session.execute(delete(RecordKey).where(RecordKey.record_type == record.RECORD_TYPE,
                                               RecordKey.record_id == record.id,
                                               RecordKey.kind == kind))
    if keys:
        db.session.execute(insert(RecordKey), [
            {"record_type": record.RECORD_TYPE, "record_id": record.id, "kind": kind, "key": key[:64]}
            for key in sorted(keys)])


def name_score(query: str, record_names: str) -> float:
    """0-100: how well every word searched for is found among the record's names.

    Each searched word takes its best counterpart (spelling variants, phonetic and
    transliteration agreement count), so "Aicha" finds "Aisha Mohamed" as well as
    "Aisha"; a whole-string similarity is the fallback for unusual spellings.
    """
    from matching.comparators import compare_tokens
    from matching.names import name_tokens, normalize_name, transliterate
    wanted, held = name_tokens(query), name_tokens(record_names)
    if not wanted or not held:
        return 0.0
    per_word = sum(max(compare_tokens(a, b)[1] for b in held) for a in wanted) / len(wanted)
    whole = fuzz.token_set_ratio(transliterate(normalize_name(query)), transliterate(normalize_name(record_names)))
    return max(100.0 * per_word, whole)


def search_records(model, scoped_query, text: str, limit: int = 50) -> list:
    """Records of `scoped_query` matching `text`: a short id, a phone number or a name.

    Exact short id or phone matches come first, then name matches best first.
    """
    from matching.names import name_keys
    text = (text or "").strip()
    if not text:
        return []
    found: dict[str, tuple[float, object]] = {}
    compact = text.lower().replace(" ", "")
    if re.fullmatch(r"[a-z0-9]{4,12}", compact):
        for record in db.session.execute(scoped_query.where(model.short_id.startswith(compact)).limit(limit)).scalars():
            found[record.id] = (1000.0, record)
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 6 and hasattr(model, "phone_digits"):
        for record in db.session.execute(scoped_query.where(
                or_(model.phone_digits.endswith(digits[-9:]), model.phone_digits == digits)).limit(limit)).scalars():
            found.setdefault(record.id, (900.0, record))
    keys = name_keys(text)
    if keys:
        ids = select(RecordKey.record_id).where(RecordKey.record_type == model.RECORD_TYPE,
                                                RecordKey.kind == NAME_KIND, RecordKey.key.in_(sorted(keys)))
        candidates = db.session.execute(scoped_query.where(model.id.in_(ids)).limit(MAX_CANDIDATES)).scalars()
        for record in candidates:
            names = " ".join(name_texts(model.RECORD_TYPE, record.data or {})) or record.display_name
            score = name_score(text, names)
            if score >= 70 and record.id not in found:
                found[record.id] = (score, record)
    ranked = sorted(found.values(), key=lambda item: (-item[0], item[1].short_id))
    return [record for _score, record in ranked[:limit]]
