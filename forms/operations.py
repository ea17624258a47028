"""Operations of the form engine.

For the records modules (cases, tracing requests, traces) this is the whole contract:

* `get_definition(record_type)` -> `FormDef`: sections and fields in order (cached per request).
* `validate_record_data(record_type, data, user, existing=None, draft=False)` -> cleaned data,
  or `FormValidationError` with `.errors = {"key": [...], "subform.0.sub": [...]}`.
* `parse_form_data(record_type, request.form, user)` -> the dict to validate, from an HTML form
  rendered by the `render_form` macro.
* `readable_fields(user, record_type)` / `writable_fields(user, record_type)` -> sets of keys.
* `fields_with_matching_tag(record_type, tag)` -> keys the matcher reads for `tag`.
* `display_value(record_type, key, value, locale)` -> text for views and exports.
* `location_ancestors(code)`, `location_path(code, locale)`, `get_location(code)`.
* `register_stored_values_provider(fn)`: how a records module lets the form engine refuse
  definition changes (field type, lookup, options, deleting a lookup value) that would
  invalidate stored data. `fn(record_type, path)` yields every stored non-empty value of
  the field at `path` ("key", or "subform_key.sub_key" for the fields of a subform).

For administrators: sections, fields, lookups and locations are created and changed here
(each change audited, the definition's version bumped), and a whole configuration is
exported to and loaded from JSON. Operations flush; the caller commits once.

Stored record data (as returned by `validate_record_data`):
text/textarea/phone -> str (phones as "+<digits>"), integer -> int, decimal -> str
(exact decimal text), date -> "YYYY-MM-DD" (with `<key>_approximate` -> bool when the
field allows it), tick box -> bool, select/radio/location -> code (str), multi select
-> [codes], photo/document -> [file ids], subform -> [{"_id": uuid, ...}].
"""
from __future__ import annotations

import copy
import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager, nullcontext
from decimal import Decimal
from pathlib import Path

from flask import has_request_context
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, ValidationError
from sqlalchemy import func, select

from app.audit.operations import record_audit
from app.db import utcnow
from app.extensions import db
from app.permissions import (
    CATALOGUE,
    ROLE_ADMINISTRATOR,
    ROLE_CASEWORKER,
    ROLE_SERVICE_PROVIDER,
    ROLE_SUPERVISOR,
    ROLE_TRACING_OFFICER,
    PermissionDef,
    register_permission,
)
from app.users.operations import ValidationError as UsersValidationError
from forms import schemas
from forms.definitions import (  # re-exported (see __all__): the records modules import from here
    READ,
    WRITE,
    FieldDef,
    FormAccess,
    FormDef,
    LocationInfo,
    SectionDef,
    access_for,
    access_from_permissions,
    all_locations,
    build_definition,
    condition_met,
    display_value,
    fields_with_matching_tag,
    format_value,
    get_definition,
    get_location,
    invalidate_definitions,
    is_empty,
    location_ancestors,
    location_choices,
    location_path,
    readable_fields,
    section_access,
    section_permission,
    visible_keys,
    writable_fields,
)
from forms.models import (
    APPROXIMATE_SUFFIX,
    ATTACHMENT_TYPES,
    CHOICE_TYPES,
    DATE,
    RECORD_TYPES,
    SUBFORM,
    TICK_BOX,
    FormDefinition,
    FormField,
    FormSection,
    Location,
    Lookup,
    LookupValue,
)
from forms.schemas import ROW_ID, flatten_errors, is_missing, load_spec, record_schema

log = logging.getLogger(__name__)

# --- permissions ------------------------------------------------------------------------------

ALL_ROLES = (ROLE_CASEWORKER, ROLE_SUPERVISOR, ROLE_TRACING_OFFICER, ROLE_SERVICE_PROVIDER, ROLE_ADMINISTRATOR)
FORMS_READ = register_permission(
    "forms", "read", _l("Read form definitions, lookups and locations"), ALL_ROLES)
FORMS_MANAGE = register_permission(
    "forms", "manage", _l("Design forms: sections, fields, translations, preview, import and export"),
    (ROLE_ADMINISTRATOR,), is_admin=True)
LOOKUPS_MANAGE = register_permission(
    "lookups", "manage", _l("Manage lookups (the value lists of choice fields)"), (ROLE_ADMINISTRATOR,),
    is_admin=True)
LOCATIONS_MANAGE = register_permission(
    "locations", "manage", _l("Manage locations and import them from CSV"), (ROLE_ADMINISTRATOR,),
    is_admin=True)

DEFAULT_CONFIGURATION = Path(__file__).parent / "config" / "default_config.json"
DEMO_LOCATIONS = Path(__file__).parent / "config" / "demo_locations.csv"


class FormValidationError(UsersValidationError):
    """Field-level problems: `.errors = {key: [translated messages]}`.

    Subform problems are keyed "subform.row.field" (e.g. "family_details.0.relation_age");
    problems with the whole record or file under "_record".
    """


def _fail(field: str, message: str):
    raise FormValidationError({field: [message]})


@contextmanager
def _atomic():
    """Run an operation in a savepoint: if it fails, none of it stays in the session."""
    try:
        with db.session.begin_nested():
            yield
    finally:
        invalidate_definitions()


# --- per-section permissions in the shared catalogue ------------------------------------------------

class SectionPermissionLabel:
    """The label of a section's read/write permission, in the reader's language.

    Compared by value so re-registering the same section's permission is harmless.
    """

    def __init__(self, record_type: str, section_key: str, action: str):
        self.record_type, self.section_key, self.action = record_type, section_key, action

    def _key(self):
        return (self.record_type, self.section_key, self.action)

    def __eq__(self, other):
        return isinstance(other, SectionPermissionLabel) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self) -> str:
        from flask_babel import get_locale
        try:
            definition = get_definition(self.record_type)
            locale = str(get_locale() or "en")
            section = next((s for s in definition.sections if s.key == self.section_key), None)
            form_label = definition.label(locale)
            section_label = section.label(locale) if section else self.section_key
        except Exception:  # outside an app context: the keys still say what it is
            form_label, section_label = self.record_type, self.section_key
        if self.action == WRITE:
            return _("%(form)s form, section \"%(section)s\": change", form=form_label, section=section_label)
        return _("%(form)s form, section \"%(section)s\": see", form=form_label, section=section_label)

    def __html__(self) -> str:
        from markupsafe import escape
        return str(escape(str(self)))


def register_section_permissions(record_type: str, section_key: str) -> tuple[str, str]:
    names = []
    for action in (READ, WRITE):
        name = section_permission(record_type, section_key, action)
        definition = PermissionDef(f"form.{record_type}.{section_key}", action,
                                   SectionPermissionLabel(record_type, section_key, action))
        if CATALOGUE.entries.get(name) != definition:
            CATALOGUE.register(definition)
        names.append(name)
    return names[0], names[1]


_SYNC = {"at": 0.0}
SYNC_SECONDS = 5.0


def sync_section_permissions(force: bool = False) -> None:
    """Make the permission catalogue hold one read and one write entry per form section.

    Sections are data, so another process may have added one: requests call this at
    most every few seconds; operations that add sections register theirs at once.
    Entries are only ever added: section keys are never reused, and removing one here
    could race with a transaction that has just created its section but not committed.
    """
    now = time.monotonic()
    if not force and now - _SYNC["at"] < SYNC_SECONDS:
        return
    _SYNC["at"] = now
    rows = db.session.execute(
        select(FormDefinition.record_type, FormSection.key).join(FormSection, FormSection.form_id == FormDefinition.id)
    ).all()
    for record_type, key in rows:
        register_section_permissions(record_type, key)


# --- stored values (provided by the records modules) ---------------------------------------------------

StoredValuesProvider = Callable[[str, str], Iterable]
_STORED_VALUES_PROVIDERS: list[StoredValuesProvider] = []


def register_stored_values_provider(provider: StoredValuesProvider) -> None:
    """Let the form engine see stored data: `provider(record_type, path)` yields each stored
    non-empty value of that field (a list for multi selects and subforms) across all records,
    whatever their owner. `path` is "key" or "subform_key.sub_key"."""
    if provider not in _STORED_VALUES_PROVIDERS:
        _STORED_VALUES_PROVIDERS.append(provider)


def unregister_stored_values_provider(provider: StoredValuesProvider) -> None:
    if provider in _STORED_VALUES_PROVIDERS:
        _STORED_VALUES_PROVIDERS.remove(provider)


def stored_values(record_type: str, path: str) -> Iterable:
    for provider in list(_STORED_VALUES_PROVIDERS):
        for value in provider(record_type, path) or ():
            if not is_empty(value):
                yield value


