"""Administration pages for forms, lookups and locations, and the form preview.

Views stay thin: parse the HTML form into the same dicts the JSON API takes, call
one operation, commit once, or roll back and show the field-level messages (422).
"""
from __future__ import annotations

import logging
import re

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.audit.operations import record_audit
from app.extensions import db
from app.navigation import register_nav
from app.permissions import can, require
from forms import operations as ops
from forms.definitions import (
    FormAccess,
    access_for,
    access_from_permissions,
    format_value,
    location_choices,
    location_path,
)
from forms.models import (
    ATTACHMENT_TYPES,
    CHOICE_TYPES,
    DATE,
    DECIMAL,
    FIELD_TYPES,
    INTEGER,
    MATCHING_TAGS,
    RECORD_TYPES,
    SUBFORM,
    TEXT,
    TEXTAREA,
    TICK_BOX,
    FormField,
    Location,
    Lookup,
)
from forms.schemas import latest_today

log = logging.getLogger(__name__)

bp = Blueprint("forms", __name__, template_folder="templates")

register_nav("forms.index", _l("Forms"), ops.FORMS_MANAGE, section="admin", order=40,
             description=_l("Sections, fields, translations and matching tags of the case and tracing forms"))
register_nav("forms.lookups", _l("Lookups"), ops.LOOKUPS_MANAGE, section="admin", order=41,
             description=_l("The value lists of choice fields"))
register_nav("forms.locations", _l("Locations"), ops.LOCATIONS_MANAGE, section="admin", order=42,
             description=_l("Countries, regions, districts, sites and camps"))

RECORD_TYPE_LABELS = {"case": _l("Case"), "tracing_request": _l("Tracing request"), "trace": _l("Trace")}
FIELD_TYPE_LABELS = {
    "text": _l("Text"), "textarea": _l("Long text"), "integer": _l("Whole number"), "decimal": _l("Decimal number"),
    "date": _l("Date"), "tick_box": _l("Yes/no tick box"), "select": _l("Select one (list)"),
    "multi_select": _l("Select several"), "radio": _l("Select one (buttons)"), "location": _l("Location"),
    "phone": _l("Phone number"), "subform": _l("Subform (repeating group)"), "photo": _l("Photo upload"),
    "document": _l("Document upload"), "separator": _l("Separator / heading"),
}
OPERATOR_LABELS = {"equals": _l("is"), "not_equals": _l("is not"), "in": _l("is one of (comma separated)"),
                   "is_set": _l("is filled in"), "is_true": _l("is ticked")}
MATCHING_TAG_LABELS = {
    "given_name": _l("Given name"), "middle_name": _l("Middle name"), "family_name": _l("Family name"),
    "full_name": _l("Full name"), "nickname": _l("Nickname"), "other_name": _l("Other name"), "sex": _l("Sex"),
    "date_of_birth": _l("Date of birth"), "age": _l("Age"), "location": _l("Location"),
    "date_of_separation": _l("Date of separation"), "mother_name": _l("Mother's name"),
    "father_name": _l("Father's name"), "caregiver_name": _l("Caregiver's name"),
    "inquirer_name": _l("Inquirer's name"), "relationship": _l("Relationship"), "language": _l("Language"),
    "nationality": _l("Nationality"), "ethnicity": _l("Ethnicity"), "religion": _l("Religion"),
}
LOCATIONS_PER_PAGE = 50


# --- start-up hooks -----------------------------------------------------------------------

@bp.before_app_request
def _sync_permissions():
    # Sections are data: keep the permission catalogue in step with other processes.
    if request.endpoint in (None, "static", "main.healthz"):
        return
    try:
        ops.sync_section_permissions()
    except Exception:  # a missing table (before migrations) or a database hiccup must not break pages
        db.session.rollback()
        log.warning("could not synchronise form section permissions", exc_info=True)


# --- template helpers ------------------------------------------------------------------------

def _locale() -> str:
    from flask_babel import get_locale
    return str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])


@bp.app_template_global("forms_locale")
def forms_locale() -> str:
    return _locale()


@bp.app_template_global("forms_access")
def forms_access(definition, user) -> FormAccess:
    return access_for(definition, user)


@bp.app_template_global("forms_field_id")
def forms_field_id(name) -> str:
    return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(name))


