"""Indexed copies of a few form values (name, sex, age, location, phone).

Which fields feed them is decided by the fields' matching tags in the form
definition, so an administrator's new "Name in Arabic script" field tagged
`other_name` shows up in lists and searches without code.
"""
from __future__ import annotations

import re

NAME_TAGS = ("given_name", "middle_name", "family_name", "full_name")


def _first(data: dict, record_type: str, tag: str):
    from forms.operations import fields_with_matching_tag
    for key in fields_with_matching_tag(record_type, tag):
        value = data.get(key)
        if value not in (None, "", []):
            return value
    return None


def phone_keys(record_type: str) -> list[str]:
    from forms.models import PHONE
    from forms.operations import get_definition
    return [item.key for item in get_definition(record_type).fields if item.type == PHONE]


def display_name(record_type: str, data: dict, tags: tuple[str, ...] = NAME_TAGS) -> str:
    from forms.operations import fields_with_matching_tag
    parts = []
    for tag in tags:
        for key in fields_with_matching_tag(record_type, tag):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                parts.append(value.strip())
    return " ".join(parts)[:300]


def digits(value) -> str | None:
    found = re.sub(r"\D", "", str(value or ""))
    return found[-32:] or None


def denormalised_values(record_type: str, data: dict) -> dict:
    age = _first(data, record_type, "age")
    try:
        age = int(age) if age is not None else None
    except (TypeError, ValueError):
        age = None
    location = _first(data, record_type, "location")
    phone = next((data[key] for key in phone_keys(record_type) if data.get(key)), None)
    sex = _first(data, record_type, "sex")
    return {
        "display_name": display_name(record_type, data),
        "sex": str(sex)[:16] if sex else None,
        "age": age,
        "location_code": str(location)[:64] if location else None,
        "phone_digits": digits(phone),
    }
