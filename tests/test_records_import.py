"""Importing cases and tracing requests from CSV and XLSX (R5): idempotent re-import by
source id, every problem reported with its line number and nothing half-applied, dry
runs, permissions of the importing user, values parsed by field type, the upload page
and its background job."""
from __future__ import annotations

import io
import re
from datetime import datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.records.importing import ImportRefused, import_records
from app.records.models import RecordChange
from cases.models import Case
from tracing.models import Trace, TracingRequest


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import import_locations_csv, load_default_configuration, DEMO_LOCATIONS
    load_default_configuration()
    import_locations_csv(DEMO_LOCATIONS.read_text(encoding="utf-8"))
    db.session.commit()


def write_csv(tmp_path, text: str, name: str = "cases.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_xlsx(tmp_path, rows: list[list], name: str = "cases.xlsx"):
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    workbook.save(path)
    return path


def count(model) -> int:
    return db.session.scalar(select(func.count(model.id)))


@pytest.fixture
def importer(make):
    """A supervisor (cases:import and cases:create) in a group of their agency."""
    agency = make.agency()
    group = make.group(agency=agency)
    user = make.user("supervisor", agency=agency, groups=[group])
    db.session.commit()
    return user


@pytest.fixture
def tracing_importer(make):
    """No seeded role has both tracing:import and tracing:create: a role made for the job."""
    from app.users.operations import create_role
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)
    sections = [f"form.{form}.{section}:{level}" for form, section in (
        ("tracing_request", "inquirer"), ("tracing_request", "inquiry"), ("trace", "child_sought"),
        ("trace", "separation_details")) for level in ("read", "write")]
    role = create_role("tracing_importer", "Tracing importer", "agency", {
        "tracing:read", "tracing:create", "tracing:update", "tracing:import", *sections})
    user = make.user(role)
    db.session.commit()
    return user


CASES_CSV = """source_id,name_first,name_last,sex,age,language,location_current,consent_for_tracing
ext-1,Maxamed,Cabdi,male,9,somali;Arabic,Melkadida camp,yes
ext-2,Fatima,al-Zoubi,Féminin,7,arabic,JO-MA-ZAATARI,no
ext-3,Nyakim,Gatluak,female,,nuer,SS-UN-MABAN-DORO,oui
"""


def test_importing_the_same_file_twice_leaves_the_same_records(tmp_path, importer):
    path = write_csv(tmp_path, CASES_CSV)
    report = import_records("cases", path, importer)
    db.session.commit()
    assert report.is_applied and report.created == 3 and not report.problems
    assert count(Case) == 3
    case = db.session.execute(select(Case).where(Case.source_id == "ext-1")).scalar_one()
    assert case.owner_id == importer.id and case.agency_id == importer.agency_id
    assert [g.id for g in case.groups] == [g.id for g in importer.groups]
    assert case.data["language"] == ["somali", "arabic"]          # codes and labels, ";" separated
    assert case.data["location_current"] == "ET-SO-DOLLO-MELKADIDA"  # a location by its name
    assert case.display_name == "Maxamed Cabdi" and case.age == 9 and case.is_consent_for_tracing
    fatima = db.session.execute(select(Case).where(Case.source_id == "ext-2")).scalar_one()
    assert fatima.data["sex"] == "female" and fatima.data["consent_for_tracing"] is False  # a French label
    assert len(case.short_id) == 7

    again = import_records("cases", path, importer)
    db.session.commit()
    assert again.created == 0 and again.unchanged == 3 and count(Case) == 3

    changed = write_csv(tmp_path, CASES_CSV.replace("al-Zoubi,Féminin,7", "al-Zoubi,Féminin,8"))
    third = import_records("cases", changed, importer)
    db.session.commit()
    assert (third.created, third.updated, third.unchanged) == (0, 1, 2) and count(Case) == 3
    db.session.expire_all()
    assert db.session.get(Case, fatima.id).age == 8
    actions = db.session.execute(select(RecordChange.action).where(RecordChange.record_id == fatima.id)
                                 .order_by(RecordChange.id)).scalars().all()
    assert actions == ["import", "import_update"]
    # One audit entry per applied import, with its counts (none for the unchanged run's records).
    entries = db.session.execute(select(AuditEntry).where(AuditEntry.action == "case.import")
                                 .order_by(AuditEntry.id)).scalars().all()
    assert [(e.detail["created"], e.detail["updated"], e.detail["unchanged"]) for e in entries] == [
        (3, 0, 0), (0, 0, 3), (0, 1, 2)]
    assert all(e.user_id == importer.id and e.detail["rows"] == 3 for e in entries)


