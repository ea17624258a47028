"""`flask forms export|load` and `flask locations import` (readable errors, never a traceback)."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from app.audit.operations import record_audit
from app.extensions import db
from app.seeding import register_demo_seeder
from forms import operations as ops


def _fail(error: ops.FormValidationError, what: str) -> None:
    db.session.rollback()
    lines = []
    for key, messages in error.errors.items():
        place = "" if key in ("_record", "file") else f"{key}: "
        lines.extend(f"  {place}{message}" for message in messages)
    raise click.ClickException(f"{what}:\n" + "\n".join(lines))


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read()
    except FileNotFoundError:
        raise click.ClickException(f"no such file: {path}") from None
    except IsADirectoryError:
        raise click.ClickException(f"{path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None


@click.group("forms")
def forms_group():
    """Export or load the forms configuration (lookups, forms, sections, fields, access)."""


@forms_group.command("export")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of the standard output.")
@click.option("--with-locations", is_flag=True, help="Include the location hierarchy.")
@with_appcontext
def export_command(output, with_locations):
    """Write the whole configuration as JSON."""
    data = ops.export_configuration(with_locations=with_locations)
    text = ops.configuration_json(data)
    record_audit("forms.export", "form", None, detail={"with_locations": with_locations})
    db.session.commit()
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"Configuration written to {output}.", err=True)
    else:
        sys.stdout.write(text)


@forms_group.command("load")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and report, but change nothing.")
@with_appcontext
def load_command(path, dry_run):
    """Make the configuration match FILE (as written by `flask forms export`); all or nothing."""
    try:
        report = ops.load_configuration(ops.read_configuration(_read_text(path)))
    except ops.FormValidationError as error:
        _fail(error, f"{path} was not loaded, nothing changed")
    if dry_run:
        db.session.rollback()
        click.echo("Dry run: the file is valid; nothing was changed.")
    else:
        db.session.commit()
    click.echo(f"{report['lookups']} lookup(s), {report['sections']} new section(s), "
               f"{report['fields']} field(s) created or changed, {report['locations']} location(s).")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@click.group("locations")
def locations_group():
    """Manage the location hierarchy."""


@locations_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@with_appcontext
def import_locations_command(path):
    """Create or update locations from a CSV file (code, parent_code, type, name_en, name_fr, name_ar)."""
    try:
        counts = ops.import_locations_csv(_read_text(path))
    except ops.FormValidationError as error:
        _fail(error, f"{path} was not imported, nothing changed")
    db.session.commit()
    click.echo(f"{counts['created']} location(s) created, {counts['updated']} updated, "
               f"{counts['unchanged']} unchanged.")


@locations_group.command("export")
@with_appcontext
def export_locations_command():
    """Write every location as CSV (the format `flask locations import` reads)."""
    import csv
    from sqlalchemy import select

    from forms.models import Location
    writer = csv.writer(sys.stdout)
    writer.writerow(ops.LOCATION_CSV_COLUMNS)
    rows = db.session.execute(select(Location)).scalars().all()
    depth = {row.code: len(ops.location_ancestors(row.code)) for row in rows}
    for row in sorted(rows, key=lambda r: (depth[r.code], r.code)):
        names = row.names or {}
        writer.writerow([row.code, row.parent.code if row.parent else "", row.type, names.get("en", ""),
                         names.get("fr", ""), names.get("ar", ""), "yes" if row.is_disabled else "no"])


# `flask seed demo` loads the default child-protection forms (once) and demo locations.
register_demo_seeder(10, ops.seed_default_configuration)
