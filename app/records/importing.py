"""Importing cases and tracing requests from CSV and XLSX files (R5).

The file format is described for users in README.md ("Import and export") and on the
import page. In short: the first row holds field keys of the form; each further row is
one case (or one trace of a tracing request: rows sharing an `inquiry_ref` form one
request, its inquirer columns repeated, the sought child's columns prefixed `trace.`).

An import runs in three steps, and nothing is ever half-applied:

1. Read the whole file and check its header against the current form definition:
   unknown columns, fields the importing user may not write, files (not importable).
2. Convert every cell by its field's type (dates, numbers, yes/no, choices by code or by
   label in any language, multi-selects separated by ";", locations by code or name)
   and validate each row with the form engine, exactly as a registration is validated.
   Every problem is collected with its line number and column. If there is one, or if
   this is a dry run, the import stops here and nothing is written.
3. Write, in the caller's transaction: new records in chunks (pre-drawn short ids,
   batched inserts), records whose `source_id` was imported before through the update
   operations (so re-importing a file creates no duplicates). Each record gets its
   RecordChange ("import" / "import_update") and the record-saved hooks run (matching);
   the import itself is audited once, with its counts.

`import_records` only flushes; the CLI or the job commits when the report says
`applied`, and rolls back otherwise.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import csv
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from app.audit.operations import record_audit
from app.db import new_uuid
from app.extensions import db
from app.permissions import can, scope_filter
from app.records import hooks
from app.records.models import STATUS_CLOSED, STATUS_OPEN
from app.records.operations import (
    SHORT_ID_ALPHABET,
    SHORT_ID_LENGTH,
    EditConflict,
    diff_data,
    record_change,
)

# Progress callbacks receive (phase, done, total); phases are "read", "check" and "write".
Progress = Callable[[str, int, int], None]

MAX_ROWS = 200_000          # a larger file is refused before anything is checked
MAX_COLUMNS = 500
SOURCE_ID_MAX = 100
INQUIRY_REF_MAX = 90        # leaves room for "/<n>" in the traces' default source ids
WRITE_CHUNK = 500           # new records inserted per flush
LOOKUP_CHUNK = 1000         # source ids looked up per query
MAX_REPORTED_PROBLEMS = 1000
MULTI_SEPARATOR = ";"
TRACE_PREFIX = "trace."
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

SOURCE_ID = "source_id"
INQUIRY_REF = "inquiry_ref"
TRACE_SOURCE_ID = TRACE_PREFIX + SOURCE_ID

# Columns our exports write that describe a record rather than its form data. An import
# accepts and ignores them (with a warning), so an export can be edited and imported back.
CASE_READ_ONLY_COLUMNS = ("short_id", "status", "workflow_stage", "owner", "agency", "created_at", "updated_at")
TRACING_READ_ONLY_COLUMNS = ("request_short_id", "request_status", "owner", "agency", "created_at", "updated_at",
                             "trace.short_id", "trace.tracing_status")

_TRUE_WORDS = {"yes", "y", "true", "1", "on", "x", "oui", "vrai", "نعم"}
_FALSE_WORDS = {"no", "n", "false", "0", "off", "non", "faux", "لا"}
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00(?::00)?)?$")
_SPACES = re.compile(r"\s+")


class ImportRefused(Exception):
    """The import cannot run at all (permissions, unreadable file); `message` says why, readably."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Problem:
    line: int          # line in the file (the header is line 1); 0: the file as a whole
    column: str        # the column (field key as in the file), or "" for the whole row
    message: str


@dataclass
class ImportReport:
    record_type: str                 # "case" or "tracing_request"
    file_format: str                 # "csv" or "xlsx"
    rows: int = 0                    # data rows read (blank rows skipped)
    created: int = 0                 # records created (traces counted apart, below)
    updated: int = 0
    unchanged: int = 0
    traces_created: int = 0
    traces_updated: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    is_dry_run: bool = False
    is_applied: bool = False         # True once the writes are flushed: the caller commits
    seconds: float = 0.0

    @property
    def is_ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict:
        counts = {"rows": self.rows, "created": self.created, "updated": self.updated,
                  "unchanged": self.unchanged, "problems": len(self.problems)}
        if self.record_type == "tracing_request":
            counts.update(traces_created=self.traces_created, traces_updated=self.traces_updated)
        return counts

    def as_dict(self) -> dict:
        """For the import page (stored as JSON next to the job; messages may quote cells)."""
        return {"record_type": self.record_type, "file_format": self.file_format, **self.counts(),
                "is_dry_run": self.is_dry_run, "is_applied": self.is_applied, "seconds": round(self.seconds, 2),
                "warnings": self.warnings,
                "problem_list": [{"line": p.line, "column": p.column, "message": p.message}
                                 for p in self.problems[:MAX_REPORTED_PROBLEMS]]}


class CellProblem(Exception):
    pass


