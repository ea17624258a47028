"""Tracing requests and traces through the pages: registering an inquirer with several
children sought in one form (add and remove without JavaScript, errors per child),
viewing, editing with conflicts, history, adding a child later, tracing status, close
and reopen, search, and the scope of every route (S1-S3, S14, R1)."""
from __future__ import annotations

import io
import re
import uuid

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.records.models import RecordChange, RecordNote
from tracing.models import Trace, TracingRequest
from tracing.operations import create_tracing_request

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import load_default_configuration
    load_default_configuration()
    db.session.commit()


INQUIRER = {"relation_name": "Halima Yusuf", "relation": "mother", "relation_phone": "+254 712 345 678",
            "inquiry_date": "2024-03-02", "consent_for_tracing": "on"}
AISHA = {"name_first": "Aisha", "name_last": "Yusuf", "sex": "female", "age": "7"}
OMAR = {"name_first": "Omar", "name_last": "Yusuf", "sex": "male", "age": "10"}


def trace_fields(index: int, values: dict) -> dict:
    return {f"traces.{index}.{key}": value for key, value in values.items()}


def register(web, *children: dict, inquirer: dict | None = None, **extra):
    """Post the registration form with one form per child, as the page does."""
    form = {**(inquirer or INQUIRER), "trace": [str(i) for i in range(len(children))], **extra}
    for index, child in enumerate(children):
        form.update(trace_fields(index, child))
    return web.form("/tracing/new", form, token_from="/tracing/new")


def request_id_from(response) -> str:
    return re.search(r"/tracing/([0-9a-f-]{36})", response.headers["Location"]).group(1)


def make_request(user, *children: dict, **inquirer) -> TracingRequest:
    data = {"relation_name": "Halima Yusuf", "relation": "mother", "inquiry_date": "2024-03-02",
            "consent_for_tracing": True, **inquirer}
    traces = [{k: (int(v) if k == "age" else v) for k, v in child.items()} for child in (children or (AISHA,))]
    tracing_request = create_tracing_request(user, data, traces=traces)
    db.session.commit()
    return tracing_request


@pytest.fixture
def team(make):
    agency = make.agency()
    group = make.group(agency=agency)
    db.session.commit()
    return agency, group


# --- registering -------------------------------------------------------------------------------------

def test_officer_registers_a_request_with_two_children_in_one_submission(login_as, team):
    agency, group = team
    web, user = login_as("tracing_officer", agency=agency, groups=[group])
    page = web.get("/tracing/new").get_data(as_text=True)
    assert 'name="relation_name"' in page and 'name="traces.0.name_first"' in page
    assert 'name="traces.1.name_first"' not in page
    # "Add another child" is a submit button: the form comes back with one child more, input kept.
    added = web.form("/tracing/new", {**INQUIRER, "trace": ["0"], **trace_fields(0, AISHA), "add_trace": "1"},
                     token_from="/tracing/new")
    assert added.status_code == 200
    body = added.get_data(as_text=True)
    assert 'name="traces.1.name_first"' in body and 'value="Aisha"' in body and 'value="Halima Yusuf"' in body
    assert db.session.scalar(select(func.count(TracingRequest.id))) == 0  # nothing saved yet

    response = register(web, AISHA, OMAR)
    assert response.status_code == 302
    tracing_request = db.session.get(TracingRequest, request_id_from(response))
    assert tracing_request.owner_id == user.id and tracing_request.agency_id == agency.id
    assert [g.id for g in tracing_request.groups] == [group.id]
    assert tracing_request.display_name == "Halima Yusuf" and tracing_request.is_consent_for_tracing
    assert tracing_request.phone_digits == "254712345678" and len(tracing_request.short_id) == 7
    names = sorted(trace.display_name for trace in tracing_request.traces)
    assert names == ["Aisha Yusuf", "Omar Yusuf"]
    assert {trace.tracing_status for trace in tracing_request.traces} == {"open"}
    assert {(trace.sex, trace.age) for trace in tracing_request.traces} == {("female", 7), ("male", 10)}

    page = web.get(f"/tracing/{tracing_request.id}").get_data(as_text=True)
    assert "Halima Yusuf" in page and tracing_request.short_id in page
    for trace in tracing_request.traces:
        assert trace.short_id in page and f"/traces/{trace.id}" in page
    assert "Female" in page and "7 years" in page
    actions = set(db.session.execute(select(AuditEntry.action).where(
        AuditEntry.resource_id == tracing_request.id)).scalars())
    assert {"tracing_request.create", "tracing_request.view"} <= actions
    trace_actions = set(db.session.execute(select(AuditEntry.action).where(
        AuditEntry.resource_id.in_([t.id for t in tracing_request.traces]))).scalars())
    assert "trace.create" in trace_actions


