"""The rq side: the function rq calls, and the `flask worker` process.

Workers are started through the Flask CLI so jobs share the app's settings and
run inside its app context (as in redash/cli/rq.py).
"""
from __future__ import annotations

import logging
import threading

from flask import current_app

from app.extensions import db

log = logging.getLogger(__name__)


def perform(job_id: int) -> None:
    """Called by rq with the JobRecord id; the record is the source of truth.

    Each job runs in a fresh app context: what a job caches for itself (form definitions,
    locations) never outlives it, so a worker sees an administrator's form changes at its
    next job (the worker's own context lasts as long as the worker).
    """
    from flask import current_app

    from app.jobs.operations import run_job
    with current_app.app_context():
        try:
            run_job(job_id)
        finally:
            db.session.remove()


def _sweeper(app, stop: threading.Event, interval: float) -> None:
    from app.jobs.operations import sweep
    while not stop.wait(interval):
        with app.app_context():
            try:
                result = sweep()
                if result["dispatched"] or result["stale"] or result["lost"]:
                    log.info("sweeper: %s", result)
            except Exception as exc:  # keep sweeping; the next round may succeed
                log.warning("sweeper round failed: %s", type(exc).__name__)
            finally:
                db.session.remove()


def run_worker(burst: bool = False, fork: bool = False, sweep_interval: float | None = None) -> None:
    """Work the queue. A background thread sweeps pending jobs into Redis every few seconds."""
    from rq import SimpleWorker, Worker
    from app.jobs.operations import redis_connection, rq_queue, sweep

    app = current_app._get_current_object()
    connection = redis_connection()
    queue = rq_queue(connection)
    sweep()  # catch up on whatever waited while no worker (or no Redis) was there
    db.session.remove()
    stop = threading.Event()
    if not burst:
        interval = sweep_interval or app.config["JOB_SWEEP_SECONDS"]
        threading.Thread(target=_sweeper, args=(app, stop, interval), daemon=True,
                         name="job-sweeper").start()
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue], connection=connection)
    try:
        worker.work(burst=burst, with_scheduler=False)
    finally:
        stop.set()
