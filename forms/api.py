"""JSON API: read form definitions (only what the caller may read), lookups and locations;
check record data against a form; and, for administrators, edit the configuration.

Errors: 422 with {"errors": {"field": ["message"]}}, in the caller's language. Calls
from a logged-in browser send the CSRF token in the X-CSRFToken header.
"""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import String, cast, func, or_, select

from app.audit.operations import record_audit
from app.extensions import db
from app.permissions import require
from forms import operations as ops
from forms.definitions import FieldDef, FormAccess, FormDef, access_for, get_location, location_ancestors
from forms.models import RECORD_TYPES, Location, Lookup

bp = Blueprint("forms_api", __name__, url_prefix="/api")

LOCATIONS_LIMIT = 200


def _unprocessable(errors: dict):
    db.session.rollback()
    return jsonify({"errors": errors}), 422


def _json_object() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ops.FormValidationError({"_record": [_("Send a JSON object.")]})
    return data


@bp.errorhandler(ops.FormValidationError)
def _validation_failed(error):
    return _unprocessable(error.errors)


def _record_type_or_404(record_type: str) -> str:
    if record_type not in RECORD_TYPES:
        abort(404)
    return record_type


# --- serialising definitions --------------------------------------------------------------

def _option_json(option) -> dict:
    return {"code": option.code, "labels": dict(option.labels), "is_disabled": option.is_disabled}


def field_json(item: FieldDef, writable: bool) -> dict:
    data = {
        "key": item.key, "type": item.type, "labels": dict(item.labels), "help_texts": dict(item.help_texts),
        "is_required": item.is_required, "is_hidden": item.is_hidden, "writable": writable and item.is_active,
        "matching_tag": item.matching_tag, "condition": dict(item.condition) if item.condition else None,
    }
    if item.is_choice:
        data["lookup"] = item.lookup
        data["options"] = [_option_json(o) for o in item.options]
    if item.min_value is not None or item.max_value is not None:
        data["min_value"] = str(item.min_value) if item.min_value is not None else None
        data["max_value"] = str(item.max_value) if item.max_value is not None else None
    if item.max_length is not None:
        data["max_length"] = item.max_length
    if item.type == "date":
        data["is_future_refused"] = item.is_future_refused
        data["approximate_key"] = item.approximate_key
    if item.type == "subform":
        data["subfields"] = [field_json(sub, writable) for sub in item.subfields]
    return data


def definition_json(definition: FormDef, access: FormAccess) -> dict:
    """The form as the caller may see it: sections they may not read are left out (S3)."""
    sections = []
    for section in definition.sections:
        if section.key not in access.readable_sections or section.is_hidden:
            continue
        writable = section.key in access.writable_sections
        sections.append({
            "key": section.key, "labels": dict(section.labels), "help_texts": dict(section.help_texts),
            "writable": writable,
            "fields": [field_json(item, writable) for item in section.fields if not item.is_hidden],
        })
    return {"record_type": definition.record_type, "labels": dict(definition.labels),
            "version": definition.version, "is_draft_allowed": definition.is_draft_allowed, "sections": sections}


# --- reading -------------------------------------------------------------------------------

@bp.get("/forms")
@require(ops.FORMS_READ)
def list_forms():
    forms = []
    for record_type in RECORD_TYPES:
        definition = ops.get_definition(record_type)
        forms.append({"record_type": record_type, "labels": dict(definition.labels), "version": definition.version})
    return jsonify({"forms": forms})


@bp.get("/forms/<record_type>")
@require(ops.FORMS_READ)
def get_form(record_type):
    definition = ops.get_definition(_record_type_or_404(record_type))
    return jsonify(definition_json(definition, access_for(definition, current_user)))


@bp.post("/forms/<record_type>/validate")
@require(ops.FORMS_READ)
def validate(record_type):
    """Check record data as a save would, without saving: {"data": {...}, "draft": false}."""
    _record_type_or_404(record_type)
    body = _json_object()
    unknown = sorted(set(body) - {"data", "draft"})
    if unknown:
        raise ops.FormValidationError({key: [_("Unknown field.")] for key in unknown})
    draft = body.get("draft", False)
    if not isinstance(draft, bool):
        raise ops.FormValidationError({"draft": [_("Answer true or false.")]})
    cleaned = ops.validate_record_data(record_type, body.get("data"), current_user, draft=draft)
    return jsonify({"data": cleaned})


