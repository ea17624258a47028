"""The Retention page (/admin/retention): how many closed records are due for
anonymisation (a dry-run count), and a confirm button that queues the job."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.audit.operations import record_audit
from app.extensions import db
from app.jobs.models import JobRecord
from app.jobs.operations import enqueue
from app.jobs.views import STATUS_LABELS
from app.navigation import register_nav
from app.permissions import require
from app.records.retention import ANONYMISE_TASK, RECORDS_ANONYMISE, count_due, retention_cutoff

bp = Blueprint("retention_views", __name__, url_prefix="/admin/retention")

register_nav("retention_views.retention", _l("Retention"), RECORDS_ANONYMISE, section="admin", order=70,
             description=_l("Anonymise closed records older than the retention period"))


@bp.get("")
@require(RECORDS_ANONYMISE)
def retention():
    from flask import current_app
    recent = list(db.session.execute(select(JobRecord).where(JobRecord.task == ANONYMISE_TASK)
                                     .order_by(JobRecord.id.desc()).limit(5)).scalars())
    return render_template("admin/retention.html", due=count_due(), cutoff=retention_cutoff(),
                           years=current_app.config["RETENTION_CLOSED_YEARS"], recent=recent,
                           status_labels=STATUS_LABELS)


@bp.post("")
@require(RECORDS_ANONYMISE)
def run():
    """Queue the anonymisation (deduplicated: a second click while it waits reuses the job)."""
    due = count_due()
    job = enqueue(ANONYMISE_TASK, {"user_id": current_user.id}, dedupe_key="records.anonymise",
                  user=current_user, max_attempts=2)
    db.session.flush()
    job.args = {**job.args, "job_id": job.id}
    record_audit("records.anonymise_requested", "job", str(job.id), detail=due, user=current_user)
    db.session.commit()
    flash(_("The anonymisation was queued; its progress shows on this page."), "success")
    return redirect(url_for(".retention"))
