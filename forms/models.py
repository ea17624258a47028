"""Form definitions, lookups and locations.

A record type (case, tracing request, trace) has one `FormDefinition`, made of
ordered `FormSection`s, each made of ordered `FormField`s. A subform field owns
its own ordered sub-fields (`parent_id`). Field keys are unique per record type
and never reused: removing a field keeps its row (`removed_at` set) so the key
stays reserved and stored values keep their meaning and labels.

Lookups are administrator-managed value lists; a value in use by stored data
can be disabled but not deleted. Locations form a hierarchy of any depth
(country > region > district > site/camp); location fields store the code.
"""
from __future__ import annotations

from datetime import datetime
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, UTCDateTime, utcnow
from app.extensions import db

RECORD_TYPES = ("case", "tracing_request", "trace")

# Field types. "separator" holds no value (a heading inside a section).
TEXT = "text"
TEXTAREA = "textarea"
INTEGER = "integer"
DECIMAL = "decimal"
DATE = "date"
TICK_BOX = "tick_box"
SELECT = "select"
MULTI_SELECT = "multi_select"
RADIO = "radio"
LOCATION = "location"
PHONE = "phone"
SUBFORM = "subform"
PHOTO = "photo"
DOCUMENT = "document"
SEPARATOR = "separator"
FIELD_TYPES = (TEXT, TEXTAREA, INTEGER, DECIMAL, DATE, TICK_BOX, SELECT, MULTI_SELECT, RADIO, LOCATION,
               PHONE, SUBFORM, PHOTO, DOCUMENT, SEPARATOR)
CHOICE_TYPES = (SELECT, MULTI_SELECT, RADIO)
NUMBER_TYPES = (INTEGER, DECIMAL)
ATTACHMENT_TYPES = (PHOTO, DOCUMENT)

# What a field means to the matching engine.
MATCHING_TAGS = ("given_name", "middle_name", "family_name", "full_name", "nickname", "other_name", "sex",
                 "date_of_birth", "age", "location", "date_of_separation", "mother_name", "father_name",
                 "caregiver_name", "inquirer_name", "relationship", "language", "nationality", "ethnicity",
                 "religion")

# A date field with an approximate flag stores the flag under this companion key.
APPROXIMATE_SUFFIX = "_approximate"


class FormDefinition(db.Model):
    """The form of one record type."""

    __tablename__ = "form_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32), unique=True)
    labels: Mapped[dict] = mapped_column(JSONType, default=dict)  # {locale: text}
    # May a record be saved with required fields still empty (an incomplete draft)?
    is_draft_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on every change of the definition, its sections or fields.
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    sections: Mapped[list["FormSection"]] = relationship(
        back_populates="form", order_by="FormSection.position, FormSection.id", cascade="all, delete-orphan")


class FormSection(db.Model):
    __tablename__ = "form_sections"
    __table_args__ = (UniqueConstraint("form_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form_definitions.id", ondelete="CASCADE"), index=True)
    # Stable snake_case key; also names the section's read/write permissions.
    key: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict] = mapped_column(JSONType, default=dict)
    help_texts: Mapped[dict] = mapped_column(JSONType, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Hidden from every form; values of its fields are kept and stay readable.
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    form: Mapped[FormDefinition] = relationship(back_populates="sections")
    fields: Mapped[list["FormField"]] = relationship(
        back_populates="section", order_by="FormField.position, FormField.id",
        primaryjoin="and_(FormSection.id == FormField.section_id, FormField.parent_id.is_(None))",
        viewonly=True)


class FormField(db.Model):
    __tablename__ = "form_fields"
    __table_args__ = (UniqueConstraint("form_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Denormalised from the section so the key is unique per record type in the database.
    form_id: Mapped[int] = mapped_column(ForeignKey("form_definitions.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("form_sections.id", ondelete="CASCADE"), index=True)
    # Set on the fields of a subform: the subform field they belong to.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("form_fields.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict] = mapped_column(JSONType, default=dict)
    help_texts: Mapped[dict] = mapped_column(JSONType, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Hidden fields are left out of forms; their stored values are kept.
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # Removed fields keep their row so the key is never reused and old values keep a label.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    matching_tag: Mapped[str | None] = mapped_column(String(32))
    # {"field": key, "operator": "equals"|"not_equals"|"in"|"is_set"|"is_true", "value": ...}
    condition: Mapped[dict | None] = mapped_column(JSONType)
    # Choice fields take their options from a lookup or from this inline list of
    # {"code": ..., "labels": {...}, "is_disabled": bool}.
    lookup_id: Mapped[int | None] = mapped_column(ForeignKey("lookups.id"), index=True)
    options: Mapped[list | None] = mapped_column(JSONType)
    # Number bounds as decimal text ("0", "17.5"): exact on every database.
    min_value: Mapped[str | None] = mapped_column(String(32))
    max_value: Mapped[str | None] = mapped_column(String(32))
    # Text: characters. Subform: rows. Photo/document: files.
    max_length: Mapped[int | None] = mapped_column(Integer)
    is_future_refused: Mapped[bool] = mapped_column(Boolean, default=False)  # dates
    is_approximate_allowed: Mapped[bool] = mapped_column(Boolean, default=False)  # dates
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    section: Mapped[FormSection] = relationship(foreign_keys=[section_id])
    parent: Mapped["FormField | None"] = relationship(remote_side=[id], back_populates="subfields")
    subfields: Mapped[list["FormField"]] = relationship(
        back_populates="parent", order_by="FormField.position, FormField.id")
    lookup: Mapped["Lookup | None"] = relationship()


class Lookup(db.Model):
    """An administrator-managed list of values (sex, relationship, nationality...)."""

    __tablename__ = "lookups"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    labels: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    values: Mapped[list["LookupValue"]] = relationship(
        back_populates="lookup", order_by="LookupValue.position, LookupValue.id", cascade="all, delete-orphan")


class LookupValue(db.Model):
    __tablename__ = "lookup_values"
    __table_args__ = (UniqueConstraint("lookup_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lookup_id: Mapped[int] = mapped_column(ForeignKey("lookups.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))  # what records store; never changes
    labels: Mapped[dict] = mapped_column(JSONType, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Disabled values are no longer offered; records that hold them keep them.
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    lookup: Mapped[Lookup] = relationship(back_populates="values")


class Location(db.Model):
    """A place in the hierarchy; records store its code."""

    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), index=True)
    # The administrative level, e.g. country, region, district, camp.
    type: Mapped[str] = mapped_column(String(32), default="")
    names: Mapped[dict] = mapped_column(JSONType, default=dict)  # {locale: name}
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    parent: Mapped["Location | None"] = relationship(remote_side=[id])

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names.get("en") or self.code
