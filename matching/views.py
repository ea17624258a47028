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
from matching.engine import DEFAULT_MARGIN, DEFAULT_PRIOR



def percent_text(probability: float) -> str:
    """A probability as a percentage for people: never "100" (nothing is certain before
    verification) and never "0" for a proposed pair."""
    if probability >= 0.995:
        return "> 99"
    if probability < 0.01:
        return "< 1"
    return str(round(probability * 100))

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
        prior, margin = _float("prior", errors), _float("margin", errors)
        submitted = {}
        for comparator, levels in parameters.items():
            for level in levels:
                m, u = _float(f"{comparator}.{level}.m", errors), _float(f"{comparator}.{level}.u", errors)
                submitted.setdefault(comparator, {})[level] = [m, u]
        if not errors:
            try:
                new = ops.save_settings(likely, possible, submitted, prior, current_user,
                                        note=request.form.get("note", ""), margin=margin)
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
                           prior=(config.parameters or {}).get("prior", DEFAULT_PRIOR),
                           margin=(config.parameters or {}).get("margin", DEFAULT_MARGIN)), status


# --- the review queue (/matches) -------------------------------------------------------------------
"""The match review queue, the side-by-side comparison, decisions and supervisors' measures.

A proposal is visible to a reviewer (matches:review) when its trace OR its case is in their
scope. The comparison shows only the fields tagged for matching that the reviewer may read
on each side (S3), never the whole record; photos only for a record in scope. Opening a
proposal claims it; every view is audited ("match.view").
"""

from datetime import date, datetime, time, timezone  # noqa: E402
from statistics import median  # noqa: E402

from flask import abort  # noqa: E402
from flask_babel import get_locale  # noqa: E402
from flask_wtf import FlaskForm  # noqa: E402
from sqlalchemy import func, or_, select  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402
from wtforms import DateField, IntegerField, SelectField  # noqa: E402
from wtforms.fields.choices import SelectChoice  # noqa: E402
from wtforms.validators import NumberRange, Optional  # noqa: E402

from app.audit.operations import record_audit, record_denial  # noqa: E402
from app.db import utcnow  # noqa: E402
from app.listing import HTML_PER_PAGE, load_filters, page_number  # noqa: E402
from app.permissions import ROLE_SUPERVISOR, can, register_permission, scope_filter  # noqa: E402
from matching.models import LIKELY, PENDING, POSSIBLE, MatchDecision, MatchProposal  # noqa: E402

review_bp = Blueprint("matches", __name__, url_prefix="/matches", template_folder="templates")


def _register_review_blueprint(state) -> None:
    # The factory registers one `bp` per module; the review pages come with it.
    state.app.register_blueprint(review_bp)


bp.record_once(_register_review_blueprint)

register_nav("matches.queue", _l("Match review"), ops.MATCHES_REVIEW, order=30,
             description=_l("Proposed matches between children sought and registered children"))
MATCHES_MEASURES = register_permission("matches", "measures", _l("See the match review measures"),
                                       (ROLE_SUPERVISOR,))
register_nav("matches.measures_page", _l("Match measures"), MATCHES_MEASURES, order=31,
             description=_l("Queue length, time to decision, confirmations and rejections"))

LIKELIHOOD_LABELS = {LIKELY: _l("Likely"), POSSIBLE: _l("Possible")}
PROPOSAL_STATUS_LABELS = {"pending": _l("Pending"), "confirmed": _l("Confirmed"), "rejected": _l("Rejected"),
                          "superseded": _l("Superseded")}
MARK_LABELS = {"exact": _l("Exact"), "similar": _l("Similar"), "different": _l("Different"),
               "missing": _l("Missing")}
# Matching tags shown in the comparison, in order, and the comparator that judged them.
ROW_TAGS = (("given_name", "given_name"), ("middle_name", "names"), ("family_name", "names"),
            ("full_name", "names"), ("nickname", "names"), ("other_name", "names"), ("sex", "sex"),
            ("date_of_birth", "date_of_birth"), ("age", "age"), ("location", "location"),
            ("date_of_separation", "date_of_separation"), ("mother_name", "mother_name"),
            ("father_name", "father_name"), ("caregiver_name", "inquirer"), ("language", "language"),
            ("nationality", "nationality"), ("ethnicity", "ethnicity"), ("religion", "religion"))
