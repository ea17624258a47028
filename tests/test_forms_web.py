"""The form engine through the browser-facing pages and the JSON API (Flask test client)."""
from __future__ import annotations

import io
import json
import re

import pytest

from forms import operations as ops
from forms_helpers import Browser, clear_request_globals


@pytest.fixture
def default_forms(app):
    ops.load_default_configuration()
    ops.import_locations_csv(ops.DEMO_LOCATIONS.read_text(encoding="utf-8"))


@pytest.fixture
def browser(login_as):
    def _open(role, **kwargs):
        clear_request_globals()
        web, user = login_as(role, **kwargs)
        return Browser(web), user
    return _open


@pytest.fixture
def stored():
    values: dict = {}

    def provider(record_type, path):
        return list(values.get((record_type, path), []))

    ops.register_stored_values_provider(provider)
    yield values
    ops.unregister_stored_values_provider(provider)


def text(response) -> str:
    return response.get_data(as_text=True)


def assert_no_inline_code(html: str) -> None:
    """CSP forbids inline scripts, handlers and style attributes."""
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert " style=" not in html


# --- the administrator's journey, then the caseworker's ------------------------------------------

def test_admin_adds_a_translated_tagged_lookup_field_and_a_caseworker_uses_it(default_forms, browser):
    admin, _ = browser("administrator")
    response = admin.form("/admin/lookups", {
        "code": "script", "label_en": "Script", "label_fr": "Écriture", "label_ar": "الكتابة",
        "values": "arabic | Arabic script | Écriture arabe | الحرف العربي\nlatin | Latin script | Écriture latine"})
    assert response.status_code == 302, text(response)
    page = admin.get("/admin/forms/case/sections/basic_identity/fields/new?type=select")
    assert page.status_code == 200 and 'name="lookup"' in text(page)
    response = admin.form("/admin/forms/case/sections/basic_identity/fields/new?type=select", {
        "key": "name_script", "label_en": "Script of the name", "label_fr": "Écriture du nom",
        "label_ar": "كتابة الاسم", "help_en": "As written on documents", "option_source": "lookup",
        "lookup": "script", "matching_tag": "other_name", "is_required": "1"})
    assert response.status_code == 302, text(response)
    overview = admin.get("/admin/forms/case")
    assert "name_script" in text(overview) and "other_name" in text(overview)
    assert "name_script" in ops.fields_with_matching_tag("case", "other_name")
    preview = admin.get("/forms/case/preview")
    assert preview.status_code == 200 and "Script of the name" in text(preview)

    caseworker, _ = browser("caseworker", locale="fr")
    page = caseworker.get("/forms/case/preview")
    assert page.status_code == 200
    html = text(page)
    assert "Écriture du nom" in html and "Écriture arabe" in html
    assert_no_inline_code(html)
    response = caseworker.form("/forms/case/preview", {"name_first": "Xasan", "sex": "male",
                                                       "name_script": "cyrillic", "age": "abc"})
    assert response.status_code == 422
    html = text(response)
    assert "Choisissez l’une des options." in html and "Saisissez un nombre entier." in html
    assert 'aria-invalid="true"' in html and "error-summary" in html
    response = caseworker.form("/forms/case/preview", {"name_first": "Xasan", "sex": "male",
                                                       "name_script": "arabic"})
    assert response.status_code == 200 and "Toutes les valeurs sont valides" in text(response)

    # The same through the API.
    definition = caseworker.get("/api/forms/case").get_json()
    fields = {f["key"]: f for s in definition["sections"] for f in s["fields"]}
    assert fields["name_script"]["labels"]["ar"] == "كتابة الاسم" and fields["name_script"]["writable"]
    response = caseworker.api("post", "/api/forms/case/validate",
                              {"data": {"name_first": "Xasan", "sex": "male", "name_script": "cyrillic"}})
    assert response.status_code == 422
    assert response.get_json() == {"errors": {"name_script": ["Choisissez l’une des options."]}}
    response = caseworker.api("post", "/api/forms/case/validate",
                              {"data": {"name_first": "Xasan", "sex": "male", "name_script": "arabic"}})
    assert response.status_code == 200 and response.get_json()["data"]["name_script"] == "arabic"


