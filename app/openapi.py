"""The OpenAPI 3.1 document of the JSON API, served at GET /api/openapi.json.

Built from the routes themselves: every /api/v1 rule of the URL map becomes an
operation, described by the `api_doc` metadata of its view (the records modules
decorate their handlers) or by `ENDPOINT_DOCS` below (the account and
administration routes written before this module). Request bodies, query
parameters and responses are JSON Schemas converted from the same marshmallow
schemas the handlers load and dump with, so the document cannot drift from
the code unnoticed: tests/test_openapi.py checks every response against it.

A route without documentation still appears, marked `x-undocumented`, and
fails that test until someone describes it.

The document is for logged-in callers (a browser session or a personal API
token): like every endpoint, it is denied by default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, Flask, abort, current_app, jsonify
from flask_login import current_user
from marshmallow import Schema, fields, missing, validate

from app.api import InputSchema, PageArgsSchema
from app.users import schemas as users_schemas

bp = Blueprint("openapi", __name__)

API_PREFIX = "/api/v1"
JSON = "application/json"


# --- error bodies (what app.security and app.api answer) -------------------------------------------

class ErrorDetailSchema(Schema):
    status = fields.Integer()
    message = fields.String()
    reference = fields.String(metadata={"description": "The request id, to quote when reporting a problem."})


class ErrorSchema(Schema):
    """401, 403, 404, 405, 413, 429 and 400 (a missing CSRF token) answers."""

    error = fields.Nested(ErrorDetailSchema)


FIELD_ERRORS_REF = {"$ref": "#/components/schemas/FieldErrors"}
FIELD_ERRORS = {
    "description": "Messages by field: a list of messages, or the messages of a nested object or "
                   "list by key or index.",
    "anyOf": [{"type": "array", "items": {"type": "string"}},
              {"type": "object", "additionalProperties": FIELD_ERRORS_REF}],
}


class ValidationErrorSchema(Schema):
    """422: field-level messages in the caller's language."""

    errors = fields.Raw(metadata={"openapi": {"type": "object", "additionalProperties": FIELD_ERRORS_REF}})


# --- how a route describes itself ----------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """A paginated list of `schema`: {items, page, per_page, pages, total}."""

    schema: type


@dataclass(frozen=True)
class Items:
    """An unpaginated list of `schema`: {items}."""

    schema: type


@dataclass(frozen=True)
class Binary:
    """A file download."""

    content_types: tuple[str, ...]


@dataclass(frozen=True)
class Doc:
    summary: str
    tags: tuple[str, ...] = ()
    description: str = ""
    body: type | None = None           # an input schema class
    query: type | None = None          # query string schema class
    responses: dict = field(default_factory=dict)  # status -> schema class, Page, Items, Binary or None
    errors: tuple[int, ...] = ()       # 400/403/404/409/422... beyond the 401 every route has
    conflict: type | None = None       # the 409 body schema, when `errors` holds 409
    session_only: bool = False         # administration: refused to API tokens
    response_headers: dict = field(default_factory=dict)  # status -> {header: description}


def api_doc(summary: str, **kwargs):
    """Describe an API view for the OpenAPI document (put it right under the route decorator)."""
    doc = Doc(summary, **kwargs)

    def decorator(view):
        view.openapi = doc  # kept by functools.wraps if another decorator wraps the view
        return view

    return decorator


# --- the routes written before this module -----------------------------------------------------------

class MeAgencySchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class MeRoleSchema(Schema):
    code = fields.String()
    name = fields.String()
    scope = fields.String(validate=validate.OneOf(("own", "group", "agency", "all")))


class MeGroupSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class MeSchema(Schema):
    """The caller (GET /api/v1/me, built in app.auth.api)."""

    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    locale = fields.String()
    agency = fields.Nested(MeAgencySchema)
    role = fields.Nested(MeRoleSchema)
    groups = fields.Nested(MeGroupSchema, many=True)
    permissions = fields.List(fields.String(), metadata={
        "description": "What this request may do; a request with an API token carries no administrative "
                       "permission."})


