"""`flask tracing import FILE --as USERNAME [--dry-run]` and `flask tracing export --output F --as USERNAME`."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.records.cli import filter_options, run_export, run_import
from tracing.models import TRACE_STATUSES


@click.group("tracing")
def tracing_group():
    """Import and export tracing requests and their traces (CSV or XLSX)."""


@tracing_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "username", required=True, help="The user who will own the new tracing requests (needs "
                                                        "tracing:import and tracing:create).")
@click.option("--dry-run", is_flag=True, help="Check the whole file and report problems; write nothing.")
@with_appcontext
def import_command(file: str, username: str, dry_run: bool) -> None:
    """Import tracing requests: one row per child sought (trace); rows sharing an
    inquiry_ref are one inquirer's request. Inquirer columns use the tracing request
    form's keys, the child's columns the trace form's keys prefixed "trace."."""
    run_import("tracing", file, username, dry_run)


@tracing_group.command("export")
@click.option("--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The file to write: .csv or .xlsx.")
@click.option("--as", "username", required=True, help="Export what this user may see (needs tracing:export).")
@click.option("--tracing-status", type=click.Choice(TRACE_STATUSES))
@filter_options
@with_appcontext
def export_command(output: str, username: str, labels: bool, **filters) -> None:
    """Export the tracing requests in the user's scope, one row per trace."""
    run_export("tracing", output, username, labels, filters)