def test_the_default_forms_render_in_three_languages(default_forms, browser):
    for locale, direction, label in (("en", "ltr", "Given name"), ("fr", "ltr", "Prénom"),
                                     ("ar", "rtl", "الاسم الأول")):
        for record_type in ("case", "tracing_request", "trace"):
            web, _ = browser("supervisor", locale=locale)
            page = web.get(f"/forms/{record_type}/preview")
            assert page.status_code == 200, (locale, record_type)
            html = text(page)
            assert f'<html lang="{locale}" dir="{direction}">' in html
            assert "js/forms.js" in html
            assert_no_inline_code(html)
        web, _ = browser("supervisor", locale=locale)
        assert label in text(web.get("/forms/case/preview"))


def test_subforms_tabs_and_conditions_are_in_the_markup(default_forms, browser):
    web, _ = browser("caseworker")
    html = text(web.get("/forms/case/preview"))
    assert 'data-form-tabs' in html and 'href="#section-family"' in html
    assert 'name="family_details.0.relation"' in html  # the blank entry, usable without JavaScript
    assert '<template data-row-template>' in html and 'name="family_details.__INDEX__.relation_name"' in html
    assert "data-condition='{\"field\": \"relation_is_alive\", \"operator\": \"not_equals\", \"value\": \"no\"}'" in html
    assert 'name="date_of_birth_approximate"' in html
    response = web.form("/forms/case/preview", {
        "name_first": "Amina", "sex": "female",
        "family_details.0.relation": "mother", "family_details.0.relation_name": "Hodan",
        "family_details.0.relation_age": "300",
        "family_details.1.relation": "father", "family_details.1.relation_name": "",
    })
    assert response.status_code == 422
    html = text(response)
    assert 'href="#f-family_details-0-relation_age"' in html and 'id="f-family_details-0-relation_age"' in html
    assert 'href="#f-family_details-1-relation_name"' in html
    response = web.form("/forms/case/preview", {
        "name_first": "Amina", "sex": "female", "consent_for_tracing": "true", "consent_given_by": "child",
        "family_details.0.relation": "mother", "family_details.0.relation_name": "Hodan",
        "family_details.0.relation_is_alive": "no", "family_details.0.relation_location": "ET",
    })
    assert response.status_code == 200, text(response)
    html = text(response)
    assert "Hodan" in html and "Ethiopia" not in html.split("record-view")[1].split("</table>")[0]


def test_sections_a_role_may_not_read_are_absent_everywhere(default_forms, browser):
    tracer, _ = browser("tracing_officer")
    html = text(tracer.get("/forms/case/preview"))
    assert "Protection concerns" not in html and "protection_concerns" not in html
    assert "You can read this section but not change it." in html  # basic identity: read only
    body = json.dumps(tracer.get("/api/forms/case").get_json())
    assert "protection_concerns" not in body and "risk_level" not in body
    response = tracer.api("post", "/api/forms/case/validate", {"data": {"protection_concerns": ["orphan"]}})
    assert response.get_json()["errors"]["protection_concerns"] == ["You may not change this field."]


def test_designers_preview_as_a_role(default_forms, browser):
    admin, _ = browser("administrator")
    whole = text(admin.get("/forms/case/preview"))
    assert "Protection concerns" in whole
    as_tracer = text(admin.get("/forms/case/preview?role=tracing_officer"))
    assert "Protection concerns" not in as_tracer and "Given name" in as_tracer
    assert admin.get("/forms/case/preview?role=nobody").status_code == 404
    assert admin.get("/forms/nothing/preview").status_code == 404


# --- permissions and CSRF ----------------------------------------------------------------------------

def test_administration_needs_its_permissions(default_forms, browser, client):
    caseworker, _ = browser("caseworker")
    for path in ("/admin/forms", "/admin/forms/case", "/admin/lookups", "/admin/locations",
                 "/admin/forms/export", "/admin/forms/case/fields/name_first"):
        assert caseworker.get(path).status_code == 403, path
    assert caseworker.form("/admin/forms/case/fields/name_first/remove").status_code == 403
    response = caseworker.api("post", "/api/forms/case/sections", {"key": "x", "labels": {"en": "X"}})
    assert response.status_code == 403
    assert caseworker.api("post", "/api/lookups", {"code": "x", "labels": {"en": "X"}}).status_code == 403
    clear_request_globals()
    assert client.get("/api/forms/case").status_code == 401
    assert client.get("/admin/forms").status_code == 302  # to the login page