def test_a_bad_child_gets_field_errors_without_losing_the_other_input(login_as):
    web, _ = login_as("tracing_officer")
    bad = {"name_first": "", "sex": "dragon", "age": "-3"}
    response = register(web, AISHA, bad)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    # The first child's and the inquirer's input is still there.
    assert re.search(r'name="traces\.0\.name_first" value="Aisha"', body)
    assert 'value="Halima Yusuf"' in body
    # The errors are on the second child's fields, and named in the summary.
    assert 'id="f-traces-1-name_first-error"' in body and 'id="f-traces-1-sex-error"' in body
    assert 'id="f-traces-0-name_first-error"' not in body
    assert 'href="#trace-form-1"' in body and 'href="#trace-form-0"' not in body
    assert re.search(r'name="traces\.1\.age" value="-3"', body)
    assert db.session.scalar(select(func.count(TracingRequest.id))) == 0
    assert db.session.scalar(select(func.count(Trace.id))) == 0


def test_remove_a_child_from_the_form_keeps_the_others(login_as):
    web, _ = login_as("tracing_officer")
    form = {**INQUIRER, "trace": ["0", "1"], **trace_fields(0, AISHA), **trace_fields(1, OMAR), "remove_trace": "0"}
    response = web.form("/tracing/new", form, token_from="/tracing/new")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # Omar moved up to the first form; Aisha's form is gone.
    assert re.search(r'name="traces\.0\.name_first" value="Omar"', body)
    assert 'name="traces.1.name_first"' not in body and 'value="Aisha"' not in body
    # The only child left cannot be removed.
    assert 'name="remove_trace"' not in body
    for bad in ("x", "²", "-1", "1000"):
        assert web.form("/tracing/new", {**INQUIRER, "trace": [bad]}, token_from="/tracing/new").status_code == 400


def test_a_request_needs_a_child(login_as):
    web, _ = login_as("tracing_officer")
    response = web.form("/tracing/new", dict(INQUIRER), token_from="/tracing/new")
    assert response.status_code == 422
    assert "Add at least one child" in response.get_data(as_text=True)


# --- viewing, editing, history ------------------------------------------------------------------------