def _stored_value_problems(record_type: str, item: FieldDef, limit: int = 3) -> tuple[int, list[str]]:
    """How many stored values of `item`'s field the definition `item` would refuse, and why."""
    count, reasons = 0, []
    for value in stored_values(record_type, item.path):
        problem = schemas.check_stored_value(item, value)
        if problem:
            count += 1
            if len(reasons) < limit and problem not in reasons:
                reasons.append(problem)
    return count, reasons


# --- validating record data -------------------------------------------------------------------------------

def validate_record_data(record_type: str, data, user, *, existing: dict | None = None,
                         draft: bool = False) -> dict:
    """Check `data` (the fields a user sends) against the current form and return the record's new data.

    * Unknown keys, separators, removed fields and fields `user` may not write are refused.
    * Values are checked by type (see the module docstring for the stored forms), range,
      lookup membership (a disabled option stays valid for a record that already holds it),
      dates (not in the future where the field says so) and subform rows.
    * A field hidden by its display condition is ignored (its stored value, if any, is kept).
    * Required fields the user may write must have a value, unless `draft` is asked for and
      the form allows incomplete drafts.
    * The result starts from `existing`: values of fields the user cannot see, and of hidden or
      removed fields, are kept; a key sent empty ("" or None or []) clears that value.

    Raises FormValidationError with messages in the user's language.
    """
    definition = get_definition(record_type)
    access = access_for(definition, user)
    locale = getattr(user, "locale", None)
    context = force_locale(locale) if locale and not has_request_context() else nullcontext()
    with context:
        return validate_with_access(definition, data, access, existing=existing, draft=draft)


def validate_with_access(definition: FormDef, data, access: FormAccess, *, existing: dict | None = None,
                         draft: bool = False) -> dict:
    """`validate_record_data` for a given access (an administrator's preview uses full access)."""
    if not isinstance(data, Mapping):
        raise FormValidationError({"_record": [_("Send the record as a set of fields.")]})
    existing = dict(existing or {})
    draft = bool(draft and definition.is_draft_allowed)
    errors: dict[str, list[str]] = {}
    keys: list[str] = []
    for key in data:
        if not isinstance(key, str):
            errors[str(key)] = [_("Unknown field.")]
            continue
        item = definition.field(key) if "." not in key else None
        target = item or definition.companion_owner(key)
        if target is None:
            errors[key] = [_("Unknown field.")]
        elif not target.holds_value:
            errors[key] = [_("This field holds no value.")]
        elif target.is_removed:
            errors[key] = [_("This field is no longer in the form.")]
        elif key not in access.writable:
            section = definition.section_of(target.key)
            if (target.is_hidden or (section and section.is_hidden)) and section and section.key in access.readable_sections:
                errors[key] = [_("This field is hidden and cannot be changed.")]
            else:
                errors[key] = [_("You may not change this field.")]
        else:
            keys.append(key)

    schema = record_schema(definition, keys, existing, draft)
    try:
        cleaned = schema.load({key: data[key] for key in keys}, unknown=RAISE)
    except ValidationError as error:
        errors.update(flatten_errors(error.messages))
        cleaned = error.valid_data or {}

    result = copy.deepcopy(existing)
    for key, value in cleaned.items():
        if value is None or value == []:
            result.pop(key, None)
        else:
            result[key] = value

    top_level = [item for section in definition.sections for item in section.fields if item.holds_value]
    shown = visible_keys(top_level, result)
    for key in keys:
        owner = definition.field(key) or definition.companion_owner(key)
        if owner.key in shown:
            continue
        # Hidden by its display condition: what was sent is ignored, what was stored is kept.
        for error_key in [k for k in errors if k == key or k.startswith(key + ".")]:
            errors.pop(error_key)
        if key in existing:
            result[key] = copy.deepcopy(existing[key])
        else:
            result.pop(key, None)
    for item in top_level:
        flag = item.approximate_key
        if flag and flag in result and (item.key in keys or flag in keys) and is_empty(result.get(item.key)):
            result.pop(flag)  # "approximately" means nothing without a date

    if not draft:
        for item in top_level:
            if (item.is_required and item.key in access.writable and item.key in shown
                    and item.key not in errors and is_missing(item, result.get(item.key))):
                errors[item.key] = [_("This field is required.")]
    if errors:
        raise FormValidationError(errors)
    return result


def _form_values(formdata, name: str) -> list[str]:
    if hasattr(formdata, "getlist"):
        return [v for v in formdata.getlist(name) if isinstance(v, str)]
    value = formdata.get(name)
    if value is None:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _parse_item(item: FieldDef, formdata, name: str):
    if item.type == TICK_BOX:
        return any(v.lower() in ("true", "on", "1", "yes") for v in _form_values(formdata, name))
    if item.type == "multi_select" or item.type in ATTACHMENT_TYPES:
        return [v for v in _form_values(formdata, name) if v.strip()]
    if item.type == SUBFORM:
        pattern = re.compile(rf"^{re.escape(name)}\.(\d+)\.")
        indexes = sorted({int(m.group(1)) for key in formdata.keys() if (m := pattern.match(key))})
        rows = []
        for index in indexes:
            prefix = f"{name}.{index}."
            if any(v for v in _form_values(formdata, prefix + "_delete")):
                continue
            row = {}
            row_id = (_form_values(formdata, prefix + ROW_ID) or [""])[0]
            for sub in item.subfields:
                if not sub.holds_value or sub.is_hidden:
                    continue
                row[sub.key] = _parse_item(sub, formdata, prefix + sub.key)
                if sub.approximate_key:
                    row[sub.approximate_key] = _parse_item(
                        FieldDef(0, sub.approximate_key, TICK_BOX, {}, {}, sub.section_key), formdata,
                        prefix + sub.approximate_key)
            if not row_id and all(is_empty(v) or v is False for v in row.values()):
                continue  # the blank row every form offers, left blank
            if row_id:
                row[ROW_ID] = row_id
            rows.append(row)
        return rows
    values = _form_values(formdata, name)
    return values[0] if values else ""


def parse_form_data(record_type: str, formdata, user=None, *, access: FormAccess | None = None,
                    prefix: str = "") -> dict:
    """The dict to validate from a form rendered by `render_form` (the fields the user may write).

    Unticked tick boxes give False, empty inputs "", subform rows a list of dicts (rows marked
    for removal left out, a blank new row left out). `prefix` reads one of several forms on a
    page, rendered with the same `prefix` (e.g. "traces.0."): inputs named "traces.0.name_first"
    give the key "name_first".
    """
    definition = get_definition(record_type)
    access = access or access_for(definition, user)
    values: dict = {}
    for section in definition.sections:
        if section.key not in access.writable_sections:
            continue
        for item in section.fields:
            if not item.holds_value or item.key not in access.writable:
                continue
            values[item.key] = _parse_item(item, formdata, prefix + item.key)
            if item.approximate_key:
                values[item.approximate_key] = _parse_item(
                    FieldDef(0, item.approximate_key, TICK_BOX, {}, {}, section.key), formdata,
                    prefix + item.approximate_key)
    return values


# --- forms and sections --------------------------------------------------------------------------------

def ensure_form(record_type: str, actor=None) -> FormDefinition:
    if record_type not in RECORD_TYPES:
        _fail("record_type", _("Use case, tracing_request or trace."))
    form = db.session.execute(
        select(FormDefinition).where(FormDefinition.record_type == record_type)).scalar_one_or_none()
    if form is None:
        form = FormDefinition(record_type=record_type, labels={}, is_draft_allowed=False, version=1)
        db.session.add(form)
        db.session.flush()
        record_audit("form.create", "form", form.id, detail={"record_type": record_type}, user=actor)
    return form


def _touch(form: FormDefinition) -> None:
    form.version = (form.version or 0) + 1
    form.updated_at = utcnow()
    invalidate_definitions()


def update_form(record_type: str, data: Mapping, actor=None) -> FormDefinition:
    """Change a form's own settings: `labels` and `is_draft_allowed`."""
    unknown = sorted(set(data) - {"labels", "is_draft_allowed"})
    if unknown:
        raise FormValidationError({key: [_("Unknown field.")] for key in unknown})
    errors = {}
    labels = data.get("labels")
    if labels is not None:
        try:
            labels = schemas.Texts(schemas.LABEL_MAX).deserialize(labels)
        except ValidationError as error:
            errors["labels"] = [str(m) for m in error.messages]
    draft = data.get("is_draft_allowed")
    if draft is not None and not isinstance(draft, bool):
        errors["is_draft_allowed"] = [_("Answer true or false.")]
    if errors:
        raise FormValidationError(errors)
    form = ensure_form(record_type, actor)
    changed = []
    if labels is not None and labels != (form.labels or {}):
        form.labels, changed = labels, changed + ["labels"]
    if draft is not None and draft != form.is_draft_allowed:
        form.is_draft_allowed, changed = draft, changed + ["is_draft_allowed"]
    if changed:
        _touch(form)
        db.session.flush()
        record_audit("form.update", "form", form.id, detail={"record_type": record_type, "fields": changed},
                     user=actor)
    return form