def test_state_changes_need_the_csrf_token(default_forms, browser):
    admin, _ = browser("administrator")
    response = admin.post("/admin/forms/case/fields/phone/remove")
    assert response.status_code == 400
    assert not ops.get_definition("case").field("phone").is_removed
    clear_request_globals()
    response = admin.web.client.post("/api/lookups", json={"code": "x", "labels": {"en": "X"}})
    assert response.status_code == 400


# --- administration pages ----------------------------------------------------------------------------

def test_admin_pages_render(default_forms, browser):
    admin, _ = browser("administrator", locale="ar")
    for path in ("/admin/forms", "/admin/forms/case", "/admin/forms/tracing_request", "/admin/forms/case/sections/new",
                 "/admin/forms/case/sections/family", "/admin/forms/case/fields/family_details",
                 "/admin/forms/case/fields/relation", "/admin/lookups", "/admin/lookups/sex",
                 "/admin/locations", "/admin/locations?q=camp", "/admin/locations/new", "/admin/locations/ET"):
        response = admin.get(path)
        assert response.status_code == 200, path
        assert 'dir="rtl"' in text(response)
        assert_no_inline_code(text(response))
    for kind in ("text", "textarea", "integer", "decimal", "date", "tick_box", "select", "multi_select", "radio",
                 "location", "phone", "subform", "photo", "document", "separator"):
        response = admin.get(f"/admin/forms/case/sections/reunification/fields/new?type={kind}")
        assert response.status_code == 200, kind
    assert admin.get("/admin/forms/case/sections/nope").status_code == 404
    assert admin.get("/admin/forms/case/fields/nope").status_code == 404
    assert admin.get("/admin/lookups/nope").status_code == 404


def test_admin_edits_sections_fields_and_order(default_forms, browser):
    admin, _ = browser("administrator")
    response = admin.form("/admin/forms/case/sections/new", {
        "key": "health", "label_en": "Health", "label_fr": "Santé", "label_ar": "الصحة",
        "access_caseworker": "write", "access_supervisor": "read"})
    assert response.status_code == 302, text(response)
    assert ops.section_access_by_role("case", "health") == {"caseworker": "write", "supervisor": "read"}
    response = admin.form("/admin/forms/case/sections/new", {"key": "Bad key", "label_en": ""})
    assert response.status_code == 422 and "Use lower-case letters" in text(response)
    response = admin.form("/admin/forms/case/sections/health/fields/new?type=radio", {
        "key": "vaccinated", "label_en": "Vaccinated", "option_source": "inline",
        "options": "yes | Yes | Oui | نعم\nno | No | Non | لا"})
    assert response.status_code == 302, text(response)
    response = admin.form("/admin/forms/case/sections/health/fields/new?type=text", {
        "key": "vaccine_card", "label_en": "Card number", "condition_field": "vaccinated",
        "condition_operator": "equals", "condition_value": "maybe"})
    assert response.status_code == 422 and "maybe is not an option of vaccinated." in text(response)
    response = admin.form("/admin/forms/case/sections/health/fields/new?type=text", {
        "key": "vaccine_card", "label_en": "Card number", "condition_field": "vaccinated",
        "condition_operator": "equals", "condition_value": "yes"})
    assert response.status_code == 302
    assert ops.get_definition("case").field("vaccine_card").condition == {
        "field": "vaccinated", "operator": "equals", "value": "yes"}
    response = admin.form("/admin/forms/case/fields/vaccine_card/move", {"direction": "up"})
    assert response.status_code == 302
    assert [f.key for f in ops.get_definition("case").sections[-1].fields] == ["vaccine_card", "vaccinated"]
    assert admin.form("/admin/forms/case/sections/health/move", {"direction": "up"}).status_code == 302
    assert [s.key for s in ops.get_definition("case").sections][-2] == "health"
    response = admin.form("/admin/forms/case/fields/vaccinated/remove")
    assert response.status_code == 302  # refused: vaccine_card depends on it
    assert not ops.get_definition("case").field("vaccinated").is_removed
    response = admin.form("/admin/forms/case/fields/vaccine_card", {
        "type": "text", "label_en": "Card number", "label_ar": "رقم البطاقة", "section": "health"})
    assert response.status_code == 302, text(response)
    assert ops.get_definition("case").field("vaccine_card").condition is None
    assert admin.form("/admin/forms/case/fields/vaccinated/remove").status_code == 302
    assert ops.get_definition("case").field("vaccinated").is_removed
    assert admin.form("/admin/forms/case/fields/vaccinated/restore").status_code == 302
    assert admin.form("/admin/forms/case/settings", {"label_en": "Child case", "label_fr": "Dossier",
                                                      "label_ar": "الحالة"}).status_code == 302
    definition = ops.get_definition("case")
    assert definition.label("en") == "Child case" and not definition.is_draft_allowed


