"""Tasks derived from record data: overdue and due soon, scope, hidden sections, the derived
table kept in step by the record-saved hook, and the idempotent overdue notice."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.notifications.models import Notification
from cases.operations import close_case, create_case, reopen_case, update_case
from followups import operations as ops
from followups.models import RecordTask

pytestmark = pytest.mark.usefixtures("default_forms")

TODAY = date.today()
CHILD = {"name_first": "Muhammad", "name_last": "Hassan", "sex": "male", "age": 9}


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def service(kind: str, due: int, status: str = "planned") -> dict:
    return {"service_type": kind, "service_due_date": day(due), "service_status": status}


@pytest.fixture
def team(make):
    agency = make.agency()
    group, other_group = make.group(agency=agency), make.group(agency=agency)
    return {"worker": make.user("caseworker", agency=agency, groups=[group], full_name="Worker One"),
            "colleague": make.user("caseworker", agency=agency, groups=[group], full_name="Worker Two"),
            "supervisor": make.user("supervisor", agency=agency, groups=[group]),
            "other_supervisor": make.user("supervisor", agency=agency, groups=[other_group]),
            "outsider": make.user("caseworker", agency=agency, groups=[other_group])}


def register(user, **data) -> object:
    case = create_case(user, {**CHILD, **data})
    db.session.commit()
    return case


def listed(user, due: str) -> list[tuple[str, str]]:
    rows = db.session.execute(ops.ordered(ops.task_query(user, due, TODAY))).scalars().all()
    return [(task.record_id, task.kind) for task in rows]


def test_overdue_and_due_soon_from_services_review_and_follow_up(team):
    case = register(team["worker"], services=[
        service("health", -1), service("legal", 3, "in_progress"), service("education", -2, "done"),
        service("shelter", 1, "cancelled"), service("nutrition", 30)],
        case_plan_review_date=day(10), follow_up_date=day(-5))
    overdue = listed(team["worker"], ops.OVERDUE)
    assert sorted(overdue) == sorted([(case.id, "service_due"), (case.id, "follow_up")])
    assert listed(team["worker"], ops.SOON) == [(case.id, "service_due")]  # legal, in 3 days
    # The plan review is 10 days away: due soon only with a longer horizon.
    assert (case.id, "case_plan_review") in [
        (t.record_id, t.kind) for t in db.session.execute(ops.task_query(team["worker"], ops.SOON, TODAY, 10)
                                                          ).scalars()]
    assert ops.task_counts(team["worker"], TODAY) == {"overdue": 2, "soon": 1}


def test_tasks_follow_the_scope_caseworker_own_supervisor_groups(team):
    mine = register(team["worker"], services=[service("health", -1)])
    theirs = register(team["colleague"], services=[service("legal", -3)])
    elsewhere = register(team["outsider"], services=[service("legal", -3)])
    assert {r for r, _ in listed(team["worker"], ops.OVERDUE)} == {mine.id}
    assert {r for r, _ in listed(team["supervisor"], ops.OVERDUE)} == {mine.id, theirs.id}
    assert {r for r, _ in listed(team["other_supervisor"], ops.OVERDUE)} == {elsewhere.id}


def test_a_task_from_a_section_the_role_may_not_read_does_not_show(team):
    from forms.operations import set_section_access
    case = register(team["worker"], services=[service("health", -1)], follow_up_date=day(-1))
    assert sorted(listed(team["supervisor"], ops.OVERDUE)) == sorted([(case.id, "service_due"),
                                                                      (case.id, "follow_up")])
    # Supervisors lose the case plan section: its services are no longer their tasks.
    set_section_access("case", "case_plan", {"caseworker": "write"})
    db.session.commit()
    db.session.expire_all()
    assert listed(team["supervisor"], ops.OVERDUE) == [(case.id, "follow_up")]
    assert len(listed(team["worker"], ops.OVERDUE)) == 2


def test_the_hook_keeps_the_table_in_step_with_saves_closing_and_reopening(team):
    worker = team["worker"]
    case = register(worker, services=[service("health", -1), service("legal", 2)])

    def rows():
        db.session.expire_all()
        return sorted((t.kind, t.due_on, t.params.get("service_type")) for t in db.session.execute(
            select(RecordTask).where(RecordTask.record_id == case.id)).scalars())

    assert rows() == [("service_due", TODAY - timedelta(days=1), "health"),
                      ("service_due", TODAY + timedelta(days=2), "legal")]
    services = [dict(row) for row in case.data["services"]]
    services[0]["service_status"] = "done"
    services[1]["service_due_date"] = day(5)
    update_case(case, worker, {"services": services, "case_plan_review_date": day(6)}, case.version)
    db.session.commit()
    assert rows() == [("case_plan_review", TODAY + timedelta(days=6), None),
                      ("service_due", TODAY + timedelta(days=5), "legal")]
    close_case(case, worker, "Reunified")
    db.session.commit()
    assert rows() == []
    reopen_case(case, worker, "New concern")
    db.session.commit()
    assert len(rows()) == 2


def test_rebuild_fills_the_table_for_records_saved_before_it(team):
    case = register(team["worker"], services=[service("health", -1)])
    db.session.execute(RecordTask.__table__.delete())
    db.session.commit()
    assert listed(team["worker"], ops.OVERDUE) == []
    assert ops.rebuild_all_tasks() >= 1
    db.session.commit()
    assert listed(team["worker"], ops.OVERDUE) == [(case.id, "service_due")]


def test_reunification_follow_up_is_a_task_until_the_form_date_replaces_it(make):
    from matching import operations as matching_ops
    from tests.test_matching_engine import proposals, register_child, search_for_child
    agency = make.agency()
    group = make.group(agency=agency)
    officer = make.user("tracing_officer", agency=agency, groups=[group])
    worker = make.user("caseworker", agency=agency, groups=[group])
    case = register_child(worker)
    trace = search_for_child(officer)
    proposal = proposals(trace_id=trace.id, case_id=case.id)[0]
    matching_ops.confirm_match(proposal, officer)
    matching_ops.verify_match(proposal, officer, ["documents"], "verified")
    matching_ops.record_reunification(proposal, officer, TODAY - timedelta(days=20), "Camp", "Mother",
                                      TODAY - timedelta(days=2))
    db.session.commit()
    assert listed(worker, ops.OVERDUE) == [(case.id, "reunification_follow_up")]
    update_case(case, worker, {"follow_up_date": day(4)}, case.version)
    db.session.commit()
    assert listed(worker, ops.OVERDUE) == []
    assert listed(worker, ops.SOON) == [(case.id, "follow_up")]


def test_overdue_notice_tells_each_caseworker_once(team, app):
    worker, colleague = team["worker"], team["colleague"]
    register(worker, services=[service("health", -1), service("legal", -4)])
    register(colleague, follow_up_date=day(-1))
    register(worker, services=[service("shelter", 1)])  # due tomorrow: not overdue yet
    assert ops.notify_overdue_tasks(TODAY) == {"tasks": 3, "users": 2}
    db.session.commit()
    assert ops.notify_overdue_tasks(TODAY) == {"tasks": 0, "users": 0}  # idempotent
    db.session.commit()
    notices = db.session.execute(select(Notification).where(Notification.kind == "tasks_overdue")
                                 .order_by(Notification.id)).scalars().all()
    assert [(n.user_id, n.params) for n in notices] == [(worker.id, {"count": "2"}), (colleague.id, {"count": "1"})]
    assert notices[0].url == "/tasks?due=overdue"
    # Two days later the shelter service is late too: only that one is new.
    result = app.test_cli_runner().invoke(args=["followups", "notify-overdue", "--today", day(2)])
    assert result.exit_code == 0, result.output
    assert "1 newly overdue task(s); 1 user(s) notified" in result.output
    latest = db.session.execute(select(Notification).where(Notification.kind == "tasks_overdue")
                                .order_by(Notification.id.desc()).limit(1)).scalar_one()
    assert latest.user_id == worker.id and latest.params == {"count": "1"}


def test_tasks_page_and_api(team, login_as, make):
    web, worker = login_as("caseworker", agency=team["worker"].agency, groups=team["worker"].groups)
    case = register(worker, services=[service("health", -3), service("legal", 2)])
    register(team["colleague"], services=[service("legal", -3)])
    page = web.get("/tasks").get_data(as_text=True)
    assert case.short_id in page and "Service due: Health" in page and "3 days late" in page
    assert "Worker Two" not in page
    soon = web.get("/tasks?due=soon").get_data(as_text=True)
    assert "Service due: Legal aid" in soon and "in 2 days" in soon
    body = web.get("/api/v1/tasks?due=overdue").get_json()
    assert body["total"] == 1
    item = body["items"][0]
    assert item["record_short_id"] == case.short_id and item["days"] == -3 and item["kind"] == "service_due"
    assert item["params"] == {"service_type": "health"} and item["owner_id"] == worker.id
    assert web.get("/api/v1/tasks?due=later").status_code == 422
    supervisor_web, _ = login_as("supervisor", agency=team["worker"].agency, groups=team["worker"].groups)
    grouped = supervisor_web.get("/tasks").get_data(as_text=True)
    assert "Worker Two" in grouped and worker.full_name in grouped  # a heading per caseworker
    officer_web, _ = login_as("tracing_officer")
    assert officer_web.get("/tasks").status_code == 403
    assert officer_web.get("/api/v1/tasks").status_code == 403


def test_tasks_follow_a_reassigned_case_whoever_moves_it(team, make):
    from cases.operations import assign_cases
    worker, colleague = team["worker"], team["colleague"]
    case = register(worker, services=[service("health", -1)])
    assert [r for r, _ in listed(worker, ops.OVERDUE)] == [case.id]
    assign_cases([case], colleague, team["supervisor"], "Worker one is on leave")
    db.session.commit()
    db.session.expire_all()
    assert listed(worker, ops.OVERDUE) == [] and [r for r, _ in listed(colleague, ops.OVERDUE)] == [case.id]
    # A module that sets the columns directly (as a transfer to another agency does) is followed too.
    elsewhere = make.user("caseworker", agency=make.agency())
    case.owner_id, case.agency_id = elsewhere.id, elsewhere.agency_id
    case.groups = []
    db.session.commit()
    row = db.session.execute(select(RecordTask).where(RecordTask.record_id == case.id)).scalar_one()
    assert (row.owner_id, row.agency_id) == (elsewhere.id, elsewhere.agency_id)
    assert listed(colleague, ops.OVERDUE) == [] and listed(team["supervisor"], ops.OVERDUE) == []
    assert [r for r, _ in listed(elsewhere, ops.OVERDUE)] == [case.id]


def test_task_lists_are_audited(login_as):
    from app.audit.models import AuditEntry
    web, _user = login_as("caseworker")
    assert web.get("/tasks?due=soon").status_code == 200
    assert web.get("/api/v1/tasks?due=overdue", headers={"X-CSRFToken": web.csrf_token("/")}).status_code == 200
    rows = db.session.execute(select(AuditEntry.detail).where(AuditEntry.action == "tasks.list")).scalars().all()
    assert sorted(row["due"] for row in rows) == ["overdue", "soon"]
