"""Server-side validation of record data, built from the form definition: one test group per
field type, then the rules around them (unknown keys, permissions, conditions, required,
drafts, values kept), then the rest of the contract the records modules rely on."""
from __future__ import annotations

import uuid

import pytest
import time_machine

from forms import operations as ops
from forms_helpers import load_sample


@pytest.fixture
def sample(app):
    load_sample()
    return ops.get_definition("trace")


@pytest.fixture
def writer(make, sample):
    return make.user("caseworker")


def check(user, data, existing=None, draft=False):
    return ops.validate_record_data("trace", data, user, existing=existing, draft=draft)


def refused(user, data, existing=None, draft=False) -> dict:
    with pytest.raises(ops.FormValidationError) as caught:
        check(user, data, existing, draft)
    return caught.value.errors


BASE = {"nickname": "Ali"}


# --- each field type ------------------------------------------------------------------------

def test_text_is_trimmed_and_limited(writer):
    assert check(writer, {"nickname": "  Ali  "})["nickname"] == "Ali"
    assert "nickname" in refused(writer, {"nickname": "x" * 21})
    assert "nickname" in refused(writer, {"nickname": "two\nlines"})
    assert "nickname" in refused(writer, {"nickname": 12})
    assert "nickname" in refused(writer, {"nickname": "nul\x00byte"})


def test_textarea_keeps_line_breaks(writer):
    assert check(writer, {**BASE, "story": "one\r\ntwo"})["story"] == "one\ntwo"
    assert "story" in refused(writer, {**BASE, "story": ["not", "text"]})


def test_integer_range_and_strictness(writer):
    assert check(writer, {**BASE, "age": "12"})["age"] == 12
    assert check(writer, {**BASE, "age": 12.0})["age"] == 12
    errors = refused(writer, {**BASE, "age": 18})
    assert errors["age"] == ["Enter a number of at most 17."]
    assert refused(writer, {**BASE, "age": -1})["age"] == ["Enter a number of at least 0."]
    assert "age" in refused(writer, {**BASE, "age": "12.5"})
    assert "age" in refused(writer, {**BASE, "age": True})
    assert "age" in refused(writer, {**BASE, "age": "twelve"})


def test_decimal_is_exact_text(writer):
    assert check(writer, {**BASE, "height": "1,25"})["height"] == "1.25"
    assert check(writer, {**BASE, "height": 1.5})["height"] == "1.5"
    assert check(writer, {**BASE, "height": 2})["height"] == "2"
    assert "height" in refused(writer, {**BASE, "height": "0.4"})
    assert "height" in refused(writer, {**BASE, "height": float("nan")})
    assert "height" in refused(writer, {**BASE, "height": "1.2.3"})


def test_date_format_existence_and_future(writer):
    assert check(writer, {**BASE, "born": "2015-03-01"})["born"] == "2015-03-01"
    assert "born" in refused(writer, {**BASE, "born": "2015-02-30"})
    assert "born" in refused(writer, {**BASE, "born": "01/03/2015"})
    assert "born" in refused(writer, {**BASE, "born": "1850-01-01"})
    with time_machine.travel("2026-06-01 12:00:00+00:00", tick=False):
        assert refused(writer, {**BASE, "born": "2026-06-03"})["born"] == ["The date cannot be in the future."]
        # Tomorrow in UTC is already today east of Greenwich: not refused.
        assert check(writer, {**BASE, "born": "2026-06-02"})["born"] == "2026-06-02"
        # A field without the rule accepts future dates.
        assert check(writer, {**BASE, "met_on": "2030-01-01"})["met_on"] == "2030-01-01"


def test_date_approximate_flag(writer):
    data = check(writer, {**BASE, "born": "2015-01-01", "born_approximate": "true"})
    assert data["born_approximate"] is True
    # Without a date the flag means nothing and is dropped.
    data = check(writer, {**BASE, "born": "", "born_approximate": True}, existing={"born": "2015-01-01"})
    assert "born" not in data and "born_approximate" not in data
    # Only fields that allow it have the flag.
    assert refused(writer, {**BASE, "met_on_approximate": True})["met_on_approximate"] == ["Unknown field."]


def test_tick_box(writer):
    assert check(writer, {**BASE, "agrees": "yes"})["agrees"] is True
    assert check(writer, {**BASE, "agrees": False})["agrees"] is False
    assert "agrees" in refused(writer, {**BASE, "agrees": "maybe"})


