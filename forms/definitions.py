"""The read side of the form engine: definitions as plain immutable objects.

`get_definition(record_type)` turns the rows of a form into a `FormDef` (sections
in order, fields in order, subform fields inside their subform, choice options
resolved from lookups). It is cached on `flask.g` for the current request or job
and dropped whenever the definition, a lookup or a location changes, or the
session rolls back; and kept by the process between requests and jobs while the
form's version stamp (bumped by every change of the form or of a lookup it uses)
is the same, so a request or a job reads one row instead of the whole form.
Everything else here (access, conditions, display values, locations) works on
these objects, so views, exports and the matcher never touch the form tables
themselves.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flask import current_app, g, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session, selectinload

from app.extensions import db
from forms.models import (
    APPROXIMATE_SUFFIX,
    ATTACHMENT_TYPES,
    CHOICE_TYPES,
    DATE,
    DECIMAL,
    INTEGER,
    LOCATION,
    RECORD_TYPES,
    SEPARATOR,
    SUBFORM,
    TICK_BOX,
    FormDefinition,
    FormField,
    FormSection,
    Location,
    Lookup,
)

_DEFINITIONS_KEY = "_forms_definitions"
_STAMPS_KEY = "_forms_definition_stamps"
_LOCATIONS_KEY = "_forms_locations"
_ALL_LOCATIONS_KEY = "_forms_all_locations"
_LOCATION_CHOICES_KEY = "_forms_location_choices"

READ = "read"
WRITE = "write"
CONDITION_OPERATORS = ("equals", "not_equals", "in", "is_set", "is_true")


def text_in(texts: Mapping | None, locale: str, fallback: str = "") -> str:
    """The text in `locale`, else in English, else `fallback`."""
    texts = texts or {}
    return texts.get(locale) or texts.get("en") or fallback


@dataclass(frozen=True)
class Option:
    code: str
    labels: Mapping
    is_disabled: bool = False

    def label(self, locale: str) -> str:
        return text_in(self.labels, locale, self.code)


@dataclass(frozen=True)
class FieldDef:
    id: int
    key: str
    type: str
    labels: Mapping
    help_texts: Mapping
    section_key: str
    position: int = 0
    is_required: bool = False
    is_hidden: bool = False
    is_removed: bool = False
    matching_tag: str | None = None
    condition: Mapping | None = None
    lookup: str | None = None            # lookup code when the options come from a lookup
    options: tuple[Option, ...] = ()     # resolved options (lookup values or inline), disabled included
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    max_length: int | None = None
    is_future_refused: bool = False
    is_approximate_allowed: bool = False
    parent_key: str | None = None
    subfields: tuple["FieldDef", ...] = ()
    removed_subfields: tuple["FieldDef", ...] = ()

    def label(self, locale: str) -> str:
        return text_in(self.labels, locale, self.key)

    def help(self, locale: str) -> str:
        return text_in(self.help_texts, locale)

    @property
    def path(self) -> str:
        return f"{self.parent_key}.{self.key}" if self.parent_key else self.key

    @property
    def holds_value(self) -> bool:
        return self.type != SEPARATOR

    @property
    def approximate_key(self) -> str | None:
        """The companion key holding the "approximate" flag of a date, if the field has one."""
        return self.key + APPROXIMATE_SUFFIX if self.type == DATE and self.is_approximate_allowed else None

    @property
    def is_choice(self) -> bool:
        return self.type in CHOICE_TYPES

    @property
    def is_attachment(self) -> bool:
        return self.type in ATTACHMENT_TYPES

    @property
    def is_active(self) -> bool:
        return not (self.is_hidden or self.is_removed)

    def option(self, code) -> Option | None:
        for option in self.options:
            if option.code == code:
                return option
        return None

    def enabled_options(self, keep=None) -> list[Option]:
        """Options offered in a form: enabled ones, plus disabled ones already chosen (`keep`)."""
        kept = set(keep if isinstance(keep, (list, tuple, set)) else [keep])
        return [o for o in self.options if not o.is_disabled or o.code in kept]

    def subfield(self, key: str) -> "FieldDef | None":
        for sub in self.subfields + self.removed_subfields:
            if sub.key == key:
                return sub
        return None

    @property
    def active_subfields(self) -> list["FieldDef"]:
        return [sub for sub in self.subfields if not sub.is_hidden]


@dataclass(frozen=True)
class SectionDef:
    id: int
    key: str
    labels: Mapping
    help_texts: Mapping
    position: int
    is_hidden: bool
    fields: tuple[FieldDef, ...] = ()           # active and hidden fields, in order
    removed_fields: tuple[FieldDef, ...] = ()

    def label(self, locale: str) -> str:
        return text_in(self.labels, locale, self.key)

    def help(self, locale: str) -> str:
        return text_in(self.help_texts, locale)

    @property
    def visible_fields(self) -> list[FieldDef]:
        return [f for f in self.fields if not f.is_hidden]

    @property
    def all_fields(self) -> tuple[FieldDef, ...]:
        return self.fields + self.removed_fields


@dataclass(frozen=True)
class FormDef:
    record_type: str
    labels: Mapping
    is_draft_allowed: bool
    version: int
    sections: tuple[SectionDef, ...] = ()
    _index: Mapping = field(default_factory=dict, compare=False, repr=False)

    def label(self, locale: str) -> str:
        return text_in(self.labels, locale, self.record_type)

    def field(self, key: str) -> FieldDef | None:
        """A field by key (hidden and removed included); "subform.sub" names a subform field."""
        if "." in key:
            parent_key, _, sub_key = key.partition(".")
            parent = self._index.get(parent_key)
            return parent.subfield(sub_key) if parent and parent.type == SUBFORM else None
        return self._index.get(key)

    def section_of(self, key: str) -> SectionDef | None:
        found = self.field(key.split(".", 1)[0])
        if found is None:
            return None
        return next((s for s in self.sections if s.key == found.section_key), None)

    @property
    def fields(self) -> list[FieldDef]:
        """Every top-level field holding a value, active, hidden and removed, in form order."""
        return [f for s in self.sections for f in s.all_fields if f.holds_value]

    @property
    def active_fields(self) -> list[FieldDef]:
        return [f for s in self.sections if not s.is_hidden for f in s.fields if f.is_active and f.holds_value]

    @functools.cached_property
    def matching_keys(self) -> Mapping[str, tuple[str, ...]]:
        """Matching tag -> keys of the top-level fields carrying it, in form order (every
        matching job asks; the definition never changes, so it is worked out once)."""
        found: dict[str, list[str]] = {}
        for item in self.fields:
            if item.matching_tag:
                found.setdefault(item.matching_tag, []).append(item.key)
        return {tag: tuple(keys) for tag, keys in found.items()}

    def companion_owner(self, key: str) -> FieldDef | None:
        """The date field whose approximate flag is stored under `key`."""
        if key.endswith(APPROXIMATE_SUFFIX):
            owner = self._index.get(key[: -len(APPROXIMATE_SUFFIX)])
            if owner is not None and owner.approximate_key == key:
                return owner
        return None


# --- building and caching -------------------------------------------------------------

def _field_def(row: FormField, section_key: str, rows_by_parent: dict, parent_key: str | None = None) -> FieldDef:
    if row.lookup is not None:
        options = tuple(Option(v.code, dict(v.labels or {}), v.is_disabled) for v in row.lookup.values)
    else:
        options = tuple(Option(o["code"], dict(o.get("labels") or {}), bool(o.get("is_disabled")))
                        for o in (row.options or []))
    children = rows_by_parent.get(row.id, [])
    return FieldDef(
        id=row.id, key=row.key, type=row.type, labels=dict(row.labels or {}),
        help_texts=dict(row.help_texts or {}), section_key=section_key, position=row.position,
        is_required=row.is_required, is_hidden=row.is_hidden, is_removed=row.removed_at is not None,
        matching_tag=row.matching_tag, condition=dict(row.condition) if row.condition else None,
        lookup=row.lookup.code if row.lookup is not None else None, options=options,
        min_value=Decimal(row.min_value) if row.min_value is not None else None,
        max_value=Decimal(row.max_value) if row.max_value is not None else None, max_length=row.max_length,
        is_future_refused=row.is_future_refused, is_approximate_allowed=row.is_approximate_allowed,
        parent_key=parent_key,
        subfields=tuple(_field_def(c, section_key, rows_by_parent, row.key) for c in children
                        if c.removed_at is None),
        removed_subfields=tuple(_field_def(c, section_key, rows_by_parent, row.key) for c in children
                                if c.removed_at is not None),
    )


def build_definition(record_type: str) -> FormDef:
    """Read a form from the database (uncached; use `get_definition`)."""
    if record_type not in RECORD_TYPES:
        raise KeyError(f"unknown record type {record_type!r}")
    form = db.session.execute(
        select(FormDefinition).where(FormDefinition.record_type == record_type)
    ).scalar_one_or_none()
    if form is None:
        return FormDef(record_type, {}, False, 0)
    sections = db.session.execute(
        select(FormSection).where(FormSection.form_id == form.id).order_by(FormSection.position, FormSection.id)
    ).scalars().all()
    rows = db.session.execute(
        select(FormField).where(FormField.form_id == form.id)
        .options(selectinload(FormField.lookup).selectinload(Lookup.values))
        .order_by(FormField.position, FormField.id)
    ).scalars().all()
    rows_by_parent: dict = {}
    rows_by_section: dict = {}
    for row in rows:
        if row.parent_id is None:
            rows_by_section.setdefault(row.section_id, []).append(row)
        else:
            rows_by_parent.setdefault(row.parent_id, []).append(row)
    section_defs = []
    index: dict[str, FieldDef] = {}
    for section in sections:
        defs = [_field_def(row, section.key, rows_by_parent) for row in rows_by_section.get(section.id, [])]
        for item in defs:
            index[item.key] = item
        section_defs.append(SectionDef(
            id=section.id, key=section.key, labels=dict(section.labels or {}),
            help_texts=dict(section.help_texts or {}), position=section.position, is_hidden=section.is_hidden,
            fields=tuple(d for d in defs if not d.is_removed), removed_fields=tuple(d for d in defs if d.is_removed)))
    return FormDef(record_type, dict(form.labels or {}), form.is_draft_allowed, form.version,
                   tuple(section_defs), index)


def get_definition(record_type: str) -> FormDef:
    """The current form of `record_type` ('case', 'tracing_request' or 'trace').

    Sections in order, fields in order, subform fields inside their subform, removed
    fields kept apart. Cached for the current request (or job, or CLI command) and
    dropped when anything in it changes.
    """
    if not has_app_context():
        return build_definition(record_type)
    cache = g.setdefault(_DEFINITIONS_KEY, {})
    if record_type not in cache:
        stamp = _definition_stamp(record_type)
        kept = _PROCESS_DEFINITIONS.get(record_type)
        if kept is None or kept[0] != stamp:
            kept = _PROCESS_DEFINITIONS[record_type] = (stamp, build_definition(record_type))
        cache[record_type] = kept[1]
    return cache[record_type]


# record type -> (stamp, definition): what this process built last (see the module's docstring).
_PROCESS_DEFINITIONS: dict[str, tuple[tuple, FormDef]] = {}


def _definition_stamp(record_type: str) -> tuple:
    """Changes with every change of the form: `forms.operations._touch` bumps its version and
    time (a change rolled back and another committed cannot share both); another database or
    a form created again has another identity. The stamps of every form are read at once, once
    per request or job."""
    stamps = g.get(_STAMPS_KEY)
    if stamps is None:
        url = str(db.engine.url)
        stamps = {record_type_: (url, form_id, version, updated_at) for record_type_, form_id, version, updated_at
                  in db.session.execute(select(FormDefinition.record_type, FormDefinition.id,
                                               FormDefinition.version, FormDefinition.updated_at))}
        stamps[None] = (url,)
        setattr(g, _STAMPS_KEY, stamps)
    return stamps.get(record_type, stamps[None])


def forget_definitions() -> None:
    """Drop what this process keeps between requests (tests that write form rows directly)."""
    _PROCESS_DEFINITIONS.clear()


def invalidate_definitions() -> None:
    """Forget cached definitions and locations (called by every change)."""
    _PROCESS_DEFINITIONS.clear()
    _forget_request_cache()


def _forget_request_cache() -> None:
    if has_app_context():
        for key in (_DEFINITIONS_KEY, _STAMPS_KEY, _LOCATIONS_KEY, _ALL_LOCATIONS_KEY, _LOCATION_CHOICES_KEY):
            g.pop(key, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session, previous_transaction):
    # A rolled-back change must not survive in the cache of this request. What the process
    # keeps is filed under the form's stamp, and the stamp of a rolled-back change is never
    # the stamp read afterwards, so it stays (a failed save or job no longer makes the next
    # job in the process rebuild every form: 12 ms each).
    _forget_request_cache()


# --- access: per-section read/write permissions ------------------------------------------

def section_permission(record_type: str, section_key: str, action: str) -> str:
    return f"form.{record_type}.{section_key}:{action}"


def section_access(permissions: set[str], record_type: str, section_key: str) -> str | None:
    """'write', 'read' or None for a set of permissions (write implies read)."""
    if section_permission(record_type, section_key, WRITE) in permissions:
        return WRITE
    if section_permission(record_type, section_key, READ) in permissions:
        return READ
    return None


def _field_keys(item: FieldDef) -> list[str]:
    keys = [item.key]
    if item.approximate_key:
        keys.append(item.approximate_key)
    return keys


@dataclass(frozen=True)
class FormAccess:
    """What one user (or a previewed role) may see and change in one form."""

    readable_sections: frozenset
    writable_sections: frozenset
    readable: frozenset   # field keys, hidden and removed included (their values stay readable)
    writable: frozenset   # active fields of visible sections only

    def can_read_section(self, section: SectionDef) -> bool:
        return section.key in self.readable_sections

    def can_write(self, item: FieldDef) -> bool:
        return (item.parent_key or item.key) in self.writable and not item.is_hidden and not item.is_removed


def access_from_permissions(definition: FormDef, permissions: set[str] | None) -> FormAccess:
    """`permissions` None means everything (an administrator's preview)."""
    readable_sections, writable_sections, readable, writable = set(), set(), set(), set()
    for section in definition.sections:
        level = WRITE if permissions is None else section_access(permissions, definition.record_type, section.key)
        if level is None:
            continue
        readable_sections.add(section.key)
        for item in section.all_fields:
            if item.holds_value:
                readable.update(_field_keys(item))
        if level == WRITE and not section.is_hidden:
            writable_sections.add(section.key)
            for item in section.fields:
                if item.holds_value and not item.is_hidden:
                    writable.update(_field_keys(item))
    return FormAccess(frozenset(readable_sections), frozenset(writable_sections), frozenset(readable),
                      frozenset(writable))


def _user_permissions(user) -> set[str]:
    if not (user and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)):
        return set()
    return set(user.permissions)