NAME_TAGS = ("given_name", "middle_name", "family_name", "full_name", "nickname", "other_name")
EXACT_LEVELS = {"exact", "same", "same_site"}


def _choices(*pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class QueueFilterForm(FlaskForm):
    likelihood = SelectField(_l("Likelihood"), default="", choices=_choices(
        ("", _l("Any")), (LIKELY, _l("Likely")), (POSSIBLE, _l("Possible"))))
    sex = SelectField(_l("Sex of the registered child"), default="", choices=_choices(
        ("", _l("Any")), ("female", _l("Female")), ("male", _l("Male")), ("other", _l("Other")),
        ("unknown", _l("Unknown"))))
    age_min = IntegerField(_l("Age from"), validators=[Optional(), NumberRange(0, 30)])
    age_max = IntegerField(_l("Age to"), validators=[Optional(), NumberRange(0, 30)])
    agency = SelectField(_l("Agency"), default="", validate_choice=False)
    since = DateField(_l("Proposed since"), validators=[Optional()])


def _agency_choices() -> list[SelectChoice]:
    from app.users.models import Agency
    agencies = db.session.execute(select(Agency).order_by(Agency.name)).scalars().all()
    return _choices(("", _l("Any")), *((str(a.id), a.name) for a in agencies))


def visible_proposals(user):
    """Proposals whose trace or case is in `user`'s scope (S2)."""
    from cases.models import Case
    from tracing.models import Trace
    return select(MatchProposal).where(or_(
        MatchProposal.trace_id.in_(select(Trace.id).where(scope_filter(user, Trace))),
        MatchProposal.case_id.in_(select(Case.id).where(scope_filter(user, Case)))))


def filtered_queue(user, values: dict, with_likelihood: bool = True):
    """The pending proposals in scope matching the queue filters (the API's by the same names)."""
    from cases.models import Case
    query = visible_proposals(user).where(MatchProposal.status == PENDING)
    needs_case = any(values.get(k) not in (None, "") for k in ("sex", "age_min", "age_max", "agency"))
    if needs_case:
        query = query.join(Case, Case.id == MatchProposal.case_id)
        if values.get("sex"):
            query = query.where(Case.sex == values["sex"])
        if values.get("age_min") is not None:
            query = query.where(Case.age >= values["age_min"])
        if values.get("age_max") is not None:
            query = query.where(Case.age <= values["age_max"])
        if values.get("agency") not in (None, ""):
            from tracing.models import Trace
            try:
                agency_id = int(values["agency"])
            except (TypeError, ValueError):
                agency_id = -1  # not an agency: nothing matches
            query = query.where(or_(Case.agency_id == agency_id, MatchProposal.trace_id.in_(
                select(Trace.id).where(Trace.agency_id == agency_id))))
    if values.get("since"):
        since = values["since"]
        if isinstance(since, date) and not isinstance(since, datetime):
            since = datetime.combine(since, time.min, tzinfo=timezone.utc)
        query = query.where(MatchProposal.created_at >= since)
    if with_likelihood and values.get("likelihood"):
        query = query.where(MatchProposal.likelihood == values["likelihood"])
    return query


def queue_order(query):
    return query.order_by(MatchProposal.probability.desc(), MatchProposal.created_at, MatchProposal.id)


def likelihood_counts(user, values: dict) -> dict[str, int]:
    sub = filtered_queue(user, values, with_likelihood=False).subquery()
    rows = db.session.execute(select(sub.c.likelihood, func.count()).group_by(sub.c.likelihood)).all()
    counts = {LIKELY: 0, POSSIBLE: 0}
    counts.update({likelihood: count for likelihood, count in rows})
    return counts


def held_by_other(proposal: MatchProposal, user) -> bool:
    return bool(proposal.claimed_by_id and proposal.claimed_by_id != user.id and proposal.claimed_until
                and proposal.claimed_until > utcnow())


def _readable_names(user) -> dict[str, bool]:
    from forms.operations import fields_with_matching_tag, readable_fields

    def all_readable(record_type):
        # A display name and a name explanation are made of every name part: all must be readable.
        keys = readable_fields(user, record_type)
        names = [key for tag in NAME_TAGS for key in fields_with_matching_tag(record_type, tag)]
        return bool(names) and all(key in keys for key in names)

    return {"trace": all_readable("trace"), "case": all_readable("case")}


def queue_items(proposals: list[MatchProposal], user) -> list[dict]:
    """What a queue row shows: short ids, names only where readable, probability, claim."""
    from app.users.models import User
    names = _readable_names(user)
    holders = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(
        {p.claimed_by_id for p in proposals if p.claimed_by_id}))).scalars()} if proposals else {}
    items = []
    for p in proposals:
        holder = holders.get(p.claimed_by_id) if (p.claimed_until and p.claimed_until > utcnow()) else None
        items.append({"proposal": p, "id": p.id, "trace_short_id": p.trace.short_id,
                      "case_short_id": p.case.short_id,
                      "trace_name": p.trace.display_name if names["trace"] else None,
                      "case_name": p.case.display_name if names["case"] else None,
                      "percent": percent_text(p.probability), "likelihood": p.likelihood,
                      "claimed_by": holder.full_name if holder else None,
                      "is_mine": bool(holder and holder.id == user.id), "created_at": p.created_at})
    return items


