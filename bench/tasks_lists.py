"""Benchmark of tasks and notifications at 100,000 cases on PostgreSQL (run by hand, not by the suite).

    createdb -h 127.0.0.1 -U postgres cpims_bench_tasks   # a database of its own: it is wiped
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cpims_bench_tasks \\
        .venv/bin/python bench/tasks_lists.py [--cases 100000] [--reuse] [--runs 7]

1. Builds the same data as bench/records_lists.py (COPY of realistic cases, 3 agencies, 6 groups,
   24 caseworkers), then gives every case a case plan review date and two or three services
   (planned, in progress, done; due dates from 60 days ago to 60 days ahead) with one SQL UPDATE,
   and times `rebuild_all_tasks()` filling `record_tasks` from that data (the real code path).
   It also COPYs 20 notifications per case (2,000,000 at 100,000 cases), mostly read.
2. Times, through the Flask test client logged in as a caseworker (own cases), a supervisor
   (their group's, grouped by caseworker) and a national viewer (all cases): /tasks and
   /api/v1/tasks for overdue and due soon; the task query alone (count + one page); the unread
   count of the page header and the inbox page; and one case save that changes its services
   (the hook refreshing its rows) against one that changes nothing the tasks read.

Prints Markdown tables of the median and the slowest of --runs runs, in milliseconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_lists import login, make_app, reset_and_configure, timed, write_cases  # noqa: E402

PEOPLE = {"caseworker (own)": "cw-a0-g0-0", "supervisor (group)": "bench-supervisor",
          "national viewer (all)": "bench-viewer"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier run")
    parser.add_argument("--reuse-cases", action="store_true",
                        help="keep the cases of an earlier run, redo the task data and notifications")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("set BENCH_DATABASE_URL (or --database-url) to a PostgreSQL database of its own")
    if args.database_url.rstrip("/").rsplit("/", 1)[-1] in ("test", "postgres"):
        parser.error("this benchmark wipes its database: give it one of its own")
    return args


SERVICES_SQL = """
UPDATE cases SET data = data || jsonb_build_object(
  'case_plan_review_date', to_char(current_date + (random() * 120 - 60)::int, 'YYYY-MM-DD'),
  'services', (SELECT jsonb_agg(jsonb_build_object(
      '_id', md5(cases.id || n::text),
      'service_type', (ARRAY['health','psychosocial','education','legal','shelter'])[1 + (random() * 4)::int],
      'service_due_date', to_char(current_date + (random() * 120 - 60)::int, 'YYYY-MM-DD'),
      'service_status', (ARRAY['planned','in_progress','done'])[1 + (random() * 2)::int]))
    FROM generate_series(1, 2 + (random())::int) AS n))
"""


def add_task_data(app) -> tuple[float, int]:
    """Services and review dates in every case's JSON, then `record_tasks` rebuilt from them."""
    from sqlalchemy import func, select, text

    from app.extensions import db
    from followups.models import RecordTask
    from followups.operations import rebuild_all_tasks
    from app.users.models import Role
    with app.app_context():
        db.session.execute(text(SERVICES_SQL))
        viewer = db.session.execute(select(Role).where(Role.code == "national_viewer")).scalar_one()
        viewer.set_permissions(viewer.permissions | {"tasks:read"})
        db.session.commit()
        started = time.monotonic()
        rebuild_all_tasks()
        db.session.commit()
        seconds = time.monotonic() - started
        rows = db.session.scalar(select(func.count(RecordTask.id)))
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(text("ANALYZE record_tasks"))
    return seconds, rows


def add_notifications(app, per_case: int = 20) -> int:
    """COPY per_case notifications per case, spread over the caseworkers; 5 % unread."""
    import json
    import random
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, select, text

    from app.extensions import db
    from app.users.models import User
    from cases.models import Case
    rng = random.Random(7)
    with app.app_context():
        owners = list(db.session.execute(select(User.id).where(User.username.like("cw-%"))).scalars())
        cases = db.session.scalar(select(func.count(Case.id)))
        now = datetime.now(timezone.utc)
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            with cursor.copy("COPY notifications (user_id, kind, message, params, record_type, record_id, url, "
                             "actor_id, created_at, read_at) FROM STDIN") as copy:
                for number in range(cases * per_case):
                    created = now - timedelta(minutes=rng.randint(0, 365 * 24 * 60))
                    read = None if rng.random() < 0.05 else created + timedelta(hours=1)
                    copy.write_row((rng.choice(owners), "match_confirmed",
                                    "Match confirmed: case %(case)s is the child sought by trace %(trace)s",
                                    json.dumps({"case": "abc1234", "trace": "def5678"}), None, None, "/cases",
                                    None, created, read))
            connection.commit()
        finally:
            connection.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(text("ANALYZE notifications"))
        return db.session.scalar(select(func.count()).select_from(text("notifications")))