def test_type_change_refused_on_the_page_when_stored_data_would_break(default_forms, browser, stored):
    admin, _ = browser("administrator")
    stored[("case", "ethnicity")] = ["Rahanweyn", "Darod"]
    response = admin.form("/admin/forms/case/fields/ethnicity", {"type": "integer", "label_en": "Ethnicity"})
    assert response.status_code == 422
    assert "Refused: 2 stored value(s) would no longer be valid" in text(response)
    assert ops.get_definition("case").field("ethnicity").type == "text"


def test_lookup_pages_disable_in_use_values_and_refuse_deleting_them(default_forms, browser, stored):
    admin, _ = browser("administrator")
    stored[("case", "religion")] = ["none"]
    response = admin.form("/admin/lookups/religion/values/none", {"action": "delete"})
    assert response.status_code == 422 and "disable it instead" in text(response)
    response = admin.form("/admin/lookups/religion/values/none", {"action": "disable"})
    assert response.status_code == 302
    assert ops.get_definition("case").field("religion").option("none").is_disabled
    response = admin.form("/admin/lookups/religion/values", {"code": "bahai", "label_en": "Baháʼí"})
    assert response.status_code == 302
    assert admin.form("/admin/lookups/religion/values/bahai", {"action": "up"}).status_code == 302
    assert admin.form("/admin/lookups/religion/values/bahai", {"action": "delete"}).status_code == 302
    response = admin.form("/admin/lookups/religion/values", {"code": "islam", "label_en": "Again"})
    assert response.status_code == 422 and "already used in this lookup" in text(response)
    response = admin.form("/admin/lookups/sex/delete")
    assert response.status_code == 422 and "cannot be deleted" in text(response)


