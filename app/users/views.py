"""Administration pages: agencies, user groups, users and roles (/admin/...).

Handlers stay thin: parse a form, check the permission, call one operation
(which validates and audits), commit once. Field problems reported by an
operation are shown next to the field they concern.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from app.auth.models import UserSession
from app.auth.operations import current_session_row
from app.auth.passwords import password_problems
from app.extensions import db
from app.i18n import role_label
from app.listing import HTML_PER_PAGE, load_filters, page_number
from app.navigation import register_nav
from app.permissions import CATALOGUE, ROLES_MANAGE, USERS_MANAGE, require
from app.users import operations as ops
from app.users.cli import generate_password
from app.users.models import SCOPES, Agency, Role, User, UserGroup, user_groups

bp = Blueprint("users_views", __name__, url_prefix="/admin")

register_nav("users_views.list_users", _l("Users"), USERS_MANAGE, section="admin", order=10,
             description=_l("Accounts, passwords, second factor and sessions"))
register_nav("users_views.list_agencies", _l("Agencies"), USERS_MANAGE, section="admin", order=20,
             description=_l("The organisations that use the system"))
register_nav("users_views.list_groups", _l("User groups"), USERS_MANAGE, section="admin", order=30,
             description=_l("Teams whose members share their cases"))
register_nav("users_views.list_roles", _l("Roles"), ROLES_MANAGE, section="admin", order=40,
             description=_l("What each role may do, and which records it reaches"))

SCOPE_LABELS = {
    "own": _l("Own records only"),
    "group": _l("Records of their groups"),
    "agency": _l("Records of their agency"),
    "all": _l("All records"),
}
ACTIVE_CHOICES = [SelectChoice("", _l("All")), SelectChoice("yes", _l("Active")), SelectChoice("no", _l("Inactive"))]


def optional_int(value):
    """Coerce a select value: "" (the "all" or "none" choice) is None."""
    if value in ("", None):
        return None
    return int(value)


def temporary_password_for(username: str, full_name: str, email: str | None = None) -> str:
    """A generated password that passes the password rules for this person (shown once)."""
    inputs = [username, full_name, *(full_name or "").split(), email or ""]
    candidate = generate_password()
    for _attempt in range(10):
        if not password_problems(candidate, inputs):
            break
        candidate = generate_password()
    return candidate


def apply_errors(form: FlaskForm, errors: dict[str, list[str]], renames: dict[str, str] | None = None) -> None:
    """Show an operation's field errors on the matching form fields (others above the form)."""
    renames = renames or {}
    for key, messages in errors.items():
        name = renames.get(key, key)
        if name in form._fields:
            form[name].errors = [*form[name].errors, *messages]
        else:
            form.form_errors.extend(messages)


def _get_or_404(model, record_id: int):
    record = db.session.get(model, record_id)
    if record is None:
        abort(404)
    return record


def _active_filter(query, column, value: str | None):
    if value == "yes":
        return query.where(column.is_(True))
    if value == "no":
        return query.where(column.is_(False))
    return query


def _agency_choices(blank, include: Agency | None = None):
    agencies = db.session.execute(select(Agency).where(
        or_(Agency.is_active.is_(True), Agency.id == (include.id if include else None))
    ).order_by(Agency.name)).scalars().all()
    return [SelectChoice("", blank)] + [SelectChoice(str(a.id), f"{a.name} ({a.code})") for a in agencies]


def _group_label(group: UserGroup) -> str:
    return f"{group.name} ({group.agency.code if group.agency else _('all agencies')})"


def _group_choices(include: list[UserGroup] = ()):
    ids = [g.id for g in include] or [-1]
    groups = db.session.execute(select(UserGroup).options(selectinload(UserGroup.agency)).where(
        or_(UserGroup.is_active.is_(True), UserGroup.id.in_(ids))).order_by(UserGroup.name)).scalars().all()
    return [SelectChoice(str(g.id), _group_label(g)) for g in groups]


def _role_choices(blank=None):
    roles = db.session.execute(select(Role).order_by(Role.name)).scalars().all()
    choices = [SelectChoice(str(r.id), role_label(r)) for r in roles]
    return ([SelectChoice("", blank)] if blank else []) + choices


def _languages():
    return [SelectChoice(code, name) for code, name in current_app.config["LANGUAGES"].items()]


# --- agencies --------------------------------------------------------------------

class AgencyFilterForm(FlaskForm):
    q = StringField(_l("Code or name"), validators=[Optional(), Length(max=100)])
    active = SelectField(_l("Status"), choices=ACTIVE_CHOICES, default="")


class AgencyCreateForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)],
                       description=_l("Short and permanent, e.g. unicef. Lower-case letters, digits, . _ -"))
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


class AgencyEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    is_active = BooleanField(_l("Active"))


@bp.get("/agencies")
@require(USERS_MANAGE)
def list_agencies():
    filters = load_filters(AgencyFilterForm, "filters.agencies")
    query = select(Agency).order_by(Agency.code)
    if q := filters.values.get("q"):
        term = q.strip()
        query = query.where(or_(Agency.code.contains(term.lower(), autoescape=True),
                                Agency.name.ilike(f"%{_escape_like(term)}%", escape="\\")))
    query = _active_filter(query, Agency.is_active, filters.values.get("active"))
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    counts = _counts(select(User.agency_id, func.count(User.id)).where(
        User.agency_id.in_([a.id for a in page.items])).group_by(User.agency_id))
    return render_template("admin/agencies.html", filters=filters, page=page, counts=counts), (
        200 if filters.is_valid else 422)


def _counts(query) -> dict[int, int]:
    return {key: count for key, count in db.session.execute(query).all()}


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@bp.route("/agencies/new", methods=["GET", "POST"])
@require(USERS_MANAGE)
def new_agency():
    form = AgencyCreateForm()
    status = 200
    if form.validate_on_submit():
        try:
            agency = ops.create_agency(form.code.data, form.name.data, actor=current_user)
            db.session.commit()
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors)
        except IntegrityError:
            db.session.rollback()
            form.code.errors = [_("This code is already used.")]
        else:
            flash(_("Agency %(code)s created.", code=agency.code), "success")
            return redirect(url_for(".list_agencies"))
    if request.method == "POST":
        status = 422
    return render_template("admin/agency_form.html", form=form, agency=None), status


@bp.route("/agencies/<int:agency_id>/edit", methods=["GET", "POST"])
@require(USERS_MANAGE)
def edit_agency(agency_id: int):
    agency = _get_or_404(Agency, agency_id)
    form = AgencyEditForm(obj=agency)
    status = 200
    if form.validate_on_submit():
        try:
            ops.update_agency(agency, form.name.data, form.is_active.data, actor=current_user)
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors)
        else:
            db.session.commit()
            flash(_("Agency %(code)s saved.", code=agency.code), "success")
            return redirect(url_for(".list_agencies"))
    if request.method == "POST":
        status = 422
    return render_template("admin/agency_form.html", form=form, agency=agency), status


# --- groups ----------------------------------------------------------------------

class GroupFilterForm(FlaskForm):
    q = StringField(_l("Code or name"), validators=[Optional(), Length(max=100)])
    agency = SelectField(_l("Agency"), coerce=optional_int, default=None)
    active = SelectField(_l("Status"), choices=ACTIVE_CHOICES, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.agency.choices = _agency_choices(_l("All agencies"))


class GroupCreateForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)],
                       description=_l("Short and permanent, e.g. north-camp. Lower-case letters, digits, . _ -"))
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    agency_id = SelectField(_l("Agency"), coerce=optional_int, default=None,
                            description=_l("Leave empty for a team that spans agencies."))

    def __init__(self, *args, agency: Agency | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.agency_id.choices = _agency_choices(_l("None (cross-agency group)"), include=agency)


class GroupEditForm(GroupCreateForm):
    code = None
    is_active = BooleanField(_l("Active"))


@bp.get("/groups")
@require(USERS_MANAGE)
def list_groups():
    filters = load_filters(GroupFilterForm, "filters.groups")
    query = select(UserGroup).options(selectinload(UserGroup.agency)).order_by(UserGroup.code)
    if q := filters.values.get("q"):
        term = q.strip()
        query = query.where(or_(UserGroup.code.contains(term.lower(), autoescape=True),
                                UserGroup.name.ilike(f"%{_escape_like(term)}%", escape="\\")))
    if agency_id := filters.values.get("agency"):
        query = query.where(UserGroup.agency_id == agency_id)
    query = _active_filter(query, UserGroup.is_active, filters.values.get("active"))
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False)
    counts = _counts(select(user_groups.c.group_id, func.count(user_groups.c.user_id)).where(
        user_groups.c.group_id.in_([g.id for g in page.items])).group_by(user_groups.c.group_id))
    return render_template("admin/groups.html", filters=filters, page=page, counts=counts), (
        200 if filters.is_valid else 422)