class CreatedUserSchema(users_schemas.UserSchema):
    """A new user account (POST /api/v1/users)."""

    temporary_password = fields.String(metadata={
        "optional": True, "description": "Generated when no password was sent; shown this once."})


def _existing_docs() -> dict[str, Doc]:
    us = users_schemas
    admin = dict(tags=("Administration",), session_only=True)
    docs = {"auth_api.me": Doc("Who is calling, with which permissions", tags=("Account",),
                               responses={200: MeSchema})}
    for noun, plural, schema, create, update in (
            ("agency", "agencies", us.AgencySchema, us.AgencyCreateSchema, us.AgencyUpdateSchema),
            ("group", "groups", us.GroupSchema, us.GroupCreateSchema, us.GroupUpdateSchema),
            ("role", "roles", us.RoleSchema, us.RoleCreateSchema, us.RoleUpdateSchema),
            ("user", "users", us.UserSchema, us.UserCreateSchema, us.UserUpdateSchema)):
        article = "an" if noun == "agency" else "a"
        docs[f"users_api.list_{plural}"] = Doc(f"List {plural}", query=PageArgsSchema,
                                               responses={200: Page(schema)}, errors=(403, 422), **admin)
        docs[f"users_api.get_{noun}"] = Doc(f"Read one {noun}", responses={200: schema}, errors=(403, 404),
                                            **admin)
        docs[f"users_api.create_{noun}"] = Doc(
            f"Create {article} {noun}", body=create,
            responses={201: CreatedUserSchema if noun == "user" else schema}, errors=(403, 422),
            response_headers={201: {"Location": "The new resource's URL."}}, **admin)
        docs[f"users_api.update_{noun}"] = Doc(f"Change {article} {noun}", body=update, responses={200: schema},
                                               errors=(403, 404, 422), **admin)
    docs["users_api.list_permissions"] = Doc("The permission catalogue, for building a role",
                                             responses={200: Items(us.PermissionSchema)}, errors=(403,), **admin)
    return docs


# Function fields of schemas written before this module, which carry no type of their own.
FIELD_OVERRIDES = {
    ("UserSchema", "group_ids"): {"type": "array", "items": {"type": "integer"}},
    ("CreatedUserSchema", "group_ids"): {"type": "array", "items": {"type": "integer"}},
    ("RoleSchema", "permissions"): {"type": "array", "items": {"type": "string"}},
    ("PermissionSchema", "label"): {"type": "string"},
}


# --- marshmallow to JSON Schema -------------------------------------------------------------------------