def _lookup_json(lookup: Lookup) -> dict:
    return {"code": lookup.code, "labels": dict(lookup.labels or {}),
            "values": [{"code": v.code, "labels": dict(v.labels or {}), "is_disabled": v.is_disabled}
                       for v in sorted(lookup.values, key=lambda v: (v.position, v.id))]}


@bp.get("/lookups")
@require(ops.FORMS_READ)
def list_lookups():
    rows = db.session.execute(select(Lookup).order_by(Lookup.code)).scalars().all()
    return jsonify({"lookups": [_lookup_json(row) for row in rows]})


@bp.get("/lookups/<code>")
@require(ops.FORMS_READ)
def get_lookup(code):
    return jsonify(_lookup_json(ops.get_lookup(code) or abort(404)))


def _location_json(code: str) -> dict:
    info = get_location(code)
    return {"code": info.code, "parent": info.parent_code, "type": info.type, "names": dict(info.names),
            "is_disabled": info.is_disabled, "ancestors": location_ancestors(code)[1:]}


@bp.get("/locations")
@require(ops.FORMS_READ)
def list_locations():
    """?q= (name or code), ?parent= (code, or empty for top level), ?limit= (at most 200)."""
    statement = select(Location.code).order_by(Location.code)
    query = (request.args.get("q") or "").strip()[:100]
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.where(or_(func.lower(Location.code).like(pattern),
                                        func.lower(cast(Location.names, String)).like(pattern)))
    if "parent" in request.args:
        parent_code = request.args.get("parent") or None
        if parent_code is None:
            statement = statement.where(Location.parent_id.is_(None))
        else:
            parent = ops.get_location_row(parent_code) or abort(404)
            statement = statement.where(Location.parent_id == parent.id)
    if request.args.get("include_disabled") != "1":
        statement = statement.where(Location.is_disabled.is_(False))
    limit = max(1, min(LOCATIONS_LIMIT, request.args.get("limit", LOCATIONS_LIMIT, type=int) or LOCATIONS_LIMIT))
    codes = db.session.execute(statement.limit(limit)).scalars().all()
    return jsonify({"locations": [_location_json(code) for code in codes]})


@bp.get("/locations/<code>")
@require(ops.FORMS_READ)
def get_location_json(code):
    if get_location(code) is None:
        abort(404)
    return jsonify(_location_json(code))


# --- administration ---------------------------------------------------------------------------

def _done(payload, status=200):
    db.session.commit()
    return jsonify(payload), status


def _admin_definition(record_type: str) -> dict:
    definition = ops.get_definition(record_type)
    return definition_json(definition, ops.access_from_permissions(definition, None))


@bp.patch("/forms/<record_type>")
@require(ops.FORMS_MANAGE)
def update_form(record_type):
    ops.update_form(_record_type_or_404(record_type), _json_object(), actor=current_user)
    return _done(_admin_definition(record_type))


@bp.post("/forms/<record_type>/sections")
@require(ops.FORMS_MANAGE)
def create_section(record_type):
    _record_type_or_404(record_type)
    section = ops.create_section(record_type, _json_object(), actor=current_user)
    return _done({"key": section.key, "access": ops.section_access_by_role(record_type, section.key)}, 201)


@bp.patch("/forms/<record_type>/sections/<key>")
@require(ops.FORMS_MANAGE)
def update_section(record_type, key):
    _record_type_or_404(record_type)
    section = ops.get_section(record_type, key) or abort(404)
    data = _json_object()
    offset = data.pop("move", None)
    ops.update_section(section, data, actor=current_user)
    if offset is not None:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ops.FormValidationError({"move": [_("Give a whole number of places (negative moves up).")]})
        ops.move_section(section, offset, actor=current_user)
    return _done({"key": section.key, "access": ops.section_access_by_role(record_type, section.key)})


@bp.post("/forms/<record_type>/sections/<key>/fields")
@require(ops.FORMS_MANAGE)
def create_field(record_type, key):
    """A field spec; "parent": the key of a subform to add the field to it."""
    _record_type_or_404(record_type)
    ops.get_section(record_type, key) or abort(404)
    data = _json_object()
    parent = data.pop("parent", None)
    row = ops.create_field(record_type, key, data, actor=current_user, parent_key=parent)
    return _done(ops.field_spec(row), 201)


@bp.get("/forms/<record_type>/fields/<key>")
@require(ops.FORMS_MANAGE)
def get_field(record_type, key):
    row = ops.get_field(_record_type_or_404(record_type), key) or abort(404)
    spec = ops.field_spec(row)
    spec.update({"section": row.section.key, "parent": row.parent.key if row.parent_id else None,
                 "is_removed": row.removed_at is not None})
    return jsonify(spec)


