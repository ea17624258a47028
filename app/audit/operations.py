"""Writing the audit trail.

`record_audit` adds an entry to the current transaction, so the entry and the
action it describes are committed (or rolled back) together (S14).
`record_denial` is for refusals: the request is about to fail and roll back, so
the entry is queued and written by the error handler after the rollback.
"""
from __future__ import annotations

from flask import g, has_request_context, request
from flask_login import current_user

from app.audit.models import OUTCOME_DENIED, OUTCOME_SUCCESS, AuditEntry
from app.extensions import db


def _actor(user=None):
    if user is not None:
        return user
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user
    return None


def _entry(action, outcome, resource_type, resource_id, detail, user) -> AuditEntry:
    actor = _actor(user)
    return AuditEntry(
        action=action,
        outcome=outcome,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        user_id=actor.id if actor is not None else None,
        username=actor.username if actor is not None else None,
        address=request.remote_addr if has_request_context() else None,
        request_id=g.get("request_id") if has_request_context() else None,
        detail=detail or {},
    )


def record_audit(action: str, resource_type: str | None = None, resource_id=None,
                 detail: dict | None = None, user=None, outcome: str = OUTCOME_SUCCESS) -> AuditEntry:
    """Add an audit entry to the current transaction (the caller commits)."""
    entry = _entry(action, outcome, resource_type, resource_id, detail, user)
    db.session.add(entry)
    return entry


def record_denial(action: str, resource_type: str | None = None, resource_id=None,
                  detail: dict | None = None, user=None) -> None:
    """Remember a refusal; `write_pending_denials` stores it after the rollback."""
    entry = _entry(action, OUTCOME_DENIED, resource_type, resource_id, detail, user)
    if has_request_context():
        g.setdefault("pending_denials", []).append(entry)
    else:
        db.session.add(entry)


def write_pending_denials() -> None:
    """Called by the 403/404 handlers: discard the failed work, keep the denial."""
    entries = g.pop("pending_denials", None) if has_request_context() else None
    if not entries:
        return
    db.session.rollback()
    db.session.add_all(entries)
    db.session.commit()
