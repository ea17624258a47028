"""GET /api/v1/me: who is calling, with which permissions (any API client's first call)."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify
from flask_login import current_user

from app.permissions import CATALOGUE, can

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1")


@bp.get("/me")
def me():
    if not current_user.is_authenticated:
        abort(401)
    user = current_user
    return jsonify({
        "id": user.id, "username": user.username, "full_name": user.full_name, "locale": user.locale,
        "agency": {"id": user.agency.id, "code": user.agency.code, "name": user.agency.name},
        "role": {"code": user.role.code, "name": user.role.name, "scope": user.role.scope},
        "groups": [{"id": g.id, "code": g.code, "name": g.name} for g in user.groups],
        # What this request may do: a token request carries no administrative permission.
        "permissions": sorted(p for p in user.permissions if p in CATALOGUE and can(user, p)),
    })
