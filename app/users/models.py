"""Identity: agencies, user groups, roles and users."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, UTCDateTime, utcnow
from app.extensions import db

SCOPE_OWN = "own"
SCOPE_GROUP = "group"
SCOPE_AGENCY = "agency"
SCOPE_ALL = "all"
SCOPES = (SCOPE_OWN, SCOPE_GROUP, SCOPE_AGENCY, SCOPE_ALL)

user_groups = Table(
    "user_group_members",
    db.metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", Integer, ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True),
)


class Agency(db.Model):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # short stable code, e.g. "UNICEF"
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    users: Mapped[list["User"]] = relationship(back_populates="agency")

    def __repr__(self) -> str:
        return f"<Agency {self.code}>"


class UserGroup(db.Model):
    """A team (e.g. one field office's caseworkers and their supervisor)."""

    __tablename__ = "user_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))  # None: a cross-agency group
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agency: Mapped[Agency | None] = relationship()
    members: Mapped[list["User"]] = relationship(secondary=user_groups, back_populates="groups")


class Role(db.Model):
    """A set of permissions plus the record scope they apply to."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Which records the permissions reach: own, group, agency or all.
    scope: Mapped[str] = mapped_column(String(16), default=SCOPE_OWN)
    # A supervising role manages the groups its users belong to (approvals, reassignment).
    is_supervisor: Mapped[bool] = mapped_column(Boolean, default=False)
    # Default permissions already given to this seeded role once: `flask seed roles` adds only
    # new defaults, so a permission an administrator removed stays removed.
    offered_permissions: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    permission_rows: Mapped[list["RolePermission"]] = relationship(
        back_populates="role", cascade="all, delete-orphan", order_by="RolePermission.permission")
    users: Mapped[list["User"]] = relationship(back_populates="role")

    @property
    def permissions(self) -> set[str]:
        return {row.permission for row in self.permission_rows}

    def set_permissions(self, permissions: set[str]) -> None:
        current = {row.permission: row for row in self.permission_rows}
        for name in set(current) - set(permissions):
            self.permission_rows.remove(current[name])
        for name in sorted(set(permissions) - set(current)):
            self.permission_rows.append(RolePermission(permission=name))

    def __repr__(self) -> str:
        return f"<Role {self.code}>"


class RolePermission(db.Model):
    __tablename__ = "role_permissions"
    __table_args__ = (UniqueConstraint("role_id", "permission"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    permission: Mapped[str] = mapped_column(String(100))  # "resource:action", see app.permissions

    role: Mapped[Role] = relationship(back_populates="permission_rows")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # stored lower-case
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by an administrator reset: the user must choose a new password at next login.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # A secret being set up (shown as a QR code, not yet confirmed); kept here, not in the cookie.
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    is_totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_totp_step: Mapped[int | None] = mapped_column(Integer)  # refuses replay of a used code
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agency: Mapped[Agency] = relationship(back_populates="users")
    role: Mapped[Role] = relationship(back_populates="users")
    groups: Mapped[list[UserGroup]] = relationship(
        secondary=user_groups, back_populates="members", order_by="UserGroup.name")

    # Flask-Login reads is_active; an inactive user cannot log in or keep a session.

    @property
    def group_ids(self) -> set[int]:
        return {group.id for group in self.groups}

    @property
    def permissions(self) -> set[str]:
        return self.role.permissions if self.role else set()

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def __repr__(self) -> str:
        return f"<User {self.id}>"
