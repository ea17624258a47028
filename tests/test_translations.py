"""French and Arabic: pages speak the user's language, and the catalogues are complete.

The catalogue checks read app/translations/{fr,ar}/LC_MESSAGES/messages.po and extract the
strings of the code itself (as `make messages` does), so a string added without a French and
Arabic translation, a fuzzy entry or a broken placeholder fails here.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.extensions import db
from app.users import operations as ops

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ("fr", "ar")
# %(name)s / %(n)d (gettext) and {max} (marshmallow and WTForms messages).
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|\{\w+\}")


@cache
def catalogue(locale: str):
    with (ROOT / "app" / "translations" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def messages(locale: str):
    return [message for message in catalogue(locale) if message.id]


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


# --- pages -------------------------------------------------------------------------------------

def test_login_page_in_french(client):
    page = client.get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="fr" dir="ltr">' in page
    assert "Se connecter" in page and "Nom d’utilisateur" in page and "Mot de passe" in page
    assert "J’ai un code de réinitialisation de mon administrateur" in page
    assert "Log in" not in page and "Password" not in page


def test_login_page_in_arabic_is_right_to_left(client):
    page = client.get("/login", headers={"Accept-Language": "ar"}).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page
    assert "تسجيل الدخول" in page and "اسم المستخدم" in page and "كلمة المرور" in page
    assert "Log in" not in page and "Username" not in page


def test_seeded_role_names_show_translated(login_as):
    web, _user = login_as("caseworker", locale="ar")
    page = web.get("/account").get_data(as_text=True)
    assert 'dir="rtl"' in page
    assert "<dd>أخصائي الحالة</dd>" in page and "Caseworker" not in page
    assert "أخصائي الحالة" in web.get("/").get_data(as_text=True)

    admin, _admin = login_as("administrator", locale="fr")
    page = admin.get("/admin/roles").get_data(as_text=True)
    for label in ("Travailleur social", "Superviseur", "Agent de recherche", "Prestataire de services",
                  "Administrateur", "Ouvre et suit ses propres dossiers"):
        assert label in page, label
    assert "Tracing officer" not in page


def test_a_role_renamed_by_an_administrator_shows_its_stored_name(login_as, make):
    role = make.role("caseworker")
    ops.update_role(role, "Agent de terrain (nord)", role.scope, role.permissions, role.is_supervisor,
                    "Équipe du camp nord")
    db.session.commit()
    web, _user = login_as("caseworker", locale="ar")
    page = web.get("/account").get_data(as_text=True)
    assert "<dd>Agent de terrain (nord)</dd>" in page and "أخصائي الحالة" not in page


# --- catalogues --------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated(locale):
    number_of_forms = catalogue(locale).num_plurals
    problems = []
    for message in messages(locale):
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if message.pluralizable:
            forms = message.string if isinstance(message.string, tuple) else (message.string,)
            if len(forms) != number_of_forms or not all(forms):
                problems.append(f"plural forms missing: {message.id!r}")
        elif not message.string:
            problems.append(f"untranslated: {message.id!r}")
    assert not problems, f"{locale}: " + "\n".join(problems)


def test_extraction_covers_every_feature_package():
    """A new feature package left out of babel.cfg would keep its strings in English, unseen by the test below."""
    from babel.messages.frontend import parse_mapping_cfg
    with (ROOT / "babel.cfg").open() as handle:
        method_map, _options = parse_mapping_cfg(handle)
    patterns = {pattern for pattern, method in method_map if method == "python"}
    packages = sorted(path.parent.name for path in ROOT.glob("*/__init__.py")
                      if path.parent.name not in ("tests", "bench", "migrations", "config"))
    assert packages and [p for p in packages if f"{p}/**.py" not in patterns] == []


def test_the_catalogues_hold_every_string_of_the_code():
    """A string added to the code without `make messages` and translations fails here."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = dict(DEFAULT_KEYWORDS, _l=None, lazy_gettext=None)
    in_code = {message if isinstance(message, str) else message[0]
               for _file, _line, message, _comments, _context
               in extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords)}
    for locale in LOCALES:
        catalogued = {message.id if isinstance(message.id, str) else message.id[0] for message in messages(locale)}
        missing = sorted(in_code - catalogued)
        assert not missing, (f"{len(missing)} string(s) missing from the {locale} catalogue: run `make messages` "
                             f"and translate them: {missing[:20]}")


@pytest.mark.parametrize("locale", LOCALES)
def test_placeholders_of_each_translation_match_its_message(locale):
    problems = []
    for message in messages(locale):
        if message.pluralizable:
            singular, plural = message.id
            allowed = set(placeholders(singular)) | set(placeholders(plural))
            forms = message.string
            # Arabic may write "none", "one", "two" in words; the general form keeps every placeholder.
            if any(not set(placeholders(form)) <= allowed for form in forms) \
                    or placeholders(forms[-1]) != placeholders(plural):
                problems.append((message.id, forms))
        elif placeholders(message.string) != placeholders(message.id):
            problems.append((message.id, message.string))
        if "python-format" in message.flags:
            for text in (message.string if isinstance(message.string, tuple) else (message.string,)):
                values = {name: 1 for name in re.findall(r"%\((\w+)\)", text)}
                try:
                    text % values  # a stray "%" (e.g. "50 %") would break the page at run time
                except (ValueError, TypeError, KeyError) as error:
                    problems.append((message.id, f"{text!r}: {error}"))
    problems += [(message.id, [str(e) for e in errors]) for message, errors in catalogue(locale).check()]
    assert not problems, f"{locale}: {problems}"


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_add_no_markup(locale):
    tag = re.compile(r"<[a-zA-Z/][^>]*>")
    problems = []
    for message in messages(locale):
        source = " ".join(message.id) if isinstance(message.id, tuple) else message.id
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        if not tag.search(source) and any(tag.search(text) for text in texts):
            problems.append(message.id)
    assert not problems, f"{locale}: {problems}"
