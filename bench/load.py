"""Load benchmark: concurrent caseworkers against a running app (run by hand, prints numbers).

The production shape: gunicorn on PostgreSQL with Redis and `flask worker` processes.

    createdb -h 127.0.0.1 -U postgres cpims_load              # a database of its own: --prepare wipes it
    export DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cpims_load
    export REDIS_URL=redis://127.0.0.1:6379/5 APP_ENV=production SECRET_KEY=$(openssl rand -hex 32)
    export REQUIRE_TOTP_FOR_ADMINS=0 LOGIN_MAX_FAILURES_PER_ADDRESS=100000 FLASK_APP=wsgi.py
    .venv/bin/python bench/load.py --prepare --cases 100000   # schema, users, 100,000 cases (COPY)
    .venv/bin/gunicorn --config deploy/gunicorn.conf.py wsgi:app &   # GUNICORN_WORKERS=..., bind 127.0.0.1:8000
    .venv/bin/flask worker & .venv/bin/flask worker &
    .venv/bin/python bench/load.py --users 16 --seconds 120      # drives http://127.0.0.1:8000

--prepare reuses bench/records_lists.py: migrations, the default forms, three agencies with
two groups each, 24 caseworkers who own the cases (password below), and --cases realistic
cases written with COPY (their groups, name keys for search, a few flags).

The run gives each of --users virtual users one of those caseworkers (a personal API token
for the JSON API, a logged-in session for the HTML list) and loops, without think time, over
a mix of operations (weights in MIX): register a child (POST /api/v1/cases, which also queues
its matching job for the workers), the case list page (/cases), the JSON list at a random
page, a name search (POST /api/v1/cases/search with a spelling variant), and reading one case.
It prints requests per second and p50/p95/max latency per operation, the errors, and checks
that no record was lost: every case a 201 announced is in the database, and the number of
cases grew by exactly the number of 201s. It then waits (--drain seconds at most) for the
workers to finish the queued matching jobs and reports what is left.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.records_lists import PASSWORD  # noqa: E402

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
# Operation -> weight: a field office registers, then mostly looks things up.
MIX = {"register": 2, "list_page": 2, "list_api": 3, "search": 3, "read": 2}
FIRST = ("Maxamed", "Mohamed", "Xasan", "Hassan", "Amina", "Aamina", "Deng", "Nyakim", "Fatuma", "Ayaan")
LAST = ("Cabdi", "Abdi", "Yusuf", "Garang", "Gatluak", "Warsame", "Hussein", "Osman", "Kabila", "Mwamba")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running app")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--prepare", action="store_true", help="wipe the database and write --cases cases")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=16, help="concurrent virtual users")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--drain", type=float, default=300, help="wait this long for the matching jobs")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("set DATABASE_URL (or --database-url) to the app's PostgreSQL database")
    return args


def make_app(database_url: str):
    """The app, on the same database as the server, to prepare data, make tokens and count rows."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("INSTANCE_PATH", "/tmp/cpims-load-instance")
    from app import create_app
    return create_app({"APP_ENV": "test"})


def prepare(app, cases: int) -> None:
    from bench.records_lists import reset_and_configure, write_cases
    setup = reset_and_configure(app)
    seconds = write_cases(app, setup["staff"], cases)
    print(f"Wrote {cases} cases (with groups, name keys, flags) in {seconds:.1f} s.")