class _Empty:
    """An empty cell: a new record gets no value, an imported record loses the value it had."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


# --- reading files ----------------------------------------------------------------------------------

@dataclass
class Table:
    file_format: str
    header: list[str]
    rows: list[tuple[int, list]]   # (line number, cells)


def file_format_of(filename: str) -> str:
    name = (filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".xlsx"):
        return "xlsx"
    raise ImportRefused(_("Use a .csv or .xlsx file."))


def read_table(path: str | Path, file_format: str | None = None) -> Table:
    """Read a CSV (UTF-8; comma, semicolon or tab separated) or XLSX (first sheet) file."""
    path = Path(path)
    file_format = file_format or file_format_of(path.name)
    if file_format == "xlsx":
        return _read_xlsx(path)
    return _read_csv(path.read_bytes())


def check_csv_bytes(content: bytes) -> None:
    """Refuse a CSV file that is not UTF-8 text (raises ImportRefused)."""
    try:
        content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(_("This file is not UTF-8 text. In your spreadsheet, save it as \"CSV UTF-8\".")) \
            from None
    if b"\x00" in content[:4096]:
        raise ImportRefused(_("This is not a CSV text file."))


def check_xlsx_bytes(content: bytes) -> None:
    if not content.startswith(b"PK\x03\x04"):
        raise ImportRefused(_("This is not an XLSX workbook."))


def _read_csv(content: bytes) -> Table:
    check_csv_bytes(content)
    text = content.decode("utf-8-sig")
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, list]] = []
    next_line = 1
    try:
        for cells in reader:
            line, next_line = next_line, reader.line_num + 1
            if header is None:
                header = cells
                continue
            if any(cell.strip() for cell in cells):
                rows.append((line, cells))
                if len(rows) > MAX_ROWS:
                    raise ImportRefused(_("The file has more than %(n)d rows: split it.", n=MAX_ROWS))
    except csv.Error:
        raise ImportRefused(_("Line %(line)d could not be read as CSV (check its quotes).", line=next_line)) \
            from None
    return Table("csv", header or [], rows)


def _read_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise ImportRefused(_("This is not an XLSX workbook.")) from None
    try:
        if not workbook.worksheets:
            raise ImportRefused(_("The workbook has no sheet."))
        header: list[str] | None = None
        rows: list[tuple[int, list]] = []
        for line, values in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
            cells = list(values)
            if header is None:
                header = ["" if cell is None else str(cell) for cell in cells]
                continue
            if any(not _is_blank(cell) for cell in cells):
                rows.append((line, cells))
                if len(rows) > MAX_ROWS:
                    raise ImportRefused(_("The file has more than %(n)d rows: split it.", n=MAX_ROWS))
        return Table("xlsx", header or [], rows)
    finally:
        workbook.close()


def _is_blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


# --- converting cells ----------------------------------------------------------------------------------

def _fold(text: str) -> str:
    return _SPACES.sub(" ", str(text)).strip().casefold()


def _text(raw) -> str | _Empty:
    """A cell as text: numbers without a spurious ".0", dates as ISO, formula guards removed."""
    if raw is None:
        return EMPTY
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, datetime):
        raw = raw.date().isoformat() if raw.time() == datetime.min.time() else raw.isoformat(sep=" ")
    elif isinstance(raw, date):
        raw = raw.isoformat()
    text = str(raw).strip()
    if not text:
        return EMPTY
    # Our exports put a ' before text a spreadsheet would run as a formula (S18): take it off again.
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        text = text[1:]
    return text


class CellParser:
    """Turns a cell of one form's fields into the value the form engine validates."""

    def __init__(self, definition, languages: Iterable[str]):
        self.definition = definition
        self.languages = list(languages)
        self._choices: dict[str, dict[str, set[str]]] = {}
        self._locations: dict[str, set[str]] | None = None
        self._yes_no: tuple[set[str], set[str]] | None = None

    def parse(self, item, raw, *, is_approximate: bool = False):
        from forms.models import (
            CHOICE_TYPES,
            DATE,
            DECIMAL,
            INTEGER,
            LOCATION,
            MULTI_SELECT,
            SUBFORM,
            TICK_BOX,
        )
        if is_approximate:
            return self._tick_box(raw)
        if item.type == TICK_BOX:
            return self._tick_box(raw)
        if item.type == INTEGER and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            if isinstance(raw, float) and not raw.is_integer():
                raise CellProblem(_("Enter a whole number."))
            return int(raw)
        if item.type == DECIMAL and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            try:
                return str(Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw))
            except InvalidOperation:
                raise CellProblem(_("Enter a number.")) from None
        text = _text(raw)
        if text is EMPTY:
            return EMPTY
        if item.type == DATE:
            match = _ISO_DATE.match(text)
            if not match:
                raise CellProblem(_("Write dates as year-month-day, e.g. 2016-03-25."))
            return match.group(1)
        if item.type == MULTI_SELECT:
            codes = []
            for part in text.split(MULTI_SEPARATOR):
                if part.strip():
                    code = self._choice(item, part.strip())
                    if code not in codes:
                        codes.append(code)
            return codes or EMPTY
        if item.type in CHOICE_TYPES:
            return self._choice(item, text)
        if item.type == LOCATION:
            return self._location(text)
        if item.type == SUBFORM:
            try:
                rows = json.loads(text)
            except ValueError:
                raise CellProblem(_("Write the rows of this subform as JSON: [{\"key\": \"value\"}, ...].")) \
                    from None
            return rows
        return text

    def _tick_box(self, raw):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        text = _text(raw)
        if text is EMPTY:
            return EMPTY
        yes, no = self._yes_no_words()
        folded = _fold(text)
        if folded in yes:
            return True
        if folded in no:
            return False
        raise CellProblem(_("Answer yes or no."))

    def _yes_no_words(self) -> tuple[set[str], set[str]]:
        if self._yes_no is None:
            yes, no = set(_TRUE_WORDS), set(_FALSE_WORDS)
            for locale in self.languages:
                with force_locale(locale):
                    yes.add(_fold(_("Yes")))
                    no.add(_fold(_("No")))
            self._yes_no = (yes, no)
        return self._yes_no

    def _choice(self, item, text: str) -> str:
        if item.option(text) is not None:
            return text
        index = self._choices.get(item.key)
        if index is None:
            index = {}
            for option in item.options:
                index.setdefault(_fold(option.code), set()).add(option.code)
                for label in (option.labels or {}).values():
                    if label:
                        index.setdefault(_fold(label), set()).add(option.code)
            self._choices[item.key] = index
        codes = index.get(_fold(text), set())
        if len(codes) == 1:
            return next(iter(codes))
        if len(codes) > 1:
            raise CellProblem(_("\"%(value)s\" names several options: use its code (%(codes)s).",
                                value=text[:80], codes=", ".join(sorted(codes))))
        known = ", ".join(o.code for o in item.options if not o.is_disabled)
        raise CellProblem(_("\"%(value)s\" is not an option of this field. Use a code or a label: %(codes)s.",
                            value=text[:80], codes=known))

    def _location(self, text: str) -> str:
        from forms.operations import all_locations, get_location
        if get_location(text) is not None:
            return text
        if get_location(text.upper()) is not None:
            return text.upper()
        if self._locations is None:
            self._locations = {}
            for info in all_locations():
                for name in (info.names or {}).values():
                    if name:
                        self._locations.setdefault(_fold(name), set()).add(info.code)
        codes = self._locations.get(_fold(text), set())
        if len(codes) == 1:
            return next(iter(codes))
        if len(codes) > 1:
            raise CellProblem(_("Several locations are called \"%(value)s\": use the code (%(codes)s).",
                                value=text[:80], codes=", ".join(sorted(codes))))
        raise CellProblem(_("\"%(value)s\" is not a known location: use a location code or name.",
                            value=text[:80]))


