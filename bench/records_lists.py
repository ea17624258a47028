"""Benchmark of the case lists at 100,000 cases on PostgreSQL (run by hand, not by the test suite).

    createdb -h 127.0.0.1 -U postgres cpims_bench   # a database of its own: it is wiped
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cpims_bench \\
        .venv/bin/python bench/records_lists.py [--cases 100000] [--reuse] [--runs 7]

1. Builds the schema with the migrations, the default forms and demo locations, three
   agencies with two groups each, and users of every scope: a caseworker (own cases), a
   supervisor (their group's), a tracing officer (their agency's) and a "national viewer"
   (all cases); then writes --cases realistic cases (names from app.records.demo) with
   COPY: their groups, their name keys (for name search) and 1 % open flags, and ANALYZEs.
   --reuse keeps the cases of an earlier run.
2. Times, through the Flask test client logged in as each user (so with sessions,
   permission checks, scope filters, the audit entry each list writes, templates):
   the HTML list page (/cases) and the JSON list (/api/v1/cases) with no filter, each
   filter, each sort, a deep page, and a phonetic name search; then the list query alone
   (count + one page, as db.paginate runs it) for the same filters.

Prints Markdown tables of the median and the slowest of --runs runs, in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "bench horse battery staple"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
STAGES = ("new", "assessment", "case_plan", "services", "closure")

# (label, query string): the HTML list and the API take the same names.
SCENARIOS = [
    ("no filter (last updated first)", ""),
    ("sex=female", "sex=female"),
    ("age 5 to 10", "age_min=5&age_max=10"),
    ("status=open, stage=assessment", "status=open&stage=assessment"),
    ("location=ET-SO (region and below)", "location=ET-SO"),
    ("consent given", "consent={consent}"),
    ("flagged", "flagged={flagged}"),
    ("sort=name", "sort=name"),
    ("sort=age", "sort=age"),
    ("page 200", "page=200"),
    ("sex=male, age 10-17, sort=created, page 20", "sex=male&age_min=10&age_max=17&sort=created&page=20"),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the cases of an earlier run")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("set BENCH_DATABASE_URL (or --database-url) to a PostgreSQL database of its own")
    if args.database_url.rstrip("/").rsplit("/", 1)[-1] in ("test", "postgres"):
        parser.error("this benchmark wipes its database: give it one of its own")
    return args


def make_app(database_url: str):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("INSTANCE_PATH", "/tmp/cpims-bench-instance")
    os.environ.pop("REDIS_URL", None)
    from app import create_app
    app = create_app({"APP_ENV": "test", "WTF_CSRF_ENABLED": True, "LOGIN_MAX_FAILURES_PER_ADDRESS": 10_000})
    return app


# --- building the data ---------------------------------------------------------------------------

def reset_and_configure(app) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.cli import seed_roles
    from app.extensions import db
    from app.users import operations as users
    from app.users.models import Role
    from forms.operations import seed_default_configuration, sync_section_permissions
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        seed_roles()
        seed_default_configuration()
        sync_section_permissions(force=True)
        roles = {role.code: role for role in db.session.execute(db.select(Role)).scalars()}
        readable = {p for p in roles["supervisor"].permissions if p.startswith("form.case.") and p.endswith(":read")}
        roles["viewer"] = users.create_role("national_viewer", "National viewer", "all", {"cases:read", *readable})
        agencies, groups = [], []
        for number in range(3):
            agency = users.create_agency(f"agency{number}", f"Agency {number}")
            agencies.append(agency)
            groups += [users.create_group(f"a{number}-g{g}", f"Agency {number} team {g}", agency) for g in range(2)]
        staff = []
        for group in groups:  # 4 caseworkers per group own the cases
            for number in range(4):
                staff.append(users.create_user(f"cw-{group.code}-{number}", "Caseworker", PASSWORD, group.agency,
                                               roles["caseworker"], [group], must_change_password=False))
        people = {
            "caseworker (own)": staff[0],
            "supervisor (group)": users.create_user("bench-supervisor", "Supervisor", PASSWORD, agencies[0],
                                                    roles["supervisor"], [groups[0]], must_change_password=False),
            "tracing officer (agency)": users.create_user("bench-tracer", "Tracer", PASSWORD, agencies[0],
                                                          roles["tracing_officer"], [groups[0]],
                                                          must_change_password=False),
            "national viewer (all)": users.create_user("bench-viewer", "Viewer", PASSWORD, agencies[0],
                                                       roles["viewer"], [], must_change_password=False),
        }
        db.session.commit()
        return {"staff": [(u.id, u.agency_id, [g.id for g in u.groups]) for u in staff],
                "people": {label: u.username for label, u in people.items()}}


def write_cases(app, staff: list, count: int) -> float:
    """COPY `count` cases, their groups, name keys and a few flags. Returns seconds."""
    from sqlalchemy import text

    from app.extensions import db
    from app.records import demo
    from app.records.search import NAME_KIND, name_texts
    from app.records.values import denormalised_values
    from matching.names import name_keys
    started = time.monotonic()
    rng = random.Random(4)
    traditions = list(demo.TRADITIONS)
    now = datetime.now(timezone.utc)
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    short_ids: set[str] = set()
    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            columns = ("id, short_id, data, status, version, source_id, created_at, updated_at, owner_id, agency_id, "
                       "created_by_id, updated_by_id, workflow_stage, display_name, sex, age, location_code, "
                       "phone_digits, is_consent_for_tracing, closed_at, closure_reason")
            group_rows, key_rows, flag_rows = [], [], []
            with cursor.copy(f"COPY cases ({columns}) FROM STDIN") as copy:
                for number in range(count):
                    data = demo._case_data(rng, demo.TRADITIONS[rng.choice(traditions)])
                    owner_id, agency_id, group_ids = staff[number % len(staff)]
                    case_id = str(uuid.uuid4())
                    short_id = "".join(rng.choice(alphabet) for _ in range(7))
                    while short_id in short_ids:
                        short_id = "".join(rng.choice(alphabet) for _ in range(7))
                    short_ids.add(short_id)
                    values = denormalised_values("case", data)
                    created = now - timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60))
                    updated = created + timedelta(minutes=rng.randint(0, 60 * 24 * 90))
                    closed = rng.random() < 0.1
                    copy.write_row((case_id, short_id, json.dumps(data), "closed" if closed else "open", 1, None,
                                    created, min(updated, now), owner_id, agency_id, owner_id, owner_id,
                                    "closure" if closed else rng.choice(STAGES[:4]), values["display_name"],
                                    values["sex"], values["age"], values["location_code"], values["phone_digits"],
                                    bool(data.get("consent_for_tracing")), min(updated, now) if closed else None,
                                    "Reunified" if closed else None))
                    group_rows += [(case_id, group_id) for group_id in group_ids]
                    keys: set[str] = set()
                    for name in name_texts("case", data):
                        keys |= name_keys(name)
                    key_rows += [("case", case_id, NAME_KIND, key[:64]) for key in keys]
                    if rng.random() < 0.01:
                        flag_rows.append(("case", case_id, "Possible duplicate", owner_id, created))
                    if (number + 1) % 10_000 == 0:
                        print(f"  {number + 1} cases", file=sys.stderr)
            with cursor.copy("COPY case_groups (case_id, group_id) FROM STDIN") as copy:
                for row in group_rows:
                    copy.write_row(row)
            with cursor.copy("COPY record_keys (record_type, record_id, kind, key) FROM STDIN") as copy:
                for row in key_rows:
                    copy.write_row(row)
            with cursor.copy("COPY record_flags (record_type, record_id, reason, created_by_id, created_at) "
                             "FROM STDIN") as copy:
                for row in flag_rows:
                    copy.write_row(row)
            connection.commit()
        finally:
            connection.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(text("VACUUM ANALYZE"))
    return time.monotonic() - started


# --- timing ---------------------------------------------------------------------------------------

def login(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code
    home = client.get("/").get_data(as_text=True)
    return client, CSRF_RE.search(home).group(1)


def timed(fn, runs: int) -> tuple[float, float, object]:
    result = fn()  # warm-up: caches, prepared statements
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples), result


def page_scenarios(app, people: dict, runs: int) -> list[tuple]:
    rows = []
    for who, username in people.items():
        client, token = login(app, username)
        for label, query in SCENARIOS:
            html_query = query.format(consent="yes", flagged="y")
            api_query = query.format(consent="true", flagged="true")
            median, worst, response = timed(lambda q=html_query: client.get(f"/cases?{q}"), runs)
            total = re.search(r"(\d+) case\(s\)", response.get_data(as_text=True))
            api_median, api_worst, api_response = timed(lambda q=api_query: client.get(f"/api/v1/cases?{q}"), runs)
            api_total = api_response.get_json().get("total") if api_response.status_code == 200 else None
            rows.append((who, label, response.status_code, total.group(1) if total else "?", median, worst,
                         api_response.status_code, api_total, api_median, api_worst))

        def search(client=client, token=token):
            posted = client.post("/cases", data={"q": "Mohamed Abdi", "csrf_token": token})
            return client.get(posted.headers["Location"])

        median, worst, response = timed(search, runs)
        found = response.get_data(as_text=True).count('<td dir="ltr"><a href="/cases/')
        api_median, api_worst, api_response = timed(lambda client=client, token=token: client.post(
            "/api/v1/cases/search", json={"q": "Mohamed Abdi"}, headers={"X-CSRFToken": token}), runs)
        api_found = len(api_response.get_json().get("items", [])) if api_response.status_code == 200 else None
        rows.append((who, "name search \"Mohamed Abdi\" (phonetic)", response.status_code, f"{found} shown",
                     median, worst, api_response.status_code, api_found, api_median, api_worst))
    return rows


def query_scenarios(app, people: dict, runs: int) -> list[tuple]:
    """The list query alone: what db.paginate runs (a count, then one page of 25)."""
    from sqlalchemy import asc, desc, exists, func, select

    from app.extensions import db
    from app.permissions import scope_filter
    from app.records.models import RecordFlag
    from app.users.models import User
    from cases.models import Case
    from forms.definitions import location_descendants
    sorts = {"updated": desc(Case.updated_at), "created": desc(Case.created_at), "name": asc(Case.display_name),
             "age": asc(Case.age)}
    rows = []
    with app.app_context():
        for who, username in people.items():
            user = db.session.execute(select(User).where(User.username == username)).scalar_one()
            for label, query in SCENARIOS:
                args = dict(part.split("=") for part in query.format(consent="yes", flagged="y").split("&") if part)
                statement = select(Case).where(scope_filter(user, Case))
                for key, column in (("sex", Case.sex), ("status", Case.status), ("stage", Case.workflow_stage)):
                    if key in args:
                        statement = statement.where(column == args[key])
                if "age_min" in args:
                    statement = statement.where(Case.age >= int(args["age_min"]))
                if "age_max" in args:
                    statement = statement.where(Case.age <= int(args["age_max"]))
                if "location" in args:
                    statement = statement.where(Case.location_code.in_(location_descendants(args["location"])))
                if "consent" in args:
                    statement = statement.where(Case.is_consent_for_tracing.is_(True))
                if "flagged" in args:
                    statement = statement.where(exists().where(
                        RecordFlag.record_type == "case", RecordFlag.record_id == Case.id,
                        RecordFlag.resolved_at.is_(None)))
                page = int(args.get("page", 1))
                ordered = statement.order_by(sorts[args.get("sort", "updated")], Case.id)

                def run(statement=statement, ordered=ordered, page=page):
                    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
                    items = db.session.execute(ordered.limit(25).offset((page - 1) * 25)).scalars().all()
                    db.session.rollback()
                    return total, len(items)

                median, worst, (total, shown) = timed(run, runs)
                rows.append((who, label, total, shown, median, worst))
    return rows


def main() -> None:
    args = parse_args()
    app = make_app(args.database_url)
    from sqlalchemy import func, select

    from app.extensions import db
    from cases.models import Case
    if args.reuse:
        with app.app_context():
            existing = db.session.scalar(select(func.count(Case.id)))
        print(f"Reusing {existing} cases.")
        people = {"caseworker (own)": "cw-a0-g0-0", "supervisor (group)": "bench-supervisor",
                  "tracing officer (agency)": "bench-tracer", "national viewer (all)": "bench-viewer"}
    else:
        setup = reset_and_configure(app)
        seconds = write_cases(app, setup["staff"], args.cases)
        people = setup["people"]
        print(f"Wrote {args.cases} cases (with groups, name keys, flags) in {seconds:.1f} s.")
    with app.app_context():
        print(f"PostgreSQL {db.session.scalar(select(func.version())).split(',')[0]}; "
              f"{db.session.scalar(select(func.count(Case.id)))} cases.\n")
    print(f"## Pages and API through the test client (ms; median and slowest of {args.runs} runs)\n")
    print("| user | list | HTML | cases | median | max | API | total | median | max |")
    print("|---|---|---|---|---:|---:|---|---|---:|---:|")
    for row in page_scenarios(app, people, args.runs):
        who, label, status, total, median, worst, api_status, api_total, api_median, api_worst = row
        print(f"| {who} | {label} | {status} | {total} | {median:.0f} | {worst:.0f} | {api_status} | {api_total} | "
              f"{api_median:.0f} | {api_worst:.0f} |")
    print(f"\n## The list query alone: count + one page of 25 (ms; median and slowest of {args.runs} runs)\n")
    print("| user | filter | matching | shown | median | max |")
    print("|---|---|---:|---:|---:|---:|")
    for who, label, total, shown, median, worst in query_scenarios(app, people, args.runs):
        print(f"| {who} | {label} | {total} | {shown} | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
