"""Administration operations: evolution without data loss, lookups in use, conditions,
role access per section, and the audit trail of every definition change."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.permissions import CATALOGUE
from forms import operations as ops
from forms_helpers import load_sample, t


@pytest.fixture
def sample(app):
    load_sample()
    return ops.get_definition("trace")


@pytest.fixture
def stored():
    """Stored record values as a records module would report them: {(record_type, path): [values]}."""
    values: dict = {}

    def provider(record_type, path):
        return list(values.get((record_type, path), []))

    ops.register_stored_values_provider(provider)
    yield values
    ops.unregister_stored_values_provider(provider)


def refused(call, *args, **kwargs) -> dict:
    with pytest.raises(ops.FormValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.errors


def actions_since(entry_id: int) -> list[str]:
    return list(db.session.execute(select(AuditEntry.action).where(AuditEntry.id > entry_id)
                                   .order_by(AuditEntry.id)).scalars())


def last_audit_id() -> int:
    return db.session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0


# --- an administrator adds, translates, tags a field -----------------------------------------

def test_add_a_translated_field_with_a_lookup_tagged_for_matching(sample, make):
    ops.create_lookup({"code": "script", "labels": t("Script"), "values": [
        {"code": "arabic", "labels": t("Arabic", "Arabe", "عربي")}, {"code": "geez", "labels": t("Ge'ez")}]})
    ops.create_field("trace", "main", {"key": "name_arabic", "type": "text",
                                       "labels": t("Name in Arabic script"), "matching_tag": "other_name"})
    ops.update_field(ops.get_field("trace", "name_arabic"),
                     {"labels": t("Name in Arabic script", "Nom en écriture arabe", "الاسم بالحرف العربي")})
    ops.create_field("trace", "main", {"key": "name_script", "type": "select", "labels": t("Script"),
                                       "lookup": "script"})
    definition = ops.get_definition("trace")
    assert definition.field("name_arabic").label("ar") == "الاسم بالحرف العربي"
    assert ops.fields_with_matching_tag("trace", "other_name") == ["name_arabic"]
    caseworker = make.user("caseworker")
    assert "name_arabic" in ops.writable_fields(caseworker, "trace")  # the section's access applies
    data = ops.validate_record_data("trace", {"nickname": "A", "name_arabic": "علي", "name_script": "arabic"},
                                    caseworker)
    assert data["name_arabic"] == "علي"
    errors = refused(ops.validate_record_data, "trace", {"nickname": "A", "name_script": "latin"}, caseworker)
    assert errors == {"name_script": ["Choose one of the options."]}


def test_keys_are_unique_and_never_reused(sample):
    assert "key" in refused(ops.create_field, "trace", "main", {"key": "age", "type": "text", "labels": t("x")})
    ops.remove_field(ops.get_field("trace", "story"))
    errors = refused(ops.create_field, "trace", "main", {"key": "story", "type": "text", "labels": t("x")})
    assert errors["key"] == ["This key is already used in this form (keys are never reused)."]
    # The date's approximate flag reserves its key too.
    assert "key" in refused(ops.create_field, "trace", "main",
                            {"key": "born_approximate", "type": "tick_box", "labels": t("x")})
    assert "key" in refused(ops.update_field, ops.get_field("trace", "age"), {"key": "years"})


def test_field_specs_are_checked(sample):
    assert "lookup" in refused(ops.create_field, "trace", "main",
                               {"key": "c", "type": "select", "labels": t("C")})  # no options, no lookup
    assert "lookup" in refused(ops.create_field, "trace", "main",
                               {"key": "c", "type": "select", "labels": t("C"), "lookup": "nope"})
    assert "max_value" in refused(ops.create_field, "trace", "main", {"key": "n", "type": "integer",
                                                                       "labels": t("N"), "min_value": 5,
                                                                       "max_value": 1})
    assert "labels" in refused(ops.create_field, "trace", "main", {"key": "n", "type": "text", "labels": {}})
    assert "labels" in refused(ops.create_field, "trace", "main", {"key": "n", "type": "text",
                                                                    "labels": {"en": "N", "xx": "?"}})
    assert "type" in refused(ops.create_field, "trace", "main", {"key": "n", "type": "signature",
                                                                  "labels": t("N")})
    assert "extra" in refused(ops.create_field, "trace", "main", {"key": "n", "type": "text", "labels": t("N"),
                                                                   "extra": 1})
    assert "type" in refused(ops.create_field, "trace", "main", {"key": "nested", "type": "subform",
                                                                  "labels": t("N")}, parent_key="family")
    assert "matching_tag" in refused(ops.create_field, "trace", "main", {
        "key": "sub_name", "type": "text", "labels": t("N"), "matching_tag": "given_name"}, parent_key="family")


# --- display conditions ------------------------------------------------------------------------

def test_conditions_are_checked_against_the_form(sample):
    base = {"key": "c1", "type": "text", "labels": t("C")}
    errors = refused(ops.create_field, "trace", "main", {**base, "condition": {"field": "nowhere", "value": "x"}})
    assert errors == {"condition": ["The condition must name another field of the same form part."]}
    errors = refused(ops.create_field, "trace", "main", {**base, "condition": {"field": "colour", "value": "green"}})
    assert errors["condition"] == ["green is not an option of colour."]
    assert "condition" in refused(ops.create_field, "trace", "main",
                                  {**base, "condition": {"field": "age", "operator": "is_true"}})
    assert "condition" in refused(ops.create_field, "trace", "main",
                                  {**base, "condition": {"field": "member_name", "operator": "is_set"}})
    ops.create_field("trace", "main", {**base, "condition": {"field": "size_notes", "operator": "is_set"}})
    # size_notes -> size; size -> c1 would close a circle.
    errors = refused(ops.update_field, ops.get_field("trace", "size"),
                     {"condition": {"field": "c1", "operator": "is_set"}})
    assert "These display conditions depend on each other in a circle." in " ".join(errors["condition"])
    # A field others depend on cannot be removed.
    assert "condition" in refused(ops.remove_field, ops.get_field("trace", "size_notes"))


# --- evolution without data loss ------------------------------------------------------------------

def test_type_change_is_refused_when_stored_data_would_break(sample, stored):
    row = ops.get_field("trace", "nickname")
    stored[("trace", "nickname")] = ["Ali", "Xasan"]
    errors = refused(ops.update_field, row, {"type": "integer"})
    assert errors["type"][0].startswith("Refused: 2 stored value(s) would no longer be valid (Enter a whole number.)")
    assert ops.get_field("trace", "nickname").type == "text"  # nothing changed
    ops.update_field(row, {"type": "textarea"})  # every stored value fits
    assert ops.get_definition("trace").field("nickname").type == "textarea"

    stored[("trace", "family.member_age")] = [40, 7]
    ops.update_field(ops.get_field("trace", "member_age"), {"type": "decimal"})
    stored[("trace", "family.member_name")] = ["Amina"]
    assert "type" in refused(ops.update_field, ops.get_field("trace", "member_name"), {"type": "date"})


def test_lookup_or_option_change_is_refused_when_stored_data_would_break(sample, stored):
    ops.create_lookup({"code": "shade", "labels": t("Shade"), "values": [{"code": "red", "labels": t("Red")}]})
    stored[("trace", "colour")] = ["blue"]
    errors = refused(ops.update_field, ops.get_field("trace", "colour"), {"lookup": "shade"})
    assert list(errors) == ["lookup"]
    stored[("trace", "size")] = ["l"]
    errors = refused(ops.update_field, ops.get_field("trace", "size"),
                     {"options": [{"code": "s", "labels": t("Small")}]})
    assert list(errors) == ["options"]
    ops.update_field(ops.get_field("trace", "size"),
                     {"options": [{"code": "s", "labels": t("Small")}, {"code": "l", "labels": t("Large")},
                                  {"code": "xl", "labels": t("Huge")}]})


def test_lookup_values_in_use_are_disabled_not_deleted(sample, stored):
    lookup = ops.get_lookup("colour")
    stored[("trace", "colours")] = [["red", "blue"]]
    errors = refused(ops.delete_lookup_value, ops.get_lookup_value(lookup, "blue"))
    assert errors == {"code": ["1 stored value(s) use this value: disable it instead."]}
    ops.update_lookup_value(ops.get_lookup_value(lookup, "blue"), {"is_disabled": True})
    assert ops.get_definition("trace").field("colour").option("blue").is_disabled
    ops.add_lookup_value(lookup, {"code": "green", "labels": t("Green")})
    ops.delete_lookup_value(ops.get_lookup_value(lookup, "green"))  # never used
    assert ops.get_lookup_value(ops.get_lookup("colour"), "green") is None
    # A lookup that fields use cannot be deleted at all.
    assert "code" in refused(ops.delete_lookup, lookup)
    spare = ops.create_lookup({"code": "spare", "labels": t("Spare")})
    ops.delete_lookup(spare)
    assert ops.get_lookup("spare") is None


def test_a_value_used_by_a_display_condition_cannot_be_deleted(sample):
    lookup = ops.get_lookup("colour")
    ops.create_field("trace", "main", {"key": "why_red", "type": "text", "labels": t("Why red"),
                                       "condition": {"field": "colour", "value": "red"}})
    assert "code" in refused(ops.delete_lookup_value, ops.get_lookup_value(lookup, "red"))


def test_removing_and_restoring_a_field(sample, make):
    caseworker = make.user("caseworker")
    stored = {"nickname": "Ali", "story": "kept"}
    ops.remove_field(ops.get_field("trace", "story"))
    definition = ops.get_definition("trace")
    assert "story" not in [f.key for f in definition.sections[0].fields]
    assert definition.field("story").is_removed  # still known: labels for history and exports
    assert ops.validate_record_data("trace", {"age": 3}, caseworker, existing=stored)["story"] == "kept"
    ops.restore_field(ops.get_field("trace", "story"))
    assert ops.get_definition("trace").sections[0].fields[-1].key == "story"


# --- role access per section ------------------------------------------------------------------------

def test_section_access_is_role_permissions_in_the_catalogue(sample, make):
    assert "form.trace.main:read" in CATALOGUE and "form.trace.secret:write" in CATALOGUE
    assert ops.section_access_by_role("trace", "secret") == {"supervisor": "write"}
    section = ops.create_section("trace", {"key": "extra", "labels": t("Extra"),
                                           "access": {"caseworker": "read", "supervisor": "write"}})
    assert "form.trace.extra:write" in CATALOGUE
    label = str(CATALOGUE.entries["form.trace.extra:write"].label)
    assert label == 'Sample form, section "Extra": change'
    ops.create_field("trace", "extra", {"key": "extra_note", "type": "text", "labels": t("Extra note")})
    caseworker, supervisor = make.user("caseworker"), make.user("supervisor")
    assert "extra_note" in ops.readable_fields(caseworker, "trace")
    assert "extra_note" not in ops.writable_fields(caseworker, "trace")
    assert "extra_note" in ops.writable_fields(supervisor, "trace")
    ops.update_section(section, {"access": {"supervisor": "read"}})
    assert "extra_note" not in ops.readable_fields(make.user("caseworker"), "trace")
    # A hidden section keeps its values readable but takes its fields out of every form.
    ops.update_section(section, {"is_hidden": True, "access": {"supervisor": "write"}})
    assert "extra_note" in ops.readable_fields(supervisor, "trace")
    assert "extra_note" not in ops.writable_fields(supervisor, "trace")
    assert "key" in refused(ops.create_section, "trace", {"key": "extra", "labels": t("Again")})


def test_sections_and_fields_reorder(sample):
    ops.create_section("trace", {"key": "third", "labels": t("Third")})
    ops.move_section(ops.get_section("trace", "third"), -2)
    assert [s.key for s in ops.get_definition("trace").sections] == ["third", "main", "secret"]
    ops.move_field(ops.get_field("trace", "member_age"), -1)
    assert [f.key for f in ops.get_definition("trace").field("family").subfields][:2] == [
        "member_age", "member_name"]
    ops.update_field(ops.get_field("trace", "phone"), {}, section_key="third")
    assert [f.key for f in ops.get_definition("trace").sections[0].fields] == ["phone"]


# --- audit -------------------------------------------------------------------------------------------

def test_every_definition_change_is_audited(sample, make):
    admin = make.user("administrator")
    start = last_audit_id()
    ops.create_section("trace", {"key": "audited", "labels": t("Audited")}, actor=admin)
    ops.update_section(ops.get_section("trace", "audited"), {"labels": t("Audited", "Audité")}, actor=admin)
    ops.move_section(ops.get_section("trace", "audited"), -1, actor=admin)
    ops.create_field("trace", "audited", {"key": "note", "type": "text", "labels": t("Note")}, actor=admin)
    ops.update_field(ops.get_field("trace", "note"), {"type": "textarea"}, actor=admin)
    ops.move_field(ops.get_field("trace", "age"), 1, actor=admin)
    ops.remove_field(ops.get_field("trace", "note"), actor=admin)
    ops.restore_field(ops.get_field("trace", "note"), actor=admin)
    ops.update_form("trace", {"is_draft_allowed": True}, actor=admin)
    lookup = ops.create_lookup({"code": "audited", "labels": t("A")}, actor=admin)
    ops.update_lookup(lookup, {"labels": t("A", "A fr")}, actor=admin)
    value = ops.add_lookup_value(lookup, {"code": "v", "labels": t("V")}, actor=admin)
    ops.update_lookup_value(value, {"is_disabled": True}, actor=admin)
    ops.delete_lookup_value(value, actor=admin)
    ops.delete_lookup(lookup, actor=admin)
    location = ops.create_location({"code": "AUD", "names": t("Audit town")}, actor=admin)
    ops.update_location(location, {"is_disabled": True}, actor=admin)
    assert actions_since(start) == [
        "form.section.create", "form.section.update", "form.section.move", "form.field.create",
        "form.field.update", "form.field.move", "form.field.remove", "form.field.restore", "form.update",
        "lookup.create", "lookup.update", "lookup.value.create", "lookup.value.disable", "lookup.value.delete",
        "lookup.delete", "location.create", "location.update"]
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "form.field.update")
                               .order_by(AuditEntry.id.desc())).scalars().first()
    assert entry.user_id == admin.id
    assert entry.detail == {"record_type": "trace", "key": "note", "fields": ["type"], "from_type": "text",
                            "to_type": "textarea"}


def test_section_access_changes_are_audited_as_role_changes(sample, make):
    start = last_audit_id()
    ops.update_section(ops.get_section("trace", "secret"), {"access": {"supervisor": "write", "caseworker": "read"}})
    assert "role.update" in actions_since(start)


# --- locations ------------------------------------------------------------------------------------------

def test_location_csv_import_is_idempotent_and_all_or_nothing(app):
    text = ("code,parent_code,type,name_en,name_fr,name_ar\n"
            "C1-R1-CAMP,C1-R1,camp,Camp,Camp,مخيم\n"  # children may come before their parents
            "C1,,country,Country one,Pays un,البلد الأول\n"
            "C1-R1,C1,region,Region one,,\n")
    assert ops.import_locations_csv(text) == {"created": 3, "updated": 0, "unchanged": 0}
    assert ops.import_locations_csv(text) == {"created": 0, "updated": 0, "unchanged": 3}
    assert ops.location_ancestors("C1-R1-CAMP") == ["C1-R1-CAMP", "C1-R1", "C1"]
    broken = ("code,parent_code,type,name_en\n"
              "C2,,country,Two\n"
              "C2-X,NOWHERE,region,Lost\n"
              "bad code,,country,Bad\n"
              "C1,C1-R1-CAMP,country,Loop\n")
    errors = refused(ops.import_locations_csv, broken)
    assert errors == {"line 3": ["Unknown parent location NOWHERE."],
                      "line 4": ["code: Use letters, digits, dots, dashes or underscores (at most 64)."],
                      "line 5": ["Location C1 would be inside itself."]}
    assert ops.get_location("C2") is None  # nothing half-applied
    assert "file" in refused(ops.import_locations_csv, "name,whatever\nx,y\n")
    assert "file" in refused(ops.import_locations_csv, "code,name_en\n")


def test_definitions_are_kept_between_contexts_until_the_form_changes(sample, app):
    """A request or job reuses the definition the process built, and sees every change: one made
    through the operations (in this process) and one whose stamp moved in the database (as
    another process's change would look here)."""
    from sqlalchemy import update

    from forms import definitions
    from forms.models import FormDefinition

    def in_new_context():
        with app.app_context():
            return definitions.get_definition("trace")
    first = in_new_context()
    assert in_new_context() is first  # built once, kept by the process
    ops.update_field(ops.get_field("trace", "age"), {"labels": t("Age in years")})
    changed = in_new_context()
    assert changed is not first and changed.field("age").label("en") == "Age in years"
    assert in_new_context() is changed
    # Another process's change: the stamp moves without this process hearing of it.
    kept = dict(definitions._PROCESS_DEFINITIONS)
    db.session.execute(update(FormDefinition).where(FormDefinition.record_type == "trace")
                       .values(version=FormDefinition.version + 1))
    definitions._PROCESS_DEFINITIONS.update(kept)  # as if the update had happened elsewhere
    assert in_new_context() is not changed


def test_a_rollback_keeps_the_definitions_the_process_holds_and_a_change_drops_them(sample):
    """A definition is filed under its form's stamp, which a rolled-back change never leaves
    behind: after a rollback (a failed save or job) the process keeps it; a change drops it."""
    from forms import definitions
    before = ops.get_definition("trace")
    definitions._forget_on_rollback(db.session, None)  # what SQLAlchemy calls after a rollback
    assert ops.get_definition("trace") is before
    definitions.invalidate_definitions()  # what every form change calls
    assert ops.get_definition("trace") is not before
