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
    response = api.get("/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and user.full_name in response.get_data(as_text=True)
    # Token requests skip CSRF (a cross-site page cannot set the header) ...
    response = api.post("/language", data={"locale": "fr"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 302
    # ... and a bogus token gets nothing, even alongside a valid session cookie.
    response = web.client.post("/account/tokens", data={"name": "x", "days": "5"},
                               headers={"Authorization": "Bearer cpims_nope"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert db.session.scalar(select(func.count(ApiToken.id))) == 1
    assert web.get("/").status_code == 200


def test_revoked_and_expired_tokens_are_refused(app, login_as):
    web, user = login_as("caseworker")
    token = make_token(web, days=1)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with time_machine.travel(utcnow() + timedelta(days=2), tick=False):
        assert api.get("/", headers=headers).status_code == 401
    row = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalar_one()
    assert web.form(f"/account/tokens/{row.id}/revoke").status_code == 302
    assert api.get("/", headers=headers).status_code == 401


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