def test_location_pages_import_and_edit(default_forms, browser):
    admin, _ = browser("administrator")
    csv_text = "code,parent_code,type,name_en,name_fr,name_ar\nET-SO-DOLLO-BOKOL,ET-SO-DOLLO,camp,Bokolmanyo,,\n"
    response = admin.form("/admin/locations/import", {"file": (io.BytesIO(csv_text.encode()), "camps.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 302
    assert ops.location_ancestors("ET-SO-DOLLO-BOKOL")[-1] == "ET"
    bad = "code,parent_code,type,name_en\nZZ,NOWHERE,camp,Lost\n"
    response = admin.form("/admin/locations/import", {"file": (io.BytesIO(bad.encode()), "bad.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 422 and "line 2" in text(response) and "NOWHERE" in text(response)
    response = admin.form("/admin/locations/ET-SO-DOLLO-BOKOL", {"parent": "ET-SO-DOLLO", "type": "camp",
                                                                  "name_en": "Bokolmanyo camp", "is_disabled": "1"})
    assert response.status_code == 302
    assert ops.get_location("ET-SO-DOLLO-BOKOL").is_disabled
    response = admin.form("/admin/locations/ET", {"parent": "ET-SO-DOLLO", "name_en": "Ethiopia"})
    assert response.status_code == 422 and "inside itself" in text(response)
    assert "Bokolmanyo camp" in text(admin.get("/admin/locations?q=bokol"))


def test_export_and_import_from_the_pages(default_forms, browser):
    admin, _ = browser("administrator")
    response = admin.get("/admin/forms/export")
    assert response.status_code == 200 and response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(text(response))
    assert data["format"] == "cpims-forms"
    data["forms"][0]["sections"][0]["fields"][0]["labels"]["fr"] = "Prénom usuel"
    upload = io.BytesIO(json.dumps(data, ensure_ascii=False).encode())
    response = admin.form("/admin/forms/import", {"file": (upload, "config.json")}, content_type="multipart/form-data")
    assert response.status_code == 302
    assert ops.get_definition("case").field("name_first").label("fr") == "Prénom usuel"
    response = admin.form("/admin/forms/import", {"file": (io.BytesIO(b"{oops"), "config.json")},
                          content_type="multipart/form-data")
    assert response.status_code == 422 and "This is not valid JSON" in text(response)


# --- JSON API administration ---------------------------------------------------------------------------

def test_api_administration(default_forms, browser, stored):
    admin, _ = browser("administrator")
    response = admin.api("post", "/api/forms/case/sections/basic_identity/fields", {
        "key": "name_arabic", "type": "text", "labels": {"en": "Name in Arabic script", "ar": "الاسم بالعربية"},
        "matching_tag": "other_name"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["matching_tag"] == "other_name"
    response = admin.api("patch", "/api/forms/case/fields/name_arabic", {"labels": {"en": "Arabic name"}, "move": -1})
    assert response.status_code == 200
    stored[("case", "name_arabic")] = ["علي"]
    response = admin.api("patch", "/api/forms/case/fields/name_arabic", {"type": "date"})
    assert response.status_code == 422 and "type" in response.get_json()["errors"]
    response = admin.api("post", "/api/forms/case/sections/basic_identity/fields", {"key": "x", "type": "select",
                                                                                   "labels": {"en": "X"}})
    assert response.status_code == 422 and "lookup" in response.get_json()["errors"]
    response = admin.api("post", "/api/forms/case/sections/basic_identity/fields", ["not", "an", "object"])
    assert response.status_code == 422 and response.get_json()["errors"]["_record"]
    assert admin.api("delete", "/api/forms/case/fields/name_arabic").status_code == 200
    assert admin.api("get", "/api/forms/case/fields/name_arabic").get_json()["is_removed"] is True
    assert admin.api("post", "/api/forms/case/fields/name_arabic/restore").status_code == 200
    response = admin.api("post", "/api/lookups", {"code": "shelter", "labels": {"en": "Shelter"},
                                                   "values": [{"code": "tent", "labels": {"en": "Tent"}}]})
    assert response.status_code == 201
    response = admin.api("patch", "/api/lookups/shelter/values/tent", {"is_disabled": True})
    assert response.get_json()["values"][0]["is_disabled"] is True
    assert admin.api("delete", "/api/lookups/shelter/values/tent").status_code == 200
    assert admin.api("delete", "/api/lookups/shelter").status_code == 200
    response = admin.api("post", "/api/locations", {"code": "ET-SO-DOLLO-KOBE-B", "parent": "ET-SO-DOLLO-KOBE",
                                                     "names": {"en": "Kobe block B"}, "type": "block"})
    assert response.status_code == 201 and response.get_json()["ancestors"][-1] == "ET"
    exported = admin.api("get", "/api/forms/export").get_json()
    assert any(f["key"] == "name_arabic" for f in exported["forms"][0]["sections"][0]["fields"])
    report = admin.api("post", "/api/forms/import", exported).get_json()
    assert report["fields"] == 0


def test_api_reads_lookups_and_locations(default_forms, browser):
    web, _ = browser("caseworker")
    lookups = web.get("/api/lookups").get_json()["lookups"]
    assert {"sex", "relationship", "language"} <= {lookup["code"] for lookup in lookups}
    assert web.get("/api/lookups/sex").get_json()["values"][1]["labels"]["fr"] == "Féminin"
    top = web.get("/api/locations?parent=").get_json()["locations"]
    assert {"ET", "SO", "JO", "SS", "CD"} == {location["code"] for location in top}
    found = web.get("/api/locations?q=zaatari").get_json()["locations"]
    assert found[0]["code"] == "JO-MA-ZAATARI" and found[0]["ancestors"] == ["JO-MA", "JO"]
    assert web.get("/api/locations/NOWHERE").status_code == 404
    assert web.get("/api/forms").get_json()["forms"][0]["record_type"] == "case"
