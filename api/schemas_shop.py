"""Request and response bodies of the points-supermarket routes (api.routes.shop)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from ledger.domain.shop import FundingSource, ItemSpec, LimitScope, Period
from ledger.services.shop import ItemView, OrderView, PlacedOrder

Funding = Literal["public_budget", "village_collective", "donor"]
Scope = Literal["person", "household"]
PeriodName = Literal["month", "quarter", "year"]


class ItemIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A catalog item's terms; an update sends the whole item again."""

    name: str
    price_points: int
    reference_value_fen: int
    funding_source: Funding
    pickup_point: str
    description: str = ""
    limit_scope: Scope = "person"
    limit_quantity: int | None = None
    limit_period: PeriodName = "month"
    once_per_period: bool = False
    min_household_score_points: int | None = None
    active_from: datetime | None = None
    active_until: datetime | None = None
    active: bool = True

    def spec(self) -> ItemSpec:
        return ItemSpec(
            name=self.name,
            price_points=self.price_points,
            reference_value_fen=self.reference_value_fen,
            funding_source=FundingSource(self.funding_source),
            pickup_point=self.pickup_point,
            description=self.description,
            limit_scope=LimitScope(self.limit_scope),
            limit_quantity=self.limit_quantity,
            limit_period=Period(self.limit_period),
            once_per_period=self.once_per_period,
            min_household_score_points=self.min_household_score_points,
            active_from=self.active_from,
            active_until=self.active_until,
            active=self.active,
        )


class NewItemIn(ItemIn, kw_only=True, forbid_unknown_fields=True):
    stock: int = 0  # units on hand at creation (recorded as a restock)


class StockIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    quantity: int
    note: str = ""


class OrderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    item_id: uuid.UUID
    quantity: int = 1


class FulfilIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: str  # as read aloud: XXXX-XXXX, any case, spaces or hyphens ignored


class ItemOut(msgspec.Struct, kw_only=True):
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
    on_sale: bool
    stock_available: int
    stock_reserved: int
    updated_at: datetime

    @classmethod
    def of(cls, v: ItemView) -> ItemOut:
        return cls(**{f: getattr(v, f) for f in cls.__struct_fields__})


class OrderOut(msgspec.Struct, kw_only=True):
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

    @classmethod
    def of(cls, v: OrderView) -> OrderOut:
        return cls(**{f: getattr(v, f) for f in cls.__struct_fields__})


class PlacedOut(msgspec.Struct, kw_only=True):
    order: OrderOut
    pickup_code: str | None  # shown once; null on a replay (only its hash is stored)
    replayed: bool

    @classmethod
    def of(cls, p: PlacedOrder) -> PlacedOut:
        return cls(order=OrderOut.of(p.order), pickup_code=p.pickup_code, replayed=p.replayed)


class ReportOut(msgspec.Struct, kw_only=True):
    report: str
    title: str
    columns: list[str]
    rows: list[list[str | int]]
