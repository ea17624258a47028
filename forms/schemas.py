"""Marshmallow schemas.

Two kinds live here:

* Record-data schemas built from a form definition at validation time: one
  marshmallow field per form field, checking type, range, lookup membership,
  dates and subform rows. `forms.operations.validate_record_data` adds what a
  schema alone cannot know (permissions, display conditions, required fields
  against the merged record, drafts).
* Fixed schemas for administration: a field, section, lookup or location as sent
  by the admin pages and the JSON API, and a whole configuration file
  (`flask forms load`).

Every message goes through gettext, so it is in the user's language.
"""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from forms.definitions import (
    FieldDef,
    FormDef,
    condition_met,
    get_location,
    is_empty,
    visible_keys,
)
from forms.models import (
    CHOICE_TYPES,
    DATE,
    DECIMAL,
    DOCUMENT,
    FIELD_TYPES,
    INTEGER,
    LOCATION,
    MATCHING_TAGS,
    MULTI_SELECT,
    PHONE,
    PHOTO,
    RECORD_TYPES,
    SELECT,
    SUBFORM,
    TEXT,
    TEXTAREA,
    TICK_BOX,
)

ROW_ID = "_id"  # every subform row carries a stable id under this key

TEXT_MAX_LENGTH = 500
TEXTAREA_MAX_LENGTH = 10000
SUBFORM_MAX_ROWS = 100
ATTACHMENTS_MAX = {PHOTO: 10, DOCUMENT: 20}
NUMBER_LIMIT = Decimal("1e15")
EARLIEST_YEAR = 1900
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INTEGER_RE = re.compile(r"^[+-]?\d+$")
_DECIMAL_RE = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE_RE = re.compile(r"^\+?[0-9 ()./-]+$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def latest_today() -> date:
    """Today's date somewhere on Earth (UTC+14): a date after it is in the future everywhere,
    so a caseworker east of Greenwich is never told that today is in the future."""
    return (datetime.now(timezone.utc) + timedelta(hours=14)).date()


def _number_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


# --- record values ----------------------------------------------------------------------

class ValueField(fields.Field):
    """A form field's value. Blank input (None, "", [], whitespace) means "no value" (None)."""

    def __init__(self, definition: FieldDef, existing=None, **kwargs):
        super().__init__(allow_none=True, **kwargs)
        self.definition = definition
        self.existing = existing

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        if value == [] or value == {}:
            return None
        return self.clean(value)

    def clean(self, value):  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class TextValue(ValueField):
    def clean(self, value):
        if not isinstance(value, str):
            raise ValidationError(_("Enter text."))
        multiline = self.definition.type == TEXTAREA
        value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if _CONTROL_CHARS.search(value) or (not multiline and "\n" in value):
            raise ValidationError(_("Remove the line breaks or special characters.") if not multiline
                                  else _("Remove the special characters."))
        limit = self.definition.max_length or (TEXTAREA_MAX_LENGTH if multiline else TEXT_MAX_LENGTH)
        if len(value) > limit:
            raise ValidationError(_("Use at most %(n)d characters.", n=limit))
        return value


class NumberValue(ValueField):
    def clean(self, value):
        item = self.definition
        if isinstance(value, bool):
            raise ValidationError(_("Enter a number."))
        if isinstance(value, str):
            text = value.strip()
            if item.type == INTEGER:
                if not _INTEGER_RE.match(text):
                    raise ValidationError(_("Enter a whole number."))
                number = Decimal(text)
            else:
                if not _DECIMAL_RE.match(text):
                    raise ValidationError(_("Enter a number."))
                number = Decimal(text.replace(",", "."))
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise ValidationError(_("Enter a number."))
            number = Decimal(repr(value))
        elif isinstance(value, Decimal):
            number = value
        else:
            raise ValidationError(_("Enter a number."))
        if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
            raise ValidationError(_("Enter a number."))
        if item.type == INTEGER and number != number.to_integral_value():
            raise ValidationError(_("Enter a whole number."))
        if item.min_value is not None and number < item.min_value:
            raise ValidationError(_("Enter a number of at least %(min)s.", min=_number_text(item.min_value)))
        if item.max_value is not None and number > item.max_value:
            raise ValidationError(_("Enter a number of at most %(max)s.", max=_number_text(item.max_value)))
        if item.type == INTEGER:
            return int(number)
        if number.as_tuple().exponent < -6:
            raise ValidationError(_("Use at most 6 decimal places."))
        # Decimals are stored as text so no precision is lost on the way through JSON.
        return _number_text(number)


class DateValue(ValueField):
    def clean(self, value):
        if isinstance(value, datetime):
            raise ValidationError(_("Enter a date as year-month-day."))
        if isinstance(value, date):
            parsed = value
        elif isinstance(value, str) and _DATE_RE.match(value.strip()):
            try:
                parsed = date.fromisoformat(value.strip())
            except ValueError:
                raise ValidationError(_("This date does not exist.")) from None
        else:
            raise ValidationError(_("Enter a date as year-month-day."))
        if parsed.year < EARLIEST_YEAR:
            raise ValidationError(_("Enter a date after %(year)d.", year=EARLIEST_YEAR))
        if self.definition.is_future_refused and parsed > latest_today():
            raise ValidationError(_("The date cannot be in the future."))
        return parsed.isoformat()


class TickBoxValue(ValueField):
    def _deserialize(self, value, attr, data, **kwargs):
        if value is False:
            return False
        return super()._deserialize(value, attr, data, **kwargs)

    def clean(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValidationError(_("Answer yes or no."))


class ChoiceValue(ValueField):
    """One option code. Disabled options stay valid for the record that already holds them."""

    def __init__(self, definition, existing=None, tolerate_disabled=False, **kwargs):
        super().__init__(definition, existing, **kwargs)
        self.tolerate_disabled = tolerate_disabled

    def _check_code(self, code):
        if not isinstance(code, str):
            raise ValidationError(_("Choose one of the options."))
        option = self.definition.option(code)
        if option is None:
            raise ValidationError(_("Choose one of the options."))
        kept = self.existing if isinstance(self.existing, list) else [self.existing]
        if option.is_disabled and not self.tolerate_disabled and code not in kept:
            raise ValidationError(_("This option is no longer available."))
        return code

    def clean(self, value):
        return self._check_code(value)


class MultiChoiceValue(ChoiceValue):
    def clean(self, value):
        if not isinstance(value, list):
            raise ValidationError(_("Choose from the options."))
        chosen = []
        for code in value:
            self._check_code(code)
            if code not in chosen:
                chosen.append(code)
        return chosen


class LocationValue(ValueField):
    def __init__(self, definition, existing=None, tolerate_disabled=False, **kwargs):
        super().__init__(definition, existing, **kwargs)
        self.tolerate_disabled = tolerate_disabled

    def clean(self, value):
        if not isinstance(value, str):
            raise ValidationError(_("Choose a location from the list."))
        info = get_location(value.strip())
        if info is None:
            raise ValidationError(_("Choose a location from the list."))
        if info.is_disabled and not self.tolerate_disabled and info.code != self.existing:
            raise ValidationError(_("This location is no longer available."))
        return info.code


class PhoneValue(ValueField):
    def clean(self, value):
        if not isinstance(value, str) or not _PHONE_RE.match(value.strip()):
            raise ValidationError(_("Enter a phone number: digits, with + for the country code."))
        text = value.strip()
        digits = re.sub(r"\D", "", text)
        if not 6 <= len(digits) <= 20:
            raise ValidationError(_("Enter a phone number of 6 to 20 digits."))
        # Stored as "+<digits>" or "<digits>" so the same number always compares equal.
        return ("+" if text.startswith("+") else "") + digits


class AttachmentsValue(ValueField):
    """Ids of the files a record module stored for this field (the files live elsewhere)."""

    def clean(self, value):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ValidationError(_("Send a list of file ids."))
        limit = self.definition.max_length or ATTACHMENTS_MAX.get(self.definition.type, 10)
        ids = []
        for item in value:
            try:
                ids.append(str(uuid.UUID(str(item))))
            except (ValueError, TypeError):
                raise ValidationError(_("Send a list of file ids.")) from None
        ids = list(dict.fromkeys(ids))
        if len(ids) > limit:
            raise ValidationError(_("Attach at most %(n)d files.", n=limit))
        return ids


class SubformValue(ValueField):
    """A list of rows, each a dict of sub-field values with a stable row id.

    A row sent with the id of an existing row is merged into it, so values of
    hidden or removed sub-fields are kept. Display conditions and required
    sub-fields are checked on the merged row.
    """

    def __init__(self, definition, existing=None, draft=False, stored_check=False, **kwargs):
        super().__init__(definition, existing, **kwargs)
        self.draft = draft
        self.stored_check = stored_check  # re-checking stored rows after a definition change

    def clean(self, value):
        item = self.definition
        if not isinstance(value, list):
            raise ValidationError(_("Send a list of rows."))
        limit = item.max_length or SUBFORM_MAX_ROWS
        if len(value) > limit:
            raise ValidationError(_("Add at most %(n)d rows.", n=limit))
        existing_rows = {row.get(ROW_ID): row for row in (self.existing or [])
                         if isinstance(row, dict) and row.get(ROW_ID)}
        active = [sub for sub in item.subfields if sub.holds_value]
        errors: dict = {}
        rows = []
        seen_ids = set()
        for index, row in enumerate(value):
            row_errors: dict = {}
            if not isinstance(row, dict):
                errors[index] = [_("Each row must be a set of fields.")]
                continue
            row_id = row.get(ROW_ID)
            if row_id in (None, ""):
                row_id = str(uuid.uuid4())
            else:
                try:
                    row_id = str(uuid.UUID(str(row_id)))
                except (ValueError, TypeError):
                    row_errors[ROW_ID] = [_("This row id is not valid.")]
            if row_id in seen_ids:
                row_errors[ROW_ID] = [_("This row appears twice.")]
            seen_ids.add(row_id)
            before = existing_rows.get(row_id, {})
            schema_fields = {}
            for key in row:
                if key == ROW_ID:
                    continue
                sub = item.subfield(key)
                if sub is None or not sub.holds_value:
                    row_errors[key] = [_("Unknown field.")]
                elif sub.is_removed and not self.stored_check:
                    row_errors[key] = [_("This field is no longer in the form.")]
                elif sub.is_hidden and not self.stored_check:
                    row_errors[key] = [_("This field is hidden and cannot be changed.")]
                elif not sub.is_removed:
                    schema_fields[key] = value_field(sub, before.get(key), draft=self.draft,
                                                     tolerate_disabled=self.stored_check)
            cleaned = {}
            if schema_fields:
                try:
                    cleaned = Schema.from_dict(schema_fields)().load(
                        {k: row[k] for k in schema_fields}, unknown=RAISE)
                except ValidationError as error:
                    row_errors.update(error.messages)
                    cleaned = error.valid_data or {}
            merged = {k: v for k, v in before.items() if k != ROW_ID}
            for key, new in cleaned.items():
                if new is None or new == []:
                    merged.pop(key, None)
                else:
                    merged[key] = new
            shown = visible_keys(active, merged)
            for key in schema_fields:
                if key not in shown:  # hidden by its condition: what was sent is ignored
                    if key in before:
                        merged[key] = before[key]
                    else:
                        merged.pop(key, None)
            if (not row_errors and row_id not in existing_rows
                    and not any(not is_empty(v) and v is not False for v in merged.values())):
                continue  # an untouched blank row (the form always offers one)
            if not (self.draft or self.stored_check):
                for sub in active:
                    if (sub.is_required and not sub.is_hidden and sub.key in shown and sub.key not in row_errors
                            and is_missing(sub, merged.get(sub.key))):
                        row_errors[sub.key] = [_("This field is required.")]
            if row_errors:
                errors[index] = row_errors
                continue
            rows.append({ROW_ID: row_id, **merged})
        if errors:
            raise ValidationError(errors)
        return rows


def is_missing(item: FieldDef, value) -> bool:
    """Does `value` leave a required field unanswered? A required tick box must be ticked."""
    if item.type == TICK_BOX:
        return value is not True
    return is_empty(value)


_VALUE_FIELDS = {
    TEXT: TextValue, TEXTAREA: TextValue, INTEGER: NumberValue, DECIMAL: NumberValue, DATE: DateValue,
    TICK_BOX: TickBoxValue, SELECT: ChoiceValue, "radio": ChoiceValue, MULTI_SELECT: MultiChoiceValue,
    LOCATION: LocationValue, PHONE: PhoneValue, PHOTO: AttachmentsValue, DOCUMENT: AttachmentsValue,
    SUBFORM: SubformValue,
}


def value_field(item: FieldDef, existing=None, *, draft=False, tolerate_disabled=False) -> ValueField:
    """The marshmallow field that checks one value of `item`."""
    cls = _VALUE_FIELDS[item.type]
    if cls is SubformValue:
        return cls(item, existing, draft=draft, stored_check=tolerate_disabled)
    if cls in (ChoiceValue, MultiChoiceValue, LocationValue):
        return cls(item, existing, tolerate_disabled=tolerate_disabled)
    return cls(item, existing)


def record_schema(definition: FormDef, keys, existing: dict, draft: bool) -> Schema:
    """A schema for the keys being written, each checked by its field's rules."""
    schema_fields = {}
    for key in keys:
        item = definition.field(key)
        if item is None:
            owner = definition.companion_owner(key)
            schema_fields[key] = TickBoxValue(owner, existing.get(key))
        else:
            schema_fields[key] = value_field(item, existing.get(key), draft=draft)
    return Schema.from_dict(schema_fields, name=f"{definition.record_type.title()}RecordSchema")()


def check_stored_value(item: FieldDef, value) -> str | None:
    """Would a stored `value` still be valid under the definition `item`? The first message if not."""
    if is_empty(value):
        return None
    try:
        value_field(item, value, draft=True, tolerate_disabled=True).deserialize(value)
    except ValidationError as error:
        return _first_message(error.messages)
    return None


def _first_message(messages) -> str:
    if isinstance(messages, dict):
        for value in messages.values():
            return _first_message(value)
    if isinstance(messages, list) and messages:
        return _first_message(messages[0])
    return str(messages)


def flatten_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """{"family_details": {0: {"relation_age": [...]}}} -> {"family_details.0.relation_age": [...]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":  # marshmallow's name for "the object as a whole"
                name = prefix or "_record"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for sub_key, sub_messages in flatten_errors(value, name).items():
                flat.setdefault(sub_key, []).extend(sub_messages)
    elif isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        for message in messages:
            for sub_key, sub_messages in flatten_errors(message, prefix).items():
                flat.setdefault(sub_key, []).extend(sub_messages)
    else:
        items = messages if isinstance(messages, list) else [messages]
        flat[prefix or "_record"] = [str(m) for m in items]
    return flat


# --- administration -------------------------------------------------------------------------

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}[a-z0-9]$|^[a-z]$")
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
LOCATION_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LABEL_MAX = 300
HELP_MAX = 2000
ACCESS_LEVELS = ("read", "write")


def _messages(**extra) -> dict:
    base = {"required": _l("This value is required."), "null": _l("This value is required."),
            "invalid": _l("This value is not valid.")}
    base.update(extra)
    return base


class Texts(fields.Dict):
    """{locale: text} in the enabled languages."""

    def __init__(self, max_length: int, require_english: bool = False, **kwargs):
        kwargs.setdefault("error_messages", _messages())
        super().__init__(keys=fields.String(), values=fields.String(allow_none=True), **kwargs)
        self.max_length = max_length
        self.require_english = require_english

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError(_("Give the texts by language, e.g. {\"en\": \"...\"}."))
        languages = current_app.config["LANGUAGES"]
        cleaned = {}
        for locale, text in value.items():
            if locale not in languages:
                raise ValidationError(_("Unknown language %(code)s.", code=str(locale)[:10]))
            if text is None:
                continue
            if not isinstance(text, str):
                raise ValidationError(_("Texts must be text."))
            text = text.strip()
            if _CONTROL_CHARS.search(text):
                raise ValidationError(_("Remove the special characters."))
            if len(text) > self.max_length:
                raise ValidationError(_("Use at most %(n)d characters.", n=self.max_length))
            if text:
                cleaned[locale] = text
        if self.require_english and not cleaned.get("en"):
            raise ValidationError(_("Give at least the English text."))
        return cleaned


def _key_field(**kwargs):
    return fields.String(validate=validate.Regexp(KEY_RE, error=_l(
        "Use lower-case letters, digits and underscores, starting with a letter (at most 64).")),
        error_messages=_messages(), **kwargs)


def _code_field(**kwargs):
    return fields.String(validate=validate.Regexp(CODE_RE, error=_l(
        "Use lower-case letters, digits and underscores (at most 64).")), error_messages=_messages(), **kwargs)


def _bool(**kwargs):
    return fields.Boolean(error_messages=_messages(invalid=_l("Answer true or false.")), **kwargs)


class SpecSchema(Schema):
    error_messages = {"unknown": _l("Unknown field."), "type": _l("This must be an object.")}


class OptionSpec(SpecSchema):
    code = _code_field(required=True)
    labels = Texts(LABEL_MAX, require_english=True, required=True)
    is_disabled = _bool(load_default=False)


class ConditionSpec(SpecSchema):
    field = _key_field(required=True)
    operator = fields.String(load_default="equals", validate=validate.OneOf(
        ("equals", "not_equals", "in", "is_set", "is_true"), error=_l("Choose a known comparison.")),
        error_messages=_messages())
    value = fields.Raw(load_default=None, allow_none=True)

    @validates_schema
    def _value_needed(self, data, **kwargs):
        operator = data.get("operator", "equals")
        value = data.get("value")
        if operator in ("equals", "not_equals") and (value is None or isinstance(value, (list, dict))):
            raise ValidationError(_("Give the value to compare with."), "value")
        if operator == "in" and not (isinstance(value, list) and value):
            raise ValidationError(_("Give the list of values."), "value")
        if isinstance(value, list) and not all(isinstance(v, (str, int, bool)) for v in value):
            raise ValidationError(_("Give simple values."), "value")


class FieldSpec(SpecSchema):
    """A field as the admin pages, the API and configuration files describe it."""

    key = _key_field(required=True)
    type = fields.String(required=True, validate=validate.OneOf(FIELD_TYPES, error=_l("Choose a field type.")),
                         error_messages=_messages())
    labels = Texts(LABEL_MAX, require_english=True, required=True)
    help_texts = Texts(HELP_MAX, load_default=dict)
    is_required = _bool(load_default=False)
    is_hidden = _bool(load_default=False)
    matching_tag = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(
        MATCHING_TAGS, error=_l("Choose one of the matching meanings.")), error_messages=_messages())
    condition = fields.Nested(ConditionSpec, load_default=None, allow_none=True)
    lookup = _code_field(load_default=None, allow_none=True)
    options = fields.List(fields.Nested(OptionSpec), load_default=None, allow_none=True)
    min_value = fields.Decimal(load_default=None, allow_none=True, allow_nan=False,
                               error_messages=_messages(invalid=_l("Enter a number.")))
    max_value = fields.Decimal(load_default=None, allow_none=True, allow_nan=False,
                               error_messages=_messages(invalid=_l("Enter a number.")))
    max_length = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(
        min=1, max=100000, error=_l("Enter a whole number from 1 to 100000.")),
        error_messages=_messages(invalid=_l("Enter a whole number.")))
    is_future_refused = _bool(load_default=False)
    is_approximate_allowed = _bool(load_default=False)
    subfields = fields.List(fields.Nested(lambda: FieldSpec()), load_default=None, allow_none=True)
    removed_subfields = fields.List(fields.Nested(lambda: FieldSpec()), load_default=None, allow_none=True)

    @validates_schema
    def _consistent(self, data, partial=False, **kwargs):
        """Rules between attributes that hold whatever the field's context is."""
        if partial and "type" not in data:
            return
        kind = data.get("type")
        if kind in CHOICE_TYPES:
            has_lookup, has_options = bool(data.get("lookup")), bool(data.get("options"))
            if has_lookup == has_options:
                raise ValidationError(_("Choose a lookup or give the options, not both."), "lookup")
            codes = [o["code"] for o in data.get("options") or []]
            if len(codes) != len(set(codes)):
                raise ValidationError(_("Each option needs its own code."), "options")
        else:
            if data.get("lookup"):
                raise ValidationError(_("Only choice fields take a lookup."), "lookup")
            if data.get("options"):
                raise ValidationError(_("Only choice fields take options."), "options")
        if kind not in (INTEGER, DECIMAL) and (data.get("min_value") is not None
                                               or data.get("max_value") is not None):
            raise ValidationError(_("Only number fields have a minimum and maximum."), "min_value")
        low, high = data.get("min_value"), data.get("max_value")
        for name, bound in (("min_value", low), ("max_value", high)):
            if bound is not None and (abs(bound) >= NUMBER_LIMIT or bound.as_tuple().exponent < -6):
                raise ValidationError(_("Enter a number below 10^15 with at most 6 decimal places."), name)
        if low is not None and high is not None and low > high:
            raise ValidationError(_("The minimum is above the maximum."), "max_value")
        if kind != DATE and (data.get("is_future_refused") or data.get("is_approximate_allowed")):
            raise ValidationError(_("Only date fields have these settings."), "is_future_refused")
        if data.get("max_length") is not None and kind not in (TEXT, TEXTAREA, SUBFORM, PHOTO, DOCUMENT):
            raise ValidationError(_("This field type has no maximum length."), "max_length")
        if kind == SUBFORM:
            if data.get("matching_tag"):
                raise ValidationError(_("A subform cannot be tagged for matching."), "matching_tag")
        elif data.get("subfields") or data.get("removed_subfields"):
            raise ValidationError(_("Only subforms have fields of their own."), "subfields")
        if kind == "separator" and (data.get("is_required") or data.get("matching_tag")):
            raise ValidationError(_("A separator holds no value."), "is_required")


class SectionSpec(SpecSchema):
    key = _key_field(required=True)
    labels = Texts(LABEL_MAX, require_english=True, required=True)
    help_texts = Texts(HELP_MAX, load_default=dict)
    is_hidden = _bool(load_default=False)
    # {role code: "read" | "write"}; roles left out may not see the section.
    access = fields.Dict(keys=_code_field(), values=fields.String(validate=validate.OneOf(
        ACCESS_LEVELS, error=_l("Use read or write."))), load_default=None, allow_none=True)
    fields_ = fields.List(fields.Nested(FieldSpec), data_key="fields", attribute="fields", load_default=list)
    removed_fields = fields.List(fields.Nested(FieldSpec), load_default=list)


class FormSpec(SpecSchema):
    record_type = fields.String(required=True, validate=validate.OneOf(
        RECORD_TYPES, error=_l("Use case, tracing_request or trace.")), error_messages=_messages())
    labels = Texts(LABEL_MAX, load_default=dict)
    is_draft_allowed = _bool(load_default=False)
    sections = fields.List(fields.Nested(SectionSpec), load_default=list)


class LookupSpec(SpecSchema):
    code = _code_field(required=True)
    labels = Texts(LABEL_MAX, require_english=True, required=True)
    values = fields.List(fields.Nested(OptionSpec), load_default=list)


class LocationSpec(SpecSchema):
    code = fields.String(required=True, validate=validate.Regexp(LOCATION_CODE_RE, error=_l(
        "Use letters, digits, dots, dashes or underscores (at most 64).")), error_messages=_messages())
    parent = fields.String(load_default=None, allow_none=True, error_messages=_messages())
    type = fields.String(load_default="", validate=validate.Regexp(
        r"^[a-z0-9_]{0,32}$", error=_l("Use lower-case letters, digits and underscores (at most 32).")),
        error_messages=_messages())
    names = Texts(LABEL_MAX, require_english=True, required=True)
    is_disabled = _bool(load_default=False)


CONFIGURATION_FORMAT = "cpims-forms"
CONFIGURATION_VERSION = 1


class ConfigurationSpec(SpecSchema):
    """A whole configuration: what `flask forms export` writes and `flask forms load` reads."""

    format = fields.String(required=True, validate=validate.Equal(
        CONFIGURATION_FORMAT, error=_l("This is not a forms configuration file.")), error_messages=_messages())
    version = fields.Integer(required=True, strict=True, validate=validate.Equal(
        CONFIGURATION_VERSION, error=_l("This file version is not supported.")), error_messages=_messages())
    lookups = fields.List(fields.Nested(LookupSpec), load_default=list)
    forms = fields.List(fields.Nested(FormSpec), load_default=list)
    locations = fields.List(fields.Nested(LocationSpec), load_default=None, allow_none=True)


def load_spec(schema: Schema, data, partial=False) -> dict:
    """Validate `data` with `schema`; field-level messages as {"a.b": [...]} on failure."""
    try:
        return schema.load(data, unknown=RAISE, partial=partial)
    except ValidationError as error:
        from forms.operations import FormValidationError
        raise FormValidationError(flatten_errors(error.messages)) from None


__all__ = ["ROW_ID", "check_stored_value", "condition_met", "flatten_errors", "record_schema", "value_field"]
