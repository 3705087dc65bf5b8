"""SQLModel mirrors of migration 0012: points-supermarket items, orders, stock movements, order events.

``ledger.store.schema`` gathers these with the other tables into one metadata; a test compares it
with the migrated database. All SQL the services run is in ``shop_repo`` and ``shop_reports_repo``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, Index, LargeBinary, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from ledger.store.tables import _big, _ts


def _opt_ts() -> Any:
    return _ts(nullable=True, default=None)


class ShopItem(SQLModel, table=True):
    """A catalog item and its stock counters (never deleted; switched off instead)."""

    __tablename__ = "shop_item"
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    item_id: uuid.UUID = Field(primary_key=True)
    name: str
    description: str
    price_points: int = _big()
    reference_value_fen: int = _big()
    funding_source: str
    pickup_point: str
    limit_scope: str
    limit_quantity: int | None = None
    limit_period: str
    once_per_period: bool
    min_household_score_points: int | None = _big(default=None)
    active_from: datetime | None = _opt_ts()
    active_until: datetime | None = _opt_ts()
    active: bool
    stock_available: int = _big()
    stock_reserved: int = _big()
    created_by: uuid.UUID
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ShopOrder(SQLModel, table=True):
    """One redemption; its terms never change, its state moves once (trigger in migration 0012)."""

    __tablename__ = "shop_order"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "item_id"], ["shop_item.community_id", "shop_item.item_id"]),
        ForeignKeyConstraint(
            ["community_id", "placed_by_person_id"], ["person.community_id", "person.person_id"]
        ),
        ForeignKeyConstraint(
            ["community_id", "household_id"], ["household.community_id", "household.household_id"]
        ),
        ForeignKeyConstraint(["community_id", "account_id"], ["account.community_id", "account.account_id"]),
        Index("shop_order_pickup_code_uq", "community_id", "pickup_code_hash", unique=True),
        Index("shop_order_key_uq", "community_id", "placed_by_person_id", "idempotency_key", unique=True),
        Index("shop_order_by_item", "community_id", "item_id", "placed_at"),
        Index("shop_order_by_account", "community_id", "account_id", "placed_at"),
        Index("shop_order_by_person", "community_id", "placed_by_person_id", "placed_at"),
        Index(
            "shop_order_open",
            "community_id",
            "pickup_deadline",
            postgresql_where=text("state = 'placed'"),
        ),
    )
    community_id: int = _big(primary_key=True)
    order_id: uuid.UUID = Field(primary_key=True)
    item_id: uuid.UUID
    placed_by_person_id: uuid.UUID
    buyer_scope: str
    household_id: uuid.UUID | None = None
    account_id: uuid.UUID
    quantity: int
    price_points: int = _big()
    total_points: int = _big()
    reference_value_fen: int = _big()
    funding_source: str
    state: str
    pickup_code_hash: bytes = Field(sa_type=LargeBinary)
    hold_transfer_id: uuid.UUID
    resolve_transfer_id: uuid.UUID | None = None
    expiry_transfer_id: uuid.UUID | None = None
    expired_points: int | None = _big(default=None)
    idempotency_key: str
    request_hash: bytes = Field(sa_type=LargeBinary)
    placed_at: datetime = _ts()
    pickup_deadline: datetime = _ts()
    closed_at: datetime | None = _opt_ts()
    closed_by: uuid.UUID | None = None


class ShopStockMovement(SQLModel, table=True):
    """Every stock change with its actor (append-only); NULL actor: the scheduled expiry job."""

    __tablename__ = "shop_stock_movement"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "item_id"], ["shop_item.community_id", "shop_item.item_id"]),
        ForeignKeyConstraint(
            ["community_id", "order_id"], ["shop_order.community_id", "shop_order.order_id"]
        ),
        Index("shop_stock_movement_by_item", "community_id", "item_id", "at"),
    )
    community_id: int = _big(primary_key=True)
    movement_id: uuid.UUID = Field(primary_key=True)
    item_id: uuid.UUID
    kind: str
    quantity: int = _big()
    order_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    at: datetime = _ts()
    note: str


class ShopOrderEvent(SQLModel, table=True):
    """Each step of an order with its actor (append-only)."""

    __tablename__ = "shop_order_event"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "order_id"], ["shop_order.community_id", "shop_order.order_id"]
        ),
        Index("shop_order_event_by_order", "community_id", "order_id", "at"),
    )
    community_id: int = _big(primary_key=True)
    event_id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID
    from_state: str | None = None
    to_state: str
    actor_id: uuid.UUID | None = None
    at: datetime = _ts()
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
