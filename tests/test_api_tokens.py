"""Personal API tokens: shown once, stored hashed, bearer auth without CSRF, revocable."""
from __future__ import annotations

import re
from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from app.auth.models import ApiToken
from app.db import utcnow
from app.extensions import db

TOKEN_RE = re.compile(r'<code class="secret-once" dir="ltr">(cpims_[^<]+)</code>')


def make_token(web, name="field tablet", days=30) -> str:
    response = web.form("/account/tokens", {"name": name, "days": str(days)})
    assert response.status_code == 201
    match = TOKEN_RE.search(response.get_data(as_text=True))
    assert match
    return match.group(1)


def test_token_is_shown_once_and_stored_hashed(login_as):
    web, user = login_as("caseworker")
    token = make_token(web)
    row = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalar_one()
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert token not in web.get("/account").get_data(as_text=True)


def test_bearer_token_authenticates_without_session_or_csrf(app, login_as):
    web, user = login_as("caseworker")
    token = make_token(web)
    api = app.test_client()
    response = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.get_json()["username"] == user.username
    # Tokens work on the API only, never on pages.
    assert api.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 302
    # A bearer header does not excuse a page request from its CSRF token ...
    response = web.client.post("/account/tokens", data={"name": "x", "days": "5"},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    # ... and a bogus token on the API gets nothing, even alongside a valid session cookie.
    response = web.client.get("/api/v1/me", headers={"Authorization": "Bearer cpims_nope"})
    assert response.status_code == 401
    assert db.session.scalar(select(func.count(ApiToken.id))) == 1
    assert web.get("/").status_code == 200


def test_revoked_and_expired_tokens_are_refused(app, login_as):
    web, user = login_as("caseworker")
    token = make_token(web, days=1)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    with time_machine.travel(utcnow() + timedelta(days=2), tick=False):
        assert api.get("/api/v1/me", headers=headers).status_code == 401
    row = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalar_one()
    assert web.form(f"/account/tokens/{row.id}/revoke").status_code == 302
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def test_token_never_carries_admin_permissions_and_dies_with_password_change(app, login_as):
    web, admin = login_as("administrator")
    token = make_token(web)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    api = app.test_client()
    assert "users:manage" not in api.get("/api/v1/me", headers=headers).get_json()["permissions"]
    assert api.get("/api/v1/users", headers=headers).status_code == 403
    assert api.post("/api/v1/agencies", json={"code": "x1", "name": "X"}, headers=headers).status_code == 403
    from tests.conftest import PASSWORD
    web.form("/account/password", {"current_password": PASSWORD, "new_password": "a wholly new sentence here"})
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def test_token_is_not_written_into_the_page_title(login_as):
    web, _ = login_as("caseworker")
    response = web.form("/account/tokens", {"name": "tablet", "days": "5"})
    title = response.get_data(as_text=True).split("<title>")[1].split("</title>")[0]
    assert "cpims_" not in title and len(title) < 100


def test_another_users_token_cannot_be_revoked(login_as):
    owner, _ = login_as("caseworker")
    make_token(owner)
    other, _ = login_as("caseworker")
    token_id = db.session.execute(select(ApiToken.id)).scalars().first()
    assert other.form(f"/account/tokens/{token_id}/revoke").status_code == 404


def test_token_form_errors(login_as):
    web, _ = login_as("caseworker")
    response = web.form("/account/tokens", {"name": "", "days": "9999"})
    assert response.status_code == 422