def access_for(definition: FormDef, user) -> FormAccess:
    return access_from_permissions(definition, _user_permissions(user))


def readable_fields(user, record_type: str) -> set[str]:
    """Keys of the fields `user` may read in `record_type` (from their role's section permissions).

    Hidden and removed fields are included: their stored values stay readable. A
    date's approximate flag (`<key>_approximate`) is included with its date.
    """
    return set(access_for(get_definition(record_type), user).readable)


def writable_fields(user, record_type: str) -> set[str]:
    """Keys of the fields `user` may change: active fields of visible sections they may write."""
    return set(access_for(get_definition(record_type), user).writable)


# --- matching ---------------------------------------------------------------------------

def fields_with_matching_tag(record_type: str, tag: str) -> list[str]:
    """Keys of the top-level fields tagged `tag` for the matching engine, in form order.

    Hidden and removed fields are included: their stored values still describe the child.
    """
    return list(get_definition(record_type).matching_keys.get(tag, ()))


# --- display conditions -------------------------------------------------------------------

def is_empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def condition_met(condition: Mapping | None, values: Mapping) -> bool:
    """Does `values` satisfy a field's display condition? No condition: always shown."""
    if not condition:
        return True
    value = values.get(condition.get("field"))
    operator = condition.get("operator", "equals")
    expected = condition.get("value")
    if operator == "is_set":
        return not is_empty(value)
    if operator == "is_true":
        return value is True
    if operator == "in":
        choices = expected if isinstance(expected, list) else [expected]
        if isinstance(value, list):
            return any(v in choices for v in value)
        return value in choices
    matched = (expected in value) if isinstance(value, list) else (value == expected)
    return matched if operator == "equals" else not matched


