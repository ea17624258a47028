"""The notification inbox: own notifications only, unread count, mark read, no open redirect,
e-mail through a real SMTP sink (and none when unconfigured), match confirmations."""
from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import N_
from app.jobs.models import JobRecord
from app.jobs.operations import dispatch_committed_jobs
from app.notifications.models import Notification
from app.notifications.operations import is_safe_url, notify, unread_count

MESSAGE = N_("Referral of case %(case)s awaits your approval")


def _notify(recipients, actor=None, url="/cases", case="7kq2m9x"):
    rows = notify(recipients, "approval_requested", MESSAGE, {"case": case}, actor=actor, url=url)
    db.session.commit()
    return rows


# --- notify() ----------------------------------------------------------------------------------------

def test_notify_skips_duplicates_the_actor_and_inactive_users(make):
    agency = make.agency()
    a, b, actor = (make.user("caseworker", agency=agency) for _ in range(3))
    gone = make.user("caseworker", agency=agency)
    gone.is_active = False
    rows = _notify([a, b, a, actor, gone, None], actor=actor)
    assert sorted(row.user_id for row in rows) == sorted([a.id, b.id])
    assert all(row.actor_id == actor.id and row.params == {"case": "7kq2m9x"} for row in rows)
    assert unread_count(a) == 1 and unread_count(actor) == 0 and unread_count(gone) == 0