@bp.route("/groups/new", methods=["GET", "POST"])
@require(USERS_MANAGE)
def new_group():
    form = GroupCreateForm()
    status = 200
    if form.validate_on_submit():
        agency = db.session.get(Agency, form.agency_id.data) if form.agency_id.data else None
        try:
            group = ops.create_group(form.code.data, form.name.data, agency, actor=current_user)
            db.session.commit()
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors, {"agency": "agency_id"})
        except IntegrityError:
            db.session.rollback()
            form.code.errors = [_("This code is already used.")]
        else:
            flash(_("Group %(code)s created.", code=group.code), "success")
            return redirect(url_for(".list_groups"))
    if request.method == "POST":
        status = 422
    return render_template("admin/group_form.html", form=form, group=None), status


@bp.route("/groups/<int:group_id>/edit", methods=["GET", "POST"])
@require(USERS_MANAGE)
def edit_group(group_id: int):
    group = _get_or_404(UserGroup, group_id)
    form = GroupEditForm(obj=group, agency=group.agency)
    status = 200
    if form.validate_on_submit():
        agency = db.session.get(Agency, form.agency_id.data) if form.agency_id.data else None
        try:
            ops.update_group(group, form.name.data, agency, form.is_active.data, actor=current_user)
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors, {"agency": "agency_id"})
        else:
            db.session.commit()
            flash(_("Group %(code)s saved.", code=group.code), "success")
            return redirect(url_for(".list_groups"))
    if request.method == "POST":
        status = 422
    return render_template("admin/group_form.html", form=form, group=group), status


# --- users -----------------------------------------------------------------------

class UserFilterForm(FlaskForm):
    # A username names a person: it is posted and kept in the session, never put in the URL.
    username = StringField(_l("Username contains"), validators=[Optional(), Length(max=64)])
    agency = SelectField(_l("Agency"), coerce=optional_int, default=None)
    role = SelectField(_l("Role"), coerce=optional_int, default=None)
    group = SelectField(_l("Group"), coerce=optional_int, default=None)
    active = SelectField(_l("Status"), choices=ACTIVE_CHOICES, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.agency.choices = _agency_choices(_l("All agencies"))
        self.role.choices = _role_choices(_l("All roles"))
        self.group.choices = [SelectChoice("", _l("All groups"))] + _group_choices()


class UserFieldsForm(FlaskForm):
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    agency_id = SelectField(_l("Agency"), coerce=optional_int, default=None, validators=[DataRequired()])
    role_id = SelectField(_l("Role"), coerce=optional_int, default=None, validators=[DataRequired()])
    group_ids = SelectMultipleField(_l("Groups"), coerce=int)
    locale = SelectField(_l("Language"))

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.agency_id.choices = _agency_choices(_l("Choose an agency"), include=user.agency if user else None)
        self.role_id.choices = _role_choices(_l("Choose a role"))
        self.group_ids.choices = _group_choices(include=list(user.groups) if user else [])
        self.locale.choices = _languages()


class UserCreateForm(UserFieldsForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)],
                           description=_l("Lower-case letters, digits and . _ - @; it cannot be changed later."))
    password = PasswordField(_l("Temporary password"), validators=[Optional(), Length(max=1024)],
                             description=_l("Leave empty to generate one. Either way the person must "
                                            "choose their own password at first login."))


class TemporaryPasswordForm(FlaskForm):
    password = PasswordField(_l("New temporary password"), validators=[DataRequired(), Length(max=1024)])


_USER_FIELDS = {"agency": "agency_id", "role": "role_id"}


@bp.route("/users", methods=["GET", "POST"])
@require(USERS_MANAGE)
def list_users():
    filters = load_filters(UserFilterForm, "filters.users", private=("username",))
    if filters.redirect:
        return filters.redirect
    values = filters.values
    query = (select(User).options(selectinload(User.role), selectinload(User.agency), selectinload(User.groups))
             .order_by(User.username))
    if username := values.get("username"):
        query = query.where(User.username.contains(username.strip().lower(), autoescape=True))
    if values.get("agency"):
        query = query.where(User.agency_id == values["agency"])
    if values.get("role"):
        query = query.where(User.role_id == values["role"])
    if values.get("group"):
        query = query.where(User.groups.any(UserGroup.id == values["group"]))
    query = _active_filter(query, User.is_active, values.get("active"))
    page = db.paginate(query, page=page_number(), per_page=HTML_PER_PAGE, error_out=False, count=True)
    return render_template("admin/users.html", filters=filters, page=page), 200 if filters.is_valid else 422