def component_name(schema_class: type) -> str:
    name = schema_class.__name__
    return name[:-len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def _schema_class(nested) -> type:
    if isinstance(nested, Schema):
        return type(nested)
    if isinstance(nested, type) and issubclass(nested, Schema):
        return nested
    if callable(nested):
        return _schema_class(nested())
    raise TypeError(f"cannot document nested schema {nested!r}")


def _nullable(schema: dict) -> dict:
    if "$ref" in schema or "anyOf" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    result = dict(schema)
    kind = result.get("type")
    if isinstance(kind, str):
        result["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        result["type"] = [*kind, "null"]
    elif kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in result:
        result["enum"] = [*result["enum"], None]
    return result


class SchemaBuilder:
    """Collects components while converting marshmallow schemas."""

    def __init__(self):
        self.components: dict[str, dict] = {"FieldErrors": FIELD_ERRORS}
        self._classes: dict[str, type] = {}

    def ref(self, schema_class: type) -> dict:
        name = component_name(schema_class)
        known = self._classes.get(name)
        if known is not None and known is not schema_class:
            raise ValueError(f"two schemas are named {name}: {known.__module__} and {schema_class.__module__}")
        if known is None:
            self._classes[name] = schema_class
            self.components[name] = {}  # placeholder: allows self-references
            self.components[name] = self.object_schema(schema_class)
        return {"$ref": f"#/components/schemas/{name}"}

    def page_ref(self, schema_class: type) -> dict:
        name = component_name(schema_class) + "Page"
        if name not in self.components:
            self.components[name] = {
                "type": "object", "additionalProperties": False,
                "required": ["items", "page", "per_page", "pages", "total"],
                "properties": {
                    "items": {"type": "array", "items": self.ref(schema_class)},
                    "page": {"type": "integer", "minimum": 1},
                    "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
                    "pages": {"type": "integer", "minimum": 0},
                    "total": {"type": "integer", "minimum": 0},
                }}
        return {"$ref": f"#/components/schemas/{name}"}

    def items_ref(self, schema_class: type) -> dict:
        name = component_name(schema_class) + "List"
        if name not in self.components:
            self.components[name] = {"type": "object", "additionalProperties": False, "required": ["items"],
                                     "properties": {"items": {"type": "array", "items": self.ref(schema_class)}}}
        return {"$ref": f"#/components/schemas/{name}"}

    def object_schema(self, schema_class: type) -> dict:
        is_input = issubclass(schema_class, InputSchema)
        properties, required = {}, []
        for name, item in schema_class._declared_fields.items():
            if (is_input and item.dump_only) or (not is_input and item.load_only):
                continue
            key = item.data_key or name
            properties[key] = self.field_schema(schema_class, name, item)
            if (item.required if is_input else not item.metadata.get("optional")):
                required.append(key)
        result = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            result["required"] = required
        doc = (schema_class.__doc__ or "").strip()
        if doc:
            result["description"] = " ".join(doc.split())
        return result

    def field_schema(self, schema_class: type, name: str, item: fields.Field) -> dict:
        override = item.metadata.get("openapi") or FIELD_OVERRIDES.get((schema_class.__name__, name))
        if override is not None:
            result = dict(override)
        elif item.metadata.get("openapi_schema") is not None:
            # A Method field that dumps with another schema (built per request), e.g. a request's traces.
            target = self.ref(item.metadata["openapi_schema"])
            result = {"type": "array", "items": target} if item.metadata.get("many") else target
        elif isinstance(item, fields.Nested):
            target = self.ref(_schema_class(item.nested))
            result = {"type": "array", "items": target} if item.many else target
        elif isinstance(item, fields.List):
            result = {"type": "array", "items": self.field_schema(schema_class, name, item.inner)}
        elif isinstance(item, fields.Dict):
            result = {"type": "object"}
            if item.value_field is not None:
                result["additionalProperties"] = self.field_schema(schema_class, name, item.value_field)
        elif isinstance(item, fields.Boolean):
            result = {"type": "boolean"}
        elif isinstance(item, fields.Integer):
            result = {"type": "integer"}
        elif isinstance(item, (fields.Float, fields.Decimal)):
            result = {"type": "number"}
        elif isinstance(item, fields.DateTime):
            result = {"type": "string", "format": "date-time"}
        elif isinstance(item, fields.Date):
            result = {"type": "string", "format": "date"}
        elif isinstance(item, fields.UUID):
            result = {"type": "string", "format": "uuid"}
        elif isinstance(item, fields.String):
            result = {"type": "string"}
        elif type(item) is fields.Raw:
            result = {}
        else:
            raise TypeError(f"{schema_class.__name__}.{name}: give a {type(item).__name__} field its JSON "
                            "schema with metadata={'openapi': {...}}")
        for validator in item.validators:
            result.update(_validator_schema(validator, result.get("type")))
        if item.allow_none:
            result = _nullable(result)
        default = item.load_default
        if default is not missing and not callable(default) and issubclass(schema_class, InputSchema):
            result["default"] = default
        if item.metadata.get("description"):
            result["description"] = item.metadata["description"]
        return result


def _validator_schema(validator, kind) -> dict:
    if isinstance(validator, validate.OneOf):
        return {"enum": list(validator.choices)}
    if isinstance(validator, validate.Range):
        out = {}
        if validator.min is not None:
            out["minimum" if validator.min_inclusive else "exclusiveMinimum"] = validator.min
        if validator.max is not None:
            out["maximum" if validator.max_inclusive else "exclusiveMaximum"] = validator.max
        return out
    if isinstance(validator, validate.Length):
        low, high = ("minItems", "maxItems") if kind == "array" else (
            ("minProperties", "maxProperties") if kind == "object" else ("minLength", "maxLength"))
        if validator.equal is not None:
            return {low: validator.equal, high: validator.equal}
        out = {}
        if validator.min is not None:
            out[low] = validator.min
        if validator.max is not None:
            out[high] = validator.max
        return out
    return {}


# --- the document ----------------------------------------------------------------------------------

_RULE_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "uuid": {"type": "string", "format": "uuid"},
}

ERROR_RESPONSES = {
    400: ("BadRequest", "The request could not be understood, e.g. a browser session's write without its "
                        "X-CSRFToken header."),
    401: ("Unauthorized", "Not logged in: no valid session cookie or API token."),
    403: ("Forbidden", "Logged in, but the caller's role lacks the permission (audited)."),
    404: ("NotFound", "No such record, or one outside the caller's scope: the two look the same (audited)."),
    422: ("Invalid", "Bad input: field-level messages."),
}
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


def _path_and_parameters(rule) -> tuple[str, list[dict]]:
    parameters = []

    def replace(match):
        converter = match.group("converter") or "default"
        parameters.append({"name": match.group("name"), "in": "path", "required": True,
                           "schema": dict(_CONVERTER_SCHEMAS.get(converter, {"type": "string"}))})
        return "{" + match.group("name") + "}"

    return _RULE_ARG.sub(replace, rule.rule), parameters


def _query_parameters(builder: SchemaBuilder, schema_class: type) -> list[dict]:
    out = []
    for name, item in schema_class._declared_fields.items():
        parameter = {"name": item.data_key or name, "in": "query", "required": bool(item.required),
                     "schema": builder.field_schema(schema_class, name, item)}
        if item.metadata.get("description"):
            parameter["description"] = item.metadata["description"]
        out.append(parameter)
    return out


def _response(builder: SchemaBuilder, status: int, spec, headers: dict | None) -> dict:
    descriptions = {200: "OK", 201: "Created", 204: "No content"}
    response: dict = {"description": descriptions.get(status, "OK")}
    if isinstance(spec, Page):
        response["content"] = {JSON: {"schema": builder.page_ref(spec.schema)}}
    elif isinstance(spec, Items):
        response["content"] = {JSON: {"schema": builder.items_ref(spec.schema)}}
    elif isinstance(spec, Binary):
        response["content"] = {kind: {"schema": {"type": "string", "contentMediaType": kind}}
                               for kind in spec.content_types}
    elif spec is not None:
        response["content"] = {JSON: {"schema": builder.ref(spec)}}
    if headers:
        response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                               for name, text in headers.items()}
    return response


