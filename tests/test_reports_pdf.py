"""Printable summaries (reports.printing): a case and a tracing request as PDF, with only the
sections the reader may read (S3, checked on the PDF's extracted text), in the reader's
language with Arabic right to left and shaped, scope-checked (S1: 404 out of scope),
audited as an export (S14), never cached (S20); photos only where readable."""
from __future__ import annotations

import io
import unicodedata

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from app.audit.models import AuditEntry
from app.extensions import db
from cases.operations import create_case, update_case
from tracing.operations import create_tracing_request

SENTINEL = "SENTINEL-41b7-protection"
TRACE_SENTINEL = "SENTINEL-93d2-features"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND"
       b"\xaeB`\x82")


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import load_default_configuration
    load_default_configuration()
    db.session.commit()


def pdf_text(data: bytes) -> str:
    """Every page's text, NFKC-normalised: Arabic shaped into presentation forms reads as letters."""
    reader = PdfReader(io.BytesIO(data))
    return unicodedata.normalize("NFKC", "\n".join(page.extract_text() or "" for page in reader.pages))


def letters(text: str) -> str:
    """Only the letters, so that line breaks and the PDF's spacing do not matter."""
    return "".join(ch for ch in text if ch.isalpha())


@pytest.fixture
def world(make):
    """A caseworker's case (with a photo) and a tracing request in one agency; a reader who may
    read the identity section only; a caseworker of another agency."""
    from app.users.operations import create_role
    from forms.operations import sync_section_permissions
    sync_section_permissions(force=True)
    agency = make.agency()
    group = make.group(agency=agency)
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    supervisor = make.user("supervisor", agency=agency, groups=[group])
    officer = make.user("tracing_officer", agency=agency, groups=[group])
    limited_role = create_role("limited_reader", "Limited reader", "agency", {
        "cases:read", "tracing:read", "form.case.basic_identity:read", "form.tracing_request.inquirer:read"})
    limited = make.user(limited_role, agency=agency)
    case = create_case(caseworker, {
        "name_first": "Amina", "name_last": "Yusuf", "sex": "female", "age": 7, "consent_for_tracing": True,
        "protection_concerns": ["other"], "protection_concerns_other": SENTINEL, "risk_level": "high"})
    from app.records.attachments import store_attachment
    photo = store_attachment(case, "photos", "photo", FileStorage(io.BytesIO(PNG), filename="amina.png"),
                             caseworker)
    update_case(case, caseworker, {"photos": [photo.id]}, None, action="attach")
    tracing_request = create_tracing_request(
        officer, {"relation_name": "Halima Yusuf", "relation": "mother", "inquiry_date": "2024-03-02",
                  "consent_for_tracing": True},
        [{"name_first": "Aisha", "name_last": "Yusuf", "sex": "female", "age": 6,
          "distinguishing_features": TRACE_SENTINEL},
         {"name_first": "Omar", "name_last": "Yusuf", "sex": "male", "age": 9}])
    outsider = make.user("caseworker")
    db.session.commit()
    return {"caseworker": caseworker, "supervisor": supervisor, "officer": officer, "limited": limited,
            "case": case, "photo": photo, "request": tracing_request, "outsider": outsider}


def login(app, user, locale: str | None = None):
    from tests.conftest import WebClient
    web = WebClient(app.test_client())
    web.login(user.username)
    if locale:
        web.form("/language", {"locale": locale, "next": "/"})
    return web


def audit_rows(action: str, resource_id: str) -> list[AuditEntry]:
    return list(db.session.execute(select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.resource_id == resource_id)).scalars())