@bp.route("/users/new", methods=["GET", "POST"])
@require(USERS_MANAGE)
def new_user():
    form = UserCreateForm(data={"locale": current_app.config["BABEL_DEFAULT_LOCALE"]})
    status = 200
    if form.validate_on_submit():
        agency = db.session.get(Agency, form.agency_id.data)
        role = db.session.get(Role, form.role_id.data)
        groups = [db.session.get(UserGroup, group_id) for group_id in form.group_ids.data]
        generated = None if form.password.data else temporary_password_for(
            form.username.data, form.full_name.data, form.email.data)
        try:
            user = ops.create_user(form.username.data, form.full_name.data, form.password.data or generated,
                                   agency, role, [g for g in groups if g], form.email.data or None,
                                   form.locale.data, must_change_password=True, actor=current_user)
            db.session.commit()
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors, _USER_FIELDS)
        except IntegrityError:
            db.session.rollback()
            form.username.errors = [_("This username is taken.")]
        else:
            if generated:
                # Shown in this response only: not in a redirect URL, the session cookie or a log.
                return _render_user(user, secret={
                    "label": _("Temporary password"), "value": generated,
                    "hint": _("Give it to the person privately. They must choose their own password "
                              "at first login. It will not be shown again.")})
            flash(_("User %(username)s created.", username=user.username), "success")
            return redirect(url_for(".user_detail", user_id=user.id))
    if request.method == "POST":
        status = 422
    return render_template("admin/user_form.html", form=form, user=None), status


def _render_user(user: User, status: int = 200, password_form: TemporaryPasswordForm | None = None,
                 secret: dict | None = None):
    active_sessions = db.session.scalar(select(func.count(UserSession.id)).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None))) or 0
    return render_template("admin/user_detail.html", user=user, active_sessions=active_sessions,
                           password_form=password_form or TemporaryPasswordForm(formdata=None),
                           secret=secret), status


@bp.get("/users/<int:user_id>")
@require(USERS_MANAGE)
def user_detail(user_id: int):
    return _render_user(_get_or_404(User, user_id))


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@require(USERS_MANAGE)
def edit_user(user_id: int):
    user = _get_or_404(User, user_id)
    form = UserFieldsForm(user=user, data={
        "full_name": user.full_name, "email": user.email, "agency_id": user.agency_id, "role_id": user.role_id,
        "group_ids": sorted(user.group_ids), "locale": user.locale})
    status = 200
    if form.validate_on_submit():
        agency = db.session.get(Agency, form.agency_id.data)
        role = db.session.get(Role, form.role_id.data)
        groups = [g for g in (db.session.get(UserGroup, gid) for gid in form.group_ids.data) if g]
        try:
            ops.update_user(user, form.full_name.data, form.email.data or None, agency, role,
                            sorted(groups, key=lambda g: g.name), form.locale.data, user.is_active,
                            actor=current_user)
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors, _USER_FIELDS)
        else:
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for(".user_detail", user_id=user.id))
    if request.method == "POST":
        status = 422
    return render_template("admin/user_form.html", form=form, user=user), status


def _set_active(user_id: int, is_active: bool):
    user = _get_or_404(User, user_id)
    try:
        ops.update_user(user, user.full_name, user.email, user.agency, user.role, list(user.groups),
                        user.locale, is_active, actor=current_user)
    except ops.ValidationError as error:
        db.session.rollback()
        for messages in error.errors.values():
            for message in messages:
                flash(message, "error")
        return redirect(url_for(".user_detail", user_id=user_id))
    db.session.commit()
    if is_active:
        flash(_("The account is active again."), "success")
    else:
        flash(_("The account is deactivated and every session of it has ended."), "success")
    return redirect(url_for(".user_detail", user_id=user_id))


@bp.post("/users/<int:user_id>/deactivate")
@require(USERS_MANAGE)
def deactivate_user(user_id: int):
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/reactivate")
@require(USERS_MANAGE)
def reactivate_user(user_id: int):
    return _set_active(user_id, True)


@bp.post("/users/<int:user_id>/password")
@require(USERS_MANAGE)
def set_temporary_password(user_id: int):
    user = _get_or_404(User, user_id)
    form = TemporaryPasswordForm()
    if form.validate_on_submit():
        try:
            ops.admin_set_password(user, form.password.data, actor=current_user)
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors)
        else:
            db.session.commit()
            flash(_("Temporary password set. The person must choose a new one at next login; "
                    "all their sessions have ended."), "success")
            return redirect(url_for(".user_detail", user_id=user.id))
    return _render_user(user, status=422, password_form=form)


