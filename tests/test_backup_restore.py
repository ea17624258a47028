"""Backup and restore with PostgreSQL's own tools round-trips every record (R8).

The README's production guide backs up with `pg_dump -Fc` plus the uploads folder and
restores with `createdb` + `pg_restore` (+ unpacking the folder). This test does exactly
that on a database of its own and compares every row of every table, the proposals and the
append-only audit trail included, and the attachment files. PostgreSQL only.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from app.extensions import db


@pytest.fixture
def postgres_url(app):
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("backup and restore use PostgreSQL's pg_dump and pg_restore")
    for tool in ("pg_dump", "pg_restore", "createdb", "dropdb"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed")
    return url


def pg_env(url) -> tuple[list[str], dict]:
    """Connection options for the PostgreSQL client tools, as the production guide uses them."""
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    return args, env


def table_rows(engine) -> dict[str, list[tuple]]:
    """Every row of every application table, in primary-key order, as plain values."""
    rows = {}
    with engine.connect() as connection:
        for table in sorted(inspect(connection).get_table_names()):
            result = connection.execute(text(f'SELECT * FROM "{table}"'))
            rows[table] = sorted(tuple(str(value) for value in row) for row in result)
    return rows


def make_records(app) -> dict:
    """Cases (one with a note and a photo), a tracing request with two traces, a match proposal."""
    from werkzeug.datastructures import FileStorage

    from app.jobs.operations import dispatch_committed_jobs
    from app.records.attachments import store_attachment
    from app.records.operations import add_note
    from app.users.operations import create_agency, create_group, create_user
    from cases.operations import create_case
    from forms.operations import load_default_configuration
    from matching.models import MatchProposal
    from tests.conftest import PASSWORD
    from tracing.operations import create_tracing_request
    with app.app_context():
        from app.users.models import Role
        load_default_configuration()
        agency = create_agency("bk", "Backup agency")
        group = create_group("bk-camp", "Backup camp", agency)
        roles = {role.code: role for role in db.session.execute(select(Role)).scalars()}
        worker = create_user("bkworker", "Backup Worker", PASSWORD, agency, roles["caseworker"], [group],
                             must_change_password=False)
        officer = create_user("bktracer", "Backup Tracer", PASSWORD, agency, roles["tracing_officer"], [group],
                              must_change_password=False)
        case = create_case(worker, {"name_first": "Amina", "name_last": "Yusuf", "sex": "female", "age": 8,
                                    "consent_for_tracing": True})
        create_case(worker, {"name_first": "Deng", "name_last": "Garang", "sex": "male", "age": 11,
                             "consent_for_tracing": True})
        db.session.flush()
        add_note(case, worker, "Seen at the clinic; doing well.")
        png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
        photo = store_attachment(case, "photos", "photo", FileStorage(io.BytesIO(png), filename="p.png"), worker)
        case.data = {**case.data, "photos": [photo.id]}
        create_tracing_request(officer, {"relation_name": "Halima Yusuf", "relation": "mother",
                                         "inquiry_date": "2024-03-02", "consent_for_tracing": True},
                               [{"name_first": "Amina", "name_last": "Yusuf", "sex": "female", "age": 8},
                                {"name_first": "Khadija", "name_last": "Yusuf", "sex": "female", "age": 5}])
        db.session.commit()
        dispatch_committed_jobs()  # matching runs in-process (no Redis): Amina's trace gets a proposal
        assert db.session.scalar(select(db.func.count(MatchProposal.id))) >= 1
        storage_name = photo.storage_name
        db.session.remove()
    return {"png_sha256": hashlib.sha256(png).hexdigest(), "storage_name": storage_name}


def test_pg_dump_and_pg_restore_round_trip_every_record(app, committed, postgres_url, tmp_path):
    from app.records.attachments import _path_for
    made = make_records(app)
    source = create_engine(postgres_url)
    before = table_rows(source)
    source.dispose()
    for table in ("cases", "tracing_requests", "traces", "match_proposals", "audit_entries", "record_notes",
                  "record_changes", "record_attachments", "users"):
        assert before[table], f"nothing in {table} to back up"
    assert len(before["traces"]) == 2

    args, env = pg_env(postgres_url)
    dump = tmp_path / "cpims.dump"
    subprocess.run(["pg_dump", *args, "-Fc", "-f", str(dump), postgres_url.database], env=env, check=True)
    with app.app_context():
        uploads = _path_for(made["storage_name"]).parents[2]
    archive = tmp_path / "uploads.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(uploads, arcname="uploads")

    restored_name = f"cpims_restore_{os.getpid()}"
    subprocess.run(["dropdb", *args, "--if-exists", restored_name], env=env, check=True)
    subprocess.run(["createdb", *args, restored_name], env=env, check=True)
    try:
        subprocess.run(["pg_restore", *args, "--no-owner", "--exit-on-error", "-d", restored_name, str(dump)],
                       env=env, check=True)
        restored = create_engine(postgres_url.set(database=restored_name))
        after = table_rows(restored)
        # The audit trail is still append-only after a restore (its trigger came back with it).
        with restored.connect() as connection:
            with pytest.raises(Exception, match="append-only"):
                connection.execute(text("DELETE FROM audit_entries"))
        restored.dispose()
    finally:
        subprocess.run(["dropdb", *args, "--if-exists", "--force", restored_name], env=env, check=True)

    assert after.keys() == before.keys()
    for table, rows in before.items():
        assert after[table] == rows, f"{table} differs after the restore"

    target = tmp_path / "restored"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    name = made["storage_name"]
    restored_file = target / "uploads" / name[:2] / name[2:4] / name
    assert hashlib.sha256(restored_file.read_bytes()).hexdigest() == made["png_sha256"]
