"""SQLModel mirrors of migrations 0004-0006: people, households, users, tokens, roles, settings.

``ledger.store.schema`` gathers these and ``ledger.store.tables`` into one metadata.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, ForeignKeyConstraint, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from ledger.store.tables import _big, _ts

# Reference tables (not distributed by community): identities may span communities.
IDENTITY_TABLES = frozenset({"app_user", "auth_token", "role_grant", "api_idempotency"})


def _now() -> Any:
    return _ts(sa_column_kwargs={"server_default": text("now()")})


def _false() -> Any:
    return Field(default=False, sa_column_kwargs={"server_default": text("false")})


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"
    __table_args__ = (
        Index(
            "app_user_person_uq",
            "person_community_id",
            "person_id",
            unique=True,
            postgresql_where=text("person_id IS NOT NULL"),
        ),
    )
    user_id: uuid.UUID = Field(primary_key=True)
    username: str = Field(unique=True)
    password_hash: str | None = None
    person_community_id: int | None = _big(default=None)
    person_id: uuid.UUID | None = None
    disabled: bool = _false()
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()


class AuthToken(SQLModel, table=True):
    __tablename__ = "auth_token"
    __table_args__ = (Index("auth_token_by_user", "user_id"),)
    token_id: uuid.UUID = Field(primary_key=True)
    token_hash: bytes = Field(sa_type=LargeBinary, unique=True)
    user_id: uuid.UUID = Field(foreign_key="app_user.user_id")
    kind: str
    name: str = Field(default="", sa_column_kwargs={"server_default": text("''")})
    created_at: datetime = _now()
    expires_at: datetime | None = _ts(nullable=True, default=None)
    revoked_at: datetime | None = _ts(nullable=True, default=None)


class RoleGrant(SQLModel, table=True):
    __tablename__ = "role_grant"
    __table_args__ = (
        Index(
            "role_grant_active_uq",
            "user_id",
            "role",
            text("coalesce(community_id, 0)"),
            text("coalesce(region_id, 0)"),
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )
    grant_id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="app_user.user_id")
    role: str
    community_id: int | None = _big(default=None, foreign_key="community.community_id")
    region_id: int | None = _big(default=None, foreign_key="region.region_id")
    granted_by: uuid.UUID | None = None
    granted_at: datetime = _now()
    revoked_at: datetime | None = _ts(nullable=True, default=None)
    revoked_by: uuid.UUID | None = None


class Person(SQLModel, table=True):
    __tablename__ = "person"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "guardian_person_id"], ["person.community_id", "person.person_id"]
        ),
        Index(
            "person_id_number_uq",
            "community_id",
            "id_number_bidx",
            unique=True,
            postgresql_where=text("id_number_bidx IS NOT NULL"),
        ),
        Index("person_phone", "community_id", "phone_bidx", postgresql_where=text("phone_bidx IS NOT NULL")),
    )
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    person_id: uuid.UUID = Field(primary_key=True)
    profile_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    id_number_bidx: bytes | None = Field(default=None, sa_type=LargeBinary)
    phone_bidx: bytes | None = Field(default=None, sa_type=LargeBinary)
    consent_entry: bool = _false()
    consent_publish: bool = _false()
    minor: bool = _false()
    guardian_person_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()
    updated_at: datetime = _now()
    erased_at: datetime | None = _ts(nullable=True, default=None)


class PersonKey(SQLModel, table=True):
    __tablename__ = "person_key"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
    )
    community_id: int = _big(primary_key=True)
    person_id: uuid.UUID = Field(primary_key=True)
    key_id: str
    wrapped_key: bytes = Field(sa_type=LargeBinary)


class Household(SQLModel, table=True):
    __tablename__ = "household"
    __table_args__ = (UniqueConstraint("community_id", "code"),)
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    household_id: uuid.UUID = Field(primary_key=True)
    code: str
    village_group: str = Field(default="", sa_column_kwargs={"server_default": text("''")})
    grid: str = Field(default="", sa_column_kwargs={"server_default": text("''")})
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()
    dissolved_at: datetime | None = _ts(nullable=True, default=None)


class HouseholdMember(SQLModel, table=True):
    __tablename__ = "household_member"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "household_id"], ["household.community_id", "household.household_id"]
        ),
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
        Index(
            "household_member_current_uq",
            "community_id",
            "person_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index(
            "household_head_current_uq",
            "community_id",
            "household_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL AND is_head"),
        ),
        Index("household_member_by_household", "community_id", "household_id", "valid_from"),
    )
    community_id: int = _big(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True)
    household_id: uuid.UUID
    person_id: uuid.UUID
    is_head: bool = _false()
    valid_from: datetime = _ts()
    valid_to: datetime | None = _ts(nullable=True, default=None)


class HouseholdEvent(SQLModel, table=True):
    __tablename__ = "household_event"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "household_id"], ["household.community_id", "household.household_id"]
        ),
    )
    community_id: int = _big(primary_key=True)
    event_id: uuid.UUID = Field(primary_key=True)
    household_id: uuid.UUID
    kind: str
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    )
    actor_id: uuid.UUID | None = None
    at: datetime = _now()


class CommunitySetting(SQLModel, table=True):
    __tablename__ = "community_setting"
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    version: int = Field(primary_key=True)
    effective_from: date = Field(sa_type=Date)
    params: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    note: str = Field(default="", sa_column_kwargs={"server_default": text("''")})
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()


class ApiIdempotency(SQLModel, table=True):
    """Responses of non-ledger POSTs by (caller, Idempotency-Key) (migration 0005)."""

    __tablename__ = "api_idempotency"
    user_id: uuid.UUID = Field(primary_key=True, foreign_key="app_user.user_id")
    key: str = Field(primary_key=True)
    route: str
    request_hash: bytes = Field(sa_type=LargeBinary)
    status_code: int | None = None
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _now()


class PersonEvent(SQLModel, table=True):
    """Who wrote a person's record and when (migration 0006); ids only."""

    __tablename__ = "person_event"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
        Index("person_event_by_person", "community_id", "person_id", "at"),
    )
    community_id: int = _big(primary_key=True)
    event_id: uuid.UUID = Field(primary_key=True)
    person_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None = None
    at: datetime = _ts()
