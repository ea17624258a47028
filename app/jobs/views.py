"""Background jobs page (/admin/jobs): counts, a filtered list, details, and retry of failed jobs (R4)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import SelectChoice, SelectField

from app.extensions import db
from app.jobs.models import (
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_QUEUED,
    STATUS_RUNNING,
    STATUSES,
    JobRecord,
)
from app.jobs.operations import TASKS, retry_job
from app.listing import HTML_PER_PAGE, load_filters, page_number
from app.navigation import register_nav
from app.permissions import JOBS_MANAGE, require
from app.users.models import User

bp = Blueprint("jobs_views", __name__, url_prefix="/admin/jobs")

register_nav("jobs_views.list_jobs", _l("Background jobs"), JOBS_MANAGE, section="admin", order=60,
             description=_l("Queued, running and failed work; retry what failed"))

STATUS_LABELS = {
    STATUS_PENDING: _l("Pending"),
    STATUS_QUEUED: _l("Queued"),
    STATUS_RUNNING: _l("Running"),
    STATUS_DONE: _l("Done"),
    STATUS_FAILED: _l("Failed"),
}


class JobFilterForm(FlaskForm):
    status = SelectField(_l("Status"), default="", choices=[SelectChoice("", _l("All"))] + [
        SelectChoice(status, STATUS_LABELS[status]) for status in STATUSES])
    task = SelectField(_l("Task"), default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        known = set(TASKS) | set(db.session.execute(select(JobRecord.task).distinct()).scalars())
        self.task.choices = [SelectChoice("", _l("All tasks"))] + [SelectChoice(name, name) for name in sorted(known)]


def _status_counts() -> dict[str, int]:
    found = dict(db.session.execute(select(JobRecord.status, func.count(JobRecord.id))
                                    .group_by(JobRecord.status)).all())
    return {status: found.get(status, 0) for status in STATUSES}


@bp.get("")
@require(JOBS_MANAGE)
def list_jobs():
    filters = load_filters(JobFilterForm, "filters.jobs")
    query = select(JobRecord).order_by(JobRecord.id.desc())
    if filters.values.get("status"):
        query = query.where(JobRecord.status == filters.values["status"])
    if filters.values.get("task"):
        query = query.where(JobRecord.task == filters.values["task"])
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    return render_template("admin/jobs.html", filters=filters, page=page, counts=_status_counts(),
                           status_labels=STATUS_LABELS), 200 if filters.is_valid else 422


@bp.get("/<int:job_id>")
@require(JOBS_MANAGE)
def job_detail(job_id: int):
    job = db.session.get(JobRecord, job_id)
    if job is None:
        abort(404)
    created_by = db.session.get(User, job.created_by_id) if job.created_by_id else None
    return render_template("admin/job_detail.html", job=job, created_by=created_by, status_labels=STATUS_LABELS,
                           can_retry=job.status == STATUS_FAILED)


@bp.post("/<int:job_id>/retry")
@require(JOBS_MANAGE)
def retry(job_id: int):
    """Give a failed job a fresh set of attempts (audited by retry_job); it is dispatched after the request."""
    if db.session.get(JobRecord, job_id) is None:
        abort(404)
    try:
        retry_job(job_id, current_user)
    except ValueError:
        db.session.rollback()
        flash(_("Only failed jobs can be retried."), "error")
        return redirect(url_for(".job_detail", job_id=job_id))
    db.session.commit()
    flash(_("The job was queued again."), "success")
    return redirect(url_for(".job_detail", job_id=job_id))
