"""Matching pages: the engine's settings (administrators)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.navigation import register_nav
from app.permissions import require
from matching import operations as ops
from matching.engine import DEFAULT_PRIOR

bp = Blueprint("matching", __name__, url_prefix="/admin/matching", template_folder="templates")

register_nav("matching.settings", _l("Matching settings"), ops.MATCHING_CONFIGURE, section="admin", order=60,
             description=_l("Weights and thresholds of the matching engine"))

COMPARATOR_LABELS = {
    "names": _l("Whole name"), "given_name": _l("Child's own given name"), "sex": _l("Sex"), "age": _l("Age"),
    "date_of_birth": _l("Date of birth"), "location": _l("Location"), "date_of_separation": _l("Date of separation"),
    "mother_name": _l("Mother's name"), "father_name": _l("Father's name"),
    "inquirer": _l("Inquirer against the child's relatives"), "language": _l("Language"),
    "nationality": _l("Nationality"), "ethnicity": _l("Ethnicity"), "religion": _l("Religion"),
}


def _float(name: str, errors: dict):
    raw = (request.form.get(name) or "").strip()
    try:
        return float(raw)
    except ValueError:
        errors.setdefault(name, []).append(_("Enter a number."))
        return None


@bp.route("", methods=["GET", "POST"])
@require(ops.MATCHING_CONFIGURE)
def settings():
    config = ops.current_config()
    parameters = ops.effective_parameters(config)
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        likely, possible = _float("likely_threshold", errors), _float("possible_threshold", errors)
        prior = _float("prior", errors)
        submitted = {}
        for comparator, levels in parameters.items():
            for level in levels:
                m, u = _float(f"{comparator}.{level}.m", errors), _float(f"{comparator}.{level}.u", errors)
                submitted.setdefault(comparator, {})[level] = [m, u]
        if not errors:
            try:
                new = ops.save_settings(likely, possible, submitted, prior, current_user,
                                        note=request.form.get("note", ""))
            except ops.SettingsError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                flash(_("Saved as engine version %(v)d. New proposals will use it; run a full re-match "
                        "(flask matching run) to rescore existing ones.", v=new.id), "success")
                return redirect(url_for(".settings"))
        parameters, status = submitted, 422
    return render_template("matching/settings.html", config=config, parameters=parameters, errors=errors,
                           labels=COMPARATOR_LABELS,
                           prior=(config.parameters or {}).get("prior", DEFAULT_PRIOR)), status