def test_edit_request_and_trace_and_see_history(login_as):
    web, user = login_as("tracing_officer")
    tracing_request = db.session.get(TracingRequest, request_id_from(register(web, AISHA)))
    trace = tracing_request.traces[0]
    edit_page = web.get(f"/tracing/{tracing_request.id}/edit").get_data(as_text=True)
    assert 'value="Halima Yusuf"' in edit_page and f'name="version" value="{tracing_request.version}"' in edit_page
    response = web.form(f"/tracing/{tracing_request.id}/edit",
                        {**INQUIRER, "relation_name": "Halima Yusuf Ali", "version": str(tracing_request.version)},
                        token_from="/tracing")
    assert response.status_code == 302
    response = web.form(f"/traces/{trace.id}/edit", {**AISHA, "age": "8", "version": str(trace.version)},
                        token_from="/tracing")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/traces/{trace.id}")
    db.session.expire_all()
    assert db.session.get(TracingRequest, tracing_request.id).display_name == "Halima Yusuf Ali"
    assert db.session.get(Trace, trace.id).age == 8

    page = web.get(f"/traces/{trace.id}").get_data(as_text=True)
    assert "Aisha Yusuf" in page and trace.short_id in page and tracing_request.short_id in page
    assert f"/tracing/{tracing_request.id}" in page  # back to its request
    history = web.get(f"/tracing/{tracing_request.id}/history").get_data(as_text=True)
    assert "Changed" in history and "Halima Yusuf Ali" in history and "Registered" in history
    history = web.get(f"/traces/{trace.id}/history").get_data(as_text=True)
    assert "Changed" in history and ">8<" in history
    actions = set(db.session.execute(select(AuditEntry.action).where(AuditEntry.resource_id.in_(
        [tracing_request.id, trace.id]))).scalars())
    assert {"tracing_request.update", "trace.update", "trace.view", "tracing_request.history_viewed",
            "trace.history_viewed"} <= actions
    # Nothing changed: nothing saved, no new version.
    version = db.session.get(Trace, trace.id).version
    assert web.form(f"/traces/{trace.id}/edit", {**AISHA, "age": "8", "version": str(version)},
                    token_from="/tracing").status_code == 302
    db.session.expire_all()
    assert db.session.get(Trace, trace.id).version == version


def test_edit_errors_are_shown_per_field(login_as):
    web, _ = login_as("tracing_officer")
    tracing_request = db.session.get(TracingRequest, request_id_from(register(web, AISHA)))
    trace = tracing_request.traces[0]
    response = web.form(f"/traces/{trace.id}/edit", {**AISHA, "sex": "dragon", "version": str(trace.version)},
                        token_from="/tracing")
    assert response.status_code == 422 and 'id="f-sex-error"' in response.get_data(as_text=True)
    assert web.form(f"/traces/{trace.id}/edit", {**AISHA, "version": "abc"}, token_from="/tracing").status_code == 400


@pytest.mark.parametrize("target", ["request", "trace"])
def test_edit_conflict_keeps_both_values(login_as, target):
    web, _ = login_as("tracing_officer")
    tracing_request = db.session.get(TracingRequest, request_id_from(register(web, AISHA)))
    if target == "request":
        path, form, field, stale = (f"/tracing/{tracing_request.id}/edit", dict(INQUIRER), "relation_name",
                                    tracing_request.version)
        first, second = "Halima Y.", "Halima Yusuf Hassan"
    else:
        trace = tracing_request.traces[0]
        path, form, field, stale = f"/traces/{trace.id}/edit", dict(AISHA), "age", trace.version
        first, second = "8", "9"
    assert web.form(path, {**form, field: first, "version": str(stale)}, token_from="/tracing").status_code == 302
    # A second browser still holds the old version.
    response = web.form(path, {**form, field: second, "version": str(stale)}, token_from="/tracing")
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "Someone else saved this record" in body
    assert f'value="{second}"' in body  # their input is still in the form
    assert first in body  # and the other person's value is shown
    db.session.expire_all()
    record = db.session.get(TracingRequest, tracing_request.id) if target == "request" else \
        db.session.get(Trace, tracing_request.traces[0].id)
    assert str(record.data[field]) == first  # nothing overwritten
    new_version = re.search(r'name="version" value="(\d+)"', body).group(1)
    assert web.form(path, {**form, field: second, "version": new_version}, token_from="/tracing").status_code == 302
    db.session.expire_all()
    record = db.session.get(type(record), record.id)
    assert str(record.data[field]) == second


# --- adding a child later, statuses, closing and reopening ---------------------------------------------

