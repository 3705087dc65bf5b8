"""What the points-supermarket service returns: items and orders as plain values (no code hash)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.shop import FundingSource, ItemSpec, LimitScope, Period, is_on_sale
from ledger.store.shop_repo import ItemRow, OrderRow


@dataclass(frozen=True, slots=True)
class ItemView:
    item_id: uuid.UUID
    name: str
    description: str
    price_points: int
    reference_value_fen: int
    funding_source: str
    pickup_point: str
    limit_scope: str
    limit_quantity: int | None
    limit_period: str
    once_per_period: bool
    min_household_score_points: int | None
    active_from: datetime | None
    active_until: datetime | None
    active: bool
    on_sale: bool  # active and inside its window now
    stock_available: int
    stock_reserved: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: uuid.UUID
    item_id: uuid.UUID
    placed_by_person_id: uuid.UUID
    buyer_scope: str
    household_id: uuid.UUID | None
    account_id: uuid.UUID
    quantity: int
    price_points: int
    total_points: int
    reference_value_fen: int
    funding_source: str
    state: str
    hold_transfer_id: uuid.UUID
    resolve_transfer_id: uuid.UUID | None
    expiry_transfer_id: uuid.UUID | None
    expired_points: int | None
    placed_at: datetime
    pickup_deadline: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order: OrderView
    pickup_code: str | None  # "XXXX-XXXX", shown once; None when the placement was a replay
    replayed: bool


def item_spec(row: ItemRow) -> ItemSpec:
    return ItemSpec(
        name=row.name,
        price_points=row.price_points,
        reference_value_fen=row.reference_value_fen,
        funding_source=FundingSource(row.funding_source),
        pickup_point=row.pickup_point,
        description=row.description,
        limit_scope=LimitScope(row.limit_scope),
        limit_quantity=row.limit_quantity,
        limit_period=Period(row.limit_period),
        once_per_period=row.once_per_period,
        min_household_score_points=row.min_household_score_points,
        active_from=row.active_from,
        active_until=row.active_until,
        active=row.active,
    )


def item_view(row: ItemRow, now: datetime) -> ItemView:
    return ItemView(
        row.item_id, row.name, row.description, row.price_points, row.reference_value_fen,
        row.funding_source, row.pickup_point, row.limit_scope, row.limit_quantity, row.limit_period,
        row.once_per_period, row.min_household_score_points, row.active_from, row.active_until,
        row.active, is_on_sale(item_spec(row), now), row.stock_available, row.stock_reserved,
        row.updated_at,
    )  # fmt: skip


def order_view(row: OrderRow) -> OrderView:
    return OrderView(
        row.order_id, row.item_id, row.placed_by_person_id, row.buyer_scope, row.household_id,
        row.account_id, row.quantity, row.price_points, row.total_points, row.reference_value_fen,
        row.funding_source, row.state, row.hold_transfer_id, row.resolve_transfer_id,
        row.expiry_transfer_id, row.expired_points, row.placed_at, row.pickup_deadline, row.closed_at,
    )  # fmt: skip