def visible_keys(items: Iterable[FieldDef], values: Mapping) -> set[str]:
    """Keys of `items` whose display condition holds, a field hidden by its own condition
    counting as empty for the conditions that depend on it."""
    by_key = {item.key: item for item in items}
    state: dict[str, bool] = {}

    def visible(key: str, depth: int = 0) -> bool:
        if key in state:
            return state[key]
        item = by_key.get(key)
        if item is None or depth > len(by_key):
            return False
        condition = item.condition
        if condition and condition.get("field") in by_key and not visible(condition["field"], depth + 1):
            result = condition_met(condition, {})
        else:
            result = condition_met(condition, values)
        state[key] = result
        return result

    return {key for key in by_key if visible(key)}


# --- lookups ------------------------------------------------------------------------------

def lookup_options(code: str) -> list[Option]:
    lookup = db.session.execute(
        select(Lookup).where(Lookup.code == code).options(selectinload(Lookup.values))
    ).scalar_one_or_none()
    if lookup is None:
        return []
    return [Option(v.code, dict(v.labels or {}), v.is_disabled) for v in lookup.values]


# --- locations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LocationInfo:
    code: str
    parent_code: str | None
    type: str
    names: Mapping
    is_disabled: bool

    def name(self, locale: str) -> str:
        return text_in(self.names, locale, self.code)