def test_add_a_child_later_then_close_and_reopen(login_as):
    web, _ = login_as("tracing_officer")
    tracing_request = db.session.get(TracingRequest, request_id_from(register(web, AISHA)))
    form_page = web.get(f"/tracing/{tracing_request.id}/traces/new")
    assert form_page.status_code == 200 and 'name="name_first"' in form_page.get_data(as_text=True)
    refused = web.form(f"/tracing/{tracing_request.id}/traces/new", {"name_first": "Omar"}, token_from="/tracing")
    assert refused.status_code == 422 and 'id="f-sex-error"' in refused.get_data(as_text=True)
    response = web.form(f"/tracing/{tracing_request.id}/traces/new", OMAR, token_from="/tracing")
    assert response.status_code == 302
    db.session.expire_all()
    tracing_request = db.session.get(TracingRequest, tracing_request.id)
    assert sorted(t.display_name for t in tracing_request.traces) == ["Aisha Yusuf", "Omar Yusuf"]
    assert "Omar Yusuf" in web.get(f"/tracing/{tracing_request.id}").get_data(as_text=True)

    # No reason, no closing.
    web.form(f"/tracing/{tracing_request.id}/close", {"reason": " "}, token_from="/tracing")
    db.session.expire_all()
    assert db.session.get(TracingRequest, tracing_request.id).status == "open"
    assert web.form(f"/tracing/{tracing_request.id}/close", {"reason": "Family found through the Red Cross"},
                    token_from="/tracing").status_code == 302
    db.session.expire_all()
    tracing_request = db.session.get(TracingRequest, tracing_request.id)
    assert tracing_request.status == "closed"
    assert {t.tracing_status for t in tracing_request.traces} == {"closed"}
    page = web.get(f"/tracing/{tracing_request.id}").get_data(as_text=True)
    assert "Reopen the tracing request" in page and "Add a child sought" not in page
    closed = web.form(f"/tracing/{tracing_request.id}/traces/new", OMAR, token_from="/tracing")
    assert closed.status_code == 422 and "reopen it first" in closed.get_data(as_text=True)

    assert web.form(f"/tracing/{tracing_request.id}/reopen", {"reason": "The father asks again"},
                    token_from="/tracing").status_code == 302
    db.session.expire_all()
    tracing_request = db.session.get(TracingRequest, tracing_request.id)
    assert tracing_request.status == "open" and {t.tracing_status for t in tracing_request.traces} == {"open"}
    actions = [row.action for row in db.session.execute(select(RecordChange).where(
        RecordChange.record_id == tracing_request.id).order_by(RecordChange.id)).scalars()]
    assert actions == ["create", "close", "reopen"]
    history = web.get(f"/tracing/{tracing_request.id}/history").get_data(as_text=True)
    assert "Family found through the Red Cross" in history and "Reopened" in history


