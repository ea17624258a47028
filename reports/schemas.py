"""JSON shapes of the dashboard API (reports.api): one schema per use."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api import InputSchema
from reports.operations import STATUS_FILTERS


class DashboardArgsSchema(InputSchema):
    """?status narrows every case table but the status table itself."""

    status = fields.String(load_default=None, validate=validate.OneOf(STATUS_FILTERS), metadata={
        "description": "open or closed: count only those cases (the status table always counts both)."})


class DashboardRowSchema(Schema):
    key = fields.String(allow_none=True, metadata={
        "description": "The value counted (a status, stage, sex or location code, an age band); null: "
                       "not recorded."})
    label = fields.String(metadata={"description": "The value's name in the caller's language."})
    count = fields.Integer()
    filters = fields.Dict(keys=fields.String(), values=fields.Raw(), allow_none=True, metadata={
        "openapi": {"type": ["object", "null"]},
        "description": "Query parameters of the list that shows exactly these records; null: no list does."})


class DashboardTableSchema(Schema):
    name = fields.String(validate=validate.OneOf(("status", "stage", "sex", "age", "location", "funnel")))
    title = fields.String()
    total = fields.Integer(allow_none=True, metadata={
        "description": "The sum of the rows; null for the funnel, whose rows are steps, not parts."})
    rows = fields.Nested(DashboardRowSchema, many=True)


class DashboardSchema(Schema):
    """The dashboard tables the caller may see, counted in their scope. A table built from
    form values the caller may not read (sex, age, location) is absent."""

    tables = fields.Nested(DashboardTableSchema, many=True)


class TeamMemberSchema(Schema):
    user_id = fields.Integer()
    full_name = fields.String()
    open_cases = fields.Integer()
    by_stage = fields.Dict(keys=fields.String(), values=fields.Integer())
    high_risk = fields.Integer(allow_none=True, metadata={
        "description": "Open cases assessed high risk; null when the caller may not read the risk level."})


class TeamSchema(Schema):
    """Open cases of each member of the caller's groups, in the caller's scope."""

    members = fields.Nested(TeamMemberSchema, many=True)
    stages = fields.Nested(DashboardTableSchema)