def _location_cache() -> dict:
    return g.setdefault(_LOCATIONS_KEY, {}) if has_app_context() else {}


def get_location(code) -> LocationInfo | None:
    """One location by code (cached for the request); None if unknown."""
    if not isinstance(code, str) or not code:
        return None
    cache = _location_cache()
    if code not in cache:
        row = db.session.execute(select(Location).where(Location.code == code)).scalar_one_or_none()
        cache[code] = None if row is None else LocationInfo(
            row.code, row.parent.code if row.parent is not None else None, row.type, dict(row.names or {}),
            row.is_disabled)
    return cache[code]


def location_ancestors(code) -> list[str]:
    """The location and its ancestors, nearest first: [camp, district, region, country].

    The matcher ranks "same camp" above "same district" above "same region" with
    this. An unknown code gives [].
    """
    chain: list[str] = []
    current = get_location(code)
    while current is not None and current.code not in chain:
        chain.append(current.code)
        current = get_location(current.parent_code) if current.parent_code else None
    return chain


def location_path(code, locale: str, separator: str = " › ") -> str:
    """"Country › Region › Camp" in `locale`; the code itself if unknown."""
    names = [get_location(c).name(locale) for c in reversed(location_ancestors(code))]
    return separator.join(names) if names else (code or "")