def _security(doc: Doc, method: str) -> list[dict]:
    cookie = {"cookieAuth": [], "csrfToken": []} if method in WRITE_METHODS else {"cookieAuth": []}
    return [cookie] if doc.session_only else [{"bearerAuth": []}, cookie]


def _operation(builder: SchemaBuilder, rule, method: str, doc: Doc | None, path_parameters: list[dict]) -> dict:
    if doc is None:
        return {"operationId": f"{rule.endpoint}.{method.lower()}", "summary": rule.endpoint,
                "x-undocumented": True, "parameters": path_parameters,
                "responses": {"default": {"description": "Not described yet."}}}
    operation: dict = {"operationId": rule.endpoint if len(rule.methods - {"HEAD", "OPTIONS"}) == 1
                       else f"{rule.endpoint}.{method.lower()}",
                       "summary": doc.summary, "tags": list(doc.tags) or ["API"],
                       "security": _security(doc, method)}
    if doc.description:
        operation["description"] = doc.description
    parameters = list(path_parameters)
    if doc.query is not None:
        parameters += _query_parameters(builder, doc.query)
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": builder.ref(doc.body)}}}
    responses = {str(status): _response(builder, status, spec, doc.response_headers.get(status))
                 for status, spec in sorted(doc.responses.items())}
    errors = set(doc.errors) | {401}
    if method in WRITE_METHODS:
        errors.add(400)  # a session's write without its CSRF header
    for status in sorted(errors):
        if status == 409:
            if doc.conflict is None:
                raise ValueError(f"{rule.endpoint}: a 409 answer needs its `conflict` schema")
            responses["409"] = {"description": "Someone saved the record first: nothing was overwritten.",
                                "content": {JSON: {"schema": builder.ref(doc.conflict)}}}
        else:
            responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
    operation["responses"] = responses
    return operation