def load_proposal(proposal_id: int, user=None, permission: str | None = None) -> MatchProposal:
    """A proposal the user may review (its trace or case in scope), or 404 (audited)."""
    user = user or current_user
    permission = permission or ops.MATCHES_REVIEW
    if not can(user, permission):
        record_denial("permission_denied", "match_proposal", str(proposal_id), detail={"permission": permission})
        abort(403)
    proposal = db.session.execute(visible_proposals(user).where(MatchProposal.id == proposal_id)
                                  .options(selectinload(MatchProposal.trace), selectinload(MatchProposal.case))
                                  ).scalar_one_or_none()
    if proposal is None:
        record_denial("out_of_scope", "match_proposal", str(proposal_id), detail={"permission": permission})
        abort(404)
    return proposal


def _mark(level: str | None) -> str:
    if level is None:
        return "missing"
    if level in EXACT_LEVELS:
        return "exact"
    if level == "different":
        return "different"
    return "similar"


def _age_sentence(level: str, years: float) -> str:
    whole = int(round(abs(years)))
    if whole >= 1:
        if level in ("exact", "within_tolerance"):
            return _("Ages agree once %(n)d years since separation are counted", n=whole) if whole != 1 else \
                _("Ages agree once one year since separation is counted")
        if level == "near":
            return _("Ages are close once %(n)d years since separation are counted", n=whole)
        return _("Ages do not agree, even counting %(n)d years since separation", n=whole)
    return {"exact": _("Ages agree"), "within_tolerance": _("Ages agree within the margin of an estimate"),
            "near": _("Ages are close")}.get(level, _("Ages do not agree"))


