"""SQLModel mirrors of migration 0010: time-bank exchanges and events, relations, hardship flags, and
the history of the region switch for cross-community exchange.

``ledger.store.schema`` gathers these with the other tables into one metadata; a test compares it
with the migrated database. All SQL the services run is in ``timebank_repo`` and
``timebank_people_repo``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, ForeignKeyConstraint, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from ledger.store.tables import _big, _ts

# Keyed by region like region itself (a reference table), not distributed by community.
REGION_TABLES = frozenset({"region_cross_community_event"})


def _opt_ts() -> Any:
    return _ts(nullable=True, default=None)


def _opt_big() -> Any:
    return _big(default=None)


class TimebankExchange(SQLModel, table=True):
    __tablename__ = "timebank_exchange"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "recipient_person_id"], ["person.community_id", "person.person_id"]
        ),
        Index("timebank_exchange_by_recipient", "community_id", "recipient_person_id", "requested_at"),
    )
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    exchange_id: uuid.UUID = Field(primary_key=True)
    recipient_person_id: uuid.UUID
    service: str
    pricing: str
    settings_version: int
    rate_coin_minutes_per_hour: int | None = None
    planned_minutes: int | None = None
    item_price_coin_minutes: int | None = _opt_big()
    hold_coin_minutes: int = _big()
    hold_transfer_id: uuid.UUID | None = None
    state: str = Field(default="requested", sa_column_kwargs={"server_default": text("'requested'")})
    provider_community_id: int | None = _opt_big()
    provider_person_id: uuid.UUID | None = None
    served_minutes: int | None = None
    charged_coin_minutes: int | None = _opt_big()
    credited_coin_minutes: int | None = _opt_big()
    pool_coin_minutes: int | None = _opt_big()
    release_transfer_id: uuid.UUID | None = None
    payment_transfer_id: uuid.UUID | None = None
    credit_transfer_id: uuid.UUID | None = None
    resolution: str | None = None
    requested_by: uuid.UUID
    requested_at: datetime = _ts()
    matched_at: datetime | None = _opt_ts()
    started_at: datetime | None = _opt_ts()
    confirmed_at: datetime | None = _opt_ts()
    disputed_at: datetime | None = _opt_ts()
    resolved_at: datetime | None = _opt_ts()
    settled_at: datetime | None = _opt_ts()
    cancelled_at: datetime | None = _opt_ts()


class TimebankExchangeEvent(SQLModel, table=True):
    """Each step of an exchange with its actor and the party they acted as (append-only)."""

    __tablename__ = "timebank_exchange_event"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "exchange_id"],
            ["timebank_exchange.community_id", "timebank_exchange.exchange_id"],
        ),
        Index("timebank_exchange_event_by_exchange", "community_id", "exchange_id", "at"),
    )
    community_id: int = _big(primary_key=True)
    event_id: uuid.UUID = Field(primary_key=True)
    exchange_id: uuid.UUID
    kind: str
    from_state: str | None = None
    to_state: str
    actor_id: uuid.UUID
    party: str
    at: datetime = _ts()
    note: str | None = None
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    )


class PersonRelation(SQLModel, table=True):
    __tablename__ = "person_relation"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
        ForeignKeyConstraint(
            ["community_id", "relative_person_id"], ["person.community_id", "person.person_id"]
        ),
        Index(
            "person_relation_current_uq",
            "community_id",
            "person_id",
            "relative_person_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index(
            "person_relation_by_relative",
            "community_id",
            "relative_person_id",
            postgresql_where=text("ended_at IS NULL"),
        ),
    )
    community_id: int = _big(primary_key=True)
    relation_id: uuid.UUID = Field(primary_key=True)
    person_id: uuid.UUID
    relative_person_id: uuid.UUID
    kind: str
    recorded_by: uuid.UUID
    recorded_at: datetime = _ts()
    ended_by: uuid.UUID | None = None
    ended_at: datetime | None = _opt_ts()


class HardshipFlag(SQLModel, table=True):
    __tablename__ = "hardship_flag"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
        Index("hardship_flag_by_person", "community_id", "person_id"),
    )
    community_id: int = _big(primary_key=True)
    flag_id: uuid.UUID = Field(primary_key=True)
    person_id: uuid.UUID
    valid_from: date = Field(sa_type=Date)
    valid_until: date | None = Field(default=None, sa_type=Date, nullable=True)
    granted_by: uuid.UUID
    granted_at: datetime = _ts()
    revoked_by: uuid.UUID | None = None
    revoked_at: datetime | None = _opt_ts()


class RegionCrossCommunityEvent(SQLModel, table=True):
    """Who switched a region's cross-community exchange (通存通兑) on or off, and when."""

    __tablename__ = "region_cross_community_event"
    region_id: int = _big(primary_key=True, foreign_key="region.region_id")
    event_id: uuid.UUID = Field(primary_key=True)
    enabled: bool
    actor_id: uuid.UUID
    at: datetime = _ts()
    note: str = Field(default="", sa_column_kwargs={"server_default": text("''")})