def test_trace_status_notes_and_flags(login_as, team):
    agency, group = team
    web, _ = login_as("tracing_officer", agency=agency, groups=[group])
    tracing_request = db.session.get(TracingRequest, request_id_from(register(web, AISHA, OMAR)))
    trace = tracing_request.traces[0]
    page = web.get(f"/traces/{trace.id}").get_data(as_text=True)
    assert 'value="in_progress"' in page and 'value="match_confirmed"' not in page
    assert web.form(f"/traces/{trace.id}/status", {"tracing_status": "in_progress", "version": str(trace.version)},
                    token_from="/tracing").status_code == 302
    db.session.expire_all()
    trace = db.session.get(Trace, trace.id)
    assert trace.tracing_status == "in_progress"
    # A stale version (another officer changed it meanwhile) changes nothing.
    web.form(f"/traces/{trace.id}/status", {"tracing_status": "open", "version": str(trace.version - 1)},
             token_from="/tracing")
    # Statuses of the matching workflow cannot be set by hand; closing needs a reason.
    web.form(f"/traces/{trace.id}/status", {"tracing_status": "reunified", "version": str(trace.version)},
             token_from="/tracing")
    web.form(f"/traces/{trace.id}/status", {"tracing_status": "closed", "version": str(trace.version)},
             token_from="/tracing")
    db.session.expire_all()
    assert db.session.get(Trace, trace.id).tracing_status == "in_progress"
    web.form(f"/traces/{trace.id}/status", {"tracing_status": "closed", "reason": "Found in a hospital",
                                            "version": str(trace.version)}, token_from="/tracing")
    db.session.expire_all()
    trace = db.session.get(Trace, trace.id)
    assert trace.tracing_status == "closed" and trace.status == "closed"
    assert db.session.get(TracingRequest, tracing_request.id).status == "open"  # the other child is still sought

    assert web.form(f"/traces/{trace.id}/notes", {"body": "Called the hospital."},
                    token_from="/tracing").status_code == 302
    assert web.form(f"/traces/{trace.id}/flags", {"reason": "Possible duplicate of another trace"},
                    token_from="/tracing").status_code == 302
    page = web.get(f"/traces/{trace.id}").get_data(as_text=True)
    assert "Called the hospital." in page and "Possible duplicate of another trace" in page
    assert re.search(rf"/traces/{trace.id}/flags/\d+/resolve", page) is None  # officers cannot resolve
    assert db.session.scalar(select(func.count(RecordNote.id)).where(RecordNote.record_id == trace.id)) == 1
    # The flag on a child shows the request in the "flagged" list.
    listed = web.get("/tracing?flagged=y").get_data(as_text=True)
    assert tracing_request.short_id in listed
    supervisor, _ = login_as("supervisor", agency=agency, groups=[group])
    page = supervisor.get(f"/traces/{trace.id}").get_data(as_text=True)
    flag_id = re.search(rf"/traces/{trace.id}/flags/(\d+)/resolve", page).group(1)
    assert supervisor.form(f"/traces/{trace.id}/flags/{flag_id}/resolve", {"resolution": "Checked"},
                           token_from="/tracing").status_code == 302
    assert tracing_request.short_id not in web.get("/tracing?flagged=y").get_data(as_text=True)
    # A supervisor may reopen (close permission) but not start tracing (update permission).
    assert 'value="open"' in page
    assert supervisor.form(f"/traces/{trace.id}/status", {"tracing_status": "open", "reason": "Not the same child",
                                                          "version": str(trace.version)},
                           token_from="/tracing").status_code == 302
    db.session.expire_all()
    assert db.session.get(Trace, trace.id).tracing_status == "open"
    page = supervisor.get(f"/traces/{trace.id}").get_data(as_text=True)
    assert 'value="in_progress"' not in page and 'value="closed"' in page
    assert supervisor.form(f"/traces/{trace.id}/status", {"tracing_status": "in_progress",
                                                          "version": str(trace.version + 1)},
                           token_from="/tracing").status_code == 403
    changes = [row.action for row in db.session.execute(select(RecordChange).where(
        RecordChange.record_id == trace.id).order_by(RecordChange.id)).scalars()]
    assert changes == ["create", "update", "close", "reopen"]


