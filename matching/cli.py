"""`flask matching run` and `flask matching export`."""
from __future__ import annotations

import csv
import time
import uuid

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.models import OPEN_STATUSES, STATUS_DONE, STATUS_FAILED, STATUS_RUNNING, JobRecord
from app.jobs.operations import dispatch_committed_jobs, enqueue, run_job
from matching.models import MatchProposal
from matching.tasks import MATCH_TRACES

CHUNK = 500


@click.group("matching")
def matching_group():
    """Run and export the matching engine's proposals."""


def _open_chunks() -> list[JobRecord]:
    return list(db.session.execute(select(JobRecord).where(
        JobRecord.task == MATCH_TRACES,
        JobRecord.status.in_((*OPEN_STATUSES, STATUS_RUNNING, STATUS_FAILED)))).scalars())


@matching_group.command("run")
@click.option("--chunk-size", default=CHUNK, show_default=True, help="Traces per job.")
@click.option("--restart", is_flag=True, help="Start a new run even if an earlier one is unfinished.")
@click.option("--reindex", is_flag=True, help="Rewrite every record's name keys first.")
@with_appcontext
def run_command(chunk_size: int, restart: bool, reindex: bool) -> None:
    """Re-match every open trace against the cases, in chunks that any number of workers share.

    An unfinished earlier run (for example after a crash) is resumed instead of started again.
    A new run first rewrites the name keys of every record (the children's, the parents' and
    caregivers', the inquirers'), so records saved before the key rules last changed are found
    with the rules in force; a resumed one only with --reindex.
    """
    from matching.engine import index_all_keys
    from tracing.models import Trace
    unfinished = [] if restart else _open_chunks()
    if reindex or not unfinished:
        written = index_all_keys()
        click.echo(f"Indexed {written} name key(s).")
    if unfinished:
        run_ids = sorted({job.args.get("run") for job in unfinished})
        click.echo(f"Resuming run {', '.join(run_ids)}: {len(unfinished)} chunk(s) not done yet.")
        for job in unfinished:
            if job.status == STATUS_FAILED:
                job.status, job.attempts = "pending", 0
        db.session.commit()
        job_ids = [job.id for job in unfinished]
    else:
        run_id = uuid.uuid4().hex[:8]
        ids = list(db.session.execute(select(Trace.id).order_by(Trace.id)).scalars())
        job_ids = []
        for start in range(0, len(ids), chunk_size):
            job = enqueue(MATCH_TRACES, {"trace_ids": ids[start:start + chunk_size], "run": run_id},
                          dedupe_key=f"matchrun:{run_id}:{start // chunk_size}")
            db.session.flush()
            job.args = {**job.args, "job_id": job.id}
            job_ids.append(job.id)
        db.session.commit()
        click.echo(f"Run {run_id}: {len(ids)} trace(s) in {len(job_ids)} chunk(s).")
    if not job_ids:
        click.echo("No traces to match.")
        return
    uses_redis = bool(current_app.config.get("REDIS_URL"))
    started = time.monotonic()
    with click.progressbar(length=len(job_ids), label="Matching") as bar:
        if uses_redis:
            dispatch_committed_jobs()
            from app.jobs.operations import sweep
            sweep()
            done = 0
            while done < len(job_ids):
                time.sleep(1)
                db.session.expire_all()
                now_done = db.session.scalar(select(func.count(JobRecord.id)).where(
                    JobRecord.id.in_(job_ids), JobRecord.status.in_((STATUS_DONE, STATUS_FAILED))))
                bar.update(now_done - done)
                done = now_done
        else:
            db.session.info.pop("jobs_committed", None)  # run them here, one by one
            for job_id in job_ids:
                run_job(job_id)
                bar.update(1)
    failed = db.session.scalar(select(func.count(JobRecord.id)).where(
        JobRecord.id.in_(job_ids), JobRecord.status == STATUS_FAILED))
    pending = db.session.scalar(select(func.count(MatchProposal.id)).where(MatchProposal.status == "pending"))
    click.echo(f"Done in {time.monotonic() - started:.1f} s: {pending} pending proposal(s)"
               + (f", {failed} chunk(s) failed (see the jobs page; run again to retry)" if failed else "."))


@matching_group.command("export")
@click.option("--output", required=True, type=click.Path(dir_okay=False, writable=True))
@with_appcontext
def export_command(output: str) -> None:
    """One row per proposal: trace_id, trace_source_id, case_id, case_source_id, score, probability, likelihood, status."""
    from cases.models import Case
    from tracing.models import Trace
    query = (select(MatchProposal.trace_id, Trace.source_id, MatchProposal.case_id, Case.source_id,
                    MatchProposal.score, MatchProposal.probability, MatchProposal.likelihood, MatchProposal.status)
             .join(Trace, Trace.id == MatchProposal.trace_id).join(Case, Case.id == MatchProposal.case_id)
             .order_by(MatchProposal.trace_id, MatchProposal.probability.desc()))
    count = 0
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trace_id", "trace_source_id", "case_id", "case_source_id", "score", "probability",
                         "likelihood", "status"])
        for row in db.session.execute(query.execution_options(yield_per=1000)):
            writer.writerow(["" if value is None else value for value in row])
            count += 1
    from app.audit.operations import record_audit
    record_audit("matching.export", "match_proposal", None, detail={"rows": count})
    db.session.commit()
    click.echo(f"{count} proposal(s) written to {output}.")


@matching_group.command("estimate")
@click.option("--save", is_flag=True, help="Store the estimate as a new engine version.")
@click.option("--min-decisions", default=20, show_default=True)
@with_appcontext
def estimate_command(save: bool, min_decisions: int) -> None:
    """Re-estimate m and u from the proposals reviewers confirmed and rejected."""
    from matching import operations as ops
    try:
        result = ops.estimate_from_decisions(min_decisions)
    except ops.SettingsError as error:
        raise click.ClickException(" ".join(m for ms in error.errors.values() for m in ms)) from None
    click.echo(f"From {result['confirmed']} confirmed and {result['rejected']} rejected proposals:")
    for comparator, levels in result["parameters"].items():
        click.echo(f"  {comparator}: " + ", ".join(f"{level} m={m} u={u}" for level, (m, u) in levels.items()))
    if save:
        config = ops.current_config()
        new = ops.save_settings(config.likely_threshold, config.possible_threshold, result["parameters"],
                                (config.parameters or {}).get("prior"), None, note="estimated from decisions",
                                margin=(config.parameters or {}).get("margin"))
        db.session.commit()
        click.echo(f"Saved as engine version {new.id}.")
