"""List pages: page numbers, and filters that keep personal text out of URLs.

Filters made of ids and fixed choices travel in the query string, so links and
bookmarks work. Free text that may name a person (a username search) is posted
with the CSRF token and kept in the session instead: it never appears in a
URL, a browser history or an access log (S16, S22).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import redirect, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

HTML_PER_PAGE = 25


def page_number() -> int:
    """The ?page argument of an HTML list (a bad value shows the first page)."""
    try:
        return min(max(1, int(request.args.get("page", "1"))), 1_000_000)
    except ValueError:
        return 1


@dataclass
class Filters:
    form: FlaskForm
    values: dict = field(default_factory=dict)      # valid, non-empty filter values by field name
    public_args: dict = field(default_factory=dict)  # the query-string part, for links
    redirect: Response | None = None                 # set after a POST: send the browser here
    is_valid: bool = True


def _empty(value) -> bool:
    return value is None or value == "" or value == []


def load_filters(form_class: type[FlaskForm], session_key: str, private: tuple[str, ...] = (),
                 list_endpoint: str | None = None) -> Filters:
    """Read a list page's filters.

    GET: public fields from the query string, `private` fields from the session.
    POST (the filter form, with its CSRF token): remember the private fields,
    then redirect to the list with the public ones in the query string. A
    posted `clear` button forgets everything. `list_endpoint` is the page to
    redirect to when the form posts to a different URL than the list's.
    """
    endpoint_args = dict(request.view_args or {})
    target = list_endpoint or request.endpoint
    if request.method == "POST":
        form = form_class()
        # CSRFProtect has already checked the token of every POST.
        if "clear" in request.form:
            session.pop(session_key, None)
            return Filters(form, redirect=redirect(url_for(target, **endpoint_args)))
        if form.validate():
            session[session_key] = {name: form[name].data for name in private if not _empty(form[name].data)}
            public = _public_args(form, private)
            return Filters(form, redirect=redirect(url_for(target, **endpoint_args, **public)))
        return Filters(form, is_valid=False)
    form = form_class(formdata=request.args, meta={"csrf": False})
    remembered = session.get(session_key) or {}
    for name in private:
        form[name].data = remembered.get(name)
        form[name].raw_data = []
    is_valid = form.validate()
    values = {name: f.data for name, f in form._fields.items()
              if name != "csrf_token" and not f.errors and not _empty(f.data)}
    return Filters(form, values=values, public_args=_public_args(form, private), is_valid=is_valid)


def _public_args(form: FlaskForm, private: tuple[str, ...]) -> dict:
    """The raw text of each public field with a value and no error, for url_for."""
    args = {}
    for name, f in form._fields.items():
        if name in private or name == "csrf_token" or f.errors:
            continue
        raw = f.raw_data[0] if f.raw_data else ""
        if isinstance(raw, str) and raw.strip():
            args[name] = raw.strip()
    return args