def page_scenarios(app, runs: int) -> list[tuple]:
    rows = []
    for who, username in PEOPLE.items():
        client, _token = login(app, username)
        for due in ("overdue", "soon"):
            median, worst, response = timed(lambda d=due: client.get(f"/tasks?due={d}"), runs)
            api_median, api_worst, api = timed(lambda d=due: client.get(f"/api/v1/tasks?due={d}"), runs)
            rows.append((who, f"/tasks?due={due}", response.status_code, median, worst, api.status_code,
                         api.get_json().get("total") if api.status_code == 200 else None, api_median, api_worst))
        median, worst, response = timed(lambda: client.get("/notifications"), runs)
        api_median, api_worst, api = timed(lambda: client.get("/api/v1/notifications?unread=1"), runs)
        rows.append((who, "/notifications (inbox)", response.status_code, median, worst, api.status_code,
                     api.get_json().get("total") if api.status_code == 200 else None, api_median, api_worst))
    return rows


def query_scenarios(app, runs: int) -> list[tuple]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.notifications.operations import unread_count
    from app.users.models import User
    from followups import operations as ops
    rows = []
    with app.app_context():
        for who, username in PEOPLE.items():
            user = db.session.execute(select(User).where(User.username == username)).scalar_one()
            for due in ("overdue", "soon"):
                def run(user=user, due=due):
                    query = ops.ordered(ops.task_query(user, due))
                    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
                    items = db.session.execute(query.limit(50)).scalars().all()
                    db.session.rollback()
                    return total, len(items)

                median, worst, (total, shown) = timed(run, runs)
                rows.append((who, f"tasks {due}: count + page of 50", total, median, worst))

            def count(user=user):
                value = unread_count(user)
                db.session.rollback()
                return value

            median, worst, value = timed(count, runs)
            rows.append((who, "unread count (page header)", value, median, worst))
    return rows


def save_scenarios(app, runs: int) -> list[tuple]:
    """One case save through update_case: with a services change (rows refreshed) and without."""
    from sqlalchemy import select

    from app.extensions import db
    from app.users.models import User
    from cases.models import Case
    from cases.operations import update_case
    rows = []
    with app.app_context():
        user = db.session.execute(select(User).where(User.username == PEOPLE["caseworker (own)"])).scalar_one()
        case = db.session.execute(select(Case).where(Case.owner_id == user.id, Case.status == "open")
                                  .limit(1)).scalar_one()
        counter = iter(range(10_000))

        def save(change_services: bool):
            fresh = db.session.get(Case, case.id)
            number = next(counter)
            if change_services:
                services = [dict(row) for row in fresh.data.get("services", [])]
                services[0]["service_due_date"] = f"2030-01-{1 + number % 28:02d}"
                data = {"services": services}
            else:
                data = {"case_plan_goals": f"Goals {number}"}
            update_case(fresh, user, data, fresh.version, draft=True)
            db.session.commit()

        for label, flag in (("save changing a service due date (hook refreshes rows)", True),
                            ("save changing a field tasks do not read", False)):
            median, worst, _ = timed(lambda flag=flag: save(flag), runs)
            rows.append((label, median, worst))
    return rows


def main() -> None:
    args = parse_args()
    app = make_app(args.database_url)
    from sqlalchemy import func, select

    from app.extensions import db
    from cases.models import Case
    if not args.reuse:
        if args.reuse_cases:
            from sqlalchemy import text
            with app.app_context():
                db.session.execute(text("DELETE FROM record_tasks"))
                db.session.execute(text("DELETE FROM notifications"))
                db.session.commit()
        else:
            setup = reset_and_configure(app)
            seconds = write_cases(app, setup["staff"], args.cases)
            print(f"Wrote {args.cases} cases in {seconds:.1f} s.")
        rebuild_seconds, task_rows = add_task_data(app)
        print(f"rebuild_all_tasks(): {task_rows} task rows from {args.cases} cases in {rebuild_seconds:.1f} s.")
        print(f"Notifications: {add_notifications(app)} rows.")
    with app.app_context():
        print(f"PostgreSQL {db.session.scalar(select(func.version())).split(',')[0]}; "
              f"{db.session.scalar(select(func.count(Case.id)))} cases.\n")
    print(f"## Pages and API through the test client (ms; median and slowest of {args.runs} runs)\n")
    print("| user | page | HTML | median | max | API | total | median | max |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|")
    for who, label, status, median, worst, api_status, total, api_median, api_worst in page_scenarios(app, args.runs):
        print(f"| {who} | {label} | {status} | {median:.0f} | {worst:.0f} | {api_status} | {total} | "
              f"{api_median:.0f} | {api_worst:.0f} |")
    print(f"\n## Queries alone (ms; median and slowest of {args.runs} runs)\n")
    print("| user | query | rows | median | max |")
    print("|---|---|---:|---:|---:|")
    for who, label, total, median, worst in query_scenarios(app, args.runs):
        print(f"| {who} | {label} | {total} | {median:.1f} | {worst:.1f} |")
    print(f"\n## One case save (ms; median and slowest of {args.runs} runs)\n")
    print("| save | median | max |")
    print("|---|---:|---:|")
    for label, median, worst in save_scenarios(app, args.runs):
        print(f"| {label} | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