def get_section(record_type: str, key: str) -> FormSection | None:
    return db.session.execute(
        select(FormSection).join(FormDefinition).where(
            FormDefinition.record_type == record_type, FormSection.key == key)).scalar_one_or_none()


def create_section(record_type: str, data: Mapping, actor=None) -> FormSection:
    """Add a section at the end of a form. `data`: key, labels, help_texts, is_hidden, access
    ({role code: "read"|"write"} - who may see and change it)."""
    spec = load_spec(schemas.SectionSpec(), {k: v for k, v in data.items() if k not in ("fields", "removed_fields")})
    with _atomic():
        form = ensure_form(record_type, actor)
        if get_section(record_type, spec["key"]) is not None:
            _fail("key", _("This key is already used in this form."))
        position = (db.session.scalar(select(func.max(FormSection.position)).where(
            FormSection.form_id == form.id)) or 0) + 1
        section = FormSection(form_id=form.id, key=spec["key"], labels=spec["labels"],
                              help_texts=spec["help_texts"], is_hidden=spec["is_hidden"], position=position)
        db.session.add(section)
        db.session.flush()
        register_section_permissions(record_type, section.key)
        _touch(form)
        record_audit("form.section.create", "form_section", section.id,
                     detail={"record_type": record_type, "key": section.key}, user=actor)
        if spec.get("access") is not None:
            set_section_access(record_type, section.key, spec["access"], actor)
    return section


def update_section(section: FormSection, data: Mapping, actor=None) -> FormSection:
    """Change a section's labels, help texts, hidden flag or `access`; its key never changes."""
    if "key" in data and data["key"] != section.key:
        _fail("key", _("The key cannot change."))
    current = {"key": section.key, "labels": section.labels, "help_texts": section.help_texts,
               "is_hidden": section.is_hidden}
    merged = {**current, **{k: v for k, v in data.items() if k not in ("fields", "removed_fields")}}
    spec = load_spec(schemas.SectionSpec(), merged)
    record_type = section.form.record_type
    with _atomic():
        changed = []
        for attribute in ("labels", "help_texts", "is_hidden"):
            if getattr(section, attribute) != spec[attribute]:
                setattr(section, attribute, spec[attribute])
                changed.append(attribute)
        if changed:
            _touch(section.form)
            db.session.flush()
            record_audit("form.section.update", "form_section", section.id,
                         detail={"record_type": record_type, "key": section.key, "fields": changed}, user=actor)
        if spec.get("access") is not None:
            set_section_access(record_type, section.key, spec["access"], actor)
    return section


def _reorder(items: list, moving, offset: int) -> bool:
    """Move `moving` by `offset` places among `items` (already ordered) and renumber; True if it moved."""
    index = items.index(moving)
    target = max(0, min(len(items) - 1, index + offset))
    if target == index:
        return False
    items.insert(target, items.pop(index))
    for position, item in enumerate(items, start=1):
        item.position = position
    return True


def move_section(section: FormSection, offset: int, actor=None) -> None:
    """Move a section up (negative offset) or down in its form."""
    siblings = db.session.execute(select(FormSection).where(FormSection.form_id == section.form_id)
                                  .order_by(FormSection.position, FormSection.id)).scalars().all()
    if _reorder(siblings, section, offset):
        _touch(section.form)
        db.session.flush()
        record_audit("form.section.move", "form_section", section.id,
                     detail={"record_type": section.form.record_type, "key": section.key, "offset": offset},
                     user=actor)


def section_access_by_role(record_type: str, section_key: str) -> dict[str, str]:
    """{role code: "read"|"write"} for the roles that may see a section."""
    from app.users.models import Role
    access = {}
    for role in db.session.execute(select(Role).order_by(Role.code)).scalars():
        level = section_access(role.permissions, record_type, section_key)
        if level:
            access[role.code] = level
    return access


def set_section_access(record_type: str, section_key: str, access: Mapping[str, str], actor=None) -> list[str]:
    """Give each role exactly the access `access` names (roles left out lose it).

    Changes the roles' permissions (audited as role changes). Returns the role codes in
    `access` that do not exist here.
    """
    from app.users.models import Role
    from app.users.operations import update_role
    bad = [code for code, level in access.items() if level not in (READ, WRITE)]
    if bad:
        _fail("access", _("Use read or write."))
    sync_section_permissions(force=True)
    read, write = register_section_permissions(record_type, section_key)
    roles = {role.code: role for role in db.session.execute(select(Role)).scalars()}
    for code, role in sorted(roles.items()):
        level = access.get(code)
        wanted = set(role.permissions) - {read, write}
        if level == READ:
            wanted.add(read)
        elif level == WRITE:
            wanted.update((read, write))
        if wanted != role.permissions:
            try:
                update_role(role, role.name, role.scope, wanted, role.is_supervisor, role.description, actor=actor)
            except UsersValidationError as error:
                raise FormValidationError({"access": [m for ms in error.errors.values() for m in ms]}) from None
    return sorted(set(access) - set(roles))


# --- fields -------------------------------------------------------------------------------------------

_FIELD_ATTRIBUTES = ("type", "labels", "help_texts", "is_required", "is_hidden", "matching_tag", "condition",
                     "options", "lookup_id", "min_value", "max_value", "max_length", "is_future_refused",
                     "is_approximate_allowed")
# Changing one of these may make stored values invalid: they are checked first.
_VALIDATION_ATTRIBUTES = ("type", "lookup_id", "options", "min_value", "max_value", "max_length",
                          "is_future_refused")


# The field types each type-specific setting applies to.
_TYPE_SETTINGS = {
    "lookup": CHOICE_TYPES, "options": CHOICE_TYPES, "min_value": ("integer", "decimal"),
    "max_value": ("integer", "decimal"), "max_length": ("text", "textarea", SUBFORM) + ATTACHMENT_TYPES,
    "is_future_refused": (DATE,), "is_approximate_allowed": (DATE,),
    "matching_tag": tuple(t for t in ("text", "textarea", "integer", "decimal", DATE, TICK_BOX, "location", "phone")
                          + CHOICE_TYPES),
}


def _decimal_text(value) -> str | None:
    if value is None:
        return None
    return schemas._number_text(Decimal(value))


def _canonical_options(options) -> list | None:
    if not options:
        return None
    return [{"code": o["code"], "labels": dict(o["labels"]), "is_disabled": bool(o.get("is_disabled"))}
            for o in options]


def _field_values(spec: dict) -> dict:
    lookup_id = None
    if spec.get("lookup"):
        lookup = db.session.execute(select(Lookup).where(Lookup.code == spec["lookup"])).scalar_one_or_none()
        if lookup is None:
            _fail("lookup", _("There is no lookup with this code."))
        lookup_id = lookup.id
    condition = spec.get("condition")
    return {
        "type": spec["type"], "labels": dict(spec["labels"]), "help_texts": dict(spec.get("help_texts") or {}),
        "is_required": spec.get("is_required", False), "is_hidden": spec.get("is_hidden", False),
        "matching_tag": spec.get("matching_tag"),
        "condition": {"field": condition["field"], "operator": condition.get("operator", "equals"),
                      "value": condition.get("value")} if condition else None,
        "options": _canonical_options(spec.get("options")), "lookup_id": lookup_id,
        "min_value": _decimal_text(spec.get("min_value")), "max_value": _decimal_text(spec.get("max_value")),
        "max_length": spec.get("max_length"), "is_future_refused": spec.get("is_future_refused", False),
        "is_approximate_allowed": spec.get("is_approximate_allowed", False),
    }


def get_field(record_type: str, key: str) -> FormField | None:
    return db.session.execute(
        select(FormField).join(FormDefinition, FormField.form_id == FormDefinition.id).where(
            FormDefinition.record_type == record_type, FormField.key == key)).scalar_one_or_none()


def _check_key_free(form: FormDefinition, key: str) -> None:
    taken = db.session.scalar(select(func.count()).where(FormField.form_id == form.id, FormField.key == key))
    if taken:
        _fail("key", _("This key is already used in this form (keys are never reused)."))
    if key.endswith(APPROXIMATE_SUFFIX):
        base = db.session.execute(select(FormField).where(
            FormField.form_id == form.id, FormField.key == key[: -len(APPROXIMATE_SUFFIX)])).scalar_one_or_none()
        if base is not None and base.type == DATE:
            _fail("key", _("This key is kept for the approximate flag of a date field."))