def test_photo_of_a_child_uploaded_with_the_registration(login_as, team):
    from forms.operations import create_field
    create_field("trace", "child_sought", {"key": "photo", "type": "photo", "labels": {"en": "Photo"}})
    db.session.commit()
    agency, group = team
    web, _ = login_as("tracing_officer", agency=agency, groups=[group])
    token = web.csrf_token("/tracing/new")
    data = {**INQUIRER, "trace": ["0", "1"], **trace_fields(0, AISHA), **trace_fields(1, OMAR), "csrf_token": token,
            "traces.1.photo": (io.BytesIO(b"<html>"), "omar.png")}
    refused = web.client.post("/tracing/new", data=data, content_type="multipart/form-data")
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert 'id="f-traces-1-photo-error"' in body and "not accepted" in body
    assert db.session.scalar(select(func.count(TracingRequest.id))) == 0
    data["traces.1.photo"] = (io.BytesIO(PNG), "omar.png")
    response = web.client.post("/tracing/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    tracing_request = db.session.get(TracingRequest, request_id_from(response))
    omar = next(t for t in tracing_request.traces if t.display_name == "Omar Yusuf")
    aisha = next(t for t in tracing_request.traces if t.display_name == "Aisha Yusuf")
    assert len(omar.data["photo"]) == 1 and not aisha.data.get("photo")
    page = web.get(f"/traces/{omar.id}").get_data(as_text=True)
    link = re.search(rf"/traces/{omar.id}/files/[0-9a-f-]{{36}}", page).group(0)
    served = web.get(link)
    assert served.status_code == 200 and served.data == PNG
    served.close()
    stranger, _ = login_as("tracing_officer")
    assert stranger.get(link).status_code == 404


# --- lists and search --------------------------------------------------------------------------------

def test_search_finds_a_child_spelled_differently_and_keeps_names_out_of_urls(login_as):
    web, user = login_as("tracing_officer")
    wanted = make_request(user, {"name_first": "Aisha", "name_last": "Mohamed", "sex": "female"},
                          relation_name="Zeinab Ali", relation_phone="+256 700 111 222")
    other = make_request(user, {"name_first": "Fatima", "name_last": "Omar", "sex": "female"},
                         relation_name="Amina Hassan")
    response = web.form("/tracing", {"q": "Aicha Muhammad"}, token_from="/tracing")
    assert response.status_code == 302 and "Aicha" not in response.headers["Location"]
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    assert wanted.short_id in page and other.short_id not in page
    assert "Aisha Mohamed" in page
    # The inquirer's name, phone, and a child's short id find the request too.
    for text in ("Zainab Ali", "0700 111 222", wanted.traces[0].short_id):
        web.form("/tracing", {"q": text}, token_from="/tracing")
        page = web.get("/tracing").get_data(as_text=True)
        assert wanted.short_id in page and other.short_id not in page, text
    web.form("/tracing", {"clear": "1"}, token_from="/tracing")
    page = web.get("/tracing").get_data(as_text=True)
    assert wanted.short_id in page and other.short_id in page
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "tracing_request.list")
                               .order_by(AuditEntry.id.desc())).scalars().first()
    assert "Aicha" not in str(entry.detail)


def test_list_filters_and_sorting(login_as):
    web, user = login_as("tracing_officer")
    colleague, other_user = login_as("tracing_officer", agency=user.agency)
    first = make_request(user, AISHA, relation_name="Alpha Inquirer")
    second = make_request(user, OMAR, relation_name="Beta Inquirer", consent_for_tracing=False)
    third = make_request(other_user, {"name_first": "Idris", "sex": "male"}, relation_name="Gamma Inquirer")
    from tracing.operations import change_trace_status, close_tracing_request
    close_tracing_request(second, user, "Found")
    change_trace_status(first.traces[0], user, "in_progress")
    db.session.commit()

    def listed(query: str) -> set[str]:
        page = web.get(f"/tracing{query}").get_data(as_text=True)
        return {r.short_id for r in (first, second, third) if r.short_id in page}

    # An agency-scoped officer sees the colleague's request too.
    assert listed("") == {first.short_id, second.short_id, third.short_id}
    assert listed("?status=closed") == {second.short_id}
    assert listed("?open_traces=y") == {first.short_id, third.short_id}
    assert listed("?trace_status=in_progress") == {first.short_id}
    assert listed("?mine=y") == {first.short_id, second.short_id}
    assert listed("?consent=no") == {second.short_id}
    page = web.get("/tracing?sort=name").get_data(as_text=True)
    assert page.index("Alpha Inquirer") < page.index("Beta Inquirer") < page.index("Gamma Inquirer")
    assert web.get("/tracing?status=nonsense").status_code == 422
    assert web.get("/tracing?page=abc").status_code == 200
    assert colleague.get("/tracing?mine=y").status_code == 200


# --- who may see what ---------------------------------------------------------------------------------