def _view_doc(app: Flask, endpoint: str, existing: dict[str, Doc]) -> Doc | None:
    view = app.view_functions.get(endpoint)
    return getattr(view, "openapi", None) or existing.get(endpoint)


def build_document(app: Flask) -> dict:
    """The whole OpenAPI 3.1 document for `app`'s /api/v1 routes."""
    builder = SchemaBuilder()
    existing = _existing_docs()
    paths: dict[str, dict] = {}
    rules = sorted((r for r in app.url_map.iter_rules() if r.rule.startswith(API_PREFIX + "/")),
                   key=lambda r: r.rule)
    for rule in rules:
        path, parameters = _path_and_parameters(rule)
        item = paths.setdefault(path, {})
        doc = _view_doc(app, rule.endpoint, existing)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(builder, rule, method, doc, parameters)
    error_ref = builder.ref(ErrorSchema)
    invalid_ref = builder.ref(ValidationErrorSchema)
    responses = {name: {"description": text, "content": {JSON: {"schema": invalid_ref if status == 422
                                                                       else error_ref}}}
                 for status, (name, text) in ERROR_RESPONSES.items()}
    tags = sorted({tag for item in paths.values() for op in item.values() for tag in op.get("tags", [])})
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Child protection case management API",
            "version": "1",
            "description": (
                "Cases, tracing requests and traces, the match review queue (proposals, comparisons, decisions), and the administration of users, agencies, groups and "
                "roles. Authenticate with a personal API token (Authorization: Bearer ..., created on the "
                "account page; never carries administrative permissions, needs no CSRF token) or with the "
                "browser session (send the page's CSRF token in the X-CSRFToken header on every write). "
                "Record data holds only the form fields the caller's role may read; names and other "
                "personal data never travel in URLs (searches are POSTed). Errors: 401 not logged in, "
                "403 missing permission, 404 unknown or out of scope, 409 edit conflict, 422 field-level "
                "messages."),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": builder.components,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "cpims_...",
                               "description": "A personal API token."},
                "cookieAuth": {"type": "apiKey", "in": "cookie",
                               "name": app.config.get("SESSION_COOKIE_NAME", "session"),
                               "description": "A logged-in browser session."},
                "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                              "description": "The page's CSRF token; required on writes with a session."},
            },
        },
    }


def openapi_document(app: Flask | None = None) -> dict:
    """The document, built once per app (routes do not change after start-up)."""
    app = app or current_app._get_current_object()
    cached = app.extensions.get("openapi_document")
    if cached is None:
        cached = app.extensions["openapi_document"] = build_document(app)
    return cached


@bp.get("/api/openapi.json")
def openapi_json():
    if not current_user.is_authenticated:
        abort(401)
    return jsonify(openapi_document())