@bp.app_template_global("forms_display")
def forms_display(item, value) -> str:
    return format_value(item, value, _locale())


@bp.app_template_global("forms_location_choices")
def forms_location_choices(keep=None):
    return location_choices(_locale(), keep)


@bp.app_template_global("forms_location_path")
def forms_location_path(code) -> str:
    return location_path(code, _locale())


@bp.app_template_global("forms_latest_today")
def forms_latest_today() -> str:
    return latest_today().isoformat()


@bp.app_template_global("forms_section_error_count")
def forms_section_error_count(section, errors, prefix: str = "") -> int:
    """Errors in the fields of `section`; with a `prefix` (see render_form), keys are "<prefix><key>"."""
    if not errors:
        return 0
    keys = set()
    for item in section.fields:
        keys.add(item.key)
        if item.approximate_key:
            keys.add(item.approximate_key)
    return sum(1 for key in errors if key.startswith(prefix) and key[len(prefix):].split(".", 1)[0] in keys)


@bp.app_template_global("forms_groups")
def forms_groups(items):
    """Split fields at separators: [(separator or None, [fields])]."""
    groups = [(None, [])]
    for item in items:
        if item.type == "separator":
            groups.append((item, []))
        else:
            groups[-1][1].append(item)
    return [(heading, fields) for heading, fields in groups if heading is not None or fields]


@bp.app_template_global("forms_readonly_groups")
def forms_readonly_groups(section, values):
    """[(heading or None, [fields with a value])] for a read-only view; hidden and removed
    fields holding a value come last, under their own heading."""
    locale = _locale()
    groups, heading, current = [], None, []
    for item in section.fields if not section.is_hidden else ():
        if item.type == "separator":
            if not item.is_hidden:
                if current:
                    groups.append((heading, current))
                heading, current = item.label(locale), []
            continue
        if not item.is_hidden and not ops.is_empty(values.get(item.key)):
            current.append(item)
    if current:
        groups.append((heading, current))
    former = [item for item in section.all_fields
              if item.holds_value and (item.is_hidden or item.is_removed or section.is_hidden)
              and not ops.is_empty(values.get(item.key))]
    if former:
        groups.append((_("No longer in the form"), former))
    return groups


@bp.app_template_global("forms_filled_columns")
def forms_filled_columns(item, rows):
    """The sub-fields to show as columns: active ones, and former ones that hold a value."""
    def filled(sub):
        return any(isinstance(row, dict) and not ops.is_empty(row.get(sub.key)) for row in rows)
    return [sub for sub in item.subfields + item.removed_subfields
            if sub.holds_value and ((not sub.is_hidden and not sub.is_removed) or filled(sub))]


@bp.app_template_global("forms_has_value")
def forms_has_value(value) -> bool:
    return not ops.is_empty(value) and value is not False


@bp.app_template_global("forms_error_label")
def forms_error_label(definition, key) -> str:
    """A readable name for an error key like "family_details.0.relation_age"."""
    locale = _locale()
    parts = key.split(".")
    item = definition.field(parts[0]) or definition.companion_owner(parts[0])
    if item is None:
        return key
    label = item.label(locale)
    if len(parts) >= 3 and item.type == SUBFORM:
        sub = item.subfield(parts[2])
        if sub is not None:
            return _("%(subform)s, entry %(n)s: %(field)s", subform=label, n=int(parts[1]) + 1 if parts[1].isdigit()
                     else parts[1], field=sub.label(locale))
    return label


@bp.app_context_processor
def _labels():
    return {"RECORD_TYPE_LABELS": RECORD_TYPE_LABELS, "FIELD_TYPE_LABELS": FIELD_TYPE_LABELS}


# --- shared helpers --------------------------------------------------------------------------

def _record_type_or_404(record_type: str) -> str:
    if record_type not in RECORD_TYPES:
        abort(404)
    return record_type


def _texts(form, prefix: str) -> dict:
    return {locale: form.get(f"{prefix}_{locale}", "") for locale in current_app.config["LANGUAGES"]}


def _fail_page(template: str, errors: dict, **context):
    db.session.rollback()
    return render_template(template, errors=errors, **context), 422


def _roles():
    from app.users.models import Role
    return db.session.execute(select(Role).order_by(Role.name)).scalars().all()