def _check_placement(spec: dict, parent: FormField | None) -> None:
    if parent is None:
        return
    if parent.type != SUBFORM:
        _fail("parent", _("Only subforms hold fields."))
    if spec["type"] == SUBFORM:
        _fail("type", _("A subform cannot hold another subform."))
    if spec["type"] in ATTACHMENT_TYPES:
        _fail("type", _("Files cannot be attached inside a subform row."))
    if spec.get("matching_tag"):
        _fail("matching_tag", _("Only fields outside subforms can be tagged for matching."))


def create_field(record_type: str, section_key: str, data: Mapping, actor=None, *,
                 parent_key: str | None = None) -> FormField:
    """Add a field at the end of a section (or of a subform, with `parent_key`).

    `data` is a field as `schemas.FieldSpec` describes it; a subform may bring its
    `subfields`. The key must be new to the form: keys are never reused.
    """
    spec = load_spec(schemas.FieldSpec(), data)
    with _atomic():
        row = _create_field(record_type, section_key, spec, actor, parent_key=parent_key)
        _check_integrity(record_type, focus=row.key)
    return row


def _create_field(record_type, section_key, spec, actor, *, parent_key=None, position=None) -> FormField:
    section = get_section(record_type, section_key)
    if section is None:
        _fail("section", _("There is no section with this key."))
    parent = None
    if parent_key:
        parent = get_field(record_type, parent_key)
        if parent is None:
            _fail("parent", _("There is no field with this key."))
    _check_placement(spec, parent)
    _check_key_free(section.form, spec["key"])
    if spec["type"] == DATE and spec.get("is_approximate_allowed"):
        _check_key_free(section.form, spec["key"] + APPROXIMATE_SUFFIX)
    if position is None:
        position = (db.session.scalar(select(func.max(FormField.position)).where(
            FormField.section_id == section.id,
            FormField.parent_id.is_(None) if parent is None else FormField.parent_id == parent.id)) or 0) + 1
    row = FormField(form_id=section.form_id, section_id=section.id, parent_id=parent.id if parent else None,
                    key=spec["key"], position=position, **_field_values(spec))
    db.session.add(row)
    db.session.flush()
    _touch(section.form)
    record_audit("form.field.create", "form_field", row.id,
                 detail={"record_type": record_type, "key": row.key, "type": row.type, "section": section.key,
                         "parent": parent.key if parent else None}, user=actor)
    for index, sub in enumerate(spec.get("subfields") or [], start=1):
        _create_field(record_type, section_key, sub, actor, parent_key=row.key, position=index)
    return row


def _texts_out(texts: Mapping | None) -> dict:
    """Texts in the configured language order (PostgreSQL's JSONB does not keep key order),
    so an export is the same file byte for byte on every database."""
    from flask import current_app
    texts = dict(texts or {})
    order = list(current_app.config["LANGUAGES"])
    return {locale: texts[locale] for locale in sorted(texts, key=lambda k: (order.index(k) if k in order
                                                                              else len(order), k))}


def _condition_out(condition: Mapping) -> dict:
    return {"field": condition.get("field"), "operator": condition.get("operator", "equals"),
            "value": condition.get("value")}


def field_spec(row: FormField, children: Iterable[FormField] | None = None) -> dict:
    """A field as a configuration file describes it (default values left out)."""
    spec: dict = {"key": row.key, "type": row.type, "labels": _texts_out(row.labels)}
    if row.help_texts:
        spec["help_texts"] = _texts_out(row.help_texts)
    for flag in ("is_required", "is_hidden", "is_future_refused", "is_approximate_allowed"):
        if getattr(row, flag):
            spec[flag] = True
    if row.matching_tag:
        spec["matching_tag"] = row.matching_tag
    if row.condition:
        spec["condition"] = _condition_out(row.condition)
    if row.lookup_id is not None:
        spec["lookup"] = row.lookup.code
    if row.options:
        spec["options"] = [_option_spec(o) for o in row.options]
    for bound in ("min_value", "max_value"):
        value = getattr(row, bound)
        if value is not None:
            number = Decimal(value)
            spec[bound] = int(number) if number == number.to_integral_value() else float(value)
    if row.max_length is not None:
        spec["max_length"] = row.max_length
    if row.type == SUBFORM:
        children = list(children if children is not None else row.subfields)
        spec["subfields"] = [field_spec(c) for c in children if c.removed_at is None]
        removed = [field_spec(c) for c in children if c.removed_at is not None]
        if removed:
            spec["removed_subfields"] = removed
    return spec


def _option_spec(option: Mapping) -> dict:
    spec = {"code": option["code"], "labels": _texts_out(option.get("labels"))}
    if option.get("is_disabled"):
        spec["is_disabled"] = True
    return spec


def update_field(row: FormField, data: Mapping, actor=None, *, section_key: str | None = None) -> FormField:
    """Change a field: labels and help (translations), required, hidden, matching tag, display
    condition, type, options or lookup, bounds. The key never changes.

    A change of type, options, lookup or bounds is refused when stored values would no longer
    be valid (the records modules report them through `register_stored_values_provider`).
    `section_key` moves a top-level field to another section of the same form.
    """
    if "key" in data and data["key"] != row.key:
        _fail("key", _("The key cannot change."))
    if "subfields" in data or "removed_subfields" in data:
        _fail("subfields", _("Add, change and remove the fields of a subform one by one."))
    current = field_spec(row)
    current.pop("subfields", None)
    current.pop("removed_subfields", None)
    new_type = data.get("type", row.type)
    if new_type != row.type:
        # Settings the new type does not have are dropped unless the caller sends them.
        for attribute, types in _TYPE_SETTINGS.items():
            if attribute not in data and new_type not in types:
                current.pop(attribute, None)
    merged = {**current, **data}
    spec = load_spec(schemas.FieldSpec(), merged)
    record_type = row.section.form.record_type
    with _atomic():
        _update_field(row, spec, actor, section_key=section_key)
        _check_integrity(record_type, focus=row.key)
    return row


def _update_field(row: FormField, spec: dict, actor, *, section_key=None, position=None) -> list[str]:
    record_type = row.section.form.record_type
    _check_placement(spec, row.parent)
    has_children = db.session.scalar(select(func.count()).where(FormField.parent_id == row.id))
    if row.type == SUBFORM and spec["type"] != SUBFORM and has_children:
        _fail("type", _("This subform has fields: it cannot become another type."))
    if spec["type"] == DATE and spec.get("is_approximate_allowed") and not (
            row.type == DATE and row.is_approximate_allowed):
        taken = db.session.scalar(select(func.count()).where(
            FormField.form_id == row.form_id, FormField.key == row.key + APPROXIMATE_SUFFIX))
        if taken:
            _fail("is_approximate_allowed", _("Another field already uses the key of the approximate flag."))
    values = _field_values(spec)
    changed = [name for name in _FIELD_ATTRIBUTES if getattr(row, name) != values[name]]
    before_type = row.type
    for name in changed:
        setattr(row, name, values[name])
    if "lookup_id" in changed:
        row.lookup = db.session.get(Lookup, row.lookup_id) if row.lookup_id is not None else None
    if section_key is not None and row.parent_id is None and section_key != row.section.key:
        section = get_section(record_type, section_key)
        if section is None:
            _fail("section", _("There is no section with this key."))
        row.section_id = section.id
        row.section = section
        for child in row.subfields:
            child.section_id = section.id
        row.position = (db.session.scalar(select(func.max(FormField.position)).where(
            FormField.section_id == section.id, FormField.parent_id.is_(None))) or 0) + 1
        changed.append("section")
    if position is not None and row.position != position:
        row.position = position
        changed.append("position")
    if not changed:
        return []
    db.session.flush()
    _touch(row.section.form)
    if any(name in _VALIDATION_ATTRIBUTES for name in changed):
        db.session.flush()
        definition = build_definition(record_type)
        item = definition.field(f"{row.parent.key}.{row.key}" if row.parent_id else row.key)
        count, reasons = _stored_value_problems(record_type, item)
        if count:
            where = next(name for name in ("type", "lookup_id", "options", "min_value", "max_value", "max_length",
                                           "is_future_refused") if name in changed)
            _fail("lookup" if where == "lookup_id" else where, _(
                "Refused: %(n)d stored value(s) would no longer be valid (%(reasons)s). "
                "Add a new field instead, or correct the records first.",
                n=count, reasons="; ".join(reasons)))
    detail = {"record_type": record_type, "key": row.key, "fields": changed}
    if "type" in changed:
        detail.update({"from_type": before_type, "to_type": row.type})
    record_audit("form.field.update", "form_field", row.id, detail=detail, user=actor)
    return changed


