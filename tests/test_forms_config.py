"""The default child-protection configuration, export and load (API and CLI), and
`flask seed demo`."""
from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from forms import operations as ops
from forms_helpers import sample_configuration, t

CASE_KEYS = {
    "name_first", "name_middle", "name_last", "name_nickname", "name_other", "sex", "date_of_birth", "age",
    "age_is_estimated", "nationality", "ethnicity", "language", "religion", "location_current",
    "location_separation", "date_of_separation", "separation_cause", "mother_name", "father_name",
    "caregiver_name", "phone", "consent_for_tracing", "protection_concerns", "family_details", "tracing_actions"}
TRACING_REQUEST_KEYS = {"relation_name", "relation_nickname", "relation", "relation_location_current",
                        "relation_phone", "inquiry_date", "consent_for_tracing"}
TRACE_KEYS = {"name_first", "name_middle", "name_last", "name_nickname", "name_other", "sex", "date_of_birth", "age",
              "location_separation", "location_last_seen", "date_of_separation", "nationality", "ethnicity",
              "language", "mother_name", "father_name", "distinguishing_features"}


def shipped() -> dict:
    return json.loads(ops.DEFAULT_CONFIGURATION.read_text(encoding="utf-8"))


@pytest.fixture
def default_forms(app):
    ops.load_default_configuration()
    ops.import_locations_csv(ops.DEMO_LOCATIONS.read_text(encoding="utf-8"))


def keys(record_type) -> set[str]:
    return {f.key for f in ops.get_definition(record_type).fields}


def test_default_configuration_has_the_agreed_keys(default_forms):
    assert CASE_KEYS <= keys("case")
    assert TRACING_REQUEST_KEYS <= keys("tracing_request")
    assert TRACE_KEYS <= keys("trace")
    case = ops.get_definition("case")
    assert [f.key for f in case.field("family_details").subfields] == [
        "relation", "relation_name", "relation_age", "relation_is_alive", "relation_location"]
    assert "reunification" in [s.key for s in case.sections]
    assert [o.code for o in case.field("sex").options] == ["male", "female", "other", "unknown"]
    relation = ops.get_definition("tracing_request").field("relation")
    assert [o.code for o in relation.options] == ["mother", "father", "grandparent", "sibling", "aunt_uncle", "other"]
    # Every label and option speaks the three languages.
    for record_type in ("case", "tracing_request", "trace"):
        definition = ops.get_definition(record_type)
        for section in definition.sections:
            assert set(section.labels) == {"en", "fr", "ar"}, section.key
            for item in section.fields + tuple(s for f in section.fields for s in f.subfields):
                assert set(item.labels) == {"en", "fr", "ar"}, item.key
                for option in item.options:
                    assert set(option.labels) == {"en", "fr", "ar"}, (item.key, option.code)


def test_default_configuration_tags_fields_for_matching(default_forms):
    assert ops.fields_with_matching_tag("case", "given_name") == ["name_first"]
    assert ops.fields_with_matching_tag("case", "location") == ["location_current", "location_separation"]
    assert ops.fields_with_matching_tag("trace", "location") == ["location_separation", "location_last_seen"]
    assert ops.fields_with_matching_tag("tracing_request", "inquirer_name") == ["relation_name"]
    assert ops.fields_with_matching_tag("case", "mother_name") == ["mother_name"]


def test_default_configuration_round_trips_unchanged(default_forms):
    exported = ops.export_configuration()
    assert exported == shipped()
    start = db.session.scalar(select(func.max(AuditEntry.id)))
    report = ops.load_configuration(copy.deepcopy(exported))
    assert (report["lookups"], report["sections"], report["fields"]) == (0, 0, 0)
    assert ops.export_configuration() == exported
    # Loading an unchanged file changes nothing but notes the load.
    actions = db.session.execute(select(AuditEntry.action).where(AuditEntry.id > start)).scalars().all()
    assert actions == ["forms.load"]


def test_default_configuration_validates_a_case(default_forms, make):
    caseworker = make.user("caseworker")
    data = ops.validate_record_data("case", {
        "name_first": "Xasan", "sex": "male", "date_of_birth": "2014-05-01", "date_of_birth_approximate": True,
        "language": ["somali", "arabic"], "location_current": "ET-SO-DOLLO-MELKADIDA", "consent_for_tracing": True,
        "consent_given_by": "both",
        "family_details": [{"relation": "mother", "relation_name": "Faadumo", "relation_is_alive": "yes",
                            "relation_location": "SO-GE-DOLOW"}],
    }, caseworker)
    assert data["family_details"][0]["relation_location"] == "SO-GE-DOLOW"
    assert ops.location_ancestors("ET-SO-DOLLO-MELKADIDA") == ["ET-SO-DOLLO-MELKADIDA", "ET-SO-DOLLO", "ET-SO", "ET"]
    # Protection concerns are not the tracing officer's to see.
    tracer = make.user("tracing_officer")
    assert "protection_concerns" not in ops.readable_fields(tracer, "case")
    assert "name_first" in ops.readable_fields(tracer, "case")
    assert "tracing_actions" in ops.writable_fields(tracer, "case")
    assert ops.readable_fields(make.user("administrator"), "case") == set()


