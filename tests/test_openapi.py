"""The OpenAPI document (GET /api/openapi.json): a valid OpenAPI 3.1 document, for logged-in
callers, that lists every /api/v1 route of the URL map, and whose response schemas match
what the endpoints really answer: one example of every documented success response (and
of each kind of error) is checked against its schema, and so is each request body sent."""
from __future__ import annotations

import io
import json
import re
import uuid

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from werkzeug.datastructures import FileStorage

from app.extensions import db
from app.openapi import build_document, openapi_document
from tests.test_api_tokens import make_token

JSON = "application/json"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CHILD = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9, "consent_for_tracing": True}
INQUIRER = {"relation_name": "Halima Yusuf", "relation": "mother", "inquiry_date": "2024-03-02",
            "consent_for_tracing": True}
AISHA = {"name_first": "Aisha", "name_last": "Yusuf", "sex": "female", "age": 7}


@pytest.fixture(autouse=True)
def default_forms(app):
    from forms.operations import load_default_configuration
    load_default_configuration()
    db.session.commit()


@pytest.fixture
def document(app):
    return openapi_document(app)


def api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield path, method.lower(), rule.endpoint


# --- the document itself ------------------------------------------------------------------------------

def test_document_is_valid_openapi_3_1(app, document):
    validate_spec(document)
    assert document["openapi"] == "3.1.0"
    assert json.loads(json.dumps(document)) == document  # plain JSON, no lazy strings or objects
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "cpims_...",
                                     "description": "A personal API token."}
    assert schemes["cookieAuth"]["in"] == "cookie" and schemes["cookieAuth"]["name"] == app.config[
        "SESSION_COOKIE_NAME"]
    assert schemes["csrfToken"] == {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                                    "description": "The page's CSRF token; required on writes with a session."}


def test_every_api_v1_route_is_documented_and_nothing_else(app, document):
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    routes = {(path, method) for path, method, _ in api_rules(app)}
    assert routes and routes == documented
    undocumented = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                          for method, op in item.items() if op.get("x-undocumented"))
    assert undocumented == [], "describe these routes with app.openapi.api_doc"
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in document["paths"].items():
        for method, op in item.items():
            names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert names == re.findall(r"{([^}]+)}", path), (method, path)
            assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
            if method in ("post", "patch"):  # every write takes a JSON body and may miss its CSRF header
                assert "400" in op["responses"] and op["requestBody"]["content"][JSON]["schema"], (method, path)