def test_notify_keeps_only_same_site_links(make):
    user = make.user()
    for bad in ("https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                "cases/1", "/\tevil"):
        assert not is_safe_url(bad), bad
        assert _notify([user], url=bad)[0].url is None
    assert is_safe_url("/cases/abc?tab=plan")
    assert _notify([user], url="/cases/abc")[0].url == "/cases/abc"


# A message already in the French catalogue, to see the translation happen where it is shown.
SIMILAR = N_("%(a)s and %(b)s are similar")


def test_the_message_is_stored_untranslated_and_shown_in_the_readers_language(make, login_as):
    web, reader = login_as("caseworker", locale="fr")
    row = notify([reader], "test", SIMILAR, {"a": "x1", "b": "y2"})[0]
    db.session.commit()
    assert row.message == SIMILAR
    assert "x1 et y2 se ressemblent" in web.get("/notifications").get_data(as_text=True)
    assert web.get("/api/v1/notifications").get_json()["items"][0]["text"] == "x1 et y2 se ressemblent"


# --- the inbox ---------------------------------------------------------------------------------------

def test_a_user_only_ever_sees_their_own_notifications(make, login_as):
    web, me = login_as("caseworker")
    other = make.user("caseworker")
    mine = _notify([me], case="mine001")[0]
    theirs = _notify([other], case="their01")[0]
    page = web.get("/notifications").get_data(as_text=True)
    assert "mine001" in page and "their01" not in page
    # Someone else's notification looks missing, whatever the way in; and stays unread.
    assert web.get(f"/notifications/{theirs.id}/open").status_code == 404
    assert web.form(f"/notifications/{theirs.id}/read").status_code == 404
    web.form("/notifications/read-all")
    api = web.get("/api/v1/notifications").get_json()
    assert [item["id"] for item in api["items"]] == [mine.id]
    token = web.csrf_token("/")
    assert web.post(f"/api/v1/notifications/{theirs.id}/read", json={},
                    headers={"X-CSRFToken": token}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Notification, theirs.id).read_at is None
    assert db.session.get(Notification, mine.id).read_at is not None


def test_unread_count_in_the_header_and_marking_read(make, login_as):
    web, me = login_as("caseworker")
    first, second, third = (_notify([me], case=f"case00{n}")[0] for n in range(3))
    home = web.get("/").get_data(as_text=True)
    assert 'data-unread-count="3"' in home
    inbox = web.get("/notifications").get_data(as_text=True)
    assert inbox.count('class="unread"') == 3
    assert web.form(f"/notifications/{first.id}/read").status_code == 302
    assert 'data-unread-count="2"' in web.get("/").get_data(as_text=True)
    unread = web.get("/notifications?unread=1").get_data(as_text=True)
    assert "case000" not in unread and "case001" in unread
    assert web.form("/notifications/read-all").status_code == 302
    home = web.get("/").get_data(as_text=True)
    assert "data-unread-count" not in home and 'href="/notifications"' in home
    assert unread_count(me) == 0


def test_marking_read_needs_the_csrf_token(make, login_as):
    web, me = login_as("caseworker")
    row = _notify([me])[0]
    assert web.post(f"/notifications/{row.id}/read").status_code == 400
    assert web.post("/notifications/read-all").status_code == 400
    assert unread_count(me) == 1


def test_opening_marks_read_and_goes_to_the_page_never_elsewhere(make, login_as):
    web, me = login_as("caseworker")
    row = _notify([me], url="/cases")[0]
    opened = web.get(f"/notifications/{row.id}/open")
    assert opened.status_code == 302 and opened.headers["Location"] == "/cases"
    db.session.expire_all()
    assert db.session.get(Notification, row.id).read_at is not None
    # A link that is not same-site (stored by mistake or by an attacker) never leaves the site.
    forged = Notification(user_id=me.id, kind="x", message=MESSAGE, params={"case": "x"},
                          url="//evil.example/phish")
    db.session.add(forged)
    db.session.commit()
    opened = web.get(f"/notifications/{forged.id}/open")
    assert opened.status_code == 302 and opened.headers["Location"] == "/notifications"


def test_the_inbox_is_for_logged_in_users(client):
    assert client.get("/notifications").status_code == 302
    assert client.get("/api/v1/notifications").status_code == 401


def test_api_lists_unread_and_marks_read(make, login_as):
    web, me = login_as("caseworker")
    old, new = _notify([me], case="old0001")[0], _notify([me], case="new0001")[0]
    headers = {"X-CSRFToken": web.csrf_token("/")}
    body = web.get("/api/v1/notifications").get_json()
    assert [item["id"] for item in body["items"]] == [new.id, old.id]  # newest first
    assert body["items"][0]["text"] == "Referral of case new0001 awaits your approval"
    assert body["items"][0]["params"] == {"case": "new0001"} and body["items"][0]["read_at"] is None
    read = web.post(f"/api/v1/notifications/{old.id}/read", json={}, headers=headers)
    assert read.status_code == 200 and read.get_json()["read_at"]
    assert [i["id"] for i in web.get("/api/v1/notifications?unread=1").get_json()["items"]] == [new.id]
    assert web.get("/api/v1/notifications?unread=yes").status_code == 422
    assert web.post("/api/v1/notifications/read-all", json={"x": 1}, headers=headers).status_code == 422
    assert web.post("/api/v1/notifications/read-all", json={}, headers=headers).get_json() == {"marked": 1}
    assert web.get("/api/v1/notifications?unread=1").get_json()["total"] == 0


# --- e-mail --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(app):
    """A real SMTP server on a free local port; yields the list of received messages."""
    from aiosmtpd.controller import Controller

    received: list = []
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                received.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    old = {key: app.config.get(key) for key in ("MAIL_SERVER", "MAIL_PORT", "MAIL_FROM", "BASE_URL",
                                                "MAIL_USE_TLS", "MAIL_USERNAME")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_FROM="cpims@example.org",
                      BASE_URL="https://cpims.example.org/", MAIL_USE_TLS=False, MAIL_USERNAME=None)
    try:
        yield received
    finally:
        controller.stop()
        app.config.update(old)


def _email_jobs() -> int:
    return db.session.execute(select(func.count()).select_from(JobRecord).where(
        JobRecord.task == "notifications.send_email")).scalar_one()


def test_email_goes_through_a_real_smtp_server_in_the_readers_language(make, smtp_sink):
    import email
    agency = make.agency()
    french = make.user("caseworker", agency=agency, locale="fr", full_name="Nadia Idris")
    french.email = "nadia@example.org"
    no_address = make.user("caseworker", agency=agency)
    rows = notify([french, no_address], "test", SIMILAR, {"a": "x1", "b": "y2"}, url="/cases")
    db.session.commit()
    assert _email_jobs() == 1  # one per notification whose recipient has an address; ids only
    job = db.session.execute(select(JobRecord).where(JobRecord.task == "notifications.send_email")).scalar_one()
    assert job.args == {"notification_id": rows[0].id}
    dispatch_committed_jobs()  # no REDIS_URL: the job runs in-process, after the commit
    assert len(smtp_sink) == 1
    envelope = smtp_sink[0]
    assert envelope.rcpt_tos == ["nadia@example.org"] and envelope.mail_from == "cpims@example.org"
    message = email.message_from_bytes(envelope.content)
    body = message.get_payload(decode=True).decode()
    assert message["Content-Language"] == "fr"
    assert "x1 et y2 se ressemblent" in body and "x1 et y2 se ressemblent" in str(message["Subject"])
    assert f"https://cpims.example.org/notifications/{rows[0].id}/open" in body
    assert "Nadia" not in body and "Idris" not in body and "Nadia" not in str(message["Subject"])
    db.session.expire_all()
    assert db.session.get(Notification, rows[0].id).emailed_at is not None
    # Run again (a retry after a later failure): never sent twice.
    from app.notifications.tasks import send_email
    send_email(rows[0].id)
    assert len(smtp_sink) == 1


def test_an_unreachable_smtp_server_is_retried_by_the_jobs_framework(app, make, smtp_sink):
    user = make.user()
    user.email = "someone@example.org"
    app.config["MAIL_PORT"] = _free_port()  # nothing listens there
    row = _notify([user])[0]
    dispatch_committed_jobs()
    job = db.session.execute(select(JobRecord).where(JobRecord.task == "notifications.send_email")).scalar_one()
    assert job.status == "pending" and job.attempts == 1 and job.last_error  # waits for a retry
    assert db.session.get(Notification, row.id).emailed_at is None and smtp_sink == []


def test_no_email_job_when_mail_is_not_configured(app, make):
    assert not app.config.get("MAIL_SERVER")
    user = make.user()
    user.email = "someone@example.org"
    _notify([user])
    assert _email_jobs() == 0


# --- match confirmations (issue #6) ---------------------------------------------------------------------

def test_confirming_a_match_notifies_both_record_owners_and_undo_too(make, default_forms):
    from matching import operations as matching_ops
    from tests.test_matching_engine import proposals, register_child, search_for_child
    agency = make.agency()
    group = make.group(agency=agency)
    officer = make.user("tracing_officer", agency=agency, groups=[group])
    reviewer = make.user("tracing_officer", agency=agency, groups=[group])
    caseworker = make.user("caseworker", agency=agency, groups=[group])
    supervisor = make.user("supervisor", agency=agency, groups=[group])
    case = register_child(caseworker)
    trace = search_for_child(officer)
    proposal = proposals(trace_id=trace.id, case_id=case.id)[0]
    matching_ops.confirm_match(proposal, reviewer)
    db.session.commit()
    rows = {row.user_id: row for row in db.session.execute(select(Notification)).scalars()}
    assert set(rows) == {caseworker.id, officer.id}  # not the reviewer who confirmed
    params = {"case": case.short_id, "trace": trace.short_id}
    for row in rows.values():
        assert row.kind == "match_confirmed" and row.params == params and row.actor_id == reviewer.id
    # The caseworker may not review matches: the link is their case; the officer's is the comparison.
    assert rows[caseworker.id].url == f"/cases/{case.id}" and rows[caseworker.id].record_id == case.id
    assert rows[officer.id].url == f"/matches/{proposal.id}"
    assert rows[officer.id].record_type == "tracing_request"
    matching_ops.undo_decision(proposal, supervisor, "Wrong photo shown")
    db.session.commit()
    undone = db.session.execute(select(Notification.user_id).where(Notification.kind == "match_undone")).scalars()
    assert sorted(undone) == sorted([caseworker.id, officer.id])
