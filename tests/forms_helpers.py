"""Shared builders for the form engine tests: a small form with every field type."""
from __future__ import annotations

import copy

from flask import g

from forms import operations as ops


def t(en, fr=None, ar=None):
    labels = {"en": en}
    if fr:
        labels["fr"] = fr
    if ar:
        labels["ar"] = ar
    return labels


SAMPLE_LOOKUPS = [
    {"code": "colour", "labels": t("Colour", "Couleur", "اللون"), "values": [
        {"code": "red", "labels": t("Red", "Rouge", "أحمر")},
        {"code": "blue", "labels": t("Blue", "Bleu", "أزرق")},
        {"code": "old", "labels": t("Old colour", "Ancienne couleur", "لون قديم"), "is_disabled": True},
    ]},
]

SAMPLE_FIELDS = [
    {"key": "nickname", "type": "text", "labels": t("Nickname", "Surnom", "اللقب"), "is_required": True,
     "matching_tag": "nickname", "max_length": 20},
    {"key": "story", "type": "textarea", "labels": t("Story")},
    {"key": "age", "type": "integer", "labels": t("Age", "Âge", "العمر"), "min_value": 0, "max_value": 17,
     "matching_tag": "age"},
    {"key": "height", "type": "decimal", "labels": t("Height"), "min_value": 0.5, "max_value": 2.5},
    {"key": "born", "type": "date", "labels": t("Born", "Né le", "تاريخ الميلاد"), "is_future_refused": True,
     "is_approximate_allowed": True, "matching_tag": "date_of_birth"},
    {"key": "met_on", "type": "date", "labels": t("Met on")},
    {"key": "agrees", "type": "tick_box", "labels": t("Agrees", "Accepte", "يوافق")},
    {"key": "colour", "type": "select", "labels": t("Colour", "Couleur", "اللون"), "lookup": "colour"},
    {"key": "colours", "type": "multi_select", "labels": t("Colours"), "lookup": "colour"},
    {"key": "size", "type": "radio", "labels": t("Size"), "options": [
        {"code": "s", "labels": t("Small", "Petit", "صغير")}, {"code": "l", "labels": t("Large")}]},
    {"key": "size_notes", "type": "text", "labels": t("Size notes"),
     "condition": {"field": "size", "operator": "equals", "value": "l"}},
    {"key": "place", "type": "location", "labels": t("Place", "Lieu", "المكان"), "matching_tag": "location"},
    {"key": "phone", "type": "phone", "labels": t("Phone")},
    {"key": "heading", "type": "separator", "labels": t("More")},
    {"key": "family", "type": "subform", "labels": t("Family", "Famille", "الأسرة"), "max_length": 3, "subfields": [
        {"key": "member_name", "type": "text", "labels": t("Name"), "is_required": True},
        {"key": "member_age", "type": "integer", "labels": t("Member age"), "min_value": 0, "max_value": 120},
        {"key": "member_alive", "type": "tick_box", "labels": t("Alive")},
        {"key": "member_place", "type": "location", "labels": t("Member place"),
         "condition": {"field": "member_alive", "operator": "is_true", "value": None}},
    ]},
    {"key": "photos", "type": "photo", "labels": t("Photos"), "max_length": 2},
    {"key": "papers", "type": "document", "labels": t("Papers")},
]

SAMPLE_LOCATIONS = [
    {"code": "XC", "parent": None, "type": "country", "names": t("Xland", "Xpays", "إكس")},
    {"code": "XC-R", "parent": "XC", "type": "region", "names": t("Region R", "Région R", "المنطقة ر")},
    {"code": "XC-R-D", "parent": "XC-R", "type": "district", "names": t("District D")},
    {"code": "XC-R-D-CAMP", "parent": "XC-R-D", "type": "camp", "names": t("Camp One", "Camp Un", "المخيم الأول")},
    {"code": "XC-OLD", "parent": "XC", "type": "region", "names": t("Old region"), "is_disabled": True},
]


def sample_configuration(draft_allowed=False) -> dict:
    return copy.deepcopy({
        "format": "cpims-forms", "version": 1, "lookups": SAMPLE_LOOKUPS, "locations": SAMPLE_LOCATIONS,
        "forms": [{"record_type": "trace", "labels": t("Sample", "Exemple", "مثال"),
                   "is_draft_allowed": draft_allowed, "sections": [
                       {"key": "main", "labels": t("Main", "Principal", "الرئيسي"),
                        "access": {"caseworker": "write", "supervisor": "write", "tracing_officer": "read"},
                        "fields": SAMPLE_FIELDS},
                       {"key": "secret", "labels": t("Secret section"),
                        "access": {"supervisor": "write"},
                        "fields": [{"key": "secret_note", "type": "text", "labels": t("Secret note")}]},
                   ]}],
    })


def load_sample(draft_allowed=False) -> None:
    ops.load_configuration(sample_configuration(draft_allowed))


def clear_request_globals() -> None:
    """The tests' app context is shared by every request of a test: forget the user and
    language an earlier request left on flask.g, as a new request would."""
    for key in ("_login_user", "_flask_babel"):
        g.pop(key, None)
    ops.invalidate_definitions()


class Browser:
    """A WebClient whose every request starts with fresh request globals."""

    def __init__(self, web):
        self.web = web

    def __getattr__(self, name):
        attribute = getattr(self.web, name)
        if name in ("get", "post", "patch", "put", "delete", "form", "open"):
            def call(*args, **kwargs):
                clear_request_globals()
                return attribute(*args, **kwargs)
            return call
        return attribute

    def api(self, method: str, path: str, json=None):
        clear_request_globals()
        token = self.web.csrf_token("/")
        clear_request_globals()
        return getattr(self.web.client, method)(path, json=json, headers={"X-CSRFToken": token})