def test_security_token_or_session_and_administration_by_session_only(document):
    cases = document["paths"]["/api/v1/cases"]
    assert cases["get"]["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    assert cases["post"]["security"] == [{"bearerAuth": []}, {"cookieAuth": [], "csrfToken": []}]
    users = document["paths"]["/api/v1/users"]
    assert users["get"]["security"] == [{"cookieAuth": []}]
    assert users["post"]["security"] == [{"cookieAuth": [], "csrfToken": []}]
    # Searches are POSTed: no personal text in a URL.
    for path in ("/api/v1/cases/search", "/api/v1/tracing-requests/search", "/api/v1/traces/search"):
        assert set(document["paths"][path]) == {"post"}
        assert "q" in _resolve(document, document["paths"][path]["post"]["requestBody"]["content"][JSON][
            "schema"])["required"]


def test_record_schemas_refuse_unknown_input_and_describe_conflicts(document):
    schemas = document["components"]["schemas"]
    for name in ("CaseCreate", "RecordUpdate", "TracingRequestCreate", "TraceCreate", "NoteCreate", "CaseSearch"):
        assert schemas[name]["additionalProperties"] is False, name
    assert set(schemas["RecordUpdate"]["required"]) == {"version", "data"}
    assert set(schemas["RecordConflict"]["properties"]) == {"error", "current_version", "fields", "current",
                                                           "yours"}
    patch = document["paths"]["/api/v1/cases/{record_id}"]["patch"]
    assert patch["responses"]["409"]["content"][JSON]["schema"] == {"$ref": "#/components/schemas/RecordConflict"}
    assert {p["name"] for p in document["paths"]["/api/v1/cases"]["get"]["parameters"]} == {
        "page", "per_page", "status", "stage", "sex", "age_min", "age_max", "location", "flagged", "consent",
        "owner", "sort"}


def test_served_to_logged_in_callers_only(app, login_as, document):
    assert app.test_client().get("/api/openapi.json").status_code == 401
    web, _ = login_as("caseworker")
    served = web.get("/api/openapi.json")
    assert served.status_code == 200 and served.mimetype == JSON and served.get_json() == document
    token = make_token(web)
    by_token = app.test_client().get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 200
    assert build_document(app) == document  # built the same way each time


# --- the contract: what endpoints answer matches the document -----------------------------------------

def _resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        node = document
        for part in parts:
            node = node[part]
    return node


class Contract:
    """Checks each call against the document and remembers which (path, method, status) it saw."""

    def __init__(self, document: dict):
        self.document = document
        self.templates = []
        for template in document["paths"]:
            pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
            self.templates.append((template.count("{"), template, re.compile(pattern)))
        self.templates.sort()
        self.seen: set[tuple[str, str, str]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        path = path.split("?")[0]
        for _, template, pattern in self.templates:
            item = self.document["paths"][template]
            if pattern.match(path) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path} is not in the document")

    def validate(self, instance, schema: dict, what: str) -> None:
        validator = Draft202012Validator({**schema, "components": self.document["components"]})
        problems = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not problems, f"{what}: " + "; ".join(
            f"{'/'.join(map(str, p.absolute_path))}: {p.message}" for p in problems[:5])

    def check(self, method: str, path: str, response, body=None):
        template, op = self.operation(method, path)
        status = str(response.status_code)
        what = f"{method} {template} -> {status}"
        assert status in op["responses"], f"{what} is not documented: {response.get_data(as_text=True)[:300]}"
        if body is not None and response.status_code < 300 and "requestBody" in op:
            self.validate(body, op["requestBody"]["content"][JSON]["schema"], f"{what} request body")
        documented = _resolve(self.document, op["responses"][status])
        content = documented.get("content", {})
        if JSON in content:
            assert response.mimetype == JSON, what
            self.validate(response.get_json(), content[JSON]["schema"], what)
        else:
            assert response.mimetype in content, f"{what}: {response.mimetype} not documented"
        for header in documented.get("headers", {}):
            assert header in response.headers, f"{what}: no {header} header"
        self.seen.add((template, method.lower(), status))
        return response


class CheckedApi:
    """An API caller whose every answer is checked against the document."""

    def __init__(self, contract: Contract, client, headers: dict):
        self.contract, self.client, self.headers = contract, client, headers

    def get(self, path, expect: int = 200):
        response = self.client.get(path, headers=self.headers)
        return self._checked("GET", path, response, None, expect)

    def post(self, path, body=None, expect: int = 200):
        response = self.client.post(path, json=body, headers=self.headers)
        return self._checked("POST", path, response, body, expect)

    def patch(self, path, body=None, expect: int = 200):
        response = self.client.patch(path, json=body, headers=self.headers)
        return self._checked("PATCH", path, response, body, expect)

    def _checked(self, method, path, response, body, expect):
        assert response.status_code == expect, (method, path, response.status_code,
                                                response.get_data(as_text=True)[:500])
        self.contract.check(method, path, response, body)
        if response.mimetype == JSON:
            return response.get_json()
        data = response.data
        response.close()
        return data


def _session(contract, web) -> CheckedApi:
    return CheckedApi(contract, web.client, {"X-CSRFToken": web.csrf_token("/")})


def _attach(record, field_key: str, kind: str, user) -> str:
    from app.records.attachments import store_attachment
    item = store_attachment(record, field_key, kind, FileStorage(io.BytesIO(PNG), filename="p.png"), user)
    return item.id


def test_every_documented_response_matches_what_the_endpoints_answer(app, login_as, make, document):
    from forms.operations import create_field
    from tracing.models import TracingRequest
    contract = Contract(document)
    # The default tracing forms have no file fields: add one to each so their downloads can be shown.
    create_field("tracing_request", "inquirer", {"key": "inquirer_documents", "type": "document",
                                                 "labels": {"en": "Documents"}})
    create_field("trace", "child_sought", {"key": "trace_photos", "type": "photo", "labels": {"en": "Photos"}})
    agency = make.agency()
    group = make.group(agency=agency)
    db.session.commit()

    # Administration and the caller (browser session: tokens carry no administrative power).
    admin_web, admin = login_as("administrator")
    admin_api = _session(contract, admin_web)
    me = admin_api.get("/api/v1/me")
    assert me["username"] == admin.username
    code = uuid.uuid4().hex[:8]
    new_agency = admin_api.post("/api/v1/agencies", {"code": f"a{code}", "name": "Relief"}, expect=201)
    admin_api.get(f"/api/v1/agencies/{new_agency['id']}")
    admin_api.patch(f"/api/v1/agencies/{new_agency['id']}", {"name": "Relief Now"})
    admin_api.get("/api/v1/agencies?per_page=2")
    new_group = admin_api.post("/api/v1/groups", {"code": f"g{code}", "name": "North", "agency_id": None},
                               expect=201)
    admin_api.get(f"/api/v1/groups/{new_group['id']}")
    admin_api.patch(f"/api/v1/groups/{new_group['id']}", {"agency_id": new_agency["id"]})
    admin_api.get("/api/v1/groups")
    permissions = admin_api.get("/api/v1/permissions")["items"]
    assert any(p["name"] == "cases:read" for p in permissions)
    new_role = admin_api.post("/api/v1/roles", {"code": f"r{code}", "name": "Reader", "scope": "own",
                                                "permissions": ["cases:read"]}, expect=201)
    admin_api.get(f"/api/v1/roles/{new_role['id']}")
    admin_api.patch(f"/api/v1/roles/{new_role['id']}", {"description": "Reads cases"})
    admin_api.get("/api/v1/roles")
    new_user = admin_api.post("/api/v1/users", {"username": f"u{code}", "full_name": "Nadia Idris",
                                                "agency_id": new_agency["id"], "role_id": new_role["id"],
                                                "group_ids": [new_group["id"]]}, expect=201)
    assert new_user["temporary_password"]
    admin_api.get(f"/api/v1/users/{new_user['id']}")
    admin_api.patch(f"/api/v1/users/{new_user['id']}", {"email": "nadia@example.org"})
    admin_api.get("/api/v1/users?page=1&per_page=5")
    admin_api.post("/api/v1/agencies", {"code": ""}, expect=422)
    admin_api.get("/api/v1/cases", expect=403)

    # Cases, through a personal API token (no CSRF token needed).
    worker_web, worker = login_as("caseworker", agency=agency, groups=[group])
    worker_api = CheckedApi(contract, app.test_client(), {"Authorization": f"Bearer {make_token(worker_web)}"})
    case = worker_api.post("/api/v1/cases", {"data": CHILD, "draft": False}, expect=201)
    path = f"/api/v1/cases/{case['id']}"
    worker_api.get(path)
    worker_api.patch(path, {"version": 1, "data": {"age": 10}})
    worker_api.patch(path, {"version": 1, "data": {"age": 11}}, expect=409)
    worker_api.patch(path, {"version": 2, "data": {"sex": "dragon"}}, expect=422)
    worker_api.get("/api/v1/cases?status=open&sort=name&flagged=false&consent=true&owner=me&age_min=1")
    worker_api.post("/api/v1/cases/search", {"q": "Mohamed Hasan", "limit": 5})
    worker_api.get(f"{path}/history")
    worker_api.post(f"{path}/notes", {"subject": "Visit", "body": "Met the child."}, expect=201)
    worker_api.get(f"{path}/notes")
    flag = worker_api.post(f"{path}/flags", {"reason": "Possible duplicate"}, expect=201)
    worker_api.get(f"{path}/flags")
    worker_api.post(f"{path}/close", {"reason": "Reunified", "version": 2})
    worker_api.post(f"{path}/reopen", {"reason": "New concern"})
    worker_api.post(f"{path}/reopen", {"reason": "again"}, expect=422)
    worker_api.post(f"{path}/close", {"reason": "stale", "version": 1}, expect=409)
    worker_api.post(f"{path}/flags/{flag['id']}/resolve", {"resolution": "x"}, expect=403)
    worker_api.get(f"/api/v1/cases/{uuid.uuid4()}", expect=404)
    from cases.models import Case
    stored = db.session.get(Case, case["id"])
    file_id = _attach(stored, "photos", "photo", worker)
    from cases.operations import update_case
    update_case(stored, worker, {"photos": [file_id]}, None, action="attach")
    db.session.commit()
    assert worker_api.get(f"{path}/files/{file_id}") == PNG
    worker_api.get(f"{path}/files/{uuid.uuid4()}", expect=404)
    # The browser session: writes need the CSRF header.
    CheckedApi(contract, worker_web.client, {}).post(f"{path}/notes", {"body": "no token"}, expect=400)
    supervisor_web, _ = login_as("supervisor", agency=agency, groups=[group])
    supervisor_api = _session(contract, supervisor_web)
    supervisor_api.post(f"{path}/flags/{flag['id']}/resolve", {"resolution": "Checked"})

    # Tracing requests and traces.
    officer_web, officer = login_as("tracing_officer", agency=agency, groups=[group])
    officer_api = _session(contract, officer_web)
    record = officer_api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": [AISHA]}, expect=201)
    request_path = f"/api/v1/tracing-requests/{record['id']}"
    officer_api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": [{"sex": "x"}]}, expect=422)
    officer_api.get(request_path)
    officer_api.patch(request_path, {"version": 1, "data": {"relation_name": "Halima Y."}})
    officer_api.patch(request_path, {"version": 1, "data": {"relation_name": "H."}}, expect=409)
    officer_api.get("/api/v1/tracing-requests?consent=true&sort=inquiry_date")
    officer_api.post("/api/v1/tracing-requests/search", {"q": "Halima", "owner": "me"})
    trace = officer_api.post(f"{request_path}/traces", {"data": {"name_first": "Omar", "sex": "male"}}, expect=201)
    trace_path = f"/api/v1/traces/{trace['id']}"
    officer_api.get(trace_path)
    officer_api.patch(trace_path, {"version": 1, "data": {"age": 10}})
    officer_api.patch(trace_path, {"version": 1, "data": {"age": 11}}, expect=409)
    officer_api.post(f"{trace_path}/status", {"tracing_status": "in_progress", "version": 2})
    officer_api.post(f"{trace_path}/status", {"tracing_status": "reunified"}, expect=422)
    officer_api.get("/api/v1/traces?tracing_status=open&sex=male&sort=age")
    officer_api.post("/api/v1/traces/search", {"q": "Omar", "tracing_status": "open"})
    stored_request = db.session.get(TracingRequest, record["id"])
    from tracing.models import Trace
    from tracing.operations import update_trace, update_tracing_request
    request_file = _attach(stored_request, "inquirer_documents", "document", officer)
    update_tracing_request(stored_request, officer, {"inquirer_documents": [request_file]}, None, action="attach")
    stored_trace = db.session.get(Trace, trace["id"])
    trace_file = _attach(stored_trace, "trace_photos", "photo", officer)
    update_trace(stored_trace, officer, {"trace_photos": [trace_file]}, None, action="attach")
    db.session.commit()
    for base, file_id in ((request_path, request_file), (trace_path, trace_file)):
        officer_api.get(f"{base}/history")
        officer_api.post(f"{base}/notes", {"body": "Called the inquirer."}, expect=201)
        officer_api.get(f"{base}/notes")
        flag = officer_api.post(f"{base}/flags", {"reason": "Urgent"}, expect=201)
        officer_api.get(f"{base}/flags")
        supervisor_api.post(f"{base}/flags/{flag['id']}/resolve", {"resolution": "Handled"})
        assert officer_api.get(f"{base}/files/{file_id}") == PNG
    officer_api.post(f"{request_path}/close", {"reason": "Family found"})
    officer_api.post(f"{request_path}/reopen", {"reason": "Not them"})
    CheckedApi(contract, app.test_client(), {}).get("/api/v1/traces", expect=401)

    # The match review queue (matching.api): the child sought above is proposed against the case.
    officer_api.post("/api/v1/tracing-requests", {"data": INQUIRER, "traces": [
        {"name_first": "Mohamed", "name_last": "Hasan", "sex": "male", "age": 9}]}, expect=201)
    from app.jobs.operations import dispatch_committed_jobs
    dispatch_committed_jobs()
    match_path = f"/api/v1/matches/{officer_api.get('/api/v1/matches')['items'][0]['id']}"
    officer_api.get(match_path)
    officer_api.post(f"{match_path}/claim", {})
    officer_api.post(f"{match_path}/defer", {"note": "Waiting for a photo"})
    officer_api.post(f"{match_path}/reject", {"reason": "sibling"})
    supervisor_api.post(f"{match_path}/undo", {"reason": "Checked again"})
    officer_api.post(f"{match_path}/confirm", {})
    # After confirmation: verification, then reunification (matching.api).
    officer_api.post(f"{match_path}/reunification", {"reunified_on": "2020-01-01", "place": "Camp",
                                                     "with_whom": "Mother", "follow_up_due": "2020-02-01"},
                     expect=409)
    officer_api.post(f"{match_path}/verification", {"methods": ["documents"], "outcome": "verified"},
                     expect=201)
    officer_api.post(f"{match_path}/reunification", {"reunified_on": "2020-01-01", "place": "Camp",
                                                     "with_whom": "Mother", "follow_up_due": "2020-02-01"},
                     expect=201)
    # Notifications (app.notifications.api): the case's owner was told of the confirmation.
    inbox = worker_api.get("/api/v1/notifications?unread=1")
    told = [item for item in inbox["items"] if item["kind"] == "match_confirmed"]
    assert told and told[0]["record_id"] == case["id"]
    worker_api.post(f"/api/v1/notifications/{told[0]['id']}/read", {})
    worker_api.post("/api/v1/notifications/read-all", {})
    # Tasks (followups.api).
    worker_api.get("/api/v1/tasks?due=soon")
    # Case approvals and reassignment (cases.api).
    admin_api.get("/api/v1/approval-types")
    admin_api.patch("/api/v1/approval-types/closure", {"is_required": True})
    approval = worker_api.post(f"{path}/approvals", {"approval_type": "closure", "note": "Reunified"}, expect=201)
    worker_api.post(f"{path}/approvals", {"approval_type": "closure", "note": "Again"}, expect=409)
    worker_api.get(f"{path}/approvals")
    supervisor_api.get("/api/v1/approvals?status=pending&type=closure")
    supervisor_api.post(f"/api/v1/approvals/{approval['id']}/reject", {"comment": "Not yet"})
    approval = worker_api.post(f"{path}/approvals", {"approval_type": "closure", "note": "Reunified"}, expect=201)
    worker_api.post(f"/api/v1/approvals/{approval['id']}/cancel", {})
    approval = worker_api.post(f"{path}/approvals", {"approval_type": "closure", "note": "Reunified"}, expect=201)
    supervisor_api.post("/api/v1/cases/assign", {"case_ids": [case["id"]], "owner_id": worker.id})
    supervisor_api.post(f"/api/v1/approvals/{approval['id']}/approve", {})
    # Reports (reports.api): dashboard numbers, the team's workload, printable summaries.
    supervisor_api.get("/api/v1/dashboards/cases?status=open")
    supervisor_api.get("/api/v1/dashboards/cases?status=lost", expect=422)
    supervisor_api.get("/api/v1/dashboards/tracing")
    supervisor_api.get("/api/v1/dashboards/team")
    assert worker_api.get(f"{path}/summary.pdf").startswith(b"%PDF-")
    assert officer_api.get(f"{request_path}/summary.pdf").startswith(b"%PDF-")
    # Referrals and transfers (workflows.api): a new child with consent to share with services.
    service = make.agency()
    provider_web, _provider = login_as("service_provider", agency=service)
    provider_api = _session(contract, provider_web)
    shared = worker_api.post("/api/v1/cases", {"data": {**CHILD, "consent_for_referral": True}}, expect=201)
    referral = worker_api.post(f"/api/v1/cases/{shared['id']}/referrals", {
        "service_type": "legal", "recipient_agency_id": service.id, "sections": ["basic_identity"],
        "reason": "Documents"}, expect=201)
    supervisor_api.get("/api/v1/referrals?box=approval")
    supervisor_api.post(f"/api/v1/referrals/{referral['id']}/approve", {})
    provider_api.get("/api/v1/referrals")
    provider_api.get(f"/api/v1/referrals/{referral['id']}")
    provider_api.post(f"/api/v1/referrals/{referral['id']}/accept", {})
    provider_api.post(f"/api/v1/referrals/{referral['id']}/done", {"note": "Done"})
    refused = worker_api.post(f"/api/v1/cases/{shared['id']}/referrals", {
        "service_type": "health", "recipient_agency_id": service.id, "sections": ["basic_identity"],
        "reason": "Clinic"}, expect=201)
    supervisor_api.post(f"/api/v1/referrals/{refused['id']}/reject-approval", {"comment": "In-house clinic"})
    declined = worker_api.post(f"/api/v1/cases/{shared['id']}/referrals", {
        "service_type": "health", "recipient_agency_id": service.id, "sections": ["basic_identity"],
        "reason": "Clinic"}, expect=201)
    supervisor_api.post(f"/api/v1/referrals/{declined['id']}/approve", {})
    provider_api.post(f"/api/v1/referrals/{declined['id']}/reject", {"reason": "Full"})
    revoked = worker_api.post(f"/api/v1/cases/{shared['id']}/referrals", {
        "service_type": "health", "recipient_agency_id": service.id, "sections": ["basic_identity"],
        "reason": "Clinic"}, expect=201)
    worker_api.post(f"/api/v1/referrals/{revoked['id']}/revoke", {"reason": "Moved"})
    receiver_web, receiver = login_as("caseworker", agency=service)
    receiver_api = _session(contract, receiver_web)
    cancelled = worker_api.post(f"/api/v1/cases/{shared['id']}/transfers", {
        "to_agency_id": service.id, "to_user_id": receiver.id, "reason": "Moved"}, expect=201)
    worker_api.post(f"/api/v1/transfers/{cancelled['id']}/cancel", {})
    turned_down = worker_api.post(f"/api/v1/cases/{shared['id']}/transfers", {
        "to_agency_id": service.id, "reason": "Moved"}, expect=201)
    receiver_api.post(f"/api/v1/transfers/{turned_down['id']}/reject", {"reason": "No capacity"})
    transfer = worker_api.post(f"/api/v1/cases/{shared['id']}/transfers", {
        "to_agency_id": service.id, "to_user_id": receiver.id, "reason": "Moved"}, expect=201)
    receiver_api.get("/api/v1/transfers")
    receiver_api.get(f"/api/v1/transfers/{transfer['id']}")
    receiver_api.post(f"/api/v1/transfers/{transfer['id']}/accept", {})
    # Every documented success answer was seen and matched; and every kind of error too.
    wanted = {(template, method, status) for template, item in document["paths"].items()
              for method, op in item.items() for status in op["responses"] if status.startswith("2")}
    missing = sorted(wanted - contract.seen)
    assert missing == [], missing
    errors = {status for _, _, status in contract.seen if not status.startswith("2")}
    assert errors == {"400", "401", "403", "404", "409", "422"}