def test_single_select_from_a_lookup(writer):
    assert check(writer, {**BASE, "colour": "red"})["colour"] == "red"
    assert refused(writer, {**BASE, "colour": "green"})["colour"] == ["Choose one of the options."]
    # A disabled value is refused for new data but kept by a record that holds it.
    assert refused(writer, {**BASE, "colour": "old"})["colour"] == ["This option is no longer available."]
    assert check(writer, {**BASE, "colour": "old"}, existing={"colour": "old"})["colour"] == "old"


def test_multi_select(writer):
    assert check(writer, {**BASE, "colours": ["red", "blue", "red"]})["colours"] == ["red", "blue"]
    assert "colours" in refused(writer, {**BASE, "colours": "red"})
    assert "colours" in refused(writer, {**BASE, "colours": ["red", "green"]})
    assert "colours" not in check(writer, {**BASE, "colours": []}, existing={"colours": ["red"]})


def test_radio_with_inline_options(writer):
    assert check(writer, {**BASE, "size": "s"})["size"] == "s"
    assert "size" in refused(writer, {**BASE, "size": "xl"})


def test_select_with_inline_options_and_radio_from_a_lookup(writer):
    ops.create_field("trace", "main", {"key": "shirt", "type": "select", "labels": {"en": "Shirt"}, "options": [
        {"code": "plain", "labels": {"en": "Plain"}}, {"code": "striped", "labels": {"en": "Striped"},
                                                       "is_disabled": True}]})
    ops.create_field("trace", "main", {"key": "eyes", "type": "radio", "labels": {"en": "Eyes"}, "lookup": "colour"})
    assert check(writer, {**BASE, "shirt": "plain", "eyes": "blue"}) == {**BASE, "shirt": "plain", "eyes": "blue"}
    errors = refused(writer, {**BASE, "shirt": "striped", "eyes": "green"})
    assert errors == {"shirt": ["This option is no longer available."], "eyes": ["Choose one of the options."]}


def test_location(writer):
    assert check(writer, {**BASE, "place": "XC-R-D-CAMP"})["place"] == "XC-R-D-CAMP"
    assert refused(writer, {**BASE, "place": "NOWHERE"})["place"] == ["Choose a location from the list."]
    assert "place" in refused(writer, {**BASE, "place": "XC-OLD"})
    assert check(writer, {**BASE, "place": "XC-OLD"}, existing={"place": "XC-OLD"})["place"] == "XC-OLD"


def test_phone_is_normalised(writer):
    assert check(writer, {**BASE, "phone": "+243 81-234 (5678)"})["phone"] == "+243812345678"
    assert "phone" in refused(writer, {**BASE, "phone": "call me"})
    assert "phone" in refused(writer, {**BASE, "phone": "123"})


def test_photo_and_document_hold_file_ids(writer):
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    assert check(writer, {**BASE, "photos": ids})["photos"] == ids
    assert "photos" in refused(writer, {**BASE, "photos": ids + [str(uuid.uuid4())]})  # at most 2
    assert "papers" in refused(writer, {**BASE, "papers": ["../../etc/passwd"]})


def test_separator_holds_no_value(writer):
    assert refused(writer, {**BASE, "heading": "x"})["heading"] == ["This field holds no value."]


def test_subform_rows_get_stable_ids_and_field_errors(writer):
    data = check(writer, {**BASE, "family": [{"member_name": "Amina", "member_age": "40"}]})
    row = data["family"][0]
    assert uuid.UUID(row["_id"]) and row["member_age"] == 40
    again = check(writer, {"family": [{"_id": row["_id"], "member_name": "Amina A."}]}, existing=data)
    assert again["family"][0]["_id"] == row["_id"]
    assert again["family"][0]["member_age"] == 40  # not sent: kept from the stored row

    errors = refused(writer, {**BASE, "family": [{"member_name": "A", "member_age": 200}, {"member_age": 3},
                                                  "not a row"]})
    assert errors["family.0.member_age"] == ["Enter a number of at most 120."]
    assert errors["family.1.member_name"] == ["This field is required."]
    assert "family.2" in errors
    assert refused(writer, {**BASE, "family": [{"member_name": "B", "nope": 1}]})["family.0.nope"] == [
        "Unknown field."]
    assert "family" in refused(writer, {**BASE, "family": [{"member_name": str(i)} for i in range(4)]})
    assert "family" in refused(writer, {**BASE, "family": {"member_name": "x"}})
    # A blank new row (the one every form offers) is left out.
    assert check(writer, {**BASE, "family": [{"member_name": "", "member_alive": False}]}).get("family") is None


