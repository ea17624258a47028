"""Demo-data hooks: feature modules add their demo records to `flask seed demo`."""
from __future__ import annotations

from collections.abc import Callable

_DEMO_SEEDERS: list[tuple[int, Callable[[], str]]] = []


def register_demo_seeder(order: int, seeder: Callable[[], str]) -> None:
    """`seeder()` adds idempotent demo data (flushing, not committing) and returns a summary line."""
    if all(existing is not seeder for _, existing in _DEMO_SEEDERS):
        _DEMO_SEEDERS.append((order, seeder))


def run_demo_seeders() -> list[str]:
    return [seeder() for _, seeder in sorted(_DEMO_SEEDERS, key=lambda item: item[0])]
