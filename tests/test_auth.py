"""Login, throttling, sessions, timeouts, second factor, passwords (S7-S13)."""
from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth.models import PasswordResetCode, UserSession
from app.auth.operations import create_reset_code
from app.db import utcnow
from app.extensions import db
from tests.conftest import PASSWORD, WebClient


def login_response(web: WebClient, username: str, password: str, address: str = "127.0.0.1"):
    token = web.csrf_token("/login")
    return web.client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                           environ_base={"REMOTE_ADDR": address})


def test_password_is_hashed_with_argon2id(make):
    user = make.user()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize("password, fragment", [
    ("short pass", "at least 12"),
    ("x" * 129, "at most 128"),
    ("password1234", "too common"),
    ("aaaaaaaaaaaa", "too"),
])
def test_weak_passwords_are_refused(make, password, fragment):
    from app.users.operations import ValidationError
    with pytest.raises(ValidationError) as caught:
        make.user(password=password)
    assert fragment in " ".join(caught.value.errors["password"])


def test_no_composition_rules(make):
    # A long lower-case sentence with no digits or symbols is fine.
    assert make.user(password="the river runs past our camp").id


def test_login_and_logout(app, make, client):
    user = make.user()
    db.session.commit()
    assert login_response(client, user.username, PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    client.logout()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_unknown_user_and_wrong_password_get_the_same_answer(make, client):
    user = make.user()
    db.session.commit()
    wrong = login_response(client, user.username, "not the password at all")
    unknown = login_response(client, "nobody-by-that-name", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: r.get_data(as_text=True).replace(r.headers.get("X-Request-ID", ""), "")  # noqa: E731
    assert strip(wrong).split("<main")[1].replace("nobody-by-that-name", user.username) == \
        strip(unknown).split("<main")[1].replace("nobody-by-that-name", user.username)


def test_login_is_throttled_per_account(app, make, client):
    user = make.user()
    db.session.commit()
    limit = app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    for attempt in range(limit):
        assert login_response(client, user.username, f"wrong password {attempt}",
                              address=f"10.0.0.{attempt}").status_code == 401
    # The 11th try is refused even with the right password, from yet another address.
    assert login_response(client, user.username, PASSWORD, address="10.9.9.9").status_code == 429
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "auth.login_throttled")) >= 1


def test_login_is_throttled_per_address(app, make, client):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"], old = 5, app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    try:
        user = make.user()
        db.session.commit()
        for attempt in range(5):
            login_response(client, f"guess{attempt}", "wrong password here", address="10.1.1.1")
        assert login_response(client, user.username, PASSWORD, address="10.1.1.1").status_code == 429
        assert login_response(client, user.username, PASSWORD, address="10.1.1.2").status_code == 302
    finally:
        app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = old


def test_throttling_works_with_redis_down(app, make, client, redis_down):
    user = make.user()
    db.session.commit()
    for attempt in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
        login_response(client, user.username, f"wrong password {attempt}")
    assert login_response(client, user.username, PASSWORD).status_code == 429


def test_login_starts_a_new_session_and_logout_ends_it_server_side(app, make, client):
    user = make.user()
    db.session.commit()
    client.csrf_token("/login")
    with client.session_transaction() as session:
        before = dict(session)
    login_response(client, user.username, PASSWORD)
    with client.session_transaction() as session:
        assert session["sid"] and session.get("csrf_token") != before.get("csrf_token")
        stolen = dict(session)
    client.logout()
    # Replaying the old cookie content does not bring the session back.
    replay = WebClient(app.test_client())
    with replay.session_transaction() as session:
        session.update(stolen)
    response = replay.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_change_ends_every_other_session(app, make):
    user = make.user()
    db.session.commit()
    first, second = WebClient(app.test_client()), WebClient(app.test_client())
    first.login(user.username)
    second.login(user.username)
    new_password = "a brand new sentence for me"
    response = first.form("/account/password", {"current_password": PASSWORD, "new_password": new_password})
    assert response.status_code == 302
    assert first.get("/").status_code == 200  # the changer keeps a fresh session
    assert second.get("/").status_code == 302  # the other browser is logged out
    assert db.session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user.id, UserSession.end_reason == "password_change")) == 2