def test_other_agency_gets_404_everywhere_and_group_supervisor_sees(login_as, team):
    agency, group = team
    owner_web, owner = login_as("tracing_officer", agency=agency, groups=[group])
    tracing_request = db.session.get(TracingRequest, request_id_from(register(owner_web, AISHA)))
    trace = tracing_request.traces[0]
    stranger, _ = login_as("tracing_officer")
    rid, tid, fid = tracing_request.id, trace.id, uuid.uuid4()
    gets = [f"/tracing/{rid}", f"/tracing/{rid}/edit", f"/tracing/{rid}/history", f"/tracing/{rid}/traces/new",
            f"/tracing/{rid}/files/{fid}", f"/traces/{tid}", f"/traces/{tid}/edit", f"/traces/{tid}/history",
            f"/traces/{tid}/files/{fid}"]
    posts = {f"/tracing/{rid}/edit": {**INQUIRER, "version": "1"}, f"/tracing/{rid}/traces/new": OMAR,
             f"/tracing/{rid}/notes": {"body": "x"}, f"/tracing/{rid}/flags": {"reason": "x"},
             f"/tracing/{rid}/flags/1/resolve": {"resolution": "x"},
             f"/tracing/{rid}/close": {"reason": "x"}, f"/tracing/{rid}/reopen": {"reason": "x"},
             f"/traces/{tid}/edit": {**AISHA, "version": "1"}, f"/traces/{tid}/notes": {"body": "x"},
             f"/traces/{tid}/flags": {"reason": "x"}, f"/traces/{tid}/status": {"tracing_status": "in_progress",
                                                                                 "version": "1"}}
    for path in gets:
        assert stranger.get(path).status_code == 404, path
    for path, data in posts.items():
        if path.endswith("/resolve"):
            continue  # a tracing officer lacks the resolve permission: 403 before any scope check
        assert stranger.form(path, data, token_from="/tracing").status_code == 404, path
    assert tracing_request.short_id not in stranger.get("/tracing").get_data(as_text=True)
    stranger.form("/tracing", {"q": "Aisha"}, token_from="/tracing")
    assert tracing_request.short_id not in stranger.get("/tracing").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(TracingRequest, rid).version == tracing_request.version
    assert db.session.scalar(select(func.count(RecordNote.id))) == 0
    denials = db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.resource_id.in_([rid, tid]), AuditEntry.outcome == "denied"))
    assert denials >= len(gets) + len(posts) - 1

    supervisor, _ = login_as("supervisor", agency=agency, groups=[group])
    for path in (f"/tracing/{rid}", f"/tracing/{rid}/history", f"/traces/{tid}", f"/traces/{tid}/history"):
        assert supervisor.get(path).status_code == 200, path
    assert tracing_request.short_id in supervisor.get("/tracing").get_data(as_text=True)
    page = supervisor.get(f"/tracing/{rid}").get_data(as_text=True)
    assert "Close the tracing request" in page and f"/tracing/{rid}/edit" not in page
    # Supervisors read and close; they do not edit (no tracing:update by default).
    assert supervisor.get(f"/tracing/{rid}/edit").status_code == 403
    assert supervisor.get(f"/traces/{tid}/edit").status_code == 403
    same_agency_other_group, _ = login_as("supervisor", agency=agency)
    assert same_agency_other_group.get(f"/tracing/{rid}").status_code == 404


def test_caseworker_and_administrator_are_refused(login_as):
    owner_web, owner = login_as("tracing_officer")
    tracing_request = db.session.get(TracingRequest, request_id_from(register(owner_web, AISHA)))
    trace = tracing_request.traces[0]
    assert "/tracing" in owner_web.get("/").get_data(as_text=True)
    caseworker, _ = login_as("caseworker", agency=owner.agency)
    admin, _ = login_as("administrator")  # scope "all", but no tracing permission
    for web in (caseworker, admin):
        for path in ("/tracing", "/tracing/new", f"/tracing/{tracing_request.id}",
                     f"/tracing/{tracing_request.id}/history", f"/traces/{trace.id}", f"/traces/{trace.id}/history"):
            assert web.get(path).status_code == 403, path
        assert web.form("/tracing/new", {**INQUIRER, "trace": ["0"], **trace_fields(0, AISHA)},
                        token_from="/").status_code == 403
        assert 'href="/tracing"' not in web.get("/").get_data(as_text=True)
    # A supervisor reads but does not register.
    supervisor, _ = login_as("supervisor")
    assert supervisor.get("/tracing").status_code == 200
    assert supervisor.get("/tracing/new").status_code == 403