def test_name_keys_of_imported_cases_make_them_searchable(tmp_path, importer):
    from app.records.search import search_records
    from app.permissions import scope_filter
    import_records("cases", write_csv(tmp_path, CASES_CSV), importer)
    db.session.commit()
    found = search_records(Case, select(Case).where(scope_filter(importer, Case)), "Mohamed Abdi")
    assert [c.source_id for c in found][:1] == ["ext-1"]


def test_xlsx_cells_are_parsed_by_field_type(tmp_path, importer):
    path = write_xlsx(tmp_path, [
        ["source_id", "name_first", "name_last", "sex", "age", "date_of_birth", "date_of_birth_approximate",
         "phone", "consent_for_tracing", "protection_concerns", "risk_level", "family_details"],
        ["x-1", "Hodan", "Warsame", "Female", 6.0, datetime(2019, 5, 1), True, 252612345678, True,
         "Unaccompanied; orphan", "Low", '[{"relation": "sibling", "relation_name": "Ayaan Warsame"}]'],
        ["x-2", "Deng", "Garang", "male", None, None, None, None, False, None, None, None],
    ])
    report = import_records("cases", path, importer)
    assert report.problems == [] and report.created == 2
    db.session.commit()
    hodan = db.session.execute(select(Case).where(Case.source_id == "x-1")).scalar_one()
    assert hodan.data["age"] == 6 and hodan.data["date_of_birth"] == "2019-05-01"
    assert hodan.data["date_of_birth_approximate"] is True and hodan.data["phone"] == "252612345678"
    assert hodan.data["protection_concerns"] == ["unaccompanied", "orphan"] and hodan.data["risk_level"] == "low"
    assert hodan.data["family_details"][0]["relation_name"] == "Ayaan Warsame"
    deng = db.session.execute(select(Case).where(Case.source_id == "x-2")).scalar_one()
    assert "age" not in deng.data and deng.data["consent_for_tracing"] is False


BROKEN_CSV = """source_id,name_first,sex,age,date_of_birth
ok-1,Amina,female,4,2020-01-01
bad-1,Ali,dragon,5,
ok-2,Omar,male,6,
bad-2,,male,40,01/02/2015
ok-1,Amina,female,4,
"""


def test_a_broken_file_reports_every_line_and_writes_nothing(tmp_path, importer):
    report = import_records("cases", write_csv(tmp_path, BROKEN_CSV), importer)
    assert not report.is_applied
    found = {(p.line, p.column) for p in report.problems}
    assert found == {(3, "sex"), (5, "name_first"), (5, "age"), (5, "date_of_birth"), (6, "source_id")}
    messages = {(p.line, p.column): p.message for p in report.problems}
    assert "dragon" in messages[(3, "sex")] and "female" in messages[(3, "sex")]
    assert "year-month-day" in messages[(5, "date_of_birth")]
    assert "line 2" in messages[(6, "source_id")]
    db.session.rollback()
    assert count(Case) == 0
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "case.import")) == 0


def test_header_problems_are_reported_on_line_one(tmp_path, importer):
    report = import_records("cases", write_csv(tmp_path, "name_first,sex,favourite_colour,photos,name_first\n"
                                                          "Amina,female,blue,,Amina\n"), importer)
    assert {(p.line, p.column) for p in report.problems} == {(1, "favourite_colour"), (1, "photos"),
                                                             (1, "name_first")}
    assert count(Case) == 0


def test_columns_the_user_may_not_write_are_refused(tmp_path, make):
    """Field permissions of the --as user apply: a role that cannot write a section cannot import into it."""
    from app.users.operations import create_role
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)
    role = create_role("identity_importer", "Identity importer", "own", {
        "cases:read", "cases:create", "cases:import", "form.case.basic_identity:read",
        "form.case.basic_identity:write", "form.case.protection:read"})
    user = make.user(role)
    db.session.commit()
    report = import_records("cases", write_csv(tmp_path, "name_first,sex,risk_level\nAmina,female,low\n"), user)
    assert [(p.line, p.column) for p in report.problems] == [(1, "risk_level")]
    assert "may not change" in report.problems[0].message


def test_export_columns_are_ignored_so_an_export_imports_back(tmp_path, importer):
    path = write_csv(tmp_path, "short_id,source_id,status,owner,name_first,sex\nabc1234,e-1,closed,bob,Amina,female\n")
    report = import_records("cases", path, importer)
    assert report.problems == [] and report.created == 1
    assert any("status" in warning for warning in report.warnings)
    db.session.commit()
    case = db.session.execute(select(Case).where(Case.source_id == "e-1")).scalar_one()
    assert case.status == "open" and case.short_id != "abc1234"