def caseworkers(app) -> list[str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.users.models import User
    with app.app_context():
        return list(db.session.execute(select(User.username).where(User.username.like("cw-%"))
                                       .order_by(User.username)).scalars())


def make_tokens(app, usernames: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from app.auth.operations import create_api_token
    from app.extensions import db
    from app.users.models import User
    tokens = {}
    with app.app_context():
        for username in usernames:
            user = db.session.execute(select(User).where(User.username == username)).scalar_one()
            tokens[username] = create_api_token(user, "load benchmark", 1)[1]
        db.session.commit()
        db.session.remove()
    return tokens


def counts(app) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.jobs.models import JobRecord
    from cases.models import Case
    with app.app_context():
        jobs = dict(db.session.execute(select(JobRecord.status, func.count(JobRecord.id))
                                       .group_by(JobRecord.status)).all())
        result = {"cases": db.session.scalar(select(func.count(Case.id))), **{f"jobs_{k}": v for k, v in jobs.items()}}
        db.session.remove()
    return result


def existing_ids(app, ids: list[str]) -> set[str]:
    from sqlalchemy import select

    from app.extensions import db
    from cases.models import Case
    found: set[str] = set()
    with app.app_context():
        for start in range(0, len(ids), 1000):
            found |= set(db.session.execute(select(Case.id).where(Case.id.in_(ids[start:start + 1000]))).scalars())
        db.session.remove()
    return found


class VirtualUser(threading.Thread):
    """One caseworker looping over the mix until the deadline."""

    def __init__(self, base_url: str, username: str, token: str, deadline: float, seed: int, results: dict,
                 created: list, lock: threading.Lock):
        super().__init__(daemon=True)
        self.base_url, self.username, self.token, self.deadline = base_url, username, token, deadline
        self.rng = random.Random(seed)
        self.results, self.created, self.lock = results, created, lock
        self.seen_ids: list[str] = []

    def run(self) -> None:
        api = httpx.Client(base_url=self.base_url, timeout=60,
                           headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"})
        web = httpx.Client(base_url=self.base_url, timeout=60, follow_redirects=False)
        try:
            self.log_in(web)
            operations, weights = zip(*MIX.items())
            while time.monotonic() < self.deadline:
                operation = self.rng.choices(operations, weights)[0]
                started = time.perf_counter()
                try:
                    status, ok = getattr(self, operation)(api, web)
                except httpx.HTTPError as error:
                    status, ok = type(error).__name__, False
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.results[operation].append((elapsed, status, ok))
        finally:
            api.close()
            web.close()

    def log_in(self, web: httpx.Client) -> None:
        page = web.get("/login")
        token = CSRF_RE.search(page.text).group(1)
        response = web.post("/login", data={"username": self.username, "password": PASSWORD, "csrf_token": token})
        if response.status_code != 302:
            raise RuntimeError(f"login of {self.username} failed: {response.status_code}")

    def register(self, api, web):
        data = {"name_first": self.rng.choice(FIRST), "name_last": self.rng.choice(LAST),
                "sex": self.rng.choice(("female", "male")), "age": self.rng.randint(1, 17),
                "consent_for_tracing": self.rng.random() < 0.9}
        response = api.post("/api/v1/cases", json={"data": data})
        if response.status_code == 201:
            case_id = response.json()["id"]
            self.seen_ids.append(case_id)
            with self.lock:
                self.created.append(case_id)
        return response.status_code, response.status_code == 201

    def list_page(self, api, web):
        response = web.get("/cases", params={"page": self.rng.randint(1, 20)})
        return response.status_code, response.status_code == 200

    def list_api(self, api, web):
        response = api.get("/api/v1/cases", params={"page": self.rng.randint(1, 100), "per_page": 25})
        if response.status_code == 200:
            self.seen_ids += [item["id"] for item in response.json()["items"][:3]]
        return response.status_code, response.status_code == 200

    def search(self, api, web):
        query = f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"
        response = api.post("/api/v1/cases/search", json={"q": query, "limit": 20})
        return response.status_code, response.status_code == 200

    def read(self, api, web):
        if not self.seen_ids:
            return self.list_api(api, web)
        response = api.get(f"/api/v1/cases/{self.rng.choice(self.seen_ids[-200:])}")
        return response.status_code, response.status_code == 200


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    app = make_app(args.database_url)
    if args.prepare:
        prepare(app, args.cases)
        return
    with httpx.Client(base_url=args.url, timeout=10) as probe:
        health = probe.get("/healthz")
        print(f"{args.url}/healthz: {health.status_code} {health.text.strip()}")
    people = caseworkers(app)
    if not people:
        raise SystemExit("no cw-* caseworkers: run with --prepare first")
    chosen = [people[number % len(people)] for number in range(args.users)]
    tokens = make_tokens(app, sorted(set(chosen)))
    before = counts(app)
    print(f"Before: {before}")
    results: dict[str, list] = defaultdict(list)
    created: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    threads = [VirtualUser(args.url, username, tokens[username], deadline, args.seed + number, results, created,
                           lock) for number, username in enumerate(chosen)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started

    total = sum(len(rows) for rows in results.values())
    errors = {op: [status for _e, status, ok in rows if not ok] for op, rows in results.items()}
    print(f"\n{args.users} users, {wall:.0f} s, {total} requests, {total / wall:.1f} requests/s, "
          f"{sum(len(e) for e in errors.values())} errors\n")
    print("| operation | requests | req/s | p50 ms | p95 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for operation in MIX:
        rows = results.get(operation, [])
        if not rows:
            continue
        times = [elapsed * 1000 for elapsed, _status, _ok in rows]
        failed = errors[operation]
        detail = f" ({', '.join(f'{s}: {failed.count(s)}' for s in sorted(set(map(str, failed))))})" if failed else ""
        print(f"| {operation} | {len(rows)} | {len(rows) / wall:.1f} | {statistics.median(times):.0f} | "
              f"{percentile(times, 0.95):.0f} | {max(times):.0f} | {len(failed)}{detail} |")

    after = counts(app)
    found = existing_ids(app, created)
    lost = len(created) - len(found)
    print(f"\nAfter: {after}")
    print(f"Cases: {before['cases']} before + {len(created)} created (201) = {before['cases'] + len(created)}; "
          f"{after['cases']} in the database; {lost} announced but missing.")
    ok = after["cases"] == before["cases"] + len(created) and lost == 0
    waited, drained = 0.0, counts(app)
    while waited < args.drain and (drained.get("jobs_pending", 0) or drained.get("jobs_queued", 0)
                                   or drained.get("jobs_running", 0)):
        time.sleep(5)
        waited += 5
        drained = counts(app)
    print(f"Jobs after {waited:.0f} s of draining: "
          + ", ".join(f"{k[5:]} {v}" for k, v in sorted(drained.items()) if k.startswith("jobs_")))
    print("No lost records." if ok else "RECORDS LOST OR DUPLICATED.")
    sys.exit(0 if ok and not any(errors.values()) else 1)


if __name__ == "__main__":
    main()