def test_subform_condition_inside_a_row(writer):
    data = check(writer, {**BASE, "family": [{"member_name": "A", "member_alive": False, "member_place": "XC"}]})
    assert "member_place" not in data["family"][0]  # hidden by its condition: ignored
    data = check(writer, {**BASE, "family": [{"member_name": "A", "member_alive": True, "member_place": "XC"}]})
    assert data["family"][0]["member_place"] == "XC"


# --- rules around the values -----------------------------------------------------------------------

def test_unknown_keys_and_non_objects_are_refused(writer):
    assert refused(writer, {**BASE, "owner_id": 1})["owner_id"] == ["Unknown field."]
    assert "_record" in refused(writer, ["not", "an", "object"])


def test_fields_the_user_may_not_write_are_refused(make, sample):
    reader = make.user("tracing_officer")  # may read "main", nothing else
    assert refused(reader, {"nickname": "x"})["nickname"] == ["You may not change this field."]
    caseworker = make.user("caseworker")
    assert refused(caseworker, {**BASE, "secret_note": "x"})["secret_note"] == ["You may not change this field."]
    admin = make.user("administrator")  # designs forms, sees no record data
    assert "nickname" in refused(admin, {"nickname": "x"})


def test_values_the_user_cannot_see_are_kept(make, sample):
    caseworker = make.user("caseworker")
    stored = {"nickname": "Ali", "secret_note": "only supervisors", "gone": "kept"}
    data = check(caseworker, {"age": 5}, existing=stored)
    assert data == {"nickname": "Ali", "secret_note": "only supervisors", "gone": "kept", "age": 5}


def test_hidden_and_removed_fields_keep_their_values(writer):
    row = ops.get_field("trace", "story")
    ops.update_field(row, {"is_hidden": True})
    ops.remove_field(ops.get_field("trace", "phone"))
    stored = {"nickname": "Ali", "story": "long ago", "phone": "+1234567"}
    assert check(writer, {"nickname": "Ali B"}, existing=stored) == {**stored, "nickname": "Ali B"}
    assert refused(writer, {"story": "new"}, existing=stored)["story"] == [
        "This field is hidden and cannot be changed."]
    assert refused(writer, {"phone": "+7654321"}, existing=stored)["phone"] == ["This field is no longer in the form."]


def test_condition_hidden_values_are_ignored_and_rechecked(writer):
    data = check(writer, {**BASE, "size": "s", "size_notes": "sent anyway"})
    assert "size_notes" not in data
    data = check(writer, {**BASE, "size": "l", "size_notes": "big"})
    assert data["size_notes"] == "big"
    # An invalid value in a hidden field does not block the save either.
    assert "size_notes" not in check(writer, {**BASE, "size": "s", "size_notes": "x" * 999})


def test_required_fields_and_drafts(make, writer):
    assert refused(writer, {"age": 4})["nickname"] == ["This field is required."]
    # The sample form does not allow drafts: asking for one changes nothing.
    assert "nickname" in refused(writer, {"age": 4}, draft=True)
    ops.update_form("trace", {"is_draft_allowed": True})
    assert check(writer, {"age": 4}, draft=True) == {"age": 4}
    # Required fields of sections the user cannot write are not theirs to fill.
    supervisor_only = make.user("tracing_officer")
    assert "secret_note" not in ops.writable_fields(supervisor_only, "trace")


def test_clearing_a_value(writer):
    data = check(writer, {"age": "", "nickname": "Ali"}, existing={"nickname": "Ali", "age": 5})
    assert data == {"nickname": "Ali"}


def test_messages_are_in_the_users_language(make, sample):
    french = make.user("caseworker", locale="fr")
    arabic = make.user("caseworker", locale="ar")
    errors = refused(french, {"nickname": "Ali", "age": 40, "colour": "green"})
    assert errors["age"] == ["Saisissez un nombre inférieur ou égal à 17."]
    assert errors["colour"] == ["Choisissez l’une des options."]
    assert refused(arabic, {"age": 3})["nickname"] == ["هذا الحقل مطلوب."]


# --- the rest of the contract ---------------------------------------------------------------------

