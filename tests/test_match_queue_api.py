"""The match review API (/api/v1/matches): scope, order, comparison (S3, audit), claim,
confirm, reject, defer, undo, 409 on a lost race and 422 on missing reasons; every answer
checked against the OpenAPI document."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.openapi import openapi_document
from matching.models import MatchProposal
from tests.test_api_tokens import make_token
from tests.test_match_queue import team, two_candidates  # noqa: F401  (fixture)
from tests.test_openapi import CheckedApi, Contract

pytestmark = pytest.mark.usefixtures("default_forms")


@pytest.fixture
def contract(app):
    return Contract(openapi_document(app))


def session_api(contract, web) -> CheckedApi:
    return CheckedApi(contract, web.client, {"X-CSRFToken": web.csrf_token("/")})


def token_api(app, contract, web) -> CheckedApi:
    return CheckedApi(contract, app.test_client(), {"Authorization": f"Bearer {make_token(web)}"})


def test_queue_best_first_in_scope_with_filters(app, team, contract, make, login_as):  # noqa: F811
    _trace, right, wrong = two_candidates(team)
    api = token_api(app, contract, team["web"])
    body = api.get("/api/v1/matches")
    expected = [p.id for p in sorted((right, wrong), key=lambda p: -p.probability)]
    assert [item["id"] for item in body["items"]] == expected and body["total"] == 2
    first = body["items"][0]
    assert first["trace_short_id"] and first["case_name"]
    assert [i["id"] for i in api.get("/api/v1/matches?age_min=10&sex=male")["items"]] == [wrong.id]
    assert api.get(f"/api/v1/matches?agency_id={team['agency'].id}&since=2000-01-01")["total"] == 2
    assert api.get("/api/v1/matches?likelihood=certain", expect=422)["errors"]["likelihood"]
    other_web, _ = login_as("tracing_officer", agency=make.agency())
    other = session_api(contract, other_web)
    assert other.get("/api/v1/matches")["items"] == []
    other.get(f"/api/v1/matches/{right.id}", expect=404)
    other.post(f"/api/v1/matches/{right.id}/confirm", {}, expect=404)
    caseworker_web, _ = login_as("caseworker", agency=team["agency"], groups=[team["group"]])
    session_api(contract, caseworker_web).get("/api/v1/matches", expect=403)


def test_comparison_is_audited_and_limited_to_readable_fields(app, team, contract):  # noqa: F811
    from unittest import mock

    from forms.operations import readable_fields
    _trace, right, _wrong = two_candidates(team)
    api = session_api(contract, team["web"])
    body = api.get(f"/api/v1/matches/{right.id}")
    tags = {row["tag"]: row for row in body["rows"]}
    assert tags["given_name"]["trace"][0]["value"] == "Mohamed"
    assert tags["given_name"]["case"][0]["value"] == "Muhammad"
    assert tags["sex"]["mark"] == "exact"
    assert any("Mohamed and Muhammad" in sentence for sentence in body["explanations"])
    assert body["inquirer"]["inquirer"] and body["inquirer"]["family"]
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "match.view", AuditEntry.resource_id == str(right.id))) == 1
    real = readable_fields

    def no_case_names(user, record_type):
        keys = real(user, record_type)
        return keys - {"name_first", "name_last", "mother_name"} if record_type == "case" else keys

    with mock.patch("forms.operations.readable_fields", no_case_names):
        hidden = team["web"].get(f"/api/v1/matches/{right.id}")
    text = hidden.get_data(as_text=True)
    assert hidden.status_code == 200
    assert "Muhammad" not in text and "Hassan" not in text and "Amina Yusuf" not in text
    assert hidden.get_json()["proposal"]["case_name"] is None


def test_claim_confirm_and_the_lost_race(app, team, contract, login_as):  # noqa: F811
    _trace, right, wrong = two_candidates(team)
    api = session_api(contract, team["web"])
    claimed = api.post(f"/api/v1/matches/{right.id}/claim", {})
    assert claimed["claimed_by"] == team["officer"].full_name
    other_web, _ = login_as("tracing_officer", agency=team["agency"], groups=[team["group"]])
    other = session_api(contract, other_web)
    other.post(f"/api/v1/matches/{right.id}/claim", {}, expect=409)
    held = other.post(f"/api/v1/matches/{right.id}/confirm", {"note": "mine"}, expect=409)
    assert "Another reviewer" in held["error"]["message"]
    done = api.post(f"/api/v1/matches/{right.id}/confirm", {"note": "Mother recognised the photo"})
    assert done["status"] == "confirmed"
    lost = other.post(f"/api/v1/matches/{right.id}/confirm", {}, expect=409)
    assert "decided this proposal first" in lost["error"]["message"]
    db.session.expire_all()
    assert db.session.get(MatchProposal, wrong.id).status == "superseded"
    api.post(f"/api/v1/matches/{right.id}/claim", {}, expect=409)
    api.post(f"/api/v1/matches/{right.id}/confirm", {"notes": "typo"}, expect=422)


def test_reject_defer_and_undo(app, team, contract, login_as):  # noqa: F811
    _trace, right, wrong = two_candidates(team)
    api = session_api(contract, team["web"])
    assert api.post(f"/api/v1/matches/{wrong.id}/reject", {}, expect=422)["errors"]["reason"]
    assert api.post(f"/api/v1/matches/{wrong.id}/reject", {"reason": "other"}, expect=422)["errors"]["note"]
    assert api.post(f"/api/v1/matches/{wrong.id}/reject", {"reason": "sibling", "note": "Brother"}
                    )["status"] == "rejected"
    assert api.post(f"/api/v1/matches/{right.id}/defer", {"note": ""}, expect=422)["errors"]["note"]
    deferred = api.post(f"/api/v1/matches/{right.id}/defer", {"note": "Waiting for a photo"})
    assert deferred["status"] == "pending" and deferred["claimed_by"] is None
    api.post(f"/api/v1/matches/{wrong.id}/undo", {"reason": "no"}, expect=403)
    supervisor_web, _ = login_as("supervisor", agency=team["agency"], groups=[team["group"]])
    supervisor = session_api(contract, supervisor_web)
    assert supervisor.post(f"/api/v1/matches/{wrong.id}/undo", {"reason": ""}, expect=422)["errors"]["reason"]
    assert supervisor.post(f"/api/v1/matches/{wrong.id}/undo", {"reason": "Not a sibling"})["status"] == "pending"
    supervisor.post(f"/api/v1/matches/{wrong.id}/undo", {"reason": "again"}, expect=409)
    decisions = supervisor.get(f"/api/v1/matches/{wrong.id}")["decisions"]
    assert [d["action"] for d in decisions] == ["reject", "undo"]
    # A browser session's write without its CSRF header is refused.
    CheckedApi(contract, team["web"].client, {}).post(f"/api/v1/matches/{right.id}/defer", {"note": "x"},
                                                      expect=400)
