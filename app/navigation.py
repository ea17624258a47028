"""The navigation each user sees, built from their permissions.

Feature modules add their entries with `register_nav`; an entry shows only to
users holding its permission, so menus never offer what a role cannot do.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import url_for


@dataclass(frozen=True)
class NavEntry:
    endpoint: str
    label: object          # lazy translated string
    permission: str | None  # None: every logged-in user
    section: str           # "work" or "admin"
    order: int = 100
    description: object = ""


_ENTRIES: list[NavEntry] = []


def register_nav(endpoint, label, permission=None, section="work", order=100, description="") -> None:
    if any(entry.endpoint == endpoint for entry in _ENTRIES):
        return
    _ENTRIES.append(NavEntry(endpoint, label, permission, section, order, description))


def navigation_for(user) -> dict[str, list[dict]]:
    sections: dict[str, list[dict]] = {"work": [], "admin": []}
    if not (user and user.is_authenticated):
        return sections
    permissions = user.permissions
    for entry in sorted(_ENTRIES, key=lambda e: (e.section, e.order)):
        if entry.permission is None or entry.permission in permissions:
            sections.setdefault(entry.section, []).append(
                {"url": url_for(entry.endpoint), "label": entry.label, "endpoint": entry.endpoint,
                 "description": entry.description})
    return sections