def test_formula_guard_of_exports_is_taken_off(tmp_path, importer):
    import_records("cases", write_csv(tmp_path, "name_first,sex\n'=Amina,female\n"), importer)
    db.session.commit()
    assert db.session.execute(select(Case.display_name)).scalar_one() == "=Amina"


def test_more_rows_than_one_write_chunk(tmp_path, importer):
    lines = ["source_id,name_first,sex,age"] + [f"bulk-{n},Child{n},female,{n % 18}" for n in range(1, 1101)]
    path = write_csv(tmp_path, "\n".join(lines) + "\n")
    report = import_records("cases", path, importer)
    db.session.commit()
    assert report.created == 1100 and count(Case) == 1100
    assert db.session.scalar(select(func.count(func.distinct(Case.short_id)))) == 1100
    assert db.session.scalar(select(func.count(RecordChange.id)).where(RecordChange.action == "import")) == 1100
    again = import_records("cases", path, importer)
    db.session.commit()
    assert again.unchanged == 1100 and count(Case) == 1100


def test_a_case_outside_the_users_scope_is_not_updated(tmp_path, importer, make):
    other = make.user("supervisor", groups=[make.group()])
    db.session.commit()
    path = write_csv(tmp_path, "source_id,name_first,sex\nshared-1,Amina,female\n")
    import_records("cases", path, other)
    db.session.commit()
    report = import_records("cases", write_csv(tmp_path, "source_id,name_first,sex\nshared-1,Aamina,female\n",
                                               "second.csv"), importer)
    assert [(p.line, p.column) for p in report.problems] == [(2, "source_id")]
    assert "not in your scope" in report.problems[0].message


def test_unreadable_files_are_refused(tmp_path, importer):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name_first,sex\nJosé,male\n".encode("latin-1"))
    with pytest.raises(ImportRefused, match="UTF-8"):
        import_records("cases", latin1, importer)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("name_first\n")
    with pytest.raises(ImportRefused, match="XLSX"):
        import_records("cases", fake, importer)
    with pytest.raises(ImportRefused, match=r"\.csv or \.xlsx"):
        import_records("cases", tmp_path / "cases.txt", importer)


def test_semicolon_separated_csv_with_a_byte_order_mark(tmp_path, importer):
    path = tmp_path / "excel-fr.csv"
    path.write_bytes("\ufeffsource_id;name_first;sex;language\ns-1;Amina;Féminin;Arabe;Somali\n".encode("utf-8"))
    report = import_records("cases", path, importer)
    assert [(p.line, p.column) for p in report.problems] == [(2, "")]  # the ";" list spilled past the header
    path.write_bytes("\ufeffsource_id;name_first;sex;language\ns-1;Amina;Féminin;\"Arabe;Somali\"\n".encode("utf-8"))
    report = import_records("cases", path, importer)
    assert report.problems == [] and report.created == 1


# --- the command line ---------------------------------------------------------------------------------