def test_definition_order_and_cache(sample):
    definition = ops.get_definition("trace")
    assert definition is sample  # cached for the request
    assert [s.key for s in definition.sections] == ["main", "secret"]
    keys = [f.key for f in definition.sections[0].fields]
    assert keys[:3] == ["nickname", "story", "age"] and keys[-3:] == ["family", "photos", "papers"]
    assert [f.key for f in definition.field("family").subfields] == [
        "member_name", "member_age", "member_alive", "member_place"]
    ops.move_field(ops.get_field("trace", "age"), -2)
    moved = ops.get_definition("trace")
    assert moved is not definition and moved.version > definition.version
    assert [f.key for f in moved.sections[0].fields][:3] == ["age", "nickname", "story"]


def test_readable_and_writable_fields_follow_role_permissions(make, sample):
    caseworker, tracer, supervisor = make.user("caseworker"), make.user("tracing_officer"), make.user("supervisor")
    assert {"nickname", "born", "born_approximate", "family"} <= ops.writable_fields(caseworker, "trace")
    assert "heading" not in ops.readable_fields(caseworker, "trace")
    assert "secret_note" not in ops.readable_fields(caseworker, "trace")
    assert ops.writable_fields(tracer, "trace") == set()
    assert "nickname" in ops.readable_fields(tracer, "trace")
    assert "secret_note" in ops.writable_fields(supervisor, "trace")
    assert ops.readable_fields(make.user("administrator"), "trace") == set()
    ops.remove_field(ops.get_field("trace", "story"))
    assert "story" in ops.readable_fields(caseworker, "trace")  # its stored values stay readable
    assert "story" not in ops.writable_fields(caseworker, "trace")


def test_fields_with_matching_tag(sample):
    assert ops.fields_with_matching_tag("trace", "nickname") == ["nickname"]
    assert ops.fields_with_matching_tag("trace", "location") == ["place"]
    assert ops.fields_with_matching_tag("trace", "religion") == []


def test_display_values(sample):
    assert ops.display_value("trace", "colour", "red", "fr") == "Rouge"
    assert ops.display_value("trace", "colour", "red", "ar") == "أحمر"
    assert ops.display_value("trace", "colours", ["red", "blue"], "en") == "Red, Blue"
    assert ops.display_value("trace", "colour", "vanished", "en") == "vanished"
    assert ops.display_value("trace", "agrees", True, "fr") == "Oui"
    assert ops.display_value("trace", "agrees", False, "ar") == "لا"
    assert ops.display_value("trace", "place", "XC-R-D-CAMP", "fr") == "Camp Un"
    assert ops.display_value("trace", "born", "2015-03-01", "en") == "Mar 1, 2015"
    assert ops.display_value("trace", "family.member_age", 40, "en") == "40"
    assert ops.display_value("trace", "born_approximate", True, "en") == "Yes"
    assert ops.display_value("trace", "size", "s", "fr") == "Petit"
    assert ops.display_value("trace", "nickname", None, "en") == ""


def test_location_ancestors(sample):
    assert ops.location_ancestors("XC-R-D-CAMP") == ["XC-R-D-CAMP", "XC-R-D", "XC-R", "XC"]
    assert ops.location_ancestors("XC") == ["XC"]
    assert ops.location_ancestors("NOWHERE") == []
    assert ops.location_path("XC-R-D-CAMP", "fr") == "Xpays › Région R › District D › Camp Un"


def test_parse_form_data_reads_what_render_form_writes(writer, sample):
    from werkzeug.datastructures import MultiDict
    row_id = str(uuid.uuid4())
    form = MultiDict([
        ("nickname", "Ali"), ("age", "7"), ("born", "2018-01-01"), ("born_approximate", "true"),
        ("colours", "red"), ("colours", "blue"), ("secret_note", "smuggled"),
        ("family.0._id", row_id), ("family.0.member_name", "Mother"), ("family.0.member_alive", "true"),
        ("family.1.member_name", "Gone"), ("family.1._delete", "1"),
        ("family.2.member_name", ""),  # the blank row
    ])
    values = ops.parse_form_data("trace", form, writer)
    assert values["agrees"] is False  # an unticked box
    assert values["colours"] == ["red", "blue"]
    assert "secret_note" not in values  # not the user's to write
    assert values["family"] == [{"_id": row_id, "member_name": "Mother", "member_age": "", "member_alive": True,
                                 "member_place": ""}]
    data = check(writer, values)
    assert data["family"][0]["_id"] == row_id and data["born_approximate"] is True
