"""Approval pages: the supervisors' queue (/approvals), the decisions and cancellations
posted from it and from a case's Approvals panel, and the administrators' choice of
which approvals are required.

The queue page is built from panels so other modules add their own queues to it
(e.g. referrals awaiting approval): `register_approval_panel(template, context, permission)`.
A panel shows to users holding its permission; `context(user)` gives its template's
variables. The case approvals panel is the first one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload

from app.audit.operations import record_audit, record_denial
from app.extensions import db
from app.navigation import register_nav
from app.permissions import can, require
from cases import approvals
from cases import operations as ops
from cases.models import APPROVAL_TYPES, CaseApproval

bp = Blueprint("approvals", __name__, url_prefix="/approvals", template_folder="templates")

register_nav("approvals.queue", _l("Approvals"), ops.CASES_APPROVE, order=15,
             description=_l("Case plans and closures waiting for a supervisor"))
register_nav("approvals.settings", _l("Case approvals"), ops.APPROVALS_CONFIGURE, section="admin", order=65,
             description=_l("Which case decisions need a supervisor's approval"))

QUEUE_LIMIT = 200  # oldest first: a longer queue is worked from its head


@dataclass(frozen=True)
class ApprovalPanel:
    template: str
    context: Callable[[object], dict]
    permission: str
    order: int = 100


_PANELS: list[ApprovalPanel] = []


def register_approval_panel(template: str, context: Callable[[object], dict], permission: str,
                            order: int = 100) -> None:
    """Add a queue to the approvals page (idempotent per template)."""
    if all(panel.template != template for panel in _PANELS):
        _PANELS.append(ApprovalPanel(template, context, permission, order))


def _case_approvals_context(user) -> dict:
    query = approvals.approval_queue(user).options(
        selectinload(CaseApproval.case), selectinload(CaseApproval.requested_by)).limit(QUEUE_LIMIT + 1)
    items = list(db.session.scalars(query))
    return {"case_approvals": items[:QUEUE_LIMIT], "case_approvals_more": len(items) > QUEUE_LIMIT}


register_approval_panel("cases/_approval_queue.html", _case_approvals_context, ops.CASES_APPROVE, order=10)


def _panels_for(user) -> list[tuple[ApprovalPanel, dict]]:
    return [(panel, panel.context(user)) for panel in sorted(_PANELS, key=lambda p: p.order)
            if can(user, panel.permission)]


@bp.get("")
@login_required
def queue():
    panels = _panels_for(current_user)
    if not panels:
        record_denial("permission_denied", detail={"permission": ops.CASES_APPROVE})
        abort(403)
    record_audit("approvals.queue_view", "case_approval", None,
                 detail={"shown": sum(len(context.get("case_approvals", ())) for _p, context in panels)})
    db.session.commit()
    return render_template("cases/approvals.html", panels=panels, type_labels=approvals.APPROVAL_TYPE_LABELS)


def _back_to(approval: CaseApproval):
    """Back where the form was: the queue, or the case page's Approvals panel."""
    if request.form.get("back") == "case":
        return redirect(url_for("cases.show_case", record_id=approval.case_id) + "#approvals")
    return redirect(url_for(".queue"))


def _act(approval_id: int, permission: str, operation, done_message: str):
    approval = approvals.load_approval(approval_id, permission, current_user)
    try:
        operation(approval)
    except approvals.ApprovalError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _back_to(db.session.get(CaseApproval, approval_id))
    db.session.commit()
    flash(done_message % {"id": approval.case.short_id}, "success")
    return _back_to(approval)


@bp.post("/<int:approval_id>/approve")
@login_required
def approve(approval_id):
    comment = request.form.get("comment", "")
    return _act(approval_id, ops.CASES_APPROVE,
                lambda approval: approvals.decide_approval(approval, current_user, True, comment),
                _("Approved: case %(id)s."))


@bp.post("/<int:approval_id>/reject")
@login_required
def reject(approval_id):
    comment = request.form.get("comment", "")
    return _act(approval_id, ops.CASES_APPROVE,
                lambda approval: approvals.decide_approval(approval, current_user, False, comment),
                _("Not approved: case %(id)s. The requester is told why."))


@bp.post("/<int:approval_id>/cancel")
@login_required
def cancel(approval_id):
    return _act(approval_id, ops.CASES_REQUEST_APPROVAL,
                lambda approval: approvals.cancel_approval(approval, current_user),
                _("Your approval request on case %(id)s is cancelled."))


@bp.route("/settings", methods=["GET", "POST"])
@require(ops.APPROVALS_CONFIGURE)
def settings():
    if request.method == "POST":
        chosen = set(request.form.getlist("required"))
        unknown = chosen - set(APPROVAL_TYPES)
        if unknown:
            abort(400)
        changed = [code for code in APPROVAL_TYPES
                   if approvals.set_approval_required(code, code in chosen, current_user)]
        db.session.commit()
        flash(_("Saved.") if changed else _("Nothing was changed."), "success" if changed else "info")
        return redirect(url_for(".settings"))
    return render_template("cases/approval_settings.html", settings=approvals.approval_settings(),
                           type_labels=approvals.APPROVAL_TYPE_LABELS)