def build_comparison(proposal: MatchProposal, user) -> dict:
    """The side-by-side comparison: matching-tagged fields the user may read, marks, explanations."""
    from forms.operations import display_value, fields_with_matching_tag, get_definition, readable_fields
    from matching.comparators import TokenLevel, TokenMatch
    from matching.engine import _years_between, case_person, trace_person
    locale = str(get_locale())
    trace, case = proposal.trace, proposal.case
    readable = {"trace": readable_fields(user, "trace"), "case": readable_fields(user, "case"),
                "tracing_request": readable_fields(user, "tracing_request")}
    definitions = {"trace": get_definition("trace"), "case": get_definition("case"),
                   "tracing_request": get_definition("tracing_request")}
    levels = {item["comparator"]: item for item in proposal.comparison or []}

    def side(record_type: str, record, tag: str) -> list[dict]:
        out = []
        for key in fields_with_matching_tag(record_type, tag):
            if key in readable[record_type]:
                value = (record.data or {}).get(key)
                if value not in (None, "", []):
                    item = definitions[record_type].field(key)
                    out.append({"key": key, "label": item.label(locale) if item else key,
                                "value": display_value(record_type, key, value, locale)})
        return out

    rows = []
    for tag, comparator in ROW_TAGS:
        left, right = side("trace", trace, tag), side("case", case, tag)
        if not left and not right:
            continue
        keys = fields_with_matching_tag("case", tag) or fields_with_matching_tag("trace", tag)
        item = definitions["case"].field(keys[0]) if keys else None
        label = item.label(locale) if item else tag
        level = levels.get(comparator, {}).get("level") if left and right else None
        if comparator == "inquirer":
            level = None
        mark = "missing" if not (left and right) else _mark(level)
        if mark == "exact" and [v["value"] for v in left] != [v["value"] for v in right]:
            mark = "similar"  # e.g. ages that agree once the years since separation are counted
        rows.append({"tag": tag, "label": label, "trace": left, "case": right, "mark": mark, "level": level})
    names = _readable_names(user)
    explanations = []
    if names["trace"] and names["case"]:
        for token in levels.get("names", {}).get("tokens", []) or []:
            try:
                match = TokenMatch(token["a"], token["b"], TokenLevel(token["level"]), 0.0, "", "")
            except (KeyError, ValueError):
                continue
            explanations.append(match.explanation())
        agreeing = levels.get("names", {}).get("agreeing_names")
        if agreeing:
            explanations.append(_("%(count)s of the child's names agree, not only two: that is rarer by chance, "
                                  "so the names count for more.", count=agreeing))
        if levels.get("father_name", {}).get("compared_with") == "child_name_chain":
            explanations.append(_("The father's name on one record agrees with the child's names after the "
                                  "child's own name on the other: in chain naming, these are the father's and "
                                  "grandfather's names."))
        if any(item.get("family_shared") for item in proposal.comparison or []):
            explanations.append(_("The parents' names agree but the child's own name differs: this may be a "
                                  "brother or sister, so the parents' names count for less."))
    age = levels.get("age")
    age_readable = any(k in readable["trace"] for k in fields_with_matching_tag("trace", "age")) and any(
        k in readable["case"] for k in fields_with_matching_tag("case", "age"))
    if age and age_readable:
        years = _years_between(trace_person(trace), case_person(case))
        explanations.append(_age_sentence(age["level"], years))
    inquirer = None
    request_record = trace.tracing_request
    inquirer_fields = side("tracing_request", request_record, "inquirer_name") + side(
        "tracing_request", request_record, "relationship")
    family = []
    for tag in ("mother_name", "father_name", "caregiver_name"):
        family += side("case", case, tag)
    if "family_details" in readable["case"]:
        for row in (case.data or {}).get("family_details") or []:
            if isinstance(row, dict) and row.get("relation_name"):
                family.append({"key": "family_details", "label": display_value(
                    "case", "family_details.relation", row.get("relation"), locale) or _("Relative"),
                    "value": str(row.get("relation_name"))})
    if inquirer_fields or family:
        level = levels.get("inquirer", {}).get("level") if inquirer_fields and family else None
        inquirer = {"inquirer": inquirer_fields, "family": family,
                    "mark": _mark(level) if inquirer_fields and family else "missing", "level": level}
    return {"rows": rows, "explanations": explanations, "inquirer": inquirer,
            "photos": {"trace": _photos("trace", trace, user, readable["trace"], definitions["trace"]),
                       "case": _photos("case", case, user, readable["case"], definitions["case"])}}


def _photos(record_type: str, record, user, readable: set, definition) -> list[dict]:
    """Links to the scope-checked file routes for photo fields the user may read, on a record in scope."""
    from app.permissions import is_in_scope
    photo_keys = [item.key for item in definition.fields if item.type == "photo" and item.key in readable]
    if not photo_keys or not is_in_scope(user, record):
        return []
    endpoint = "cases.attachment" if record_type == "case" else "traces.attachment"
    return [{"url": url_for(endpoint, record_id=record.id, attachment_id=attachment_id)}
            for key in photo_keys for attachment_id in (record.data or {}).get(key) or []
            if isinstance(attachment_id, str)]