def _offset() -> int:
    return -1 if request.form.get("direction") == "up" else 1


# --- forms -----------------------------------------------------------------------------------

@bp.get("/admin/forms")
@require(ops.FORMS_MANAGE)
def index(errors=None, status=200):
    summaries = []
    for record_type in RECORD_TYPES:
        definition = ops.get_definition(record_type)
        summaries.append({"record_type": record_type, "definition": definition,
                          "sections": len(definition.sections),
                          "fields": sum(len(s.fields) for s in definition.sections)})
    return render_template("forms/admin/index.html", summaries=summaries, errors=errors or {}), status


@bp.get("/admin/forms/export")
@require(ops.FORMS_MANAGE)
def export():
    data = ops.export_configuration(with_locations=request.args.get("locations") == "1")
    record_audit("forms.export", "form", None, detail={"with_locations": "locations" in data})
    db.session.commit()
    return Response(ops.configuration_json(data), mimetype="application/json",
                    headers={"Content-Disposition": "attachment; filename=forms-configuration.json"})


@bp.post("/admin/forms/import")
@require(ops.FORMS_MANAGE)
def import_configuration():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return index(errors={"file": [_("Choose a configuration file.")]}, status=422)
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return index(errors={"file": [_("The file must be UTF-8 text.")]}, status=422)
    try:
        report = ops.load_configuration(ops.read_configuration(text), actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        return index(errors=error.errors, status=422)
    db.session.commit()
    flash(_("Configuration loaded: %(lookups)d lookup(s), %(sections)d section(s), %(fields)d field(s) changed.",
            lookups=report["lookups"], sections=report["sections"], fields=report["fields"]), "success")
    for warning in report["warnings"]:
        flash(warning, "info")
    return redirect(url_for("forms.index"))


@bp.get("/admin/forms/<record_type>")
@require(ops.FORMS_MANAGE)
def form(record_type):
    _record_type_or_404(record_type)
    definition = ops.get_definition(record_type)
    access = {section.key: ops.section_access_by_role(record_type, section.key) for section in definition.sections}
    return render_template("forms/admin/form.html", record_type=record_type, definition=definition,
                           access=access, roles={r.code: r for r in _roles()}, errors={})


@bp.post("/admin/forms/<record_type>/settings")
@require(ops.FORMS_MANAGE)
def form_settings(record_type):
    _record_type_or_404(record_type)
    try:
        ops.update_form(record_type, {"labels": _texts(request.form, "label"),
                                      "is_draft_allowed": "is_draft_allowed" in request.form}, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        definition = ops.get_definition(record_type)
        return render_template("forms/admin/form.html", record_type=record_type, definition=definition,
                               access={s.key: ops.section_access_by_role(record_type, s.key)
                                       for s in definition.sections},
                               roles={r.code: r for r in _roles()}, errors=error.errors), 422
    db.session.commit()
    flash(_("Form settings saved."), "success")
    return redirect(url_for("forms.form", record_type=record_type))


# --- sections ----------------------------------------------------------------------------------

def _section_data(form, roles, is_new: bool) -> dict:
    data = {"labels": _texts(form, "label"), "help_texts": _texts(form, "help"),
            "is_hidden": "is_hidden" in form,
            "access": {role.code: form[f"access_{role.code}"] for role in roles
                       if form.get(f"access_{role.code}") in ("read", "write")}}
    if is_new:
        data["key"] = form.get("key", "").strip()
    return data


@bp.route("/admin/forms/<record_type>/sections/new", methods=["GET", "POST"])
@require(ops.FORMS_MANAGE)
def new_section(record_type):
    _record_type_or_404(record_type)
    roles = _roles()
    values = {"access": {}}
    if request.method == "POST":
        values = _section_data(request.form, roles, is_new=True)
        try:
            section = ops.create_section(record_type, values, actor=current_user)
        except ops.FormValidationError as error:
            return _fail_page("forms/admin/section.html", error.errors, record_type=record_type, section=None,
                              values=values, roles=roles)
        db.session.commit()
        flash(_("Section added."), "success")
        return redirect(url_for("forms.form", record_type=record_type, _anchor=f"section-{section.key}"))
    return render_template("forms/admin/section.html", record_type=record_type, section=None, values=values,
                           roles=roles, errors={})


@bp.route("/admin/forms/<record_type>/sections/<key>", methods=["GET", "POST"])
@require(ops.FORMS_MANAGE)
def edit_section(record_type, key):
    _record_type_or_404(record_type)
    section = ops.get_section(record_type, key) or abort(404)
    roles = _roles()
    values = {"key": section.key, "labels": section.labels, "help_texts": section.help_texts,
              "is_hidden": section.is_hidden, "access": ops.section_access_by_role(record_type, key)}
    if request.method == "POST":
        values = {**_section_data(request.form, roles, is_new=False), "key": section.key}
        try:
            ops.update_section(section, values, actor=current_user)
        except ops.FormValidationError as error:
            return _fail_page("forms/admin/section.html", error.errors, record_type=record_type, section=section,
                              values=values, roles=roles)
        db.session.commit()
        flash(_("Section saved."), "success")
        return redirect(url_for("forms.form", record_type=record_type, _anchor=f"section-{key}"))
    return render_template("forms/admin/section.html", record_type=record_type, section=section, values=values,
                           roles=roles, errors={})


@bp.post("/admin/forms/<record_type>/sections/<key>/move")
@require(ops.FORMS_MANAGE)
def move_section(record_type, key):
    _record_type_or_404(record_type)
    section = ops.get_section(record_type, key) or abort(404)
    ops.move_section(section, _offset(), actor=current_user)
    db.session.commit()
    return redirect(url_for("forms.form", record_type=record_type, _anchor=f"section-{key}"))


# --- fields ----------------------------------------------------------------------------------------

def _number_or_text(text: str):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _parse_options(text: str) -> list[dict]:
    """One option per line: code | English | Français | العربية [| disabled]."""
    options, problems = [], []
    languages = list(current_app.config["LANGUAGES"])
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        disabled = len(parts) > 1 and parts[-1].lower() == "disabled"
        if disabled:
            parts = parts[:-1]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            problems.append(_("Line %(n)d: write the code, then the English label, separated by |.", n=number))
            continue
        labels = {locale: label for locale, label in zip(languages, parts[1:]) if label}
        options.append({"code": parts[0], "labels": labels, "is_disabled": disabled})
    if problems:
        raise ops.FormValidationError({"options": problems})
    return options


def _options_text(options) -> str:
    languages = list(current_app.config["LANGUAGES"])
    lines = []
    for option in options or []:
        parts = [option["code"]] + [option.get("labels", {}).get(locale, "") for locale in languages]
        while len(parts) > 2 and not parts[-1]:
            parts.pop()
        if option.get("is_disabled"):
            parts.append("disabled")
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def _condition_value(definition, scope_parent, field_key: str, operator: str, text: str):
    target = None
    if field_key:
        target = (definition.field(f"{scope_parent}.{field_key}") if scope_parent else definition.field(field_key))

    def convert(raw: str):
        raw = raw.strip()
        if target is not None and target.type == TICK_BOX:
            return raw.lower() in ("true", "yes", "1", "on")
        if target is not None and target.type == INTEGER:
            try:
                return int(raw)
            except ValueError:
                return raw
        return raw

    if operator in ("is_set", "is_true"):
        return None
    if operator == "in":
        return [convert(part) for part in (text or "").split(",") if part.strip()]
    return convert(text or "") if (text or "").strip() else None


def _field_data(form, definition, kind: str, is_new: bool, parent_key: str | None) -> dict:
    data = {"type": kind, "labels": _texts(form, "label"), "help_texts": _texts(form, "help"),
            "is_required": "is_required" in form, "is_hidden": "is_hidden" in form,
            "matching_tag": form.get("matching_tag") or None}
    if is_new:
        data["key"] = form.get("key", "").strip()
    if kind in CHOICE_TYPES:
        if form.get("option_source") == "inline":
            data["options"] = _parse_options(form.get("options", ""))
            data["lookup"] = None
        else:
            data["lookup"] = form.get("lookup") or None
            data["options"] = None
    else:
        data["lookup"], data["options"] = None, None
    if kind in (INTEGER, DECIMAL):
        data["min_value"] = (form.get("min_value") or "").strip() or None
        data["max_value"] = (form.get("max_value") or "").strip() or None
    else:
        data["min_value"] = data["max_value"] = None
    data["max_length"] = _number_or_text(form.get("max_length")) if kind in (TEXT, TEXTAREA, SUBFORM) + \
        ATTACHMENT_TYPES else None
    data["is_future_refused"] = kind == DATE and "is_future_refused" in form
    data["is_approximate_allowed"] = kind == DATE and "is_approximate_allowed" in form
    condition_field = form.get("condition_field") or ""
    if condition_field:
        operator = form.get("condition_operator") or "equals"
        data["condition"] = {"field": condition_field, "operator": operator,
                             "value": _condition_value(definition, parent_key, condition_field, operator,
                                                       form.get("condition_value", ""))}
    else:
        data["condition"] = None
    return data


def _field_context(record_type, definition, section_key, parent_key, row=None):
    parent = definition.field(parent_key) if parent_key else None
    if parent is not None:
        scope = [f for f in parent.subfields if row is None or f.key != row.key]
    else:
        scope = [f for s in definition.sections for f in s.fields if row is None or f.key != row.key]
    condition_fields = [f for f in scope if f.holds_value and f.type not in (SUBFORM,) + ATTACHMENT_TYPES]
    lookups = db.session.execute(select(Lookup).order_by(Lookup.code)).scalars().all()
    return {"record_type": record_type, "definition": definition, "section_key": section_key,
            "parent": parent, "lookups": lookups, "condition_fields": condition_fields,
            "matching_tags": MATCHING_TAGS, "MATCHING_TAG_LABELS": MATCHING_TAG_LABELS,
            "OPERATOR_LABELS": OPERATOR_LABELS, "field_types": [t for t in FIELD_TYPES if not (
                parent is not None and t in (SUBFORM,) + ATTACHMENT_TYPES)]}


def _values_for_template(data: dict) -> dict:
    values = dict(data)
    if data.get("options"):
        values["options_text"] = _options_text(data["options"])
    condition = data.get("condition") or {}
    value = condition.get("value")
    values["condition_value_text"] = ", ".join(str(v) for v in value) if isinstance(value, list) else (
        "" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    return values


@bp.route("/admin/forms/<record_type>/sections/<section_key>/fields/new", methods=["GET", "POST"])
@require(ops.FORMS_MANAGE)
def new_field(record_type, section_key):
    _record_type_or_404(record_type)
    ops.get_section(record_type, section_key) or abort(404)
    definition = ops.get_definition(record_type)
    parent_key = request.values.get("parent") or None
    if parent_key and (definition.field(parent_key) is None or definition.field(parent_key).type != SUBFORM):
        abort(404)
    kind = request.values.get("type") or TEXT
    if kind not in FIELD_TYPES:
        abort(404)
    context = _field_context(record_type, definition, section_key, parent_key)
    values = {"type": kind, "option_source": "lookup"}
    if request.method == "POST":
        try:
            data = _field_data(request.form, definition, kind, True, parent_key)
        except ops.FormValidationError as error:
            values = {**_raw_field_values(request.form, kind), "type": kind}
            return _fail_page("forms/admin/field.html", error.errors, row=None, values=values, **context)
        try:
            row = ops.create_field(record_type, section_key, data, actor=current_user, parent_key=parent_key)
        except ops.FormValidationError as error:
            values = {**_values_for_template(data), "option_source": request.form.get("option_source"),
                      "options_text": request.form.get("options", "")}
            return _fail_page("forms/admin/field.html", error.errors, row=None, values=values, **context)
        db.session.commit()
        flash(_("Field %(key)s added.", key=row.key), "success")
        return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{row.key}"))
    return render_template("forms/admin/field.html", row=None, values=values, errors={}, **context)


def _raw_field_values(form, kind) -> dict:
    return {"key": form.get("key", ""), "labels": _texts(form, "label"), "help_texts": _texts(form, "help"),
            "options_text": form.get("options", ""), "option_source": form.get("option_source"),
            "lookup": form.get("lookup"), "is_required": "is_required" in form, "is_hidden": "is_hidden" in form}


@bp.route("/admin/forms/<record_type>/fields/<key>", methods=["GET", "POST"])
@require(ops.FORMS_MANAGE)
def edit_field(record_type, key):
    _record_type_or_404(record_type)
    row = ops.get_field(record_type, key) or abort(404)
    definition = ops.get_definition(record_type)
    parent_key = row.parent.key if row.parent_id else None
    context = _field_context(record_type, definition, row.section.key, parent_key, row)
    context["sections"] = definition.sections
    spec = ops.field_spec(row)
    values = {**_values_for_template(spec), "option_source": "inline" if spec.get("options") else "lookup",
              "section": row.section.key}
    if request.method == "POST":
        kind = request.form.get("type") or row.type
        if kind not in FIELD_TYPES:
            kind = row.type
        try:
            data = _field_data(request.form, definition, kind, False, parent_key)
        except ops.FormValidationError as error:
            values = {**_raw_field_values(request.form, kind), "type": kind, "key": row.key}
            return _fail_page("forms/admin/field.html", error.errors, row=row, values=values, **context)
        section_key = request.form.get("section") if parent_key is None else None
        try:
            ops.update_field(row, data, actor=current_user, section_key=section_key or None)
        except ops.FormValidationError as error:
            values = {**_values_for_template(data), "key": row.key, "option_source": request.form.get("option_source"),
                      "options_text": request.form.get("options", ""), "section": section_key}
            return _fail_page("forms/admin/field.html", error.errors, row=row, values=values, **context)
        db.session.commit()
        flash(_("Field %(key)s saved.", key=row.key), "success")
        return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{row.key}"))
    return render_template("forms/admin/field.html", row=row, values=values, errors={}, **context)


@bp.post("/admin/forms/<record_type>/fields/<key>/move")
@require(ops.FORMS_MANAGE)
def move_field(record_type, key):
    _record_type_or_404(record_type)
    row = ops.get_field(record_type, key) or abort(404)
    ops.move_field(row, _offset(), actor=current_user)
    db.session.commit()
    return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{key}"))


@bp.post("/admin/forms/<record_type>/fields/<key>/remove")
@require(ops.FORMS_MANAGE)
def remove_field(record_type, key):
    _record_type_or_404(record_type)
    row = ops.get_field(record_type, key) or abort(404)
    try:
        ops.remove_field(row, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        for messages in error.errors.values():
            for message in messages:
                flash(message, "error")
        return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{key}"))
    db.session.commit()
    flash(_("Field %(key)s removed from the form. Stored values are kept.", key=key), "success")
    return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{key}"))


@bp.post("/admin/forms/<record_type>/fields/<key>/restore")
@require(ops.FORMS_MANAGE)
def restore_field(record_type, key):
    _record_type_or_404(record_type)
    row = ops.get_field(record_type, key) or abort(404)
    ops.restore_field(row, actor=current_user)
    db.session.commit()
    flash(_("Field %(key)s is back in the form.", key=key), "success")
    return redirect(url_for("forms.form", record_type=record_type, _anchor=f"field-{key}"))


# --- preview ----------------------------------------------------------------------------------------

@bp.route("/forms/<record_type>/preview", methods=["GET", "POST"])
@require(ops.FORMS_READ)
def preview(record_type):
    """Fill a form and have it checked, without saving anything.

    Form designers see the whole form, or what one role would see (`?role=`); everyone
    else sees the sections their own role may read and write.
    """
    _record_type_or_404(record_type)
    definition = ops.get_definition(record_type)
    designer = can(current_user, ops.FORMS_MANAGE)
    roles = _roles() if designer else []
    role_code = request.values.get("role") or "" if designer else ""
    if designer and role_code:
        role = next((r for r in roles if r.code == role_code), None) or abort(404)
        access = access_from_permissions(definition, role.permissions)
    elif designer:
        access = access_from_permissions(definition, None)
    else:
        access = access_for(definition, current_user)
    values, errors, cleaned, status = {}, {}, None, 200
    if request.method == "POST":
        values = ops.parse_form_data(record_type, request.form, access=access)
        try:
            cleaned = ops.validate_with_access(definition, values, access, draft="draft" in request.form)
        except ops.FormValidationError as error:
            errors, status = error.errors, 422
        else:
            values = cleaned
    return render_template("forms/preview.html", record_type=record_type, definition=definition, access=access,
                           values=values, errors=errors, cleaned=cleaned, designer=designer, roles=roles,
                           role_code=role_code), status


# --- lookups -----------------------------------------------------------------------------------------

@bp.route("/admin/lookups", methods=["GET", "POST"])
@require(ops.LOOKUPS_MANAGE)
def lookups():
    errors, values, status = {}, {}, 200
    if request.method == "POST":
        try:
            values = {"code": request.form.get("code", "").strip(), "labels": _texts(request.form, "label"),
                      "values": _parse_options(request.form.get("values", ""))}
        except ops.FormValidationError as error:
            errors, status = {"values": error.errors["options"]}, 422
            values = {"code": request.form.get("code", ""), "labels": _texts(request.form, "label")}
        else:
            try:
                lookup = ops.create_lookup(values, actor=current_user)
            except ops.FormValidationError as error:
                db.session.rollback()
                errors, status = error.errors, 422
            else:
                db.session.commit()
                flash(_("Lookup %(code)s created.", code=lookup.code), "success")
                return redirect(url_for("forms.lookup", code=lookup.code))
        values["values_text"] = request.form.get("values", "")
    rows = db.session.execute(select(Lookup).order_by(Lookup.code)).scalars().all()
    used_by = {}
    for row in db.session.execute(select(FormField).where(FormField.lookup_id.is_not(None))).scalars():
        used_by.setdefault(row.lookup_id, []).append(row.key)
    return render_template("forms/admin/lookups.html", lookups=rows, used_by=used_by, values=values,
                           errors=errors), status


def _lookup_or_404(code) -> Lookup:
    return ops.get_lookup(code) or abort(404)


def _lookup_page(lookup, errors=None, status=200, value_errors=None, new_value=None):
    used_by = [row.key for row in db.session.execute(
        select(FormField).where(FormField.lookup_id == lookup.id)).scalars()]
    in_use = {value.code: ops.lookup_value_use_count(lookup, value.code) for value in lookup.values}
    return render_template("forms/admin/lookup.html", lookup=lookup, used_by=used_by, in_use=in_use,
                           errors=errors or {}, value_errors=value_errors or {}, new_value=new_value or {}), status


@bp.route("/admin/lookups/<code>", methods=["GET", "POST"])
@require(ops.LOOKUPS_MANAGE)
def lookup(code):
    row = _lookup_or_404(code)
    if request.method == "POST":
        try:
            ops.update_lookup(row, {"labels": _texts(request.form, "label")}, actor=current_user)
        except ops.FormValidationError as error:
            db.session.rollback()
            return _lookup_page(_lookup_or_404(code), errors=error.errors, status=422)
        db.session.commit()
        flash(_("Lookup saved."), "success")
        return redirect(url_for("forms.lookup", code=code))
    return _lookup_page(row)


@bp.post("/admin/lookups/<code>/delete")
@require(ops.LOOKUPS_MANAGE)
def delete_lookup(code):
    row = _lookup_or_404(code)
    try:
        ops.delete_lookup(row, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        return _lookup_page(_lookup_or_404(code), errors=error.errors, status=422)
    db.session.commit()
    flash(_("Lookup %(code)s deleted.", code=code), "success")
    return redirect(url_for("forms.lookups"))


@bp.post("/admin/lookups/<code>/values")
@require(ops.LOOKUPS_MANAGE)
def add_lookup_value(code):
    row = _lookup_or_404(code)
    data = {"code": request.form.get("code", "").strip(), "labels": _texts(request.form, "label"),
            "is_disabled": False}
    try:
        ops.add_lookup_value(row, data, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        return _lookup_page(_lookup_or_404(code), value_errors={"_new": error.errors}, new_value=data, status=422)
    db.session.commit()
    flash(_("Value %(value)s added.", value=data["code"]), "success")
    return redirect(url_for("forms.lookup", code=code, _anchor=f"value-{data['code']}"))


@bp.post("/admin/lookups/<code>/values/<value>")
@require(ops.LOOKUPS_MANAGE)
def update_lookup_value(code, value):
    row = _lookup_or_404(code)
    item = ops.get_lookup_value(row, value) or abort(404)
    action = request.form.get("action", "save")
    try:
        if action == "disable":
            ops.update_lookup_value(item, {"is_disabled": True}, actor=current_user)
        elif action == "enable":
            ops.update_lookup_value(item, {"is_disabled": False}, actor=current_user)
        elif action == "delete":
            ops.delete_lookup_value(item, actor=current_user)
        elif action in ("up", "down"):
            ops.move_lookup_value(item, -1 if action == "up" else 1, actor=current_user)
        else:
            ops.update_lookup_value(item, {"labels": _texts(request.form, "label")}, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        return _lookup_page(_lookup_or_404(code), value_errors={value: error.errors}, status=422)
    db.session.commit()
    messages = {"disable": _("Value %(value)s disabled: it is no longer offered, records keep it."),
                "enable": _("Value %(value)s enabled."), "delete": _("Value %(value)s deleted.")}
    if action in messages:
        flash(messages[action] % {"value": value}, "success")
    return redirect(url_for("forms.lookup", code=code, _anchor=f"value-{value}" if action != "delete" else None))


# --- locations ----------------------------------------------------------------------------------------

@bp.get("/admin/locations")
@require(ops.LOCATIONS_MANAGE)
def locations(errors=None, status=200):
    query = (request.args.get("q") or "").strip()[:100]
    page = max(1, request.args.get("page", 1, type=int) or 1)
    statement = select(Location).order_by(Location.code)
    if query:
        # Names are JSON: search the code and the JSON text (names are not personal data).
        from sqlalchemy import String, cast
        pattern = f"%{query.lower()}%"
        statement = statement.where(or_(func.lower(Location.code).like(pattern),
                                        func.lower(cast(Location.names, String)).like(pattern)))
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = db.session.execute(statement.limit(LOCATIONS_PER_PAGE).offset((page - 1) * LOCATIONS_PER_PAGE)).scalars().all()
    pages = max(1, (total + LOCATIONS_PER_PAGE - 1) // LOCATIONS_PER_PAGE)
    return render_template("forms/admin/locations.html", rows=rows, query=query, page=page, pages=pages, total=total,
                           errors=errors or {}), status


@bp.post("/admin/locations/import")
@require(ops.LOCATIONS_MANAGE)
def import_locations():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return locations(errors={"file": [_("Choose a CSV file.")]}, status=422)
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return locations(errors={"file": [_("The file must be UTF-8 text.")]}, status=422)
    try:
        counts = ops.import_locations_csv(text, actor=current_user)
    except ops.FormValidationError as error:
        db.session.rollback()
        return locations(errors=error.errors, status=422)
    db.session.commit()
    flash(_("Locations imported: %(created)d new, %(updated)d changed, %(unchanged)d unchanged.", **counts), "success")
    return redirect(url_for("forms.locations"))


def _location_data(form, is_new: bool) -> dict:
    data = {"parent": (form.get("parent") or "").strip() or None, "type": (form.get("type") or "").strip(),
            "names": _texts(form, "name"), "is_disabled": "is_disabled" in form}
    if is_new:
        data["code"] = (form.get("code") or "").strip()
    return data


@bp.route("/admin/locations/new", methods=["GET", "POST"])
@require(ops.LOCATIONS_MANAGE)
def new_location():
    values = {"parent": request.args.get("parent") or ""}
    if request.method == "POST":
        values = _location_data(request.form, True)
        try:
            row = ops.create_location(values, actor=current_user)
        except ops.FormValidationError as error:
            return _fail_page("forms/admin/location.html", error.errors, row=None, values=values)
        db.session.commit()
        flash(_("Location %(code)s added.", code=row.code), "success")
        return redirect(url_for("forms.locations", q=row.code))
    return render_template("forms/admin/location.html", row=None, values=values, errors={})


@bp.route("/admin/locations/<code>", methods=["GET", "POST"])
@require(ops.LOCATIONS_MANAGE)
def edit_location(code):
    row = ops.get_location_row(code) or abort(404)
    values = ops.location_spec(row)
    values["is_disabled"] = row.is_disabled
    if request.method == "POST":
        values = {**_location_data(request.form, False), "code": row.code}
        try:
            ops.update_location(row, values, actor=current_user)
        except ops.FormValidationError as error:
            return _fail_page("forms/admin/location.html", error.errors, row=ops.get_location_row(code),
                              values=values)
        db.session.commit()
        flash(_("Location saved."), "success")
        return redirect(url_for("forms.locations", q=code))
    children = db.session.scalar(select(func.count()).where(Location.parent_id == row.id))
    return render_template("forms/admin/location.html", row=row, values=values, errors={}, children=children)