def move_field(row: FormField, offset: int, actor=None) -> None:
    """Move a field up (negative offset) or down among its section's (or subform's) fields."""
    siblings = db.session.execute(
        select(FormField).where(FormField.section_id == row.section_id,
                                FormField.parent_id.is_(None) if row.parent_id is None
                                else FormField.parent_id == row.parent_id)
        .order_by(FormField.position, FormField.id)).scalars().all()
    active = [s for s in siblings if s.removed_at is None]
    if row not in active:
        return
    index = active.index(row)
    target = max(0, min(len(active) - 1, index + offset))
    if target == index:
        return
    neighbour = active[target]
    siblings.remove(row)
    siblings.insert(siblings.index(neighbour) + (1 if offset > 0 else 0), row)
    for position, item in enumerate(siblings, start=1):
        item.position = position
    _touch(row.section.form)
    db.session.flush()
    record_audit("form.field.move", "form_field", row.id,
                 detail={"record_type": row.section.form.record_type, "key": row.key, "offset": offset}, user=actor)


def remove_field(row: FormField, actor=None) -> None:
    """Take a field out of the form. Stored values are kept; the key stays reserved."""
    if row.removed_at is not None:
        return
    record_type = row.section.form.record_type
    definition = get_definition(record_type)
    dependants = [f.key for f in _scope_fields(definition, row)
                  if f.condition and f.condition.get("field") == row.key and not f.is_removed]
    if dependants:
        _fail("condition", _("The display condition of %(keys)s depends on this field: change it first.",
                             keys=", ".join(dependants)))
    row.removed_at = utcnow()
    _touch(row.section.form)
    db.session.flush()
    record_audit("form.field.remove", "form_field", row.id, detail={"record_type": record_type, "key": row.key},
                 user=actor)


def restore_field(row: FormField, actor=None) -> None:
    """Put a removed field back at the end of its section (or subform)."""
    if row.removed_at is None:
        return
    row.removed_at = None
    row.position = (db.session.scalar(select(func.max(FormField.position)).where(
        FormField.section_id == row.section_id,
        FormField.parent_id.is_(None) if row.parent_id is None else FormField.parent_id == row.parent_id)) or 0) + 1
    _touch(row.section.form)
    db.session.flush()
    record_audit("form.field.restore", "form_field", row.id,
                 detail={"record_type": row.section.form.record_type, "key": row.key}, user=actor)


def _scope_fields(definition: FormDef, row: FormField) -> list[FieldDef]:
    if row.parent_id is not None:
        parent = definition.field(row.parent.key)
        return list(parent.subfields) if parent else []
    return [f for s in definition.sections for f in s.fields]


def _condition_problem(item: FieldDef, scope: dict[str, FieldDef]) -> str | None:
    condition = item.condition
    target = scope.get(condition.get("field"))
    if target is None or target.is_removed:
        return _("The condition must name another field of the same form part.")
    if target.key == item.key:
        return _("A field cannot depend on itself.")
    if not target.holds_value or target.type in (SUBFORM,) + ATTACHMENT_TYPES:
        return _("A condition can only depend on a field holding a simple value.")
    operator, value = condition.get("operator", "equals"), condition.get("value")
    if operator == "is_true" and target.type != TICK_BOX:
        return _("\"Is ticked\" only applies to tick boxes.")
    if target.type in CHOICE_TYPES and operator in ("equals", "not_equals", "in"):
        codes = {o.code for o in target.options}
        for candidate in (value if isinstance(value, list) else [value]):
            if candidate not in codes:
                return _("%(value)s is not an option of %(key)s.", value=str(candidate), key=target.key)
    if target.type == TICK_BOX and operator in ("equals", "not_equals") and not isinstance(value, bool):
        return _("Compare a tick box with true or false.")
    return None


def _check_integrity(record_type: str, focus: str | None = None, paths: Mapping[str, str] | None = None) -> None:
    """Checks that need the whole form: display conditions and their cycles.

    Errors are keyed "condition" for a single change (`focus`), or by `paths[key]` for a load.
    """
    definition = build_definition(record_type)
    errors: dict[str, list[str]] = {}

    def report(item: FieldDef, message: str):
        if paths is not None:
            errors.setdefault(f"{paths.get(item.path, item.path)}.condition", []).append(message)
        elif focus is None or item.key == focus or item.path == focus:
            errors.setdefault("condition", []).append(message)
        else:
            errors.setdefault("condition", []).append(f"{item.key}: {message}")

    scopes = [[f for s in definition.sections for f in s.fields]]
    scopes += [list(f.subfields) for f in definition.fields if f.type == SUBFORM]
    for scope_items in scopes:
        scope = {f.key: f for f in scope_items}
        for item in scope_items:
            if item.condition:
                problem = _condition_problem(item, scope)
                if problem:
                    report(item, problem)
        for item in scope_items:  # cycles: follow the chain of conditions
            seen, current = set(), item
            while current is not None and current.condition:
                if current.key in seen:
                    report(item, _("These display conditions depend on each other in a circle."))
                    break
                seen.add(current.key)
                current = scope.get(current.condition.get("field"))
    if errors:
        raise FormValidationError(errors)


# --- lookups -------------------------------------------------------------------------------------------

def get_lookup(code: str) -> Lookup | None:
    return db.session.execute(select(Lookup).where(Lookup.code == code)).scalar_one_or_none()


def _lookup_fields(lookup: Lookup) -> list[FormField]:
    return db.session.execute(select(FormField).where(FormField.lookup_id == lookup.id)).scalars().all()


def _touch_forms_using(lookup: Lookup) -> None:
    for form_id in {row.form_id for row in _lookup_fields(lookup)}:
        _touch(db.session.get(FormDefinition, form_id))
    invalidate_definitions()


def lookup_value_use_count(lookup: Lookup, code: str) -> int:
    """How many stored values (across every field using the lookup) hold `code`."""
    count = 0
    for row in _lookup_fields(lookup):
        record_type = row.section.form.record_type
        path = f"{row.parent.key}.{row.key}" if row.parent_id else row.key
        for value in stored_values(record_type, path):
            if value == code or (isinstance(value, list) and code in value):
                count += 1
    return count


def create_lookup(data: Mapping, actor=None) -> Lookup:
    """A new lookup with its values (`code`, `labels`, `values`: [{code, labels}])."""
    spec = load_spec(schemas.LookupSpec(), data)
    codes = [v["code"] for v in spec["values"]]
    if len(codes) != len(set(codes)):
        _fail("values", _("Each value needs its own code."))
    if get_lookup(spec["code"]) is not None:
        _fail("code", _("This code is already used."))
    lookup = Lookup(code=spec["code"], labels=spec["labels"])
    for position, value in enumerate(spec["values"], start=1):
        lookup.values.append(LookupValue(code=value["code"], labels=value["labels"], position=position,
                                         is_disabled=value["is_disabled"]))
    db.session.add(lookup)
    db.session.flush()
    record_audit("lookup.create", "lookup", lookup.id, detail={"code": lookup.code, "values": codes}, user=actor)
    return lookup


def update_lookup(lookup: Lookup, data: Mapping, actor=None) -> Lookup:
    """Change a lookup's labels (its code never changes; values have their own operations)."""
    if "code" in data and data["code"] != lookup.code:
        _fail("code", _("The code cannot change."))
    unknown = sorted(set(data) - {"code", "labels"})
    if unknown:
        raise FormValidationError({key: [_("Unknown field.")] for key in unknown})
    spec = load_spec(schemas.LookupSpec(), {"code": lookup.code, "labels": data.get("labels", lookup.labels)})
    if spec["labels"] != lookup.labels:
        lookup.labels = spec["labels"]
        db.session.flush()
        _touch_forms_using(lookup)
        record_audit("lookup.update", "lookup", lookup.id, detail={"code": lookup.code, "fields": ["labels"]},
                     user=actor)
    return lookup


def delete_lookup(lookup: Lookup, actor=None) -> None:
    """Delete a lookup no field uses (removed fields count: their stored values need it)."""
    users = _lookup_fields(lookup)
    if users:
        _fail("code", _("Fields use this lookup (%(keys)s): it cannot be deleted.",
                        keys=", ".join(sorted(r.key for r in users))))
    record_audit("lookup.delete", "lookup", lookup.id, detail={"code": lookup.code}, user=actor)
    db.session.delete(lookup)
    db.session.flush()


def get_lookup_value(lookup: Lookup, code: str) -> LookupValue | None:
    return next((v for v in lookup.values if v.code == code), None)