@bp.post("/users/<int:user_id>/reset-code")
@require(USERS_MANAGE)
def create_user_reset_code(user_id: int):
    user = _get_or_404(User, user_id)
    code = ops.create_user_reset_code(user, actor=current_user)
    db.session.commit()
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    # Shown in this response only: not in a redirect URL, the session cookie or a log.
    return _render_user(user, secret={
        "label": _("One-time password reset code"), "value": code,
        "hint": _("Give it to the person privately. It works once, on the \"reset password\" page, "
                  "within %(n)d minutes. It will not be shown again.", n=minutes)})


@bp.post("/users/<int:user_id>/end-sessions")
@require(USERS_MANAGE)
def end_user_sessions(user_id: int):
    user = _get_or_404(User, user_id)
    keep = None
    if user.id == current_user.id:
        current = current_session_row()
        keep = current.id if current else None  # an administrator does not log themselves out here
    count = ops.end_user_sessions(user, actor=current_user, keep_session_id=keep)
    db.session.commit()
    flash(_("%(n)d session(s) ended.", n=count), "success")
    return redirect(url_for(".user_detail", user_id=user.id))


@bp.post("/users/<int:user_id>/second-factor/off")
@require(USERS_MANAGE)
def disable_user_second_factor(user_id: int):
    user = _get_or_404(User, user_id)
    if not user.is_totp_enabled:
        flash(_("The second factor was already off."), "info")
        return redirect(url_for(".user_detail", user_id=user.id))
    ops.disable_user_second_factor(user, actor=current_user)
    db.session.commit()
    flash(_("The second factor is off. If their role requires one, they set up a new one at next login."),
          "success")
    return redirect(url_for(".user_detail", user_id=user.id))


# --- roles -----------------------------------------------------------------------

class RoleFieldsForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    scope = SelectField(_l("Records this role reaches"), choices=[SelectChoice(s, SCOPE_LABELS[s]) for s in SCOPES],
                        validate_choice=False)
    is_supervisor = BooleanField(_l("Supervisor: approves and reassigns the work of the groups its users "
                                    "belong to"))
    # Checked against the catalogue by the operation, which names unknown permissions.
    permissions = SelectMultipleField(_l("Permissions"), validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.permissions.choices = [SelectChoice(name, d.label) for name, d in sorted(CATALOGUE.entries.items())]


class RoleCreateForm(RoleFieldsForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)],
                       description=_l("Short and permanent, e.g. case_manager."))


@bp.get("/roles")
@require(ROLES_MANAGE)
def list_roles():
    counts = dict(db.session.execute(select(User.role_id, func.count(User.id)).group_by(User.role_id)).all())
    roles = db.session.execute(select(Role).options(selectinload(Role.permission_rows))
                               .order_by(Role.name)).scalars().all()
    return render_template("admin/roles.html", roles=roles, counts=counts, scope_labels=SCOPE_LABELS)


def _render_role_form(form, role, status):
    return render_template("admin/role_form.html", form=form, role=role, catalogue=CATALOGUE.by_resource(),
                           selected=set(form.permissions.data or [])), status


@bp.route("/roles/new", methods=["GET", "POST"])
@require(ROLES_MANAGE)
def new_role():
    form = RoleCreateForm(data={"scope": "own"})
    status = 200
    if form.validate_on_submit():
        try:
            role = ops.create_role(form.code.data, form.name.data, form.scope.data, set(form.permissions.data),
                                   is_supervisor=form.is_supervisor.data, description=form.description.data or "",
                                   actor=current_user)
            db.session.commit()
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors)
        except IntegrityError:
            db.session.rollback()
            form.code.errors = [_("This code is already used.")]
        else:
            flash(_("Role %(name)s created.", name=role.name), "success")
            return redirect(url_for(".list_roles"))
    if request.method == "POST":
        status = 422
    return _render_role_form(form, None, status)


@bp.route("/roles/<int:role_id>/edit", methods=["GET", "POST"])
@require(ROLES_MANAGE)
def edit_role(role_id: int):
    role = _get_or_404(Role, role_id)
    form = RoleFieldsForm(data={"name": role.name, "description": role.description, "scope": role.scope,
                                "is_supervisor": role.is_supervisor, "permissions": sorted(role.permissions)})
    status = 200
    if form.validate_on_submit():
        try:
            ops.update_role(role, form.name.data, form.scope.data, set(form.permissions.data),
                            form.is_supervisor.data, form.description.data or "", actor=current_user)
        except ops.ValidationError as error:
            db.session.rollback()
            apply_errors(form, error.errors)
        else:
            db.session.commit()
            flash(_("Role %(name)s saved.", name=role.name), "success")
            return redirect(url_for(".list_roles"))
    if request.method == "POST":
        status = 422
    return _render_role_form(form, role, status)