def test_case_summary_holds_what_the_reader_may_read_and_is_audited_as_an_export(app, world):
    case = world["case"]
    web = login(app, world["caseworker"])
    response = web.get(f"/cases/{case.id}/summary.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data.startswith(b"%PDF-")
    text = pdf_text(response.data)
    assert case.short_id in text and "Amina" in text and SENTINEL in text
    assert "Case summary" in text and "Protection" in text
    # The photo is in a field the caseworker reads: it is embedded, and the audit says so.
    assert b"/Subtype /Image" in response.data or b"/Subtype/Image" in response.data
    [entry] = audit_rows("case.summary_printed", case.id)
    assert entry.user_id == world["caseworker"].id and entry.detail["photos"] == [world["photo"].id]
    assert entry.detail["format"] == "pdf"


def test_a_section_the_reader_may_not_read_is_absent_from_the_pdf(app, world):
    """S3: the protection section (sentinel) and the photo field's section are not printed
    for a role that may only read the identity section... the photo field lives there, so the
    photo is printed; the sentinel never is."""
    case = world["case"]
    web = login(app, world["limited"])
    response = web.get(f"/cases/{case.id}/summary.pdf")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "Amina" in text and case.short_id in text
    assert SENTINEL not in text and "Protection" not in text and "Risk level" not in text
    assert SENTINEL.encode() not in response.data


def test_photos_are_printed_only_when_their_field_is_readable(app, make, world):
    from app.users.operations import create_role
    role = create_role("consent_reader", "Consent reader", "agency", {"cases:read", "form.case.consent:read"})
    reader = make.user(role, agency=world["caseworker"].agency)
    db.session.commit()
    response = login(app, reader).get(f"/cases/{world['case'].id}/summary.pdf")
    assert response.status_code == 200
    assert b"/Subtype /Image" not in response.data and b"/Subtype/Image" not in response.data
    text = pdf_text(response.data)
    assert "Amina" not in text  # the name fields are not readable: not even in the heading
    [entry] = audit_rows("case.summary_printed", world["case"].id)
    assert entry.detail["photos"] == []


def test_out_of_scope_is_404_and_audited_without_permission_403(app, make, world):
    case, tracing_request = world["case"], world["request"]
    outsider = login(app, world["outsider"])
    assert outsider.get(f"/cases/{case.id}/summary.pdf").status_code == 404
    assert outsider.get(f"/api/v1/cases/{case.id}/summary.pdf").status_code == 404
    denied = audit_rows("out_of_scope", case.id)
    assert len(denied) == 2 and all(entry.outcome == "denied" for entry in denied)
    assert audit_rows("case.summary_printed", case.id) == []
    # A caseworker may not read tracing requests at all: 403, audited.
    assert outsider.get(f"/tracing/requests/{tracing_request.id}/summary.pdf").status_code == 403
    from app.users.operations import create_role
    provider = make.user(create_role("nothing", "Nothing", "all", set()))
    db.session.commit()
    assert login(app, provider).get(f"/cases/{case.id}/summary.pdf").status_code == 403
    assert app.test_client().get(f"/cases/{case.id}/summary.pdf").status_code == 302  # to the login page


def test_tracing_request_summary_lists_each_child_sought_with_readable_sections_only(app, world):
    tracing_request = world["request"]
    web = login(app, world["officer"])
    response = web.get(f"/tracing/requests/{tracing_request.id}/summary.pdf")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    text = pdf_text(response.data)
    assert "Halima Yusuf" in text and "Aisha" in text and "Omar" in text and TRACE_SENTINEL in text
    assert "Child sought 1 of 2" in text and "Child sought 2 of 2" in text
    [entry] = audit_rows("tracing_request.summary_printed", tracing_request.id)
    assert sorted(entry.detail["traces"]) == sorted(trace.id for trace in tracing_request.traces)
    # The limited reader reads the inquirer section only: no child's details, no sentinel.
    limited = login(app, world["limited"]).get(f"/tracing/requests/{tracing_request.id}/summary.pdf")
    text = pdf_text(limited.data)
    assert "Halima Yusuf" in text and TRACE_SENTINEL not in text and "Aisha" not in text


def test_arabic_summary_is_right_to_left_and_keeps_the_arabic_labels(app, world):
    case = world["case"]
    web = login(app, world["caseworker"], locale="ar")
    response = web.get(f"/cases/{case.id}/summary.pdf")
    assert response.status_code == 200
    text = pdf_text(response.data)
    # Field labels come from the form definition in Arabic (the sex field: "الجنس"; risk: "مستوى الخطر").
    assert letters("الجنس") in letters(text) or letters("الجنس")[::-1] in letters(text)
    assert letters("مستوى الخطر") in letters(text) or letters("مستوى الخطر")[::-1] in letters(text)
    assert SENTINEL in text
    # The fonts embedded can draw Arabic: no glyph is missing (.notdef would show as empty boxes).
    reader = PdfReader(io.BytesIO(response.data))
    fonts = {str(font["/BaseFont"]) for page in reader.pages
             for font in (page["/Resources"].get("/Font") or {}).values()
             for font in [font.get_object()]}
    assert any("DejaVu" in name for name in fonts), fonts


def test_french_summary_uses_french_labels(app, world):
    web = login(app, world["caseworker"], locale="fr")
    text = pdf_text(web.get(f"/cases/{world['case'].id}/summary.pdf").data)
    assert "Sexe" in text and "Niveau de risque" in text


def test_api_returns_the_same_pdfs(app, world):
    from tests.test_api_tokens import make_token
    web = login(app, world["caseworker"])
    token = make_token(web)
    headers = {"Authorization": f"Bearer {token}"}
    response = app.test_client().get(f"/api/v1/cases/{world['case'].id}/summary.pdf", headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store" and SENTINEL in pdf_text(response.data)
    officer = login(app, world["officer"])
    response = officer.get(f"/api/v1/tracing-requests/{world['request'].id}/summary.pdf")
    assert response.status_code == 200 and "Halima Yusuf" in pdf_text(response.data)
    assert app.test_client().get(f"/api/v1/cases/{world['case'].id}/summary.pdf").status_code == 401


def test_record_pages_offer_the_print_link(app, world):
    page = login(app, world["caseworker"]).get(f"/cases/{world['case'].id}").get_data(as_text=True)
    assert f'href="/cases/{world["case"].id}/summary.pdf"' in page
    page = login(app, world["officer"]).get(f"/tracing/{world['request'].id}").get_data(as_text=True)
    assert f'href="/tracing/requests/{world["request"].id}/summary.pdf"' in page


def test_user_text_cannot_make_the_renderer_fetch_anything(app, world):
    """A record holding markup prints as text; and the renderer's fetcher refuses every URL
    that is not data: a page naming a local server makes no request to it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from reports.printing import html_to_pdf
    requests = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        case = create_case(world["caseworker"], {"name_first": f'<img src="{url}/name.png">', "sex": "male",
                                                 "age": 5})
        db.session.commit()
        text = pdf_text(login(app, world["caseworker"]).get(f"/cases/{case.id}/summary.pdf").data)
        assert f'<img src="{url}/name.png">' in text.replace("\n", "")
        pdf = html_to_pdf(f'<link rel="stylesheet" href="{url}/x.css"><p>x</p><img src="{url}/x.png">'
                          '<img src="file:///etc/hostname">')
        assert pdf.startswith(b"%PDF-")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert requests == []
