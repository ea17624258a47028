"""API fuzzing: schemathesis generates requests for every operation of /api/openapi.json
(whatever routes exist when it runs) and checks each answer: never a 5xx, and the status,
headers and body conform to the documented schema.

It runs with a personal API token of a user whose role holds every non-administrative
permission with scope "all" (tokens never carry administrative permissions: the admin
routes are exercised too, and must answer their documented 403), on demo-like data: `flask seed demo`
(with fewer cases and tracing requests) and the proposals the matching engine makes from them;
two in three valid requests name one of those records (or users, proposals, ...) in their path. Real commits (the `committed` fixture), as in production.

The run is deterministic (derandomized, fixed seed) and small: FUZZ_EXAMPLES examples per
operation and generation mode (default 3), a few hundred requests in all. Raise it by hand for a deeper run:
`FUZZ_EXAMPLES=50 pytest tests/test_api_fuzz.py`, and narrow it with FUZZ_PATHS (a regular
expression on the path).
"""
from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from sqlalchemy import delete, select

from app.extensions import db

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
pytestmark = pytest.mark.timeout(max(600, 120 * FUZZ_EXAMPLES))
FUZZ_ROLE = "fuzz_everything"
# "Schema-valid data must be accepted" does not hold here by design: the record data is checked by
# the configurable forms engine (required fields, options, ranges set by administrators at run time),
# ids must name existing records, and a stale version is a conflict. Those refusals are the
# documented 404/409/422 answers, whose bodies the other checks still validate against the schema.
EXCLUDED_CHECKS = [positive_data_acceptance]


