"""Background jobs of the tracing module: exports and imports asked for in the browser.

They take ids and plain values; the work itself is generic (app.records.exporting and
app.records.importing) and idempotent.
"""
from __future__ import annotations

from app.jobs.operations import task

EXPORT_TRACING = "tracing.export"
IMPORT_TRACING = "tracing.import"


@task(EXPORT_TRACING)
def export_tracing_requests(user_id: int, file_format: str, labels: bool = False, filters: dict | None = None,
                            job_id: int | None = None) -> None:
    """Write the tracing requests (one row per trace) in the user's scope to a file only they can download."""
    from app.records.exporting import run_export_job
    run_export_job("tracing", user_id=user_id, job_id=job_id, file_format=file_format, labels=labels,
                   filters=filters or {})


@task(IMPORT_TRACING)
def import_tracing_requests(user_id: int, upload: str, file_format: str, dry_run: bool = False,
                            job_id: int | None = None) -> None:
    """Check (and unless `dry_run`, import) an uploaded file of tracing requests."""
    from app.records.importing import run_import_job
    run_import_job("tracing", user_id=user_id, job_id=job_id, upload=upload, file_format=file_format,
                   dry_run=dry_run)