def decisions_of(proposal: MatchProposal) -> list[MatchDecision]:
    return db.session.execute(select(MatchDecision).where(MatchDecision.proposal_id == proposal.id)
                              .order_by(MatchDecision.id)).scalars().all()


def next_pending(user, after: MatchProposal | None = None) -> MatchProposal | None:
    """The best pending proposal in the user's queue not held by someone else (skipping `after`)."""
    now = utcnow()
    query = queue_order(filtered_queue(user, {}).where(or_(
        MatchProposal.claimed_by_id.is_(None), MatchProposal.claimed_by_id == user.id,
        MatchProposal.claimed_until < now)))
    if after is not None:
        query = query.where(MatchProposal.id != after.id)
    return db.session.execute(query.limit(1)).scalar_one_or_none()


@review_bp.route("", methods=["GET", "POST"])
@require(ops.MATCHES_REVIEW)
def queue():
    filters = load_filters(QueueFilterForm, "filters.matches")
    if filters.redirect:
        return filters.redirect
    filters.form.agency.choices = _agency_choices()
    query = queue_order(filtered_queue(current_user, filters.values)).options(
        selectinload(MatchProposal.trace), selectinload(MatchProposal.case))
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    items = queue_items(page.items, current_user)
    counts = likelihood_counts(current_user, filters.values)
    record_audit("match.list", "match_proposal", None, detail={
        "filters": {k: str(v) for k, v in filters.values.items()}, "shown": len(items)})
    db.session.commit()
    return render_template("matching/queue.html", filters=filters, page=page, items=items, counts=counts,
                           likelihood_labels=LIKELIHOOD_LABELS), 200 if filters.is_valid else 422


def _neighbours(proposal: MatchProposal) -> tuple[int | None, int | None]:
    """Previous and next pending items of the queue around `proposal` (for j/k)."""
    ids = db.session.execute(queue_order(filtered_queue(current_user, {})).with_only_columns(
        MatchProposal.id).limit(1000)).scalars().all()
    if proposal.id not in ids:
        return None, (ids[0] if ids else None)
    index = ids.index(proposal.id)
    return (ids[index - 1] if index > 0 else None), (ids[index + 1] if index + 1 < len(ids) else None)


def _render_proposal(proposal: MatchProposal, status: int = 200, claimed: bool | None = None):
    from app.permissions import is_in_scope
    from app.users.models import User
    comparison = build_comparison(proposal, current_user)
    record_audit("match.view", "match_proposal", proposal.id,
                 detail={"trace": proposal.trace_id, "case": proposal.case_id})
    holder = db.session.get(User, proposal.claimed_by_id) if held_by_other(proposal, current_user) else None
    previous_id, next_id = _neighbours(proposal)
    context = dict(
        proposal=proposal, comparison=comparison, holder=holder, decisions=decisions_of(proposal),
        names=_readable_names(current_user), reasons=ops.REJECTION_REASONS,
        likelihood_labels=LIKELIHOOD_LABELS, status_labels=PROPOSAL_STATUS_LABELS, mark_labels=MARK_LABELS,
        can_undo=can(current_user, ops.MATCHES_UNDO), previous_id=previous_id, next_id=next_id,
        trace_in_scope=is_in_scope(current_user, proposal.trace),
        case_in_scope=is_in_scope(current_user, proposal.case), percent=percent_text(proposal.probability))
    db.session.commit()
    return render_template("matching/proposal.html", **context), status


@review_bp.get("/<int:proposal_id>")
@require(ops.MATCHES_REVIEW)
def show(proposal_id: int):
    proposal = load_proposal(proposal_id)
    if proposal.status == PENDING:
        ops.claim_proposal(proposal, current_user)
    return _render_proposal(proposal)