def test_cli_dry_run_writes_nothing(app, tmp_path, importer):
    path = write_csv(tmp_path, CASES_CSV)
    result = app.test_cli_runner().invoke(args=["cases", "import", str(path), "--as", importer.username,
                                                "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "created: 3" in result.output
    assert count(Case) == 0
    result = app.test_cli_runner().invoke(args=["cases", "import", str(path), "--as", importer.username])
    assert result.exit_code == 0, result.output
    assert count(Case) == 3


def test_cli_reports_line_numbers_and_fails(app, tmp_path, importer):
    result = app.test_cli_runner().invoke(args=["cases", "import", str(write_csv(tmp_path, BROKEN_CSV)),
                                                "--as", importer.username])
    assert result.exit_code == 1
    assert "line 3, sex:" in result.output and "line 5, date_of_birth:" in result.output
    assert "nothing was imported" in result.output
    assert count(Case) == 0


def test_cli_refuses_a_user_without_the_permissions(app, tmp_path, make):
    caseworker = make.user("caseworker")
    administrator = make.user("administrator")
    db.session.commit()
    path = write_csv(tmp_path, CASES_CSV)
    result = app.test_cli_runner().invoke(args=["cases", "import", str(path), "--as", caseworker.username])
    assert result.exit_code == 1 and "may not import" in result.output and "cases:import" in result.output
    # Administrators may import by default, but not register cases: refused too, saying why.
    result = app.test_cli_runner().invoke(args=["cases", "import", str(path), "--as", administrator.username])
    assert result.exit_code == 1 and "cases:create" in result.output
    result = app.test_cli_runner().invoke(args=["cases", "import", str(path), "--as", "nobody-here"])
    assert result.exit_code == 1 and "no user named" in result.output
    assert count(Case) == 0


# --- tracing requests -----------------------------------------------------------------------------------

TRACING_CSV = """inquiry_ref,relation_name,relation,inquiry_date,consent_for_tracing,trace.name_first,trace.name_last,trace.sex,trace.age
inq-1,Hawo Cabdi,Mother,2024-01-10,yes,Maxamed,Cabdi,male,8
inq-1,Hawo Cabdi,mother,2024-01-10,yes,Xaliimo,Cabdi,female,5
inq-2,Deng Garang,father,2024-02-01,yes,Achol,Deng,female,11
"""


def test_tracing_rows_sharing_an_inquiry_ref_make_one_request(tmp_path, tracing_importer):
    path = write_csv(tmp_path, TRACING_CSV, "tracing.csv")
    report = import_records("tracing", path, tracing_importer)
    db.session.commit()
    assert report.problems == [] and (report.created, report.traces_created) == (2, 3)
    request = db.session.execute(select(TracingRequest).where(TracingRequest.source_id == "inq-1")).scalar_one()
    assert request.data["relation"] == "mother" and request.display_name == "Hawo Cabdi"
    assert sorted(t.source_id for t in request.traces) == ["inq-1/1", "inq-1/2"]
    assert all(t.owner_id == tracing_importer.id for t in request.traces)
    again = import_records("tracing", path, tracing_importer)
    db.session.commit()
    assert (again.created, again.unchanged, again.traces_created) == (0, 2, 0)
    assert (count(TracingRequest), count(Trace)) == (2, 3)
    # A third child for inq-2, and a corrected age: one new trace, one trace updated.
    more = TRACING_CSV.replace("Deng,female,11", "Deng,female,12") + "inq-2,,,,,Ayen,Deng,female,9\n"
    third = import_records("tracing", write_csv(tmp_path, more, "more.csv"), tracing_importer)
    db.session.commit()
    assert (third.traces_created, third.traces_updated, count(Trace)) == (1, 1, 4)


def test_tracing_inquirer_values_must_agree(tmp_path, tracing_importer):
    text = TRACING_CSV.replace("inq-1,Hawo Cabdi,mother", "inq-1,Hawa Abdi,mother")
    report = import_records("tracing", write_csv(tmp_path, text, "tracing.csv"), tracing_importer)
    assert [(p.line, p.column) for p in report.problems] == [(3, "relation_name")]
    assert "line 2" in report.problems[0].message
    bad_trace = TRACING_CSV.replace("Achol,Deng,female,11", "Achol,Deng,girl,11")
    report = import_records("tracing", write_csv(tmp_path, bad_trace, "bad.csv"), tracing_importer)
    assert [(p.line, p.column) for p in report.problems] == [(4, "trace.sex")]
    no_ref = import_records("tracing", write_csv(tmp_path, "trace.name_first,trace.sex\nAmina,female\n", "x.csv"),
                            tracing_importer)
    assert [(p.line, p.column) for p in no_ref.problems] == [(1, "inquiry_ref")]
    assert count(TracingRequest) == 0


def test_tracing_cli(app, tmp_path, tracing_importer, make):
    path = write_csv(tmp_path, TRACING_CSV, "tracing.csv")
    result = app.test_cli_runner().invoke(args=["tracing", "import", str(path), "--as", tracing_importer.username])
    assert result.exit_code == 0, result.output
    assert "traces created: 3" in result.output
    caseworker = make.user("caseworker")  # may neither register nor import tracing requests
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["tracing", "import", str(path), "--as", caseworker.username])
    assert result.exit_code == 1 and "tracing:import" in result.output
    # A tracing officer of another agency may import, but not update requests outside their scope.
    officer = make.user("tracing_officer")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["tracing", "import", str(path), "--as", officer.username])
    assert result.exit_code == 1 and "not in your scope" in result.output


# --- the upload page and its job --------------------------------------------------------------------------

def upload(web, kind: str, content: bytes, name: str, action: str):
    return web.form(f"/records/{kind}/import", {"file": (io.BytesIO(content), name), "action": action},
                    token_from="/", content_type="multipart/form-data")