def all_locations() -> list[LocationInfo]:
    """Every location (for pickers), cached for the request."""
    if has_app_context() and _ALL_LOCATIONS_KEY in g:
        return g.get(_ALL_LOCATIONS_KEY)
    rows = db.session.execute(select(Location).order_by(Location.id)).scalars().all()
    by_id = {row.id: row for row in rows}
    infos = [LocationInfo(r.code, by_id[r.parent_id].code if r.parent_id in by_id else None, r.type,
                          dict(r.names or {}), r.is_disabled) for r in rows]
    if has_app_context():
        cache = _location_cache()
        for info in infos:
            cache[info.code] = info
        g.setdefault(_ALL_LOCATIONS_KEY, infos)
    return infos


def location_choices(locale: str, keep=None) -> list[tuple[str, str, bool]]:
    """(code, "Country › Region › Camp", is_disabled) sorted by path; disabled ones only if kept."""
    cache = g.setdefault(_LOCATION_CHOICES_KEY, {}) if has_app_context() else {}
    if locale not in cache:
        # Built once per request and language: a form may hold many location fields and rows.
        cache[locale] = sorted(((info.code, location_path(info.code, locale), info.is_disabled)
                                for info in all_locations()), key=lambda c: c[1].casefold())
    return [choice for choice in cache[locale] if not choice[2] or choice[0] == keep]


