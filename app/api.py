"""What every JSON API module shares (/api/v1/...): input schemas, field helpers,
error answers, paging.

Not logged in: 401; lacking the permission: 403; unknown or out-of-scope id:
404; bad input: 422 with {"errors": {field: [messages]}} in the user's
language. Handlers parse with one schema per use, call one operation, commit once.
"""
from __future__ import annotations

from contextlib import contextmanager

from flask import Flask, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from sqlalchemy.exc import IntegrityError

from app.extensions import db

MAX_PAGE = 1_000_000
MAX_ID = 2**31 - 1


class InvalidInput(Exception):
    """Raise from a handler to answer 422 with field-level messages."""

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


def plain_errors(errors):
    """Marshmallow and operation errors as plain JSON: {field: [messages]} (translated now)."""
    if isinstance(errors, dict):
        return {str(key): plain_errors(value) for key, value in errors.items()}
    if isinstance(errors, (list, tuple)):
        return [plain_errors(item) if isinstance(item, dict) else str(item) for item in errors]
    return [str(errors)]  # a single (lazy) message


def init_api(app: Flask) -> None:
    @app.errorhandler(InvalidInput)
    def _invalid_input(error: InvalidInput):
        db.session.rollback()
        return jsonify({"errors": plain_errors(error.errors)}), 422


# --- schemas and fields ----------------------------------------------------------------

def messages(**extra) -> dict:
    base = {"required": _l("This field is required."), "null": _l("This field cannot be empty.")}
    base.update(extra)
    return base


def text(max_length: int, required: bool = False, allow_none: bool = False) -> fields.String:
    return fields.String(required=required, allow_none=allow_none,
                         validate=validate.Length(max=max_length, error=_l("Use at most {max} characters.")),
                         error_messages=messages(invalid=_l("Enter text."), invalid_utf8=_l("Enter text.")))


def integer(required: bool = False, allow_none: bool = False, minimum: int = 0,
            maximum: int = MAX_ID) -> fields.Integer:
    return fields.Integer(strict=True, required=required, allow_none=allow_none,
                          validate=validate.Range(min=minimum, max=maximum,
                                                  error=_l("Use a number from {min} to {max}.")),
                          error_messages=messages(invalid=_l("Enter a whole number."),
                                                  too_large=_l("This number is too large.")))


def boolean(required: bool = False) -> fields.Boolean:
    # Only real JSON booleans: "yes", 1 or "false" are refused rather than guessed.
    return fields.Boolean(required=required, truthy={True}, falsy={False},
                          error_messages=messages(invalid=_l("Enter true or false.")))


def id_list(required: bool = False) -> fields.List:
    return fields.List(integer(minimum=1), required=required,
                       validate=validate.Length(max=500, error=_l("Use at most {max} items.")),
                       error_messages=messages(invalid=_l("Enter a list.")))


class InputSchema(Schema):
    """Base of every input schema: unknown fields are an error, messages are translated."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": _l("Unknown field."), "type": _l("Send a JSON object.")}


class PageArgsSchema(InputSchema):
    """?page and ?per_page of every list (query string values are text, hence not strict)."""

    page = fields.Integer(load_default=1, validate=validate.Range(
        min=1, max=MAX_PAGE, error=_l("Use a number from {min} to {max}.")),
        error_messages=messages(invalid=_l("Enter a whole number.")))
    per_page = fields.Integer(load_default=25, validate=validate.Range(
        min=1, max=100, error=_l("Use a number from {min} to {max}.")),
        error_messages=messages(invalid=_l("Enter a whole number.")))


# --- handler helpers ---------------------------------------------------------------------

def load_input(schema: Schema, data) -> dict:
    try:
        return schema.load(data)
    except SchemaError as error:
        raise InvalidInput(error.messages) from error


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput({"_schema": [_("Send a JSON object.")]})
    return data


def page_of(query, schema: Schema, args_schema: Schema | None = None):
    """A paginated JSON list: {items, page, per_page, pages, total}."""
    args = load_input(args_schema or PageArgsSchema(), request.args.to_dict())
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False, max_per_page=100)
    return jsonify({"items": schema.dump(page.items, many=True), "page": page.page,
                    "per_page": page.per_page, "pages": page.pages, "total": page.total})


@contextmanager
def unique_or_422(field: str, message: str):
    """A unique value taken by a concurrent request (after the operation's own check) is a 422 on its field."""
    try:
        yield
    except IntegrityError as error:
        db.session.rollback()
        raise InvalidInput({field: [message]}) from error


def created(body: dict, location: str):
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response