def add_lookup_value(lookup: Lookup, data: Mapping, actor=None) -> LookupValue:
    spec = load_spec(schemas.OptionSpec(), data)
    if get_lookup_value(lookup, spec["code"]) is not None:
        _fail("code", _("This code is already used in this lookup."))
    position = max((v.position for v in lookup.values), default=0) + 1
    value = LookupValue(code=spec["code"], labels=spec["labels"], is_disabled=spec["is_disabled"],
                        position=position)
    lookup.values.append(value)
    db.session.flush()
    _touch_forms_using(lookup)
    record_audit("lookup.value.create", "lookup", lookup.id, detail={"code": lookup.code, "value": value.code},
                 user=actor)
    return value


def update_lookup_value(value: LookupValue, data: Mapping, actor=None) -> LookupValue:
    """Translate a value or disable/enable it (disabled values stay valid where already stored)."""
    if "code" in data and data["code"] != value.code:
        _fail("code", _("The code cannot change."))
    merged = {"code": value.code, "labels": value.labels, "is_disabled": value.is_disabled, **data}
    spec = load_spec(schemas.OptionSpec(), merged)
    changed = [name for name in ("labels", "is_disabled") if getattr(value, name) != spec[name]]
    for name in changed:
        setattr(value, name, spec[name])
    if changed:
        db.session.flush()
        _touch_forms_using(value.lookup)
        action = ("lookup.value.disable" if value.is_disabled else "lookup.value.enable") \
            if changed == ["is_disabled"] else "lookup.value.update"
        record_audit(action, "lookup", value.lookup_id,
                     detail={"code": value.lookup.code, "value": value.code, "fields": changed}, user=actor)
    return value


def delete_lookup_value(value: LookupValue, actor=None) -> None:
    """Delete a value that no record holds; a value in use can only be disabled."""
    lookup = value.lookup
    used = lookup_value_use_count(lookup, value.code)
    if used:
        _fail("code", _("%(n)d stored value(s) use this value: disable it instead.", n=used))
    # A display condition comparing with the value would never hold again.
    for row in db.session.execute(select(FormField).where(FormField.removed_at.is_(None))).scalars():
        if not row.condition:
            continue
        target = db.session.execute(select(FormField).where(
            FormField.form_id == row.form_id, FormField.key == row.condition.get("field"))).scalar_one_or_none()
        if target is not None and target.lookup_id == lookup.id and value.code in _condition_values(row.condition):
            _fail("code", _("The display condition of %(key)s uses this value: change it first.", key=row.key))
    lookup.values.remove(value)
    db.session.flush()
    _touch_forms_using(lookup)
    record_audit("lookup.value.delete", "lookup", lookup.id, detail={"code": lookup.code, "value": value.code},
                 user=actor)


def _condition_values(condition: Mapping) -> list:
    value = condition.get("value")
    return value if isinstance(value, list) else [value]


def move_lookup_value(value: LookupValue, offset: int, actor=None) -> None:
    lookup = value.lookup
    values = sorted(lookup.values, key=lambda v: (v.position, v.id))
    if _reorder(values, value, offset):
        db.session.flush()
        _touch_forms_using(lookup)
        record_audit("lookup.value.move", "lookup", lookup.id,
                     detail={"code": lookup.code, "value": value.code, "offset": offset}, user=actor)


# --- locations ----------------------------------------------------------------------------------------

def get_location_row(code: str) -> Location | None:
    return db.session.execute(select(Location).where(Location.code == code)).scalar_one_or_none()


def location_spec(row: Location) -> dict:
    spec = {"code": row.code, "parent": row.parent.code if row.parent is not None else None, "type": row.type,
            "names": _texts_out(row.names)}
    if row.is_disabled:
        spec["is_disabled"] = True
    return spec


def _location_problems(specs: list[dict], labels: list[str]) -> dict[str, list[str]]:
    """Duplicates, unknown parents and cycles; `labels[i]` names where specs[i] came from."""
    errors: dict[str, list[str]] = {}
    by_code: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec["code"] in by_code:
            errors.setdefault(labels[index], []).append(
                _("Location %(code)s appears twice (first at %(first)s).", code=spec["code"],
                  first=labels[by_code[spec["code"]]]))
        by_code.setdefault(spec["code"], index)
    parents = {row.code: (row.parent.code if row.parent is not None else None)
               for row in db.session.execute(select(Location)).scalars()}
    for spec in specs:
        parents[spec["code"]] = spec.get("parent") or None
    for index, spec in enumerate(specs):
        parent = spec.get("parent")
        if parent and parent not in parents:
            errors.setdefault(labels[index], []).append(_("Unknown parent location %(code)s.", code=parent))
            continue
        seen, current = {spec["code"]}, parent
        while current:
            if current in seen:
                errors.setdefault(labels[index], []).append(
                    _("Location %(code)s would be inside itself.", code=spec["code"]))
                break
            seen.add(current)
            current = parents.get(current)
    return errors


def _upsert_locations(specs: list[dict], labels: list[str]) -> dict[str, int]:
    """Create or update locations (matched by code) in one go, or change nothing."""
    errors = _location_problems(specs, labels)
    if errors:
        raise FormValidationError(errors)
    rows = {row.code: row for row in db.session.execute(select(Location)).scalars()}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    new_codes = set()
    for spec in specs:
        if spec["code"] not in rows:
            row = Location(code=spec["code"], type=spec.get("type") or "", names=spec["names"],
                           is_disabled=spec.get("is_disabled", False))
            db.session.add(row)
            rows[spec["code"]] = row
            new_codes.add(spec["code"])
    db.session.flush()
    for spec in specs:
        row = rows[spec["code"]]
        values = {"parent_id": rows[spec["parent"]].id if spec.get("parent") else None,
                  "type": spec.get("type") or "", "names": spec["names"],
                  "is_disabled": spec.get("is_disabled", False)}
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        for name in changed:
            setattr(row, name, values[name])
        if spec["code"] in new_codes:
            counts["created"] += 1
        elif changed:
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    db.session.flush()
    invalidate_definitions()
    return counts


def create_location(data: Mapping, actor=None) -> Location:
    spec = load_spec(schemas.LocationSpec(), data)
    if get_location_row(spec["code"]) is not None:
        _fail("code", _("This code is already used."))
    if spec.get("parent") and get_location_row(spec["parent"]) is None:
        _fail("parent", _("Unknown parent location %(code)s.", code=spec["parent"]))
    parent = get_location_row(spec["parent"]) if spec.get("parent") else None
    row = Location(code=spec["code"], parent_id=parent.id if parent else None, type=spec["type"],
                   names=spec["names"], is_disabled=spec["is_disabled"])
    db.session.add(row)
    db.session.flush()
    invalidate_definitions()
    record_audit("location.create", "location", row.id, detail={"code": row.code}, user=actor)
    return row


def update_location(row: Location, data: Mapping, actor=None) -> Location:
    """Rename, re-parent, retype, disable or enable a location (its code never changes)."""
    if "code" in data and data["code"] != row.code:
        _fail("code", _("The code cannot change."))
    spec = load_spec(schemas.LocationSpec(), {**location_spec(row), "is_disabled": row.is_disabled, **data})
    parent = None
    if spec.get("parent"):
        parent = get_location_row(spec["parent"])
        if parent is None:
            _fail("parent", _("Unknown parent location %(code)s.", code=spec["parent"]))
        if row.code in location_ancestors(parent.code):
            _fail("parent", _("Location %(code)s would be inside itself.", code=row.code))
    values = {"parent_id": parent.id if parent else None, "type": spec["type"], "names": spec["names"],
              "is_disabled": spec["is_disabled"]}
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, values[name])
    if changed:
        db.session.flush()
        invalidate_definitions()
        record_audit("location.update", "location", row.id, detail={"code": row.code, "fields": changed},
                     user=actor)
    return row


def _line_number(label: str) -> int:
    digits = re.sub(r"\D", "", label)
    return int(digits) if digits else 0


LOCATION_CSV_COLUMNS = ("code", "parent_code", "type", "name_en", "name_fr", "name_ar", "is_disabled")