# --- the header ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    index: int
    name: str                   # normalised header text (lower case)
    part: str                   # "record", "trace", or a special column: "source_id", ...
    key: str | None = None      # the field key in its form ("trace." removed)
    item: object | None = None  # the FieldDef (for an approximate flag: its date field)
    is_approximate: bool = False


@dataclass(frozen=True)
class FormPart:
    part: str                   # "record" or "trace"
    record_type: str
    prefix: str                 # "" or "trace."


def resolve_header(header: list[str], table_rows, parts: list[FormPart], specials: tuple[str, ...],
                   read_only: tuple[str, ...], user) -> tuple[list[Column], list[Problem], list[str]]:
    """Columns of the file, or problems with the header (reported on line 1)."""
    from forms.models import ATTACHMENT_TYPES
    from forms.operations import access_for, get_definition
    problems: list[Problem] = []
    warnings: list[str] = []
    columns: list[Column] = []
    seen: dict[str, int] = {}
    if not any(str(h or "").strip() for h in header):
        return [], [Problem(1, "", _("The first row must hold the field keys (the header)."))], []
    if len(header) > MAX_COLUMNS:
        return [], [Problem(1, "", _("The file has more than %(n)d columns.", n=MAX_COLUMNS))], []
    access = {p.part: access_for(get_definition(p.record_type), user) for p in parts}
    for index, raw in enumerate(header):
        name = str(raw or "").strip().lstrip("\ufeff").lower()
        if not name:
            if any(index < len(cells) and not _is_blank(cells[index]) for _line, cells in table_rows):
                problems.append(Problem(1, _("column %(n)d", n=index + 1),
                                        _("This column has values but no field key in the header.")))
            continue
        if name in seen:
            problems.append(Problem(1, name, _("This column appears twice (columns %(a)d and %(b)d).",
                                                a=seen[name] + 1, b=index + 1)))
            continue
        seen[name] = index
        if name in specials:
            columns.append(Column(index, name, name))
            continue
        if name in read_only:
            warnings.append(_("Column %(name)s describes the record in an export; it is ignored on import.",
                              name=name))
            continue
        part = next(p for p in parts if name.startswith(p.prefix)) if parts else None
        key = name[len(part.prefix):]
        definition = get_definition(part.record_type)
        item = definition.field(key) if "." not in key else None
        owner = definition.companion_owner(key) if item is None and "." not in key else None
        target = item or owner
        if target is None or not target.holds_value:
            hint = (_("Subform fields go together in the subform's column, as JSON rows.") if "." in key
                    else _("Unknown column: no field has this key in the %(form)s form.",
                           form=definition.label(_locale())))
            problems.append(Problem(1, name, hint))
            continue
        if target.type in ATTACHMENT_TYPES:
            problems.append(Problem(1, name, _("Photos and documents cannot be imported; upload them on the "
                                                "record's page.")))
            continue
        if target.is_removed:
            problems.append(Problem(1, name, _("This field is no longer in the form.")))
            continue
        if key not in access[part.part].writable:
            problems.append(Problem(1, name, _("You may not change this field (your role cannot write its "
                                                "section, or the field is hidden).")))
            continue
        columns.append(Column(index, name, part.part, key, target, is_approximate=owner is not None))
    return columns, problems, warnings