def test_upload_page_checks_then_imports(login_as):
    web, user = login_as("supervisor")
    page = web.get("/records/cases/import")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "name_first" in body and "source_id" in body
    response = upload(web, "cases", CASES_CSV.encode(), "cases.csv", "check")
    assert response.status_code == 302
    job_page = response.headers["Location"]
    body = web.get(job_page).get_data(as_text=True)
    assert "The file is good" in body and count(Case) == 0
    response = upload(web, "cases", CASES_CSV.encode(), "cases.csv", "import")
    body = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "The file is imported" in body
    assert count(Case) == 3
    requested = db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "case.import_requested"))
    assert requested == 2
    # Another user cannot see this job's report.
    other, _ = login_as("supervisor")
    assert other.get(job_page).status_code == 404


def test_upload_page_shows_problems_with_line_numbers(login_as):
    web, _ = login_as("supervisor")
    response = upload(web, "cases", BROKEN_CSV.encode(), "broken.csv", "import")
    body = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "nothing was imported" in body
    assert re.search(r"<td>3</td><td dir=\"ltr\"><code>sex</code>", body)
    assert count(Case) == 0


def test_upload_page_refuses_bad_files_and_users(login_as):
    web, _ = login_as("supervisor")
    response = upload(web, "cases", "name_first\nJosé\n".encode("latin-1"), "cases.csv", "import")
    assert response.status_code == 422 and "UTF-8" in response.get_data(as_text=True)
    response = upload(web, "cases", b"hello", "cases.pdf", "import")
    assert response.status_code == 422
    caseworker, _ = login_as("caseworker")
    assert caseworker.get("/records/cases/import").status_code == 403
    assert upload(caseworker, "cases", CASES_CSV.encode(), "cases.csv", "import").status_code == 403
    assert count(Case) == 0


def test_import_template_lists_the_columns(login_as):
    web, _ = login_as("supervisor")
    response = web.get("/records/cases/import/template.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    header = response.get_data(as_text=True).lstrip("\ufeff").strip().split(",")
    assert header[0] == "source_id" and "name_first" in header and "photos" not in header


def test_tracing_upload_page(app, tracing_importer):
    from tests.conftest import WebClient
    web = WebClient(app.test_client())
    web.login(tracing_importer.username)
    body = web.get("/records/tracing/import").get_data(as_text=True)
    assert "inquiry_ref" in body and "trace.name_first" in body and "relation_name" in body
    assert web.get("/records/import").status_code == 200
    response = upload(web, "tracing", TRACING_CSV.encode(), "tracing.csv", "import")
    body = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "The file is imported" in body and (count(TracingRequest), count(Trace)) == (2, 3)


def test_demo_records_are_realistic_and_seeded_once(make, monkeypatch):
    from app.records import demo
    # A smaller set than `flask seed demo` makes (300 cases, 70 requests), generated the same way.
    monkeypatch.setattr(demo, "CASE_OWNERS", tuple((u, n // 5, t) for u, n, t in demo.CASE_OWNERS))
    monkeypatch.setattr(demo, "TRACING_REQUESTS", 14)
    monkeypatch.setattr(demo, "TRUE_PAIRS", 8)
    agency = make.agency()
    group = make.group(agency=agency)
    for username, role in (("caseworker", "caseworker"), ("caseworker2", "caseworker"),
                           ("save_caseworker", "caseworker"), ("supervisor", "supervisor"),
                           ("tracer", "tracing_officer")):
        make.user(role, agency=agency, groups=[group], username=username)
    db.session.commit()
    line = demo.seed_demo_records()
    db.session.commit()
    assert "60 case(s)" in line and "14 tracing request(s)" in line
    assert count(Case) == 60 and count(TracingRequest) == 14
    again = demo.seed_demo_records()
    assert "0 case(s)" in again and count(Case) == 60 and count(TracingRequest) == 14
    consent = db.session.scalar(select(func.count(Case.id)).where(Case.is_consent_for_tracing.is_(True)))
    assert 0.7 < consent / 60 < 1
    # The true pairs point at registered children, written differently.
    pairs = demo.true_pairs()
    assert len(pairs) == demo.TRUE_PAIRS
    trace_id, case_id = next(iter(pairs.items()))
    trace = db.session.execute(select(Trace).where(Trace.source_id == trace_id)).scalar_one()
    case = db.session.execute(select(Case).where(Case.source_id == case_id)).scalar_one()
    assert trace.sex == case.sex and abs((trace.age or 0) - (case.age or 0)) <= 3