def test_csrf_is_required(login_as):
    web, _ = login_as("tracing_officer")
    form = {**INQUIRER, "trace": ["0"], **trace_fields(0, AISHA)}
    assert web.client.post("/tracing/new", data=form).status_code == 400
    assert db.session.scalar(select(func.count(TracingRequest.id))) == 0


# --- the form engine's prefix, used by the registration form ---------------------------------------------

def test_parse_form_data_reads_one_prefixed_form(login_as):
    from werkzeug.datastructures import MultiDict

    from forms.operations import parse_form_data
    _, user = login_as("tracing_officer")
    form = MultiDict([("name_first", "Not me"), ("traces.0.name_first", "Aisha"), ("traces.0.sex", "female"),
                      ("traces.0.date_of_birth", "2017-01-01"), ("traces.0.date_of_birth_approximate", "true"),
                      ("traces.1.name_first", "Omar")])
    values = parse_form_data("trace", form, user, prefix="traces.0.")
    assert values["name_first"] == "Aisha" and values["sex"] == "female"
    assert values["date_of_birth_approximate"] is True
    assert parse_form_data("trace", form, user, prefix="traces.1.")["name_first"] == "Omar"
    assert parse_form_data("trace", form, user)["name_first"] == "Not me"


def test_render_form_with_a_prefix(app, login_as):
    from flask import render_template_string
    from flask_login import login_user

    from forms.operations import get_definition
    _, user = login_as("tracing_officer")
    template = ('{% from "forms/macros.html" import render_form %}'
                '{{ render_form(definition, values, errors, user, prefix="traces.3.") }}')
    with app.test_request_context("/"):
        login_user(user)
        html = render_template_string(template, definition=get_definition("trace"), values={"name_first": "Aisha"},
                                      errors={"traces.3.sex": ["This field is required."]}, user=user)
    assert 'name="traces.3.name_first"' in html and 'id="f-traces-3-name_first"' in html
    assert re.search(r'name="traces\.3\.name_first" value="Aisha"', html)
    assert 'id="f-traces-3-sex-error"' in html and 'href="#f-traces-3-sex"' in html
    assert 'id="section-traces-3-child_sought"' in html and 'data-tab="section-traces-3-child_sought"' in html
    assert ">Sex: This field is required." in html  # the summary names the field, not the prefixed key
    assert "1 to correct" in html  # the section tab counts the prefixed error
    assert 'name="name_first"' not in html


def test_child_names_hidden_from_a_role_that_may_not_read_them(login_as, team):
    from forms.operations import set_section_access
    agency, group = team
    web, officer = login_as("tracing_officer", agency=agency, groups=[group])
    tracing_request = make_request(officer, {"name_first": "Sentinelname", "sex": "female", "age": 6})
    trace = tracing_request.traces[0]
    set_section_access("trace", "child_sought", {"tracing_officer": "write", "caseworker": "read"})
    db.session.commit()
    supervisor, _ = login_as("supervisor", agency=agency, groups=[group])
    for path in ("/tracing", f"/tracing/{tracing_request.id}", f"/traces/{trace.id}", f"/traces/{trace.id}/history"):
        response = supervisor.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "Sentinelname" not in body, path
        assert trace.short_id in body or path.endswith("/history"), path
    assert "Halima Yusuf" in supervisor.get(f"/tracing/{tracing_request.id}").get_data(as_text=True)
    # Nor are requests found by those names; the child's short id still finds it.
    supervisor.form("/tracing", {"q": "Sentinelname"}, token_from="/tracing")
    assert tracing_request.short_id not in supervisor.get("/tracing").get_data(as_text=True)
    supervisor.form("/tracing", {"q": trace.short_id}, token_from="/tracing")
    assert tracing_request.short_id in supervisor.get("/tracing").get_data(as_text=True)
    assert "Sentinelname" in web.get(f"/tracing/{tracing_request.id}").get_data(as_text=True)
