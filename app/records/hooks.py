"""Record-saved hooks: how other modules (the matching engine) learn that a record changed.

A hook receives the record and the set of field keys that changed, inside the
saving transaction; it should only enqueue work (app.jobs.operations.enqueue),
never do slow work itself, so a save stays fast and never fails because
Redis is down.
"""
from __future__ import annotations

from collections.abc import Callable

_SAVED: list[Callable[[object, set[str]], None]] = []


def on_record_saved(hook: Callable[[object, set[str]], None]) -> Callable:
    if hook not in _SAVED:
        _SAVED.append(hook)
    return hook


def record_saved(record, changed_fields: set[str]) -> None:
    for hook in _SAVED:
        hook(record, changed_fields)