# --- the import itself -----------------------------------------------------------------------------------

@dataclass
class _Row:
    line: int
    values: dict[str, dict]          # part -> {key: value or EMPTY}
    specials: dict[str, str]
    problems: list[Problem] = field(default_factory=list)


def _locale() -> str:
    from flask_babel import get_locale
    return str(get_locale() or "en")


def _languages() -> list[str]:
    from flask import current_app
    return list(current_app.config.get("LANGUAGES") or ["en"])


def _parse_rows(table: Table, columns: list[Column], parsers: dict[str, CellParser],
                progress: Progress | None) -> list[_Row]:
    parsed = []
    total = len(table.rows)
    for number, (line, cells) in enumerate(table.rows, start=1):
        row = _Row(line, {part: {} for part in parsers}, {})
        if len(cells) > len(table.header) and any(not _is_blank(c) for c in cells[len(table.header):]):
            row.problems.append(Problem(line, "", _("This row has values beyond the last column of the header.")))
        for column in columns:
            raw = cells[column.index] if column.index < len(cells) else None
            if column.item is None:
                text = _text(raw)
                row.specials[column.part] = "" if text is EMPTY else text
                continue
            try:
                value = parsers[column.part].parse(column.item, raw, is_approximate=column.is_approximate)
            except CellProblem as problem:
                row.problems.append(Problem(line, column.name, str(problem)))
                continue
            row.values[column.part][column.key] = value
        parsed.append(row)
        if progress and (number % 1000 == 0 or number == total):
            progress("read", number, total)
    return parsed


def _for_create(values: dict) -> dict:
    return {key: value for key, value in values.items() if value is not EMPTY}


def _for_update(values: dict) -> dict:
    return {key: ("" if value is EMPTY else value) for key, value in values.items()}


def _validation_problems(line: int, error, prefix: str = "") -> list[Problem]:
    return [Problem(line, prefix + key if key != "_record" else "", " ".join(str(m) for m in messages))
            for key, messages in error.errors.items()]


def _validate(record_type: str, data: dict, user, existing: dict | None, row: _Row, problems: list[Problem],
              prefix: str = "") -> dict | None:
    """The row's cleaned data, or None with its problems added. A column whose cell could
    not be read is reported once (not again as "required" or "unknown option")."""
    from forms.operations import FormValidationError, validate_record_data
    try:
        return validate_record_data(record_type, data, user, existing=existing)
    except FormValidationError as error:
        unreadable = {p.column for p in row.problems}
        problems.extend(p for p in _validation_problems(row.line, error, prefix)
                        if p.column not in unreadable and p.column.split(".")[0] not in unreadable)
        return None


def _check_source_id(row: _Row, column: str, value: str | None, limit: int = SOURCE_ID_MAX) -> None:
    if value and len(value) > limit:
        row.problems.append(Problem(row.line, column, _("Use at most %(n)d characters.", n=limit)))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def draw_short_ids(model, count: int) -> list[str]:
    """`count` random short ids unused by `model` (checked in one query per round)."""
    import secrets
    chosen: set[str] = set()
    while len(chosen) < count:
        candidates = {"".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))
                      for _ in range(count - len(chosen))} - chosen
        taken = set(db.session.scalars(select(model.short_id).where(model.short_id.in_(candidates))))
        chosen |= candidates - taken
    return list(chosen)


@dataclass
class _Existing:
    id: str
    version: int
    data: dict
    in_scope: bool
    extra: dict = field(default_factory=dict)


def _existing_by_source_id(model, source_ids: list[str], user, extra_columns=()) -> dict[str, _Existing]:
    """Records of `model` already imported with these source ids, whoever owns them."""
    found: dict[str, _Existing] = {}
    for chunk in _chunks(sorted(set(source_ids)), LOOKUP_CHUNK):
        columns = [model.source_id, model.id, model.version, model.data, *extra_columns]
        rows = db.session.execute(select(*columns).where(model.source_id.in_(chunk))).all()
        if not rows:
            continue
        visible = set(db.session.scalars(select(model.id).where(
            model.id.in_([row.id for row in rows]), scope_filter(user, model))))
        for row in rows:
            found[row.source_id] = _Existing(row.id, row.version, row.data or {}, row.id in visible,
                                             {c.key: getattr(row, c.key) for c in extra_columns})
    return found


def _index_new_records(records: list) -> None:
    """The name keys of new records (as `app.records.search.index_names` writes them), in one
    statement: a new record has no keys to delete first. A DELETE per record would also be
    slow inside one long transaction, planned on statistics taken before the import."""
    from sqlalchemy import insert

    from app.records.models import RecordKey
    from app.records.search import NAME_KIND, name_texts
    from matching.names import name_keys
    rows = []
    for record in records:
        keys: set[str] = set()
        for text in name_texts(record.RECORD_TYPE, record.data or {}):
            keys |= name_keys(text)
        rows.extend({"record_type": record.RECORD_TYPE, "record_id": record.id, "kind": NAME_KIND, "key": key[:64]}
                    for key in sorted(keys))
    if rows:
        db.session.execute(insert(RecordKey), rows)


