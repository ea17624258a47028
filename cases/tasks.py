"""Background jobs of the cases module: exports and imports asked for in the browser.

They take ids and plain values; the work itself is generic (app.records.exporting and
app.records.importing) and idempotent: an export run twice writes the same file again,
an import job whose upload is gone (it already ran) does nothing.
"""
from __future__ import annotations

from app.jobs.operations import task

EXPORT_CASES = "cases.export"
IMPORT_CASES = "cases.import"


@task(EXPORT_CASES)
def export_cases(user_id: int, file_format: str, labels: bool = False, filters: dict | None = None,
                 job_id: int | None = None) -> None:
    """Write the cases in the user's scope to a file only they can download."""
    from app.records.exporting import run_export_job
    run_export_job("cases", user_id=user_id, job_id=job_id, file_format=file_format, labels=labels,
                   filters=filters or {})


@task(IMPORT_CASES)
def import_cases(user_id: int, upload: str, file_format: str, dry_run: bool = False,
                 job_id: int | None = None) -> None:
    """Check (and unless `dry_run`, import) an uploaded file of cases."""
    from app.records.importing import run_import_job
    run_import_job("cases", user_id=user_id, job_id=job_id, upload=upload, file_format=file_format,
                   dry_run=dry_run)