def test_password_change_with_wrong_current_password_is_refused(login_as):
    web, _user = login_as()
    response = web.form("/account/password", {"current_password": "wrong wrong wrong",
                                              "new_password": "another long sentence here"})
    assert response.status_code == 422
    assert "current password is wrong" in response.get_data(as_text=True)


def test_idle_timeout_and_absolute_lifetime(app, make):
    user = make.user()
    db.session.commit()
    web = WebClient(app.test_client())
    with time_machine.travel(utcnow(), tick=False) as clock:
        web.login(user.username)
        clock.shift(timedelta(minutes=29))
        assert web.get("/").status_code == 200
        clock.shift(timedelta(minutes=31))
        assert web.get("/").status_code == 302  # idle for more than 30 minutes
    web = WebClient(app.test_client())
    with time_machine.travel(utcnow(), tick=False) as clock:
        web.login(user.username)
        for _ in range(30):  # active every 29 minutes, for up to 14.5 hours
            clock.shift(timedelta(minutes=29))
            if web.get("/").status_code != 200:
                break
        else:
            pytest.fail("session outlived its 12 hour lifetime")
        row = db.session.execute(select(UserSession).where(UserSession.user_id == user.id)
                                 .order_by(UserSession.id.desc())).scalars().first()
        assert row.end_reason == "lifetime_exceeded"


def test_deactivated_user_loses_their_session(app, make):
    user = make.user()
    db.session.commit()
    web = WebClient(app.test_client())
    web.login(user.username)
    user.is_active = False
    db.session.commit()
    assert web.get("/").status_code == 302


def test_reset_code_is_single_use_short_lived_and_stored_hashed(app, make, client):
    admin = make.user("administrator")
    user = make.user()
    code = create_reset_code(user, admin)
    db.session.commit()
    stored = db.session.execute(select(PasswordResetCode).where(PasswordResetCode.user_id == user.id)).scalar_one()
    assert code not in stored.code_hash and len(stored.code_hash) == 64
    data = {"username": user.username, "code": code, "new_password": "my new favourite sentence"}
    assert client.form("/password/reset", data).status_code == 302
    client.login(user.username, "my new favourite sentence")
    client.logout()
    again = client.form("/password/reset", {**data, "new_password": "yet another good sentence"})
    assert again.status_code == 422 and "not valid" in again.get_data(as_text=True)
    # An expired code is refused too.
    code2 = create_reset_code(user, admin)
    db.session.commit()
    with time_machine.travel(utcnow() + timedelta(minutes=61), tick=False):
        expired = client.form("/password/reset", {**data, "code": code2})
    assert expired.status_code == 422


def test_reset_code_with_bad_new_password_keeps_the_code(make, client):
    admin = make.user("administrator")
    user = make.user()
    code = create_reset_code(user, admin)
    db.session.commit()
    weak = client.form("/password/reset", {"username": user.username, "code": code, "new_password": "short"})
    assert weak.status_code == 422 and "at least 12" in weak.get_data(as_text=True)
    ok = client.form("/password/reset", {"username": user.username, "code": code,
                                        "new_password": "a sentence that is long enough"})
    assert ok.status_code == 302