@bp.patch("/forms/<record_type>/fields/<key>")
@require(ops.FORMS_MANAGE)
def update_field(record_type, key):
    """Attributes to change; "section" moves the field, "move" (+/- places) reorders it."""
    row = ops.get_field(_record_type_or_404(record_type), key) or abort(404)
    data = _json_object()
    section_key = data.pop("section", None)
    offset = data.pop("move", None)
    ops.update_field(row, data, actor=current_user, section_key=section_key)
    if offset is not None:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ops.FormValidationError({"move": [_("Give a whole number of places (negative moves up).")]})
        ops.move_field(row, offset, actor=current_user)
    return _done(ops.field_spec(row))


@bp.delete("/forms/<record_type>/fields/<key>")
@require(ops.FORMS_MANAGE)
def remove_field(record_type, key):
    """Remove a field from the form (stored values are kept; the key stays reserved)."""
    row = ops.get_field(_record_type_or_404(record_type), key) or abort(404)
    ops.remove_field(row, actor=current_user)
    return _done({"key": key, "is_removed": True})


@bp.post("/forms/<record_type>/fields/<key>/restore")
@require(ops.FORMS_MANAGE)
def restore_field(record_type, key):
    row = ops.get_field(_record_type_or_404(record_type), key) or abort(404)
    ops.restore_field(row, actor=current_user)
    return _done({"key": key, "is_removed": False})


@bp.get("/forms/export")
@require(ops.FORMS_MANAGE)
def export_configuration():
    data = ops.export_configuration(with_locations=request.args.get("locations") == "1")
    record_audit("forms.export", "form", None, detail={"with_locations": "locations" in data})
    return _done(data)


@bp.post("/forms/import")
@require(ops.FORMS_MANAGE)
def import_configuration():
    report = ops.load_configuration(_json_object(), actor=current_user)
    report["warnings"] = [str(w) for w in report["warnings"]]
    return _done(report)


@bp.post("/lookups")
@require(ops.LOOKUPS_MANAGE)
def create_lookup():
    return _done(_lookup_json(ops.create_lookup(_json_object(), actor=current_user)), 201)


@bp.patch("/lookups/<code>")
@require(ops.LOOKUPS_MANAGE)
def update_lookup(code):
    lookup = ops.get_lookup(code) or abort(404)
    ops.update_lookup(lookup, _json_object(), actor=current_user)
    return _done(_lookup_json(lookup))


@bp.delete("/lookups/<code>")
@require(ops.LOOKUPS_MANAGE)
def delete_lookup(code):
    ops.delete_lookup(ops.get_lookup(code) or abort(404), actor=current_user)
    return _done({"code": code, "deleted": True})


@bp.post("/lookups/<code>/values")
@require(ops.LOOKUPS_MANAGE)
def add_lookup_value(code):
    lookup = ops.get_lookup(code) or abort(404)
    ops.add_lookup_value(lookup, _json_object(), actor=current_user)
    return _done(_lookup_json(lookup), 201)


@bp.patch("/lookups/<code>/values/<value>")
@require(ops.LOOKUPS_MANAGE)
def update_lookup_value(code, value):
    """Labels and is_disabled; "move": +/- places."""
    lookup = ops.get_lookup(code) or abort(404)
    item = ops.get_lookup_value(lookup, value) or abort(404)
    data = _json_object()
    offset = data.pop("move", None)
    ops.update_lookup_value(item, data, actor=current_user)
    if offset is not None:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ops.FormValidationError({"move": [_("Give a whole number of places (negative moves up).")]})
        ops.move_lookup_value(item, offset, actor=current_user)
    return _done(_lookup_json(lookup))


@bp.delete("/lookups/<code>/values/<value>")
@require(ops.LOOKUPS_MANAGE)
def delete_lookup_value(code, value):
    lookup = ops.get_lookup(code) or abort(404)
    ops.delete_lookup_value(ops.get_lookup_value(lookup, value) or abort(404), actor=current_user)
    return _done(_lookup_json(lookup))


@bp.post("/locations")
@require(ops.LOCATIONS_MANAGE)
def create_location():
    row = ops.create_location(_json_object(), actor=current_user)
    db.session.commit()
    return jsonify(_location_json(row.code)), 201


@bp.patch("/locations/<code>")
@require(ops.LOCATIONS_MANAGE)
def update_location(code):
    row = ops.get_location_row(code) or abort(404)
    ops.update_location(row, _json_object(), actor=current_user)
    db.session.commit()
    return jsonify(_location_json(row.code))