def import_locations_csv(text: str, actor=None) -> dict[str, int]:
    """Create or update locations from CSV text; nothing changes if any line is wrong.

    Columns: code, parent_code, type, name_en, name_fr, name_ar (and optionally is_disabled:
    yes/no). Parents may come before or after their children, or exist already. Importing
    the same file again changes nothing (R5). Errors are keyed "line N".
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("code", "name_en") if c not in header]
    if missing:
        _fail("file", _("The first line must name the columns; missing: %(names)s.", names=", ".join(missing)))
    unknown = [c for c in header if c not in LOCATION_CSV_COLUMNS]
    if unknown:
        _fail("file", _("Unknown columns: %(names)s.", names=", ".join(unknown)))
    specs, labels, errors = [], [], {}
    try:
        for row in reader:
            label = _("line %(n)d", n=reader.line_num)
            if None in row:
                errors[label] = [_("This line has more values than there are columns.")]
                continue
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not any(row.values()):
                continue
            disabled = row.get("is_disabled", "").lower()
            if disabled not in ("", "yes", "no", "true", "false", "1", "0"):
                errors[label] = [_("is_disabled must be yes or no.")]
                continue
            data = {"code": row.get("code", ""), "parent": row.get("parent_code") or None,
                    "type": row.get("type", ""), "is_disabled": disabled in ("yes", "true", "1"),
                    "names": {locale: row.get(f"name_{locale}", "") for locale in ("en", "fr", "ar")
                              if row.get(f"name_{locale}")}}
            try:
                specs.append(load_spec(schemas.LocationSpec(), data))
                labels.append(label)
            except FormValidationError as error:
                errors[label] = [f"{key}: {message}" for key, messages in error.errors.items()
                                 for message in messages]
    except csv.Error as error:
        _fail("file", _("This is not a readable CSV file (%(error)s).", error=str(error)))
    for label, messages in _location_problems(specs, labels).items():
        errors.setdefault(label, []).extend(messages)
    if errors:
        raise FormValidationError(dict(sorted(errors.items(), key=lambda item: _line_number(item[0]))))
    if not specs:
        _fail("file", _("The file has no locations."))
    with _atomic():
        counts = _upsert_locations(specs, labels)
        record_audit("location.import", "location", None, detail=counts, user=actor)
    return counts


# --- export and load a whole configuration ----------------------------------------------------------------

def export_configuration(with_locations: bool = False) -> dict:
    """The whole configuration (lookups, forms with sections, fields, role access) as JSON data.

    `load_configuration` of the result gives back the same configuration.
    """
    lookups = []
    for lookup in db.session.execute(select(Lookup).order_by(Lookup.code)).scalars():
        lookups.append({"code": lookup.code, "labels": _texts_out(lookup.labels),
                        "values": [_option_spec({"code": v.code, "labels": v.labels, "is_disabled": v.is_disabled})
                                   for v in sorted(lookup.values, key=lambda v: (v.position, v.id))]})
    forms = []
    for record_type in RECORD_TYPES:
        form = db.session.execute(
            select(FormDefinition).where(FormDefinition.record_type == record_type)).scalar_one_or_none()
        if form is None:
            continue
        rows = db.session.execute(select(FormField).where(FormField.form_id == form.id)
                                  .order_by(FormField.position, FormField.id)).scalars().all()
        children: dict = {}
        for row in rows:
            if row.parent_id is not None:
                children.setdefault(row.parent_id, []).append(row)
        sections = []
        for section in db.session.execute(select(FormSection).where(FormSection.form_id == form.id)
                                          .order_by(FormSection.position, FormSection.id)).scalars():
            top = [r for r in rows if r.section_id == section.id and r.parent_id is None]
            spec = {"key": section.key, "labels": _texts_out(section.labels)}
            if section.help_texts:
                spec["help_texts"] = _texts_out(section.help_texts)
            if section.is_hidden:
                spec["is_hidden"] = True
            spec["access"] = section_access_by_role(record_type, section.key)
            spec["fields"] = [field_spec(r, children.get(r.id, [])) for r in top if r.removed_at is None]
            removed = [field_spec(r, children.get(r.id, [])) for r in top if r.removed_at is not None]
            if removed:
                spec["removed_fields"] = removed
            sections.append(spec)
        forms.append({"record_type": record_type, "labels": _texts_out(form.labels),
                      "is_draft_allowed": form.is_draft_allowed, "sections": sections})
    data = {"format": schemas.CONFIGURATION_FORMAT, "version": schemas.CONFIGURATION_VERSION,
            "lookups": lookups, "forms": forms}
    if with_locations:
        rows = db.session.execute(select(Location)).scalars().all()
        depth = {row.code: len(location_ancestors(row.code)) for row in rows}
        data["locations"] = [location_spec(row) for row in sorted(rows, key=lambda r: (depth[r.code], r.code))]
    return data


def configuration_json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def read_configuration(text: str) -> dict:
    """Parse a configuration file's text; a clear message with line and column if it is not JSON."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        _fail("file", _("This is not valid JSON: %(problem)s at line %(line)d, column %(column)d.",
                        problem=error.msg, line=error.lineno, column=error.colno))
    if not isinstance(data, dict):
        _fail("file", _("The file must hold one JSON object."))
    return data


def _prefixed(prefix: str, error: FormValidationError) -> FormValidationError:
    return FormValidationError({f"{prefix}.{key}" if key != "_record" else prefix: messages
                                for key, messages in error.errors.items()})


def load_configuration(data, actor=None) -> dict:
    """Make the configuration match `data` (as `export_configuration` writes it), all or nothing.

    Lookups and fields are matched by code and key: new ones are created, existing ones
    changed with the same checks as the admin pages (a type change that stored data would
    not survive is refused), fields missing from the file are removed (their values kept),
    sections missing from it are hidden. Lookup values missing from the file are deleted,
    or disabled if records hold them. Errors are keyed by their place in the file, e.g.
    "forms.0.sections.2.fields.1.type". Returns counts and warnings.
    """
    spec = load_spec(schemas.ConfigurationSpec(), data)
    report = {"lookups": 0, "sections": 0, "fields": 0, "locations": 0, "warnings": []}
    _check_file_references(spec)
    with _atomic():
        for index, lookup_spec in enumerate(spec["lookups"]):
            try:
                report["lookups"] += _load_lookup(lookup_spec, report["warnings"], actor)
            except FormValidationError as error:
                raise _prefixed(f"lookups.{index}", error) from None
        if spec.get("locations"):
            try:
                counts = _upsert_locations(spec["locations"], [f"locations.{i}" for i in range(len(spec["locations"]))])
            except FormValidationError as error:
                raise FormValidationError(error.errors) from None
            report["locations"] = counts["created"] + counts["updated"]
        for index, form_spec in enumerate(spec["forms"]):
            _load_form(form_spec, f"forms.{index}", report, actor)
        record_audit("forms.load", "form", None, detail={k: v for k, v in report.items() if k != "warnings"},
                     user=actor)
    return report


def _check_file_references(spec: dict) -> None:
    errors: dict[str, list[str]] = {}
    lookup_codes = [lookup["code"] for lookup in spec["lookups"]]
    for index, code in enumerate(lookup_codes):
        if lookup_codes.index(code) != index:
            errors.setdefault(f"lookups.{index}.code", []).append(_("This code appears twice."))
        values = [v["code"] for v in spec["lookups"][index]["values"]]
        if len(values) != len(set(values)):
            errors.setdefault(f"lookups.{index}.values", []).append(_("Each value needs its own code."))
    known_lookups = set(lookup_codes) | set(db.session.execute(select(Lookup.code)).scalars())
    record_types = [form["record_type"] for form in spec["forms"]]
    for form_index, form in enumerate(spec["forms"]):
        prefix = f"forms.{form_index}"
        if record_types.index(form["record_type"]) != form_index:
            errors.setdefault(f"{prefix}.record_type", []).append(_("This form appears twice."))
        section_keys = [s["key"] for s in form["sections"]]
        seen_keys: dict[str, str] = {}
        for section_index, section in enumerate(form["sections"]):
            section_prefix = f"{prefix}.sections.{section_index}"
            if section_keys.index(section["key"]) != section_index:
                errors.setdefault(f"{section_prefix}.key", []).append(_("This key appears twice."))
            for kind in ("fields", "removed_fields"):
                for field_index, field in enumerate(section[kind]):
                    path = f"{section_prefix}.{kind}.{field_index}"
                    for key, where in _spec_keys(field, path):
                        if key in seen_keys:
                            errors.setdefault(f"{where}.key", []).append(
                                _("This key is already used at %(place)s.", place=seen_keys[key]))
                        seen_keys.setdefault(key, where)
                    for sub, where in _spec_items(field, path):
                        if sub.get("lookup") and sub["lookup"] not in known_lookups:
                            errors.setdefault(f"{where}.lookup", []).append(_("There is no lookup with this code."))
    if errors:
        raise FormValidationError(errors)


def _spec_items(field: dict, path: str):
    yield field, path
    for kind in ("subfields", "removed_subfields"):
        for index, sub in enumerate(field.get(kind) or []):
            yield sub, f"{path}.{kind}.{index}"


