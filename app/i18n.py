"""Languages: English, French and Arabic (right to left)."""
from __future__ import annotations

import os

from flask import Flask, current_app, has_request_context, request, session
from flask_login import current_user

from app.extensions import babel

LOCALE_SESSION_KEY = "locale"


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale in languages:
        return current_user.locale
    chosen = session.get(LOCALE_SESSION_KEY)
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(list(languages)) or current_app.config["BABEL_DEFAULT_LOCALE"]


def text_direction(locale: str) -> str:
    return "rtl" if locale in current_app.config["RTL_LANGUAGES"] else "ltr"


def init_i18n(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(app.root_path, "translations"))

    @app.context_processor
    def _language_context():
        from flask_babel import get_locale
        locale = str(get_locale() or app.config["BABEL_DEFAULT_LOCALE"])
        return {"current_locale": locale, "text_direction": text_direction(locale),
                "languages": app.config["LANGUAGES"]}