def test_totp_second_factor(app, make, client):
    user = make.user()
    secret = pyotp.random_base32()
    user.totp_secret, user.is_totp_enabled = secret, True
    db.session.commit()
    response = login_response(client, user.username, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    assert client.get("/").status_code == 302  # not logged in without the code
    assert client.form("/login/code", {"code": "000000"}, token_from="/login/code").status_code == 401
    code = pyotp.TOTP(secret).now()
    assert client.form("/login/code", {"code": code}, token_from="/login/code").status_code == 302
    assert client.get("/").status_code == 200
    # The same code cannot be used twice.
    client.logout()
    login_response(client, user.username, PASSWORD)
    assert client.form("/login/code", {"code": code}, token_from="/login/code").status_code == 401


def test_totp_required_for_administrators_when_enabled(app, make, client):
    app.config["REQUIRE_TOTP_FOR_ADMINS"] = True
    try:
        admin = make.user("administrator")
        caseworker = make.user("caseworker")
        db.session.commit()
        response = login_response(client, admin.username, PASSWORD)
        assert response.headers["Location"].endswith("/login/enrol")
        assert client.get("/").status_code == 302
        page = client.get("/login/enrol").get_data(as_text=True)
        db.session.expire_all()
        secret = db.session.get(type(admin), admin.id).totp_pending_secret
        assert secret and secret in page
        with client.session_transaction() as session:
            assert secret not in str(dict(session))  # never in the cookie
        assert client.form("/login/enrol", {"code": "123456"}, token_from="/login/enrol").status_code == 422
        ok = client.form("/login/enrol", {"code": pyotp.TOTP(secret).now()}, token_from="/login/enrol")
        assert ok.status_code == 302 and client.get("/").status_code == 200
        # A caseworker is not asked for one.
        other = WebClient(app.test_client())
        assert login_response(other, caseworker.username, PASSWORD).headers["Location"].endswith("/")
    finally:
        app.config["REQUIRE_TOTP_FOR_ADMINS"] = False


def test_must_change_password_after_admin_reset(app, make):
    from app.users.operations import admin_set_password
    user = make.user()
    admin_set_password(user, "temporary sentence given by admin")
    db.session.commit()
    web = WebClient(app.test_client())
    web.login(user.username, "temporary sentence given by admin")
    response = web.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")


def test_state_changes_need_a_csrf_token(make, login_as):
    web, user = login_as()
    assert web.client.post("/logout").status_code == 400
    assert web.client.post("/language", data={"locale": "fr"}).status_code == 400
    assert web.get("/").status_code == 200  # still logged in: the logout was refused
    anonymous = WebClient(web.application.test_client()) if hasattr(web, "application") else None
    del anonymous
    response = web.client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400


def test_login_and_failures_are_audited(make, client):
    user = make.user()
    db.session.commit()
    login_response(client, user.username, "a wrong password for sure")
    login_response(client, user.username, PASSWORD)
    actions = db.session.execute(select(AuditEntry.action, AuditEntry.address).where(
        AuditEntry.user_id == user.id).order_by(AuditEntry.id)).all()
    assert [a for a, _ in actions][-2:] == ["auth.login_failed", "auth.login"]
    assert all(address == "127.0.0.1" for _, address in actions)


def test_turning_the_second_factor_off_needs_the_password(login_as):
    web, user = login_as()
    user.totp_secret, user.is_totp_enabled = pyotp.random_base32(), True
    db.session.commit()
    web.form("/account/second-factor/off", {"password": "not my password at all"}, token_from="/account")
    db.session.expire_all()
    assert db.session.get(type(user), user.id).is_totp_enabled
    web.form("/account/second-factor/off", {"password": PASSWORD}, token_from="/account")
    db.session.expire_all()
    assert not db.session.get(type(user), user.id).is_totp_enabled


def test_inactive_agency_cannot_log_in(make, client):
    agency = make.agency()
    user = make.user(agency=agency)
    agency.is_active = False
    db.session.commit()
    assert login_response(client, user.username, PASSWORD).status_code == 401


def test_parallel_guesses_cannot_outrun_the_throttle(app, make, committed):
    """30 wrong passwords at once: only the allowed 10 are checked, the rest get 429."""
    import threading
    with app.app_context():
        user = make.user()
        db.session.commit()
        username = user.username
    limit = app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    clients = [WebClient(app.test_client()) for _ in range(30)]
    tokens = [c.csrf_token("/login") for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses = []

    def guess(web, token, n):
        barrier.wait()
        response = web.client.post("/login", data={"username": username, "password": f"wrong guess {n}",
                                                    "csrf_token": token},
                                   environ_base={"REMOTE_ADDR": f"10.7.0.{n}"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(c, t, n)) for n, (c, t) in enumerate(zip(clients, tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(401) == limit
    assert statuses.count(429) == 30 - limit
