"""Languages: English, French and Arabic (right to left)."""
from __future__ import annotations

import os
from functools import cache

from flask import Flask, current_app, has_request_context, request, session
from flask_babel import gettext

from app.extensions import babel

LOCALE_SESSION_KEY = "locale"


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    # The user's language is copied into the session at login and on every switch, so choosing
    # the language never needs the database (error pages still render when it is down).
    chosen = session.get(LOCALE_SESSION_KEY)
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(list(languages)) or current_app.config["BABEL_DEFAULT_LOCALE"]


def text_direction(locale: str) -> str:
    return "rtl" if locale in current_app.config["RTL_LANGUAGES"] else "ltr"


def current_language() -> tuple[str, str]:
    """(locale, direction) of the current request."""
    from flask_babel import get_locale
    locale = str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])
    return locale, text_direction(locale)


def N_(message: str) -> str:
    """Mark a string for the catalogues without translating it (it is translated where shown)."""
    return message


@cache
def _default_role_texts() -> dict[str, tuple[str, str]]:
    from app.cli import DEFAULT_ROLES
    return {code: (name, description) for code, name, _scope, _is_supervisor, description in DEFAULT_ROLES}


def role_label(role) -> str:
    """A seeded role's name in the user's language while it is still the default (stored in
    English); a name an administrator gave it shows as stored."""
    if role is None:
        return ""
    default = _default_role_texts().get(role.code)
    return gettext(role.name) if default and role.name == default[0] else role.name


def role_description(role) -> str:
    """Like `role_label`, for the role's description."""
    if role is None or not role.description:
        return ""
    default = _default_role_texts().get(role.code)
    return gettext(role.description) if default and role.description == default[1] else role.description


def init_i18n(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(app.root_path, "translations"))
    app.jinja_env.globals.update(role_label=role_label, role_description=role_description)

    @app.context_processor
    def _language_context():
        locale, direction = current_language()
        return {"current_locale": locale, "text_direction": direction, "languages": app.config["LANGUAGES"]}