def _spec_keys(field: dict, path: str):
    for item, where in _spec_items(field, path):
        yield item["key"], where
        if item["type"] == DATE and item.get("is_approximate_allowed"):
            yield item["key"] + APPROXIMATE_SUFFIX, where


def _load_lookup(spec: dict, warnings: list, actor) -> int:
    lookup = get_lookup(spec["code"])
    if lookup is None:
        create_lookup(spec, actor)
        return 1
    changed = 0
    if lookup.labels != spec["labels"]:
        update_lookup(lookup, {"labels": spec["labels"]}, actor)
        changed = 1
    wanted = [v["code"] for v in spec["values"]]
    for position, value_spec in enumerate(spec["values"], start=1):
        value = get_lookup_value(lookup, value_spec["code"])
        if value is None:
            value = add_lookup_value(lookup, value_spec, actor)
            changed = 1
        elif value.labels != value_spec["labels"] or value.is_disabled != value_spec["is_disabled"]:
            update_lookup_value(value, {"labels": value_spec["labels"], "is_disabled": value_spec["is_disabled"]},
                                actor)
            changed = 1
        if value.position != position:
            value.position = position
            changed = 1
    for value in list(lookup.values):
        if value.code in wanted:
            continue
        if lookup_value_use_count(lookup, value.code):
            if not value.is_disabled:
                update_lookup_value(value, {"is_disabled": True}, actor)
            warnings.append(_("Lookup %(lookup)s: value %(value)s is in use, so it was disabled, not deleted.",
                              lookup=lookup.code, value=value.code))
        else:
            delete_lookup_value(value, actor)
        changed = 1
    db.session.flush()
    return changed


def _load_form(spec: dict, prefix: str, report: dict, actor) -> None:
    record_type = spec["record_type"]
    try:
        form = ensure_form(record_type, actor)
        update_form(record_type, {"labels": spec["labels"], "is_draft_allowed": spec["is_draft_allowed"]}, actor)
    except FormValidationError as error:
        raise _prefixed(prefix, error) from None
    paths: dict[str, str] = {}
    in_file: set[str] = set()
    order: dict[tuple, list[str]] = {}  # (section key, parent key) -> active keys in file order
    for section_index, section_spec in enumerate(spec["sections"], start=1):
        section_prefix = f"{prefix}.sections.{section_index - 1}"
        try:
            section = get_section(record_type, section_spec["key"])
            section_data = {k: v for k, v in section_spec.items() if k not in ("fields", "removed_fields", "access")}
            if section is None:
                section = create_section(record_type, section_data, actor)
                report["sections"] += 1
            else:
                update_section(section, section_data, actor)
            if section.position != section_index:
                section.position = section_index
                _touch(form)
            if section_spec.get("access") is not None:
                unknown = set_section_access(record_type, section.key, section_spec["access"], actor)
                for code in unknown:
                    message = _("Role %(role)s does not exist here: its access was skipped.", role=code)
                    if message not in report["warnings"]:
                        report["warnings"].append(message)
        except FormValidationError as error:
            raise _prefixed(section_prefix, error) from None
        for kind in ("fields", "removed_fields"):
            for field_index, field in enumerate(section_spec[kind], start=1):
                path = f"{section_prefix}.{kind}.{field_index - 1}"
                report["fields"] += _load_field(record_type, section.key, field, path, paths, in_file, order,
                                                actor, removed=kind == "removed_fields")
    for row in db.session.execute(select(FormField).where(FormField.form_id == form.id)).scalars().all():
        if row.key not in in_file and row.removed_at is None:
            remove_field(row, actor)
            report["fields"] += 1
    for (section_key, parent_key), keys in order.items():
        _reorder_fields(record_type, section_key, parent_key, keys, actor)
    listed = {s["key"] for s in spec["sections"]}
    for section in db.session.execute(select(FormSection).where(FormSection.form_id == form.id)).scalars():
        if section.key not in listed and not section.is_hidden:
            update_section(section, {"is_hidden": True}, actor)
            report["warnings"].append(_("Section %(key)s of %(form)s is not in the file: it is now hidden.",
                                        key=section.key, form=record_type))
    db.session.flush()
    _check_integrity(record_type, paths=paths)


def _load_field(record_type, section_key, spec, path, paths, in_file, order, actor, *, removed,
                parent_key=None) -> int:
    """Create or update one field (and its subfields) from a file; returns 1 if anything changed."""
    paths[f"{parent_key}.{spec['key']}" if parent_key else spec["key"]] = path
    in_file.add(spec["key"])
    if not removed:
        order.setdefault((section_key, parent_key), []).append(spec["key"])
    children = [(sub, False) for sub in spec.get("subfields") or []]
    children += [(sub, True) for sub in spec.get("removed_subfields") or []]
    own = {k: v for k, v in spec.items() if k not in ("subfields", "removed_subfields")}
    changed = 0
    try:
        row = get_field(record_type, spec["key"])
        if row is None:
            _create_field(record_type, section_key, own, actor, parent_key=parent_key)
            row = get_field(record_type, spec["key"])
            changed = 1
        else:
            if (row.parent.key if row.parent_id else None) != parent_key:
                _fail("key", _("This key belongs to another part of the form (keys are never reused)."))
            if row.removed_at is not None and not removed:
                restore_field(row, actor)
                changed = 1
            if _update_field(row, own, actor, section_key=section_key if parent_key is None else None):
                changed = 1
        if removed and row.removed_at is None:
            row.removed_at = utcnow()
            db.session.flush()
            record_audit("form.field.remove", "form_field", row.id,
                         detail={"record_type": record_type, "key": row.key}, user=actor)
            changed = 1
    except FormValidationError as error:
        raise _prefixed(path, error) from None
    for index, (sub, sub_removed) in enumerate(children, start=1):
        kind = "removed_subfields" if sub_removed else "subfields"
        offset = index - 1 if not sub_removed else index - 1 - len(spec.get("subfields") or [])
        changed |= _load_field(record_type, section_key, sub, f"{path}.{kind}.{offset}", paths, in_file, order,
                               actor, removed=sub_removed, parent_key=spec["key"])
    return changed


def _reorder_fields(record_type: str, section_key: str, parent_key: str | None, keys: list[str], actor) -> None:
    """Put the active fields of one section (or subform) in the order of `keys`, if it differs."""
    section = get_section(record_type, section_key)
    parent = get_field(record_type, parent_key) if parent_key else None
    rows = db.session.execute(select(FormField).where(
        FormField.section_id == section.id,
        FormField.parent_id.is_(None) if parent is None else FormField.parent_id == parent.id)
        .order_by(FormField.position, FormField.id)).scalars().all()
    active = [row.key for row in rows if row.removed_at is None]
    if active == keys:
        return
    rank = {key: index for index, key in enumerate(keys)}
    ordered = sorted(rows, key=lambda row: (row.removed_at is not None, rank.get(row.key, len(rank)), row.position))
    for position, row in enumerate(ordered, start=1):
        row.position = position
    _touch(section.form)
    db.session.flush()
    record_audit("form.field.reorder", "form_section", section.id,
                 detail={"record_type": record_type, "section": section_key, "parent": parent_key, "keys": keys},
                 user=actor)


def load_default_configuration(actor=None) -> dict:
    """Load the shipped child-protection configuration (en, fr, ar)."""
    return load_configuration(read_configuration(DEFAULT_CONFIGURATION.read_text(encoding="utf-8")), actor)


def has_configuration() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(FormSection)))


def seed_default_configuration() -> str:
    """Demo seeder: the default forms and demo locations, once (an administrator's later changes stay)."""
    lines = []
    if has_configuration():
        lines.append("Forms: already configured, left as they are.")
    else:
        report = load_default_configuration()
        lines.append(f"Forms: default configuration loaded ({report['lookups']} lookups, "
                     f"{report['sections']} sections, {report['fields']} fields).")
    if not db.session.scalar(select(func.count()).select_from(Location)):
        counts = import_locations_csv(DEMO_LOCATIONS.read_text(encoding="utf-8"))
        lines.append(f"Locations: {counts['created']} demo locations imported.")
    return "\n".join(lines)


__all__ = [
    # the contract of the records modules
    "FormValidationError", "get_definition", "validate_record_data", "parse_form_data", "readable_fields",
    "writable_fields", "fields_with_matching_tag", "display_value", "format_value", "get_location",
    "location_ancestors", "location_path", "location_choices", "all_locations", "register_stored_values_provider",
    "unregister_stored_values_provider", "access_for", "access_from_permissions", "condition_met",
    "FormDef", "SectionDef", "FieldDef", "LocationInfo", "FormAccess",
]