def _decided(proposal_id: int, permission: str, decide, done: str):
    proposal = load_proposal(proposal_id, permission=permission)
    try:
        decide(proposal)
    except ops.DecisionError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _render_proposal(load_proposal(proposal_id), status=error.status)
    db.session.commit()
    flash(done, "success")
    following = next_pending(current_user, after=proposal)
    if following is None:
        return redirect(url_for(".queue"))
    return redirect(url_for(".show", proposal_id=following.id))


@review_bp.post("/<int:proposal_id>/confirm")
@require(ops.MATCHES_REVIEW)
def confirm(proposal_id: int):
    return _decided(proposal_id, ops.MATCHES_REVIEW,
                    lambda p: ops.confirm_match(p, current_user, request.form.get("note", "")),
                    _("The match is confirmed."))


@review_bp.post("/<int:proposal_id>/reject")
@require(ops.MATCHES_REVIEW)
def reject(proposal_id: int):
    return _decided(proposal_id, ops.MATCHES_REVIEW,
                    lambda p: ops.reject_match(p, current_user, request.form.get("reason", ""),
                                               request.form.get("note", "")),
                    _("The proposal is rejected."))


@review_bp.post("/<int:proposal_id>/defer")
@require(ops.MATCHES_REVIEW)
def defer(proposal_id: int):
    return _decided(proposal_id, ops.MATCHES_REVIEW,
                    lambda p: ops.defer_match(p, current_user, request.form.get("note", "")),
                    _("The proposal is deferred."))


@review_bp.post("/<int:proposal_id>/undo")
@require(ops.MATCHES_UNDO)
def undo(proposal_id: int):
    proposal = load_proposal(proposal_id, permission=ops.MATCHES_UNDO)
    try:
        ops.undo_decision(proposal, current_user, request.form.get("reason", ""))
    except ops.DecisionError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _render_proposal(load_proposal(proposal_id), status=error.status)
    db.session.commit()
    flash(_("The decision is undone; the proposal is pending again."), "success")
    return redirect(url_for(".show", proposal_id=proposal.id))


# --- per record: the proposals of one case or one trace ----------------------------------------

def proposals_for_record(record) -> list[dict]:
    """Proposals of a case (its traces) or a trace (its cases), for a reviewer who may see them."""
    if not (current_user.is_authenticated and can(current_user, ops.MATCHES_REVIEW)):
        return []
    column = MatchProposal.case_id if record.RECORD_TYPE == "case" else MatchProposal.trace_id
    proposals = db.session.execute(visible_proposals(current_user).where(column == record.id).options(
        selectinload(MatchProposal.trace), selectinload(MatchProposal.case)).order_by(
        MatchProposal.probability.desc(), MatchProposal.id)).scalars().all()
    other = "trace" if record.RECORD_TYPE == "case" else "case"
    return [{"id": p.id, "other_short_id": getattr(p, other).short_id, "status": p.status,
             "status_label": PROPOSAL_STATUS_LABELS.get(p.status, p.status),
             "likelihood_label": LIKELIHOOD_LABELS.get(p.likelihood, p.likelihood),
             "percent": percent_text(p.probability)} for p in proposals]


@review_bp.app_context_processor
def _proposal_helpers():
    return {"match_proposals_for": proposals_for_record}


# --- measures for supervisors --------------------------------------------------------------------

def measures(user) -> dict:
    """Queue length, oldest pending, median time to decision, decisions by reason, reunifications."""
    from tracing.models import TRACE_REUNIFIED, Trace
    now = utcnow()
    visible = visible_proposals(user).subquery()
    pending = db.session.execute(select(func.count(), func.min(visible.c.created_at)).where(
        visible.c.status == PENDING)).one()
    decided = db.session.execute(select(visible.c.created_at, visible.c.decided_at).where(
        visible.c.status.in_(("confirmed", "rejected")), visible.c.decided_at.is_not(None))).all()
    hours = [(decided_at - created_at).total_seconds() / 3600 for created_at, decided_at in decided
             if created_at and decided_at]
    by_status = dict(db.session.execute(select(visible.c.status, func.count()).group_by(visible.c.status)).all())
    by_reason = dict(db.session.execute(select(visible.c.decision_reason, func.count()).where(
        visible.c.status == "rejected").group_by(visible.c.decision_reason)).all())
    reunified = db.session.execute(select(Trace.updated_at).where(
        Trace.tracing_status == TRACE_REUNIFIED, scope_filter(user, Trace))).scalars().all()
    months: dict[str, int] = {}
    for at in reunified:
        if at:
            key = at.strftime("%Y-%m")
            months[key] = months.get(key, 0) + 1
    oldest = pending[1]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return {"queue_length": pending[0],
            "oldest_pending_hours": round((now - oldest).total_seconds() / 3600, 1) if oldest else None,
            "median_hours_to_decision": round(median(hours), 1) if hours else None,
            "confirmed": by_status.get("confirmed", 0), "rejected": by_status.get("rejected", 0),
            "rejected_by_reason": {reason or "other": count for reason, count in by_reason.items()},
            "reunifications_by_month": dict(sorted(months.items()))}


