"""`flask cases import FILE --as USERNAME [--dry-run]` and `flask cases export --output F --as USERNAME`."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.records import demo  # noqa: F401  (registers the demo cases and tracing requests with `flask seed demo`)
from app.records.cli import filter_options, run_export, run_import


@click.group("cases")
def cases_group():
    """Import and export cases (CSV or XLSX)."""


@cases_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "username", required=True, help="The user who will own the new cases (needs cases:import "
                                                        "and cases:create; their field permissions apply).")
@click.option("--dry-run", is_flag=True, help="Check the whole file and report problems; write nothing.")
@with_appcontext
def import_command(file: str, username: str, dry_run: bool) -> None:
    """Import cases from a CSV or XLSX file whose header row holds field keys.

    A source_id column makes re-imports update the cases imported before instead of
    duplicating them. Every row is checked first; if one is wrong, nothing is written.
    """
    run_import("cases", file, username, dry_run)


@cases_group.command("export")
@click.option("--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The file to write: .csv or .xlsx.")
@click.option("--as", "username", required=True, help="Export what this user may see (needs cases:export).")
@click.option("--stage", type=click.Choice(["new", "assessment", "case_plan", "services", "closure"]))
@filter_options
@with_appcontext
def export_command(output: str, username: str, labels: bool, **filters) -> None:
    """Export the cases in the user's scope, with the fields they may read."""
    run_export("cases", output, username, labels, filters)