class _Importer(ABC):
    """What both kinds share: permissions, reading, the report, progress."""

    record_type = ""
    import_permission = update_permission = create_permission = ""
    read_only: tuple[str, ...] = ()
    specials: tuple[str, ...] = ()

    def __init__(self, user, *, dry_run: bool, progress: Progress | None):
        self.user = user
        self.dry_run = dry_run
        self.progress = progress

    @abstractmethod
    def parts(self) -> list[FormPart]:
        """The form parts (record form, trace form) this importer reads columns for."""

    def check_permissions(self) -> None:
        user = self.user
        if user is None or not user.is_active:
            raise ImportRefused(_("This user account is not active."))
        missing = [p for p in (self.import_permission, self.create_permission) if not can(user, p)]
        if missing:
            raise ImportRefused(_("User %(user)s may not import these records: their role lacks %(permissions)s.",
                                  user=user.username, permissions=", ".join(missing)))

    def run(self, path: Path, file_format: str) -> ImportReport:
        started = time.monotonic()
        self.check_permissions()
        report = ImportReport(self.record_type, file_format, is_dry_run=self.dry_run)
        table = read_table(path, file_format)
        report.rows = len(table.rows)
        columns, problems, warnings = resolve_header(table.header, table.rows, self.parts(), self.specials,
                                                     self.read_only, self.user)
        report.warnings = warnings
        if problems:
            report.problems = problems
        elif not table.rows:
            report.problems = [Problem(0, "", _("The file has a header but no rows."))]
        else:
            self.check_header(columns, report)
        if not report.problems:
            parsers = {p.part: CellParser(self._definition(p.record_type), _languages()) for p in self.parts()}
            rows = _parse_rows(table, columns, parsers, self.progress)
            self.plan(rows, columns, report)
            report.problems.sort(key=lambda p: (p.line, p.column))
            if not report.problems and not self.dry_run:
                self.write(report)
                record_audit(f"{self.record_type}.import", self.record_type, None, user=self.user, detail={
                    "format": file_format, **report.counts()})
                db.session.flush()
                report.is_applied = True
        report.seconds = time.monotonic() - started
        return report

    @staticmethod
    def _definition(record_type: str):
        from forms.operations import get_definition
        return get_definition(record_type)

    def check_header(self, columns: list[Column], report: ImportReport) -> None:
        """Kind-specific header rules (e.g. the tracing file's inquiry_ref)."""

    def _tick(self, phase: str, done: int, total: int, every: int = 500) -> None:
        if self.progress and (done % every == 0 or done == total):
            self.progress(phase, done, total)


# --- cases -----------------------------------------------------------------------------------------------

@dataclass
class _CasePlan:
    line: int
    source_id: str | None
    cleaned: dict | None = None          # a new case
    existing: _Existing | None = None    # an imported case to update with `data`
    data: dict | None = None


class CaseImporter(_Importer):
    record_type = "case"
    read_only = CASE_READ_ONLY_COLUMNS
    specials = (SOURCE_ID,)

    def __init__(self, user, *, dry_run: bool, progress: Progress | None):
        super().__init__(user, dry_run=dry_run, progress=progress)
        from cases import operations as case_ops
        self.import_permission = case_ops.CASES_IMPORT
        self.create_permission = case_ops.CASES_CREATE
        self.update_permission = case_ops.CASES_UPDATE
        self.plans: list[_CasePlan] = []

    def parts(self) -> list[FormPart]:
        return [FormPart("record", "case", "")]

    def plan(self, rows: list[_Row], columns: list[Column], report: ImportReport) -> None:
        from cases.models import Case
        first_line: dict[str, int] = {}
        for row in rows:
            source_id = row.specials.get(SOURCE_ID) or None
            _check_source_id(row, SOURCE_ID, source_id)
            if source_id and source_id in first_line:
                row.problems.append(Problem(row.line, SOURCE_ID, _(
                    "This source_id is already used on line %(line)d of this file.", line=first_line[source_id])))
            elif source_id:
                first_line[source_id] = row.line
        existing = _existing_by_source_id(Case, list(first_line), self.user)
        may_update = can(self.user, self.update_permission)
        total = len(rows)
        for number, row in enumerate(rows, start=1):
            self._tick("check", number, total)
            problems = list(row.problems)
            source_id = row.specials.get(SOURCE_ID) or None
            before = existing.get(source_id) if source_id and not problems else None
            values = row.values["record"]
            if before is not None and not before.in_scope:
                problems.append(Problem(row.line, SOURCE_ID, _(
                    "A case with this source_id exists but is not in your scope: it cannot be updated.")))
            elif before is not None and not may_update:
                problems.append(Problem(row.line, SOURCE_ID, _(
                    "This case was imported before and you may not change cases.")))
            if before is not None:
                data = _for_update(values)
                cleaned = _validate("case", data, self.user, before.data, row, problems)
            else:
                data = None
                cleaned = _validate("case", _for_create(values), self.user, None, row, problems)
            report.problems.extend(problems)
            if problems:
                continue
            if before is None:
                self.plans.append(_CasePlan(row.line, source_id, cleaned=cleaned))
                report.created += 1
            elif diff_data(before.data, cleaned):
                self.plans.append(_CasePlan(row.line, source_id, existing=before, data=data))
                report.updated += 1
            else:
                report.unchanged += 1

    def write(self, report: ImportReport) -> None:
        from cases import operations as case_ops
        from cases.models import STAGE_NEW, Case
        user = self.user
        groups = list(user.groups)
        creates = [plan for plan in self.plans if plan.cleaned is not None]
        updates = [plan for plan in self.plans if plan.existing is not None]
        total, done = len(self.plans), 0
        for chunk in _chunks(creates, WRITE_CHUNK):
            cases = []
            with db.session.no_autoflush:
                for plan, short_id in zip(chunk, draw_short_ids(Case, len(chunk)), strict=True):
                    case = Case(id=new_uuid(), short_id=short_id, owner_id=user.id, agency_id=user.agency_id,
                                created_by_id=user.id, updated_by_id=user.id, workflow_stage=STAGE_NEW,
                                status=STATUS_OPEN, source_id=plan.source_id)
                    case.groups = list(groups)
                    case_ops._apply_values(case, plan.cleaned)  # the same indexed copies as create_case
                    db.session.add(case)
                    cases.append(case)
            db.session.flush()
            _index_new_records(cases)
            for case, plan in zip(cases, chunk, strict=True):
                record_change(case, "import", user, diff_data({}, plan.cleaned))
            db.session.flush()  # the chunk's history in one batch, before the hooks' own statements
            for case, plan in zip(cases, chunk, strict=True):
                hooks.record_saved(case, set(plan.cleaned))
            done += len(chunk)
            self._tick("write", done, total, every=1)
        for plan in updates:
            case = db.session.get(Case, plan.existing.id)
            try:
                case_ops.update_case(case, user, plan.data, plan.existing.version, action="import_update")
            except EditConflict:
                raise ImportRefused(_("Line %(line)d: someone changed this case while the file was being "
                                      "imported. Nothing was imported; run the import again.", line=plan.line)) \
                    from None
            done += 1
            self._tick("write", done, total)