# --- display values -----------------------------------------------------------------------

def _yes_no(value: bool, locale: str) -> str:
    from flask_babel import force_locale
    from flask_babel import gettext as _
    with force_locale(locale):
        return _("Yes") if value else _("No")


def display_value(record_type: str, key: str, value, locale: str) -> str:
    """Human text for a stored value: lookup labels and location names in `locale`,
    yes/no for tick boxes, dates formatted for the locale. Unknown codes show as
    themselves, so nothing stored is ever hidden by a changed definition.
    `key` may name a subform field as "subform.field" or a date's approximate flag.
    """
    if is_empty(value):
        return ""
    definition = get_definition(record_type)
    item = definition.field(key)
    if item is None:
        owner = definition.companion_owner(key)
        if owner is not None:
            return _yes_no(bool(value), locale)
        return _plain(value)
    return format_value(item, value, locale)


def format_value(item: FieldDef, value, locale: str) -> str:
    if is_empty(value):
        return ""
    if item.type == TICK_BOX:
        return _yes_no(value is True or value == "true", locale)
    if item.is_choice:
        codes = value if isinstance(value, list) else [value]
        labels = []
        for code in codes:
            option = item.option(code)
            labels.append(option.label(locale) if option else _plain(code))
        return ", ".join(labels)
    if item.type == LOCATION:
        info = get_location(value)
        return info.name(locale) if info else _plain(value)
    if item.type == DATE:
        return _format_date(value, locale)
    if item.type in (INTEGER, DECIMAL):
        return _plain(value)
    if item.type == SUBFORM:
        count = len(value) if isinstance(value, list) else 0
        from flask_babel import force_locale, ngettext
        with force_locale(locale):
            return ngettext("%(num)d entry", "%(num)d entries", count)
    if item.is_attachment:
        count = len(value) if isinstance(value, list) else 1
        from flask_babel import force_locale, ngettext
        with force_locale(locale):
            return ngettext("%(num)d file", "%(num)d files", count)
    return _plain(value)


def _format_date(value, locale: str) -> str:
    try:
        parsed = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return _plain(value)
    from babel.dates import format_date
    try:
        return format_date(parsed, format="medium", locale=locale)
    except Exception:  # an unknown locale: fall back to ISO
        return parsed.isoformat()


def _plain(value) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def languages() -> list[str]:
    return list(current_app.config["LANGUAGES"])


def location_descendants(code) -> list[str]:
    """The location and every location below it (a region's districts and camps), for list filters."""
    children: dict[str | None, list[str]] = {}
    for info in all_locations():
        children.setdefault(info.parent_code, []).append(info.code)
    found, todo = [], [code] if get_location(code) else []
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo.extend(children.get(current, []))
    return found or [code]
