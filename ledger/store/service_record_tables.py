"""SQLModel mirrors of migration 0009: activities, service records, their events and corrections.

``ledger.store.schema`` gathers these with the other tables into one metadata; a test compares it
with the migrated database. All SQL the services run is in ``service_records_repo``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Column, Date, ForeignKeyConstraint, Index, Time, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from ledger.store.tables import _big, _ts


def _zero() -> Any:
    return _big(default=0, sa_column_kwargs={"server_default": text("0")})


def _date() -> Any:
    return Field(sa_type=Date)


def _time() -> Any:
    return Field(sa_type=Time)


class Activity(SQLModel, table=True):
    __tablename__ = "activity"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "leader_person_id"], ["person.community_id", "person.person_id"]
        ),
        Index("activity_by_end_date", "community_id", "end_date"),
    )
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    activity_id: uuid.UUID = Field(primary_key=True)
    name: str
    start_date: date = _date()
    end_date: date = _date()
    place: str
    content: str
    organising_unit: str
    leader_user_id: uuid.UUID | None = None
    leader_person_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime = _ts()


class ServiceRecord(SQLModel, table=True):
    """A service record. No per-row foreign keys (migration 0013): its person and activity are read
    before it is written and are never deleted; the invariant checker verifies both references."""

    __tablename__ = "service_record"
    __table_args__ = (
        Index("service_record_by_person_day", "community_id", "person_id", "service_date"),
        Index("service_record_by_activity", "community_id", "activity_id", "person_id"),
        Index(
            "service_record_transfer_uq",
            "community_id",
            "transfer_id",
            unique=True,
            postgresql_where=text("transfer_id IS NOT NULL"),
        ),
    )
    community_id: int = _big(primary_key=True)
    record_id: uuid.UUID = Field(primary_key=True)
    activity_id: uuid.UUID
    person_id: uuid.UUID
    service_date: date = _date()
    start_time: time = _time()
    end_time: time = _time()
    place: str
    content: str
    served_minutes: int
    deadline: date = _date()
    state: str = Field(default="draft", sa_column_kwargs={"server_default": text("'draft'")})
    created_by: uuid.UUID
    created_at: datetime = _ts()
    submitted_by: uuid.UUID | None = None
    submitted_at: datetime | None = _ts(nullable=True, default=None)
    verified_by: uuid.UUID | None = None
    verified_at: datetime | None = _ts(nullable=True, default=None)
    posted_by: uuid.UUID | None = None
    posted_at: datetime | None = _ts(nullable=True, default=None)
    rejected_by: uuid.UUID | None = None
    rejected_at: datetime | None = _ts(nullable=True, default=None)
    rejection_reason: str | None = None
    override_by: uuid.UUID | None = None
    override_at: datetime | None = _ts(nullable=True, default=None)
    override_reason: str | None = None
    overdue: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    settings_version: int | None = None
    transfer_id: uuid.UUID | None = None
    credited_minutes: int = _zero()
    credited_points: int = _zero()
    earned_coin_minutes: int = _zero()
    credited_coin_minutes: int = _zero()
    pool_coin_minutes: int = _zero()


class ServiceRecordEvent(SQLModel, table=True):
    """Who took each step of a record, and when (append-only); ids and numbers only. No per-row
    foreign key to its record (migration 0013): it is written beside it; the invariant checker
    verifies the reference."""

    __tablename__ = "service_record_event"
    __table_args__ = (Index("service_record_event_by_record", "community_id", "record_id", "at"),)
    community_id: int = _big(primary_key=True)
    event_id: uuid.UUID = Field(primary_key=True)
    record_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None = None
    at: datetime = _ts()
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    )


class ServiceCorrection(SQLModel, table=True):
    __tablename__ = "service_correction"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "record_id"], ["service_record.community_id", "service_record.record_id"]
        ),
        Index(
            "service_correction_open_uq",
            "community_id",
            "record_id",
            unique=True,
            postgresql_where=text("state = 'filed'"),
        ),
        Index("service_correction_by_record", "community_id", "record_id", "filed_at"),
    )
    community_id: int = _big(primary_key=True)
    correction_id: uuid.UUID = Field(primary_key=True)
    record_id: uuid.UUID
    start_time: time = _time()
    end_time: time = _time()
    served_minutes: int
    reason: str
    filed_by: uuid.UUID
    filed_at: datetime = _ts()
    state: str = Field(default="filed", sa_column_kwargs={"server_default": text("'filed'")})
    decided_by: uuid.UUID | None = None
    decided_at: datetime | None = _ts(nullable=True, default=None)
    rejection_reason: str | None = None
    attempt: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    reversal_transfer_id: uuid.UUID | None = None
    new_transfer_id: uuid.UUID | None = None
    previous_credited_minutes: int | None = _big(default=None)
    credited_minutes: int | None = _big(default=None)
