"""Cases through the pages: register (search first), view, edit, conflicts, history,
notes, flags, files, close and reopen, and the scope of every route (S1-S3, S21, R1)."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.records.models import RecordChange, RecordNote
from cases.models import Case
from cases.operations import create_case

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


pytestmark = pytest.mark.usefixtures("default_forms")


CHILD = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9, "consent_for_tracing": True}


def register(web, data: dict | None = None):
    """Go through search-before-register and the registration form like a caseworker."""
    page = web.form("/cases/new", {"name": "Muhammad Hassan"}, token_from="/cases/new")
    assert page.status_code == 200
    form = {"step": "form", **{k: ("on" if v is True else str(v)) for k, v in (data or CHILD).items()}}
    return web.form("/cases/register", form, token_from="/cases/new")


def case_id_from(response) -> str:
    return re.search(r"/cases/([0-9a-f-]{36})", response.headers["Location"]).group(1)


def test_caseworker_registers_views_and_edits_a_child(login_as):
    web, user = login_as("caseworker")
    form_page = web.form("/cases/register", {"name": "Muhammad Hassan"}, token_from="/cases/new")
    assert "Someone else saved" not in form_page.get_data(as_text=True)
    response = register(web)
    assert response.status_code == 302
    case = db.session.get(Case, case_id_from(response))
    assert case.owner_id == user.id and case.agency_id == user.agency_id
    assert case.display_name == "Muhammad Hassan" and case.age == 9 and case.sex == "male"
    assert case.is_consent_for_tracing and len(case.short_id) == 7
    page = web.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Muhammad" in page and case.short_id in page
    response = web.form(f"/cases/{case.id}/edit", {"version": str(case.version), "name_first": "Muhammad",
                                                   "name_last": "Hassan", "sex": "male", "age": "10",
                                                   "consent_for_tracing": "on"}, token_from=f"/cases/{case.id}/edit")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).age == 10
    history = web.get(f"/cases/{case.id}/history").get_data(as_text=True)
    assert "Changed" in history and "10" in history
    actions = set(db.session.execute(select(AuditEntry.action).where(AuditEntry.resource_id == case.id)).scalars())
    assert {"case.create", "case.view", "case.update", "case.history_viewed"} <= actions


def test_invalid_values_are_refused_with_field_messages(login_as):
    web, _ = login_as("caseworker")
    response = register(web, {"name_first": "Amina", "sex": "dragon", "age": "-3"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Amina" in body  # the input is kept
    assert db.session.scalar(select(func.count(Case.id))) == 0


def test_search_before_register_finds_spelling_variants(login_as, make):
    web, user = login_as("caseworker")
    create_case(user, {"name_first": "Mohamed", "name_last": "Hasan", "sex": "male"})
    db.session.commit()
    page = web.form("/cases/new", {"name": "Muhammad Hassan"}, token_from="/cases/new").get_data(as_text=True)
    assert "Mohamed Hasan" in page and "look similar" in page


def test_list_search_keeps_names_out_of_urls(login_as):
    web, user = login_as("caseworker")
    create_case(user, {"name_first": "Xasan", "name_last": "Cabdi", "sex": "male"})
    create_case(user, {"name_first": "Fatima", "name_last": "Omar", "sex": "female"})
    db.session.commit()
    response = web.form("/cases", {"q": "Hassan Abdi"}, token_from="/cases")
    assert response.status_code == 302 and "Hassan" not in response.headers["Location"]
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "Xasan Cabdi" in page and "Fatima" not in page


def test_list_filters(login_as):
    web, user = login_as("caseworker")
    create_case(user, {"name_first": "Aisha", "sex": "female", "age": 5})
    create_case(user, {"name_first": "Ali", "sex": "male", "age": 12})
    db.session.commit()
    page = web.get("/cases?sex=female").get_data(as_text=True)
    assert "Aisha" in page and "Ali<" not in page
    page = web.get("/cases?age_min=10").get_data(as_text=True)
    assert "Ali" in page and "Aisha" not in page
    assert web.get("/cases?age_min=abc").status_code == 422


def test_other_agency_gets_404_everywhere_and_group_supervisor_sees(login_as, make):
    agency = make.agency()
    group = make.group(agency=agency)
    db.session.commit()
    owner_web, owner = login_as("caseworker", agency=agency, groups=[group])
    case = db.session.get(Case, case_id_from(register(owner_web)))
    stranger, _ = login_as("caseworker")
    same_agency_other_group, _ = login_as("caseworker", agency=agency)
    supervisor, _ = login_as("supervisor", agency=agency, groups=[group])
    paths = [f"/cases/{case.id}", f"/cases/{case.id}/edit", f"/cases/{case.id}/history"]
    for web in (stranger, same_agency_other_group):
        for path in paths:
            assert web.get(path).status_code == 404, path
        assert web.form(f"/cases/{case.id}/notes", {"body": "x"}, token_from="/cases").status_code == 404
        assert web.form(f"/cases/{case.id}/close", {"reason": "x"}, token_from="/cases").status_code == 404
        assert case.short_id not in web.get("/cases").get_data(as_text=True)
    for path in paths:
        assert supervisor.get(path).status_code == 200, path
    assert case.short_id in supervisor.get("/cases").get_data(as_text=True)
    denials = db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.resource_id == case.id, AuditEntry.outcome == "denied"))
    assert denials >= 10


def test_roles_without_case_permission_get_403(login_as, make):
    owner_web, owner = login_as("caseworker")
    case = db.session.get(Case, case_id_from(register(owner_web)))
    admin, _ = login_as("administrator")  # scope "all", but no case permission
    assert admin.get("/cases").status_code == 403
    assert admin.get(f"/cases/{case.id}").status_code == 403


def test_edit_conflict_keeps_both_values(app, login_as):
    web, user = login_as("caseworker")
    case = db.session.get(Case, case_id_from(register(web)))
    old_version = case.version
    other = login_as  # noqa: F841 (the second editor is the same caseworker in another browser)
    second, _ = web, user
    # First browser saves age 10.
    form = {"version": str(old_version), "name_first": "Muhammad", "name_last": "Hassan", "sex": "male",
            "consent_for_tracing": "on"}
    assert web.form(f"/cases/{case.id}/edit", {**form, "age": "10"}, token_from="/cases").status_code == 302
    # Second browser still holds the old version and saves age 11.
    response = second.form(f"/cases/{case.id}/edit", {**form, "age": "11"}, token_from="/cases")
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "Someone else saved this case" in body
    assert 'value="11"' in body  # their input is still in the form
    db.session.expire_all()
    assert db.session.get(Case, case.id).age == 10  # nothing overwritten
    new_version = re.search(r'name="version" value="(\d+)"', body).group(1)
    assert second.form(f"/cases/{case.id}/edit", {**form, "version": new_version, "age": "11"},
                       token_from="/cases").status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).age == 11


def test_notes_flags_close_and_reopen(login_as, make):
    agency = make.agency()
    group = make.group(agency=agency)
    db.session.commit()
    web, user = login_as("caseworker", agency=agency, groups=[group])
    case = db.session.get(Case, case_id_from(register(web)))
    assert web.form(f"/cases/{case.id}/notes", {"body": "Met the child at the clinic."},
                    token_from="/cases").status_code == 302
    assert web.form(f"/cases/{case.id}/flags", {"reason": "Possible duplicate"}, token_from="/cases").status_code == 302
    page = web.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Met the child at the clinic." in page and "Possible duplicate" in page
    flag_id = re.search(rf"/cases/{case.id}/flags/(\d+)/resolve", web.get(
        f"/cases/{case.id}").get_data(as_text=True))
    assert flag_id is None  # a caseworker cannot resolve flags
    supervisor, _ = login_as("supervisor", agency=agency, groups=[group])
    page = supervisor.get(f"/cases/{case.id}").get_data(as_text=True)
    flag_id = re.search(rf"/cases/{case.id}/flags/(\d+)/resolve", page).group(1)
    assert supervisor.form(f"/cases/{case.id}/flags/{flag_id}/resolve", {"resolution": "Checked, not a duplicate"},
                           token_from="/cases").status_code == 302
    assert web.form(f"/cases/{case.id}/close", {"reason": ""}, token_from="/cases").status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "open"  # no reason, no closing
    web.form(f"/cases/{case.id}/close", {"reason": "Reunified with mother"}, token_from="/cases")
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "closed"
    web.form(f"/cases/{case.id}/reopen", {"reason": "New protection concern"}, token_from="/cases")
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "open"
    actions = [r.action for r in db.session.execute(select(RecordChange).where(
        RecordChange.record_id == case.id).order_by(RecordChange.id)).scalars()]
    assert actions == ["create", "close", "reopen"]
    assert db.session.scalar(select(func.count(RecordNote.id)).where(RecordNote.record_id == case.id)) == 1


def test_photo_upload_is_checked_stored_and_served_in_scope_only(app, login_as):
    from forms.operations import fields_with_matching_tag, get_definition  # noqa: F401
    photo_fields = [f.key for f in get_definition("case").fields if f.type == "photo"]
    if not photo_fields:
        pytest.skip("the default case form has no photo field")
    key = photo_fields[0]
    web, user = login_as("caseworker")
    case = db.session.get(Case, case_id_from(register(web)))
    form = {"version": str(case.version), "name_first": "Muhammad", "name_last": "Hassan", "sex": "male",
            "age": "9", "consent_for_tracing": "on"}
    token = web.csrf_token("/cases")
    bad = web.client.post(f"/cases/{case.id}/edit", data={**form, "csrf_token": token,
                                                         key: (io.BytesIO(b"<html><script>"), "x.png")},
                          content_type="multipart/form-data")
    assert bad.status_code == 422 and "not accepted" in bad.get_data(as_text=True)
    ok = web.client.post(f"/cases/{case.id}/edit", data={**form, "csrf_token": token,
                                                        key: (io.BytesIO(PNG), "photo of ali.png")},
                         content_type="multipart/form-data")
    assert ok.status_code == 302
    page = web.get(f"/cases/{case.id}").get_data(as_text=True)
    link = re.search(rf"/cases/{case.id}/files/([0-9a-f-]{{36}})", page).group(0)
    served = web.get(link)
    assert served.status_code == 200 and served.data == PNG and served.mimetype == "image/png"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    served.close()
    assert "ali" not in link
    stranger, _ = login_as("caseworker")
    assert stranger.get(link).status_code == 404
    # Over the request limit: refused with 413 before anything is stored.
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + PNG + b"0" * (17 * 1024 * 1024) + \
        f"\r\n--{boundary}--\r\n".encode()
    big = web.client.post(f"/cases/{case.id}/edit", data=body,
                          content_type=f"multipart/form-data; boundary={boundary}")
    assert big.status_code == 413


def test_case_with_family_rows_shows(login_as):
    """Subform rows (dicts) are lists in the data too: the files panel must not take them for attachment ids."""
    web, user = login_as("caseworker")
    case = create_case(user, {"name_first": "Hawa", "sex": "female", "family_details": [
        {"relation": "mother", "relation_name": "Maryan Ali"}]})
    db.session.commit()
    page = web.get(f"/cases/{case.id}")
    assert page.status_code == 200 and "Maryan Ali" in page.get_data(as_text=True)