@review_bp.get("/measures")
@require(MATCHES_MEASURES)
def measures_page():
    values = measures(current_user)
    record_audit("match.measures", "match_proposal", None)
    db.session.commit()
    return render_template("matching/measures.html", m=values, reasons=ops.REJECTION_REASONS)


# --- after confirmation: verification and reunification ----------------------------------------

def _follow_up_context(proposal: MatchProposal) -> dict:
    """What the comparison page shows after a confirmation: the verifications, the reunification,
    which form comes next, and the errors and values of a refused submission (set in `g`)."""
    from flask import g
    if proposal.status not in ("confirmed", "rejected"):
        return {"verifications": [], "verification": None, "reunification": None, "form": None}
    verification = ops.current_verification(proposal)
    reunification = ops.current_reunification(proposal)
    form = None
    if proposal.status == "confirmed" and can(current_user, ops.MATCHES_REVIEW):
        if verification is None:
            form = "verification"
        elif verification.outcome == "verified" and reunification is None \
                and proposal.trace.tracing_status == "match_confirmed":
            form = "reunification"
    return {"verifications": ops.verifications_of(proposal), "verification": verification,
            "reunification": reunification, "form": form, "errors": g.get("follow_up_errors") or {},
            "values": g.get("follow_up_values") or {}, "methods": ops.VERIFICATION_METHOD_LABELS,
            "outcomes": ops.VERIFICATION_OUTCOME_LABELS}


@review_bp.app_context_processor
def _follow_up_helpers():
    return {"match_follow_up": _follow_up_context}


def _form_date(name: str):
    """A date from the form, or None (the operation then says which field needs one)."""
    try:
        return date.fromisoformat((request.form.get(name) or "").strip())
    except ValueError:
        return None


def _followed_up(proposal_id: int, operation, done: str):
    from flask import g
    proposal = load_proposal(proposal_id)
    try:
        operation(proposal)
    except ops.FollowUpError as error:
        db.session.rollback()
        errors, status = error.errors, error.status
    else:
        db.session.commit()
        flash(done, "success")
        return redirect(url_for(".show", proposal_id=proposal_id) + "#after-confirmation")
    g.follow_up_errors, g.follow_up_values = errors, request.form
    for message in errors.get("status", []):
        flash(message, "error")
    return _render_proposal(load_proposal(proposal_id), status=status)


@review_bp.post("/<int:proposal_id>/verification")
@require(ops.MATCHES_REVIEW)
def verify(proposal_id: int):
    outcome = request.form.get("outcome", "")
    done = _("The verification is recorded.") if outcome == "verified" else \
        _("The verification failed: the pair is rejected and the child is sought again.")
    return _followed_up(proposal_id, lambda p: ops.verify_match(
        p, current_user, request.form.getlist("methods"), outcome, request.form.get("note", "")), done)


@review_bp.post("/<int:proposal_id>/reunification")
@require(ops.MATCHES_REVIEW)
def reunify(proposal_id: int):
    return _followed_up(proposal_id, lambda p: ops.record_reunification(
        p, current_user, _form_date("reunified_on"), request.form.get("place", ""),
        request.form.get("with_whom", ""), _form_date("follow_up_due")),
        _("The reunification is recorded; the trace is reunified."))
