"""Password hashing (argon2id) and the password rules (S8).

Rules follow NIST SP 800-63B: 12 to 128 characters, no composition rules,
refuse passwords found in a list of 30,000 common ones (shipped with zxcvbn)
or that zxcvbn rates as trivially guessable given the user's own names.
"""
from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from flask_babel import gettext as _
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

_COMMON = frozenset(FREQUENCY_LISTS["passwords"])
_hashers: dict[bool, PasswordHasher] = {}


def _hasher() -> PasswordHasher:
    fast = bool(current_app.config.get("PASSWORD_HASH_FAST"))
    if fast not in _hashers:
        # The test suite uses cheaper parameters; the algorithm (argon2id) is the same.
        _hashers[fast] = (PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
                          if fast else PasswordHasher(type=Type.ID))
    return _hashers[fast]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Spend the same time as a real check so unknown users are not told apart.
        _hasher().hash(password)
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


def password_problems(password: str, user_inputs: list[str] | None = None) -> list[str]:
    """Translated reasons why `password` is refused; empty when it is acceptable."""
    cfg = current_app.config
    problems = []
    if len(password) < cfg["PASSWORD_MIN_LENGTH"]:
        problems.append(_("Use at least %(n)d characters.", n=cfg["PASSWORD_MIN_LENGTH"]))
        return problems
    if len(password) > cfg["PASSWORD_MAX_LENGTH"]:
        problems.append(_("Use at most %(n)d characters.", n=cfg["PASSWORD_MAX_LENGTH"]))
        return problems
    if password.lower() in _COMMON:
        problems.append(_("This password is too common. Choose another, a short sentence works well."))
        return problems
    inputs = [value for value in (user_inputs or []) if value]
    if zxcvbn(password[:100], user_inputs=inputs)["score"] < 2:
        problems.append(_("This password is too easy to guess. Choose another, a short sentence works well."))
    return problems