def seed_demo_like_data(app) -> str:
    """`flask seed demo` (every module's demo data: forms, locations, users, cases, tracing requests,
    and what the other modules add), with fewer records, and the match proposals made from them;
    then the fuzzing user. Committed. Returns the fuzzing user's personal API token."""
    from app.auth.operations import create_api_token
    from app.jobs.operations import dispatch_committed_jobs
    from app.permissions import CATALOGUE
    from app.records import demo
    from app.users.models import Agency, Role, UserGroup
    from app.users.operations import create_role, create_user
    from tests.conftest import PASSWORD
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "CASE_OWNERS", tuple((u, n // 5, t) for u, n, t in demo.CASE_OWNERS))
        patch.setattr(demo, "TRACING_REQUESTS", 14)
        patch.setattr(demo, "TRUE_PAIRS", 8)
        result = app.test_cli_runner().invoke(args=["seed", "demo"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        dispatch_committed_jobs()  # matching jobs the seeders queued run here (no Redis): proposals to fuzz
        everything = set(CATALOGUE.entries) - CATALOGUE.admin_permissions()
        role = create_role(FUZZ_ROLE, "Fuzzing", "all", everything, is_supervisor=True)
        agency = db.session.execute(select(Agency).order_by(Agency.id)).scalars().first()
        groups = list(db.session.execute(select(UserGroup).where(UserGroup.agency_id == agency.id)).scalars())
        user = create_user("fuzzer", "Fuzzing User", PASSWORD, agency, role, groups, must_change_password=False)
        _row, token = create_api_token(user, "fuzzing", 1)
        db.session.commit()
        db.session.remove()
    return token


@pytest.fixture
def fuzz_token(app, committed):
    token = seed_demo_like_data(app)
    yield token
    from app.users.models import Role
    from tests.conftest import truncate_data
    truncate_data(app)  # the rows first (`committed` does it again), then the role it keeps
    with app.app_context():
        db.session.execute(delete(Role).where(Role.code == FUZZ_ROLE))
        db.session.commit()
        db.session.remove()


# Path parameter (name, first path segment) -> the table whose rows it names. Random ids only
# reach the 404 branch; the demo-like rows let the generated requests act on real records.
ID_TABLES = {("record_id", "cases"): "cases", ("case_id", "cases"): "cases",
             ("record_id", "tracing-requests"): "tracing_requests", ("record_id", "traces"): "traces",
             ("proposal_id", "matches"): "match_proposals", ("flag_id", None): "record_flags",
             ("file_id", None): "record_attachments", ("user_id", "users"): "users",
             ("agency_id", "agencies"): "agencies", ("group_id", "groups"): "user_groups",
             ("role_id", "roles"): "roles", ("notification_id", "notifications"): "notifications",
             ("approval_id", "approvals"): "case_approvals", ("referral_id", "referrals"): "referrals",
             ("transfer_id", "transfers"): "transfers"}


STATUSES: Counter = Counter()  # answers of the run, printed at the end


def known_ids(app) -> dict[str, list]:
    """Existing ids of every table in ID_TABLES (the tables of modules not installed are skipped)."""
    from sqlalchemy import inspect, text
    ids = {}
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        for table in set(ID_TABLES.values()) & tables:
            ids[table] = list(db.session.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 50")).scalars())
        db.session.remove()
    return ids


def with_known_ids(case, ids: dict[str, list], pick: int) -> None:
    segment = case.operation.path.split("/")[3]
    for name in list(case.path_parameters or {}):
        table = ID_TABLES.get((name, segment)) or ID_TABLES.get((name, None))
        if ids.get(table):
            case.path_parameters[name] = ids[table][pick % len(ids[table])]


def fuzz_operation(operation, mode, token: str, examples: int, ids: dict[str, list]) -> tuple[int, str | None]:
    """Run `examples` generated requests against one operation; returns (requests made, first failure)."""
    made = []

    @seed(20261128)
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), pick=strategies.integers(0, 2**16))
    def run(case, pick):
        made.append(1)
        if mode == GenerationMode.POSITIVE and pick % 3 < 2:  # two in three valid requests name a real record
            with_known_ids(case, ids, pick)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                          excluded_checks=EXCLUDED_CHECKS)
        STATUSES[response.status_code] += 1

    try:
        run()
    except (Exception, BaseExceptionGroup) as failure:  # one entry per failing operation, then the test fails with all
        return len(made), describe(failure)[:4000]
    return len(made), None


def describe(failure: BaseException) -> str:
    """The failure with what it groups (Hypothesis wraps a flaky failure, schemathesis its checks)."""
    text = f"{type(failure).__name__}: {failure}"
    if isinstance(failure, BaseExceptionGroup):
        text += "".join("\n  " + describe(inner).replace("\n", "\n  ") for inner in failure.exceptions)
    return text


def test_api_conforms_to_its_schema_and_never_fails(app, fuzz_token):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app,
                                           headers={"Authorization": f"Bearer {fuzz_token}"})
    failures, total, operations = [], 0, 0
    ids = known_ids(app)
    only = re.compile(os.environ.get("FUZZ_PATHS", ""))  # by hand: FUZZ_PATHS=/api/v1/tasks for one family
    for result in schema.get_all_operations():
        operation = result.ok()
        if not only.search(operation.path):
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            made, failure = fuzz_operation(operation, mode, fuzz_token, FUZZ_EXAMPLES, ids)
            total += made
            if failure:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {failure}")
    print(f"fuzzed {operations} operations with {total} requests; answers: {dict(sorted(STATUSES.items()))}")
    assert operations and total >= operations
    assert not failures, "\n\n".join(failures)


# --- regressions found by the fuzzer ----------------------------------------------------------------

def test_out_of_range_id_is_not_found_whatever_the_method(app):
    """Werkzeug answered 405 ("use GET") to PATCH /api/v1/agencies/<id beyond 2^31>."""
    api = app.test_client()
    headers = {"Accept": "application/json"}
    for method, path in (("get", "/api/v1/agencies/{}"), ("patch", "/api/v1/agencies/{}"),
                         ("patch", "/api/v1/groups/{}"), ("patch", "/api/v1/users/{}"),
                         ("post", "/admin/jobs/{}/retry")):
        assert getattr(api, method)(path.format(12), headers=headers).status_code in (400, 401)  # the route exists (400: a page form without its CSRF token)
        assert getattr(api, method)(path.format(14260737770445914), headers=headers).status_code == 404, path


def test_api_write_without_any_credentials_is_401_not_a_csrf_error(app):
    """An anonymous POST to the API got "400 CSRF token missing" instead of the 401 that asks to authenticate."""
    api = app.test_client()
    for path in ("/api/v1/cases/search", "/api/v1/cases", "/api/v1/agencies"):
        response = api.post(path, json={"q": "x"}, headers={"Accept": "application/json"})
        assert response.status_code == 401, path
    # A page form without its token is still refused (S7), and so is an API write riding a session.
    assert api.post("/login", data={"username": "x", "password": "y"}).status_code == 400