# --- tracing requests --------------------------------------------------------------------------------------

@dataclass
class _TracePlan:
    line: int
    source_id: str
    cleaned: dict | None = None
    existing: _Existing | None = None
    data: dict | None = None


@dataclass
class _RequestPlan:
    line: int
    inquiry_ref: str
    cleaned: dict | None = None           # a new tracing request
    existing: _Existing | None = None     # one imported before: updated with `data` if it changed
    data: dict | None = None
    traces: list[_TracePlan] = field(default_factory=list)


class TracingImporter(_Importer):
    """One row per trace; rows sharing an inquiry_ref make one tracing request."""

    record_type = "tracing_request"
    read_only = TRACING_READ_ONLY_COLUMNS
    specials = (INQUIRY_REF, TRACE_SOURCE_ID)

    def __init__(self, user, *, dry_run: bool, progress: Progress | None):
        super().__init__(user, dry_run=dry_run, progress=progress)
        from tracing import operations as tracing_ops
        self.import_permission = tracing_ops.TRACING_IMPORT
        self.create_permission = tracing_ops.TRACING_CREATE
        self.update_permission = tracing_ops.TRACING_UPDATE
        self.plans: list[_RequestPlan] = []

    def parts(self) -> list[FormPart]:
        # "trace." first: a plain key is the inquirer's (tracing request form).
        return [FormPart("trace", "trace", TRACE_PREFIX), FormPart("record", "tracing_request", "")]

    def check_header(self, columns: list[Column], report: ImportReport) -> None:
        if not any(column.part == INQUIRY_REF for column in columns):
            report.problems.append(Problem(1, INQUIRY_REF, _(
                "A tracing file needs an inquiry_ref column: rows with the same inquiry_ref are the children "
                "one inquirer is looking for.")))

    def plan(self, rows: list[_Row], columns: list[Column], report: ImportReport) -> None:
        from tracing.models import Trace, TracingRequest
        groups: dict[str, list[_Row]] = {}
        trace_lines: dict[str, int] = {}
        for row in rows:
            ref = row.specials.get(INQUIRY_REF) or ""
            _check_source_id(row, INQUIRY_REF, ref, INQUIRY_REF_MAX)
            if not ref:
                row.problems.append(Problem(row.line, INQUIRY_REF, _("Give every row an inquiry_ref.")))
            group = groups.setdefault(ref, [])
            group.append(row)
            trace_id = row.specials.get(TRACE_SOURCE_ID) or f"{ref}/{len(group)}"
            row.specials[TRACE_SOURCE_ID] = trace_id
            _check_source_id(row, TRACE_SOURCE_ID, trace_id)
            if trace_id in trace_lines:
                row.problems.append(Problem(row.line, TRACE_SOURCE_ID, _(
                    "This trace source id is already used on line %(line)d of this file.",
                    line=trace_lines[trace_id])))
            else:
                trace_lines[trace_id] = row.line
        requests = _existing_by_source_id(TracingRequest, [ref for ref in groups if ref], self.user,
                                          extra_columns=(TracingRequest.status,))
        traces = _existing_by_source_id(Trace, list(trace_lines), self.user,
                                        extra_columns=(Trace.tracing_request_id,))
        may_update = can(self.user, self.update_permission)
        total, done, reported = len(rows), 0, 0
        for ref, group in groups.items():
            done += len(group)
            if self.progress and (done - reported >= 500 or done == total):
                self.progress("check", done, total)
                reported = done
            problems = [p for row in group for p in row.problems]
            plan = self._plan_request(ref, group, requests.get(ref) if ref else None, traces, may_update, problems)
            report.problems.extend(problems)
            if problems or plan is None:
                continue
            self.plans.append(plan)
            if plan.cleaned is not None:
                report.created += 1
            elif plan.data is not None or plan.traces:
                report.updated += 1
            else:
                report.unchanged += 1
            report.traces_created += sum(1 for t in plan.traces if t.cleaned is not None)
            report.traces_updated += sum(1 for t in plan.traces if t.existing is not None)

    def _merged_request_values(self, group: list[_Row], problems: list[Problem]) -> dict:
        """The inquirer's values: repeated on every row, or given once and left blank on the others."""
        merged: dict = {}
        where: dict[str, int] = {}
        for row in group:
            for key, value in row.values["record"].items():
                if value is EMPTY:
                    merged.setdefault(key, EMPTY)
                    continue
                if merged.get(key, EMPTY) is EMPTY:
                    merged[key], where[key] = value, row.line
                elif merged[key] != value:
                    problems.append(Problem(row.line, key, _(
                        "This inquirer value differs from line %(line)d of the same inquiry_ref.",
                        line=where[key])))
        return merged

    def _plan_request(self, ref: str, group: list[_Row], before: _Existing | None, traces: dict[str, _Existing],
                      may_update: bool, problems: list[Problem]) -> _RequestPlan | None:
        """Check one inquiry (its inquirer and every child sought), adding every problem found."""
        first = group[0]
        values = self._merged_request_values(group, problems)
        # The inquirer is checked with the first row's line; unreadable cells of any row are reported once.
        request_row = _Row(first.line, {}, {}, [p for row in group for p in row.problems])
        plan = _RequestPlan(first.line, ref)
        if before is not None and not before.in_scope:
            problems.append(Problem(first.line, INQUIRY_REF, _(
                "A tracing request with this inquiry_ref exists but is not in your scope: it cannot be updated.")))
        elif before is not None and not may_update:
            problems.append(Problem(first.line, INQUIRY_REF, _(
                "This tracing request was imported before and you may not change tracing requests.")))
        if before is not None:
            data = _for_update(values)
            cleaned = _validate("tracing_request", data, self.user, before.data, request_row, problems)
            plan.existing = before
            if cleaned is not None and diff_data(before.data, cleaned):
                plan.data = data
        else:
            plan.cleaned = _validate("tracing_request", _for_create(values), self.user, None, request_row, problems)
        for row in group:
            trace_id = row.specials[TRACE_SOURCE_ID]
            old = traces.get(trace_id)
            trace_values = row.values["trace"]
            if old is not None and (before is None or old.extra.get("tracing_request_id") != before.id):
                problems.append(Problem(row.line, TRACE_SOURCE_ID, _(
                    "A trace with this source id belongs to another tracing request.")))
                continue
            if old is not None:
                if not may_update:
                    problems.append(Problem(row.line, TRACE_SOURCE_ID, _(
                        "This trace was imported before and you may not change traces.")))
                data = _for_update(trace_values)
                cleaned = _validate("trace", data, self.user, old.data, row, problems, TRACE_PREFIX)
                if cleaned is not None and diff_data(old.data, cleaned):
                    plan.traces.append(_TracePlan(row.line, trace_id, existing=old, data=data))
                continue
            if before is not None and before.extra.get("status") == STATUS_CLOSED:
                problems.append(Problem(row.line, INQUIRY_REF, _(
                    "This tracing request is closed; reopen it before adding a child to it.")))
            cleaned = _validate("trace", _for_create(trace_values), self.user, None, row, problems, TRACE_PREFIX)
            if cleaned is not None:
                plan.traces.append(_TracePlan(row.line, trace_id, cleaned=cleaned))
        return plan

    def write(self, report: ImportReport) -> None:
        from tracing import operations as tracing_ops
        from tracing.models import TRACE_OPEN, Trace, TracingRequest
        user = self.user
        groups = list(user.groups)
        new_requests = [plan for plan in self.plans if plan.cleaned is not None]
        total = sum(1 + len(plan.traces) for plan in self.plans)
        done = 0
        for chunk in _chunks(new_requests, WRITE_CHUNK // 2):
            requests, new_traces = [], []
            short_ids = iter(draw_short_ids(TracingRequest, len(chunk)))
            trace_short_ids = iter(draw_short_ids(Trace, sum(len(plan.traces) for plan in chunk)))
            with db.session.no_autoflush:
                for plan in chunk:
                    request = TracingRequest(id=new_uuid(), short_id=next(short_ids), owner_id=user.id,
                                             agency_id=user.agency_id, created_by_id=user.id,
                                             updated_by_id=user.id, status=STATUS_OPEN, source_id=plan.inquiry_ref)
                    request.groups = list(groups)
                    tracing_ops._apply_request_values(request, plan.cleaned)  # as create_tracing_request does
                    db.session.add(request)
                    requests.append((request, plan.cleaned))
                    for trace_plan in plan.traces:
                        trace = self._new_trace(request, trace_plan, next(trace_short_ids), TRACE_OPEN)
                        new_traces.append((trace, trace_plan.cleaned))
            db.session.flush()
            _index_new_records([r for r, _c in requests] + [t for t, _c in new_traces])
            for request, cleaned in requests:
                record_change(request, "import", user, diff_data({}, cleaned))
            for trace, cleaned in new_traces:
                record_change(trace, "import", user, diff_data({}, cleaned))
            db.session.flush()
            for trace, cleaned in new_traces:
                hooks.record_saved(trace, set(cleaned))
            done += len(requests) + len(new_traces)
            self._tick("write", done, total, every=1)
        for plan in self.plans:
            if plan.existing is None:
                continue
            request = db.session.get(TracingRequest, plan.existing.id)
            try:
                if plan.data is not None:
                    tracing_ops.update_tracing_request(request, user, plan.data, plan.existing.version,
                                                       action="import_update")
                added = []
                with db.session.no_autoflush:
                    for trace_plan in plan.traces:
                        if trace_plan.cleaned is not None:
                            short_id = draw_short_ids(Trace, 1)[0]
                            added.append((self._new_trace(request, trace_plan, short_id, TRACE_OPEN),
                                          trace_plan.cleaned))
                db.session.flush()
                _index_new_records([t for t, _c in added])
                for trace, cleaned in added:
                    record_change(trace, "import", user, diff_data({}, cleaned))
                    hooks.record_saved(trace, set(cleaned))
                for trace_plan in plan.traces:
                    if trace_plan.existing is not None:
                        trace = db.session.get(Trace, trace_plan.existing.id)
                        tracing_ops.update_trace(trace, user, trace_plan.data, trace_plan.existing.version,
                                                 action="import_update")
            except EditConflict:
                raise ImportRefused(_("Line %(line)d: someone changed this tracing request while the file was "
                                      "being imported. Nothing was imported; run the import again.",
                                      line=plan.line)) from None
            done += 1 + len(plan.traces)
            self._tick("write", done, total)

    def _new_trace(self, request, plan: _TracePlan, short_id: str, status: str):
        from tracing import operations as tracing_ops
        from tracing.models import Trace
        trace = Trace(id=new_uuid(), short_id=short_id, tracing_request=request, owner_id=request.owner_id,
                      agency_id=request.agency_id, created_by_id=self.user.id, updated_by_id=self.user.id,
                      status=STATUS_OPEN, tracing_status=status, source_id=plan.source_id)
        tracing_ops._apply_trace_values(trace, plan.cleaned)  # as the tracing operations do
        db.session.add(trace)
        return trace


IMPORTERS = {"cases": CaseImporter, "tracing": TracingImporter}


def import_records(kind: str, path: str | Path, user, *, dry_run: bool = False, file_format: str | None = None,
                   progress: Progress | None = None) -> ImportReport:
    """Import a file of cases (`kind` "cases") or tracing requests ("tracing") as `user`.

    Raises ImportRefused when the import cannot run at all (no permission, unreadable
    file, a record changed under the import). Otherwise returns the report: with
    problems (nothing written), a dry run (nothing written), or `is_applied` (written and
    flushed; the caller commits).
    """
    importer = IMPORTERS[kind](user, dry_run=dry_run, progress=progress)
    path = Path(path)
    return importer.run(path, file_format or file_format_of(path.name))


def describe_problem(problem: Problem) -> str:
    """One line of a report, e.g. "line 7, sex: Choose one of the options."."""
    where = _("line %(n)d", n=problem.line) if problem.line else _("file")
    return f"{where}, {problem.column}: {problem.message}" if problem.column else f"{where}: {problem.message}"


# --- imports asked for in the browser (a background job) ------------------------------------------------------

def upload_name(token: str, file_format: str) -> str:
    return f"import-upload-{token}.{file_format}"


def report_name(job_id: int) -> str:
    return f"import-report-{int(job_id)}.json"


def read_import_report(job_id: int) -> dict | None:
    from app.records.exporting import record_files_dir
    path = record_files_dir() / report_name(job_id)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def run_import_job(kind: str, *, user_id: int, job_id: int | None, upload: str, file_format: str,
                   dry_run: bool) -> None:
    """The body of the cases.import and tracing.import tasks.

    Reads the uploaded file, imports it as the user who uploaded it (commit if the whole
    file is good, nothing otherwise), stores the report for the import page and deletes
    the upload. Idempotent: once the upload is gone (the job ran), a second run does nothing.
    """
    from app.records.exporting import record_files_dir, set_job_result
    from app.users.models import User
    folder = record_files_dir()
    source = folder / upload
    if Path(upload).name != upload or not source.is_file():
        return
    user = db.session.get(User, user_id)

    def progress(phase: str, done: int, total: int) -> None:
        set_job_result(job_id, {"phase": phase, "done": done, "total": total}, separate_connection=True)

    with force_locale(getattr(user, "locale", None) or "en"):
        try:
            if user is None:
                raise ImportRefused(_("This user account is not active."))
            report = import_records(kind, source, user, dry_run=dry_run, file_format=file_format, progress=progress)
        except ImportRefused as refusal:
            db.session.rollback()
            outcome = {"refused": refusal.message, "is_dry_run": dry_run}
        else:
            if report.is_applied:
                db.session.commit()
            else:
                db.session.rollback()
            outcome = report.as_dict()
    if job_id:
        path = folder / report_name(job_id)
        temporary = path.with_name(path.name + ".part")
        temporary.write_text(json.dumps(outcome, ensure_ascii=False), encoding="utf-8")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    source.unlink(missing_ok=True)
    rows = outcome.get("rows", 0)
    set_job_result(job_id, {"phase": "done", "done": rows, "total": rows})
    db.session.commit()