def test_load_reports_errors_by_place_in_the_file(app):
    broken = sample_configuration()
    broken["forms"][0]["sections"][0]["fields"][2]["type"] = "number"
    broken["forms"][0]["sections"][1]["fields"].append({"key": "age", "type": "text", "labels": t("Age again")})
    broken["lookups"][0]["values"].append({"code": "red", "labels": t("Red again")})
    with pytest.raises(ops.FormValidationError) as caught:
        ops.load_configuration(broken)
    assert caught.value.errors == {"forms.0.sections.0.fields.2.type": ["Choose a field type."]}
    broken["forms"][0]["sections"][0]["fields"][2]["type"] = "integer"
    with pytest.raises(ops.FormValidationError) as caught:
        ops.load_configuration(broken)
    assert caught.value.errors == {
        "lookups.0.values": ["Each value needs its own code."],
        "forms.0.sections.1.fields.1.key": ["This key is already used at forms.0.sections.0.fields.2."]}
    for bad, key in (([], "_record"), ({"format": "other", "version": 1}, "format"),
                     ({"format": "cpims-forms", "version": 2}, "version"),
                     ({"format": "cpims-forms", "version": 1, "forms": [{"record_type": "case", "x": 1}]},
                      "forms.0.x")):
        with pytest.raises(ops.FormValidationError) as caught:
            ops.load_configuration(bad)
        assert key in caught.value.errors
    assert not ops.has_configuration()  # all or nothing


def test_load_applies_changes_with_the_same_checks(app):
    ops.load_configuration(sample_configuration())
    changed = sample_configuration()
    main = changed["forms"][0]["sections"][0]
    main["fields"] = [f for f in main["fields"] if f["key"] != "story"]
    main["fields"][0]["labels"]["fr"] = "Petit nom"
    report = ops.load_configuration(changed)
    assert report["fields"] == 2  # nickname relabelled, story removed
    definition = ops.get_definition("trace")
    assert definition.field("story").is_removed and definition.field("nickname").label("fr") == "Petit nom"
    exported = ops.export_configuration()
    assert exported["forms"][0]["sections"][0]["removed_fields"][0]["key"] == "story"

    stored = {("trace", "age"): [12]}
    provider = lambda record_type, path: stored.get((record_type, path), [])  # noqa: E731
    ops.register_stored_values_provider(provider)
    try:
        breaking = copy.deepcopy(exported)
        age = next(f for f in breaking["forms"][0]["sections"][0]["fields"] if f["key"] == "age")
        age.update({"type": "date"})
        age.pop("min_value"), age.pop("max_value"), age.pop("matching_tag")
        with pytest.raises(ops.FormValidationError) as caught:
            ops.load_configuration(breaking)
        assert list(caught.value.errors) == ["forms.0.sections.0.fields.1.type"]
    finally:
        ops.unregister_stored_values_provider(provider)
    assert ops.get_definition("trace").field("age").type == "integer"


# --- the command line ---------------------------------------------------------------------------

def test_cli_export_and_load_round_trip(app, default_forms, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["forms", "export"])
    assert result.exit_code == 0, result.output
    # Byte for byte, on SQLite and on PostgreSQL (whose JSONB reorders keys).
    assert result.stdout == ops.DEFAULT_CONFIGURATION.read_text(encoding="utf-8")
    path = tmp_path / "config.json"
    result = runner.invoke(args=["forms", "export", "--output", str(path), "--with-locations"])
    assert result.exit_code == 0 and len(json.loads(path.read_text())["locations"]) == 24
    result = runner.invoke(args=["forms", "load", str(path)])
    assert result.exit_code == 0, result.output
    assert "0 lookup(s), 0 new section(s), 0 field(s) created or changed" in result.output


def test_cli_load_explains_a_bad_file(app, tmp_path):
    runner = app.test_cli_runner()
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"format": "cpims-forms",\n "version": 1,\n', encoding="utf-8")
    result = runner.invoke(args=["forms", "load", str(not_json)])
    assert result.exit_code == 1
    assert "nothing changed" in result.output and "line 3, column 1" in result.output
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"format": "cpims-forms", "version": 1, "forms": [
        {"record_type": "case", "sections": [{"key": "s", "labels": {"en": "S"},
                                              "fields": [{"key": "Bad Key", "type": "text", "labels": {}}]}]}]}))
    result = runner.invoke(args=["forms", "load", str(invalid)])
    assert result.exit_code == 1
    assert "forms.0.sections.0.fields.0.key: Use lower-case letters" in result.output
    assert "forms.0.sections.0.fields.0.labels: Give at least the English text." in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(args=["forms", "load", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "no such file" in result.output
    assert not ops.has_configuration()


def test_cli_locations_import(app, tmp_path):
    runner = app.test_cli_runner()
    good = tmp_path / "places.csv"
    good.write_text(ops.DEMO_LOCATIONS.read_text(encoding="utf-8"), encoding="utf-8")
    result = runner.invoke(args=["locations", "import", str(good)])
    assert result.exit_code == 0 and "24 location(s) created" in result.output
    result = runner.invoke(args=["locations", "import", str(good)])
    assert "0 location(s) created, 0 updated, 24 unchanged" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("code,parent_code,type,name_en\nX,NOWHERE,camp,X\n", encoding="utf-8")
    result = runner.invoke(args=["locations", "import", str(bad)])
    assert result.exit_code == 1 and "line 2: Unknown parent location NOWHERE." in result.output
    result = runner.invoke(args=["locations", "export"])
    assert result.stdout.splitlines()[0] == ",".join(ops.LOCATION_CSV_COLUMNS)


def test_seed_demo_loads_the_default_configuration_once(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed", "demo"])
    assert result.exit_code == 0, result.output
    assert "Forms: default configuration loaded (10 lookups, 12 sections" in result.output
    assert "Locations: 24 demo locations imported." in result.output
    assert ops.export_configuration() == shipped()
    # An administrator's change survives the next seeding.
    ops.update_field(ops.get_field("case", "phone"), {"labels": t("Mobile phone")})
    result = runner.invoke(args=["seed", "demo"])
    assert "Forms: already configured, left as they are." in result.output
    assert ops.get_definition("case").field("phone").label("en") == "Mobile phone"
