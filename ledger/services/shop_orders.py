"""The points-supermarket steps that move points and stock together, each inside the caller's
database transaction: place (reserve stock + hold points), fulfil (post the hold), release
(void the hold, return the stock, and expire at once what came back into expired lots).

Lock order, the same in every step: the buyer's advisory lock (placing only), the order row, the
item row, the balance rows (``write_linked``), the log head. Stock is reserved by a conditional
UPDATE of the item row (``stock_available >= quantity``), which also locks it: concurrent buyers of
one item queue there, and each sees the stock the previous one left, so stock never oversells. The
hold is written in the same transaction, so a buyer refused for stock or points keeps every point
and no unit stays reserved.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.shop import (
    LimitScope,
    OrderState,
    check_transition,
    is_on_sale,
    new_pickup_code,
    period_bounds,
    pickup_code_hash,
)
from ledger.domain.times import to_us
from ledger.domain.transfers import Phase, Posting
from ledger.domain.units import Unit
from ledger.services.linked_transfers import Linked, write_linked
from ledger.services.rule_settings import CHINA_TZ
from ledger.services.shop_views import item_spec
from ledger.store import households_repo
from ledger.store import shop_repo as sql
from ledger.store.db import Conn

REDEMPTION_KIND = "shop_redemption"
EXPIRY_KIND = "points_expiry"


@dataclass(frozen=True, slots=True)
class Placement:
    """What a buyer asks for; ``request_hash`` makes two placements under one key the same."""

    community_id: int
    person_id: uuid.UUID
    item_id: uuid.UUID
    quantity: int
    idempotency_key: str
    actor_id: uuid.UUID

    def request_hash(self) -> bytes:
        return hashlib.sha256(f"shop-order/1\x1f{self.item_id}\x1f{self.quantity}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Placed:
    order: sql.OrderRow
    pickup_code: str | None  # None on a replay: the code is shown once and stored only as a hash


def _clock_us(now: datetime) -> Callable[[], int]:
    us = to_us(now)
    assert us is not None
    return lambda: us


def _buyer(conn: Conn, p: Placement, scope: LimitScope, now: datetime) -> tuple[uuid.UUID | None, uuid.UUID]:
    """(household, paying points account): the person's, or their current household's."""
    household_id = households_repo.household_of(conn, p.community_id, p.person_id, now)
    if scope is LimitScope.HOUSEHOLD:
        if household_id is None:
            raise LedgerError(ErrorCode.NOT_IN_HOUSEHOLD, field="item_id")
        account = sql.owner_account(conn, p.community_id, "household", household_id, Unit.POINTS.value)
    else:
        account = sql.owner_account(conn, p.community_id, "person", p.person_id, Unit.POINTS.value)
    if account is None:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, unit=Unit.POINTS.value)
    return household_id, account


def _check_score(
    conn: Conn, community_id: int, household_id: uuid.UUID | None, required: int | None, base: int
) -> None:
    """The household score is the period base plus the household score account's balance (the
    scoring module clears that account per period; see docs/points-supermarket.md)."""
    if required is None:
        return
    if household_id is None:
        raise LedgerError(ErrorCode.SCORE_GATE_NOT_MET, required=required)
    account = sql.owner_account(conn, community_id, "household", household_id, Unit.SCORE_POINTS.value)
    score = base + (0 if account is None else sql.account_posted(conn, community_id, account))
    if score < required:
        raise LedgerError(ErrorCode.SCORE_GATE_NOT_MET, required=required)


def _check_limits(
    conn: Conn,
    p: Placement,
    item: sql.ItemRow,
    household_id: uuid.UUID | None,
    params: Mapping[str, object],
    now: datetime,
) -> None:
    day = now.astimezone(CHINA_TZ).date()

    def window(period: str) -> tuple[datetime, datetime]:
        start, end = period_bounds(day, period)
        return (
            datetime(start.year, start.month, start.day, tzinfo=CHINA_TZ),
            datetime(end.year, end.month, end.day, tzinfo=CHINA_TZ),
        )

    scope_household = household_id if item.limit_scope == LimitScope.HOUSEHOLD else None
    if item.limit_quantity is not None or item.once_per_period:
        start, end = window(item.limit_period)
        orders, units = sql.redeemed(
            conn, p.community_id, item_id=item.item_id, person_id=p.person_id,
            household_id=scope_household, start=start, end=end,
        )  # fmt: skip
        if item.once_per_period and orders > 0:
            raise LedgerError(ErrorCode.REDEMPTION_LIMIT_REACHED, limit="once_per_period")
        if item.limit_quantity is not None and units + p.quantity > item.limit_quantity:
            raise LedgerError(
                ErrorCode.REDEMPTION_LIMIT_REACHED, limit="item_quantity", max=item.limit_quantity
            )
    most = params["redemption_limit_per_household_per_period"]
    if isinstance(most, int):
        start, end = window(str(params["redemption_limit_period"]))
        orders, _ = sql.redeemed(
            conn, p.community_id, item_id=None, person_id=p.person_id,
            household_id=household_id, start=start, end=end,
        )  # fmt: skip
        if orders >= most:
            raise LedgerError(ErrorCode.REDEMPTION_LIMIT_REACHED, limit="community", max=most)


def place(
    conn: Conn, p: Placement, params: Mapping[str, object], *, code_key: bytes, now: datetime
) -> Placed:
    """Place one order in ``conn``'s transaction; the caller commits, or rolls back on an error.

    Raises, in this order: ITEM_NOT_FOUND, NOT_IN_HOUSEHOLD / ACCOUNT_NOT_FOUND (no paying
    account), IDEMPOTENCY_CONFLICT, ITEM_NOT_ACTIVE, SCORE_GATE_NOT_MET, REDEMPTION_LIMIT_REACHED,
    OUT_OF_STOCK, INSUFFICIENT_FUNDS.
    """
    c = p.community_id
    item = sql.get_item(conn, c, p.item_id)
    if item is None:
        raise LedgerError(ErrorCode.ITEM_NOT_FOUND, item_id=str(p.item_id))
    household_id, account_id = _buyer(conn, p, LimitScope(item.limit_scope), now)
    sql.lock_buyer(conn, c, household_id or p.person_id)
    earlier = sql.order_by_key(conn, c, p.person_id, p.idempotency_key)
    if earlier is not None:
        if earlier.request_hash != p.request_hash():
            raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key")
        return Placed(earlier, None)
    if not is_on_sale(item_spec(item), now):
        raise LedgerError(ErrorCode.ITEM_NOT_ACTIVE, item_id=str(p.item_id))
    gates = [item.min_household_score_points]
    if params["redemption_requires_pass_mark"] is True:
        gates.append(int(str(params["score_pass_mark_points"])))
    required = max((g for g in gates if g is not None), default=None)
    _check_score(conn, c, household_id, required, int(str(params["score_base_points"])))
    _check_limits(conn, p, item, household_id, params, now)
    if not sql.change_stock(conn, c, item.item_id, available=-p.quantity, reserved=p.quantity, at=now):
        raise LedgerError(ErrorCode.OUT_OF_STOCK, item_id=str(p.item_id))
    order_id, hold_id = uuid7(), uuid7()
    total = item.price_points * p.quantity
    sink = sql.system_account(conn, c, SystemAccount.REDEMPTION_SINK.value, Unit.POINTS.value)
    hold = Linked(
        c,
        REDEMPTION_KIND,
        f"shop-order:{order_id}",
        transfer_id=hold_id,
        postings=(Posting(account_id, Unit.POINTS, -total), Posting(sink, Unit.POINTS, total)),
        phase=Phase.PENDING,
        actor_id=p.actor_id,
        metadata={"order_id": str(order_id), "item_id": str(item.item_id), "quantity": p.quantity},
    )
    write_linked(conn, [hold], clock_us=_clock_us(now))
    code = new_pickup_code()
    days = int(str(params["order_pickup_days"]))
    scope = LimitScope(item.limit_scope)
    values: dict[str, object] = {
        "order_id": order_id,
        "item_id": item.item_id,
        "placed_by_person_id": p.person_id,
        "buyer_scope": scope.value,
        "household_id": household_id if scope is LimitScope.HOUSEHOLD else None,
        "account_id": account_id,
        "quantity": p.quantity,
        "price_points": item.price_points,
        "total_points": total,
        "reference_value_fen": item.reference_value_fen * p.quantity,
        "funding_source": item.funding_source,
        "state": OrderState.PLACED.value,
        "pickup_code_hash": pickup_code_hash(code_key, c, code),
        "hold_transfer_id": hold_id,
        "idempotency_key": p.idempotency_key,
        "request_hash": p.request_hash(),
        "placed_at": now,
        "pickup_deadline": now + timedelta(days=days),
    }
    sql.insert_order(conn, c, values)
    sql.insert_movement(
        conn, c, item.item_id, "reservation", p.quantity, order_id=order_id, actor_id=p.actor_id, at=now
    )
    sql.insert_event(conn, c, order_id, None, OrderState.PLACED.value, actor_id=p.actor_id, at=now)
    order = sql.get_order(conn, c, order_id)
    assert order is not None
    return Placed(order, code)


def fulfil(conn: Conn, community_id: int, order: sql.OrderRow, *, actor_id: uuid.UUID, now: datetime) -> None:
    """Post the hold (the points are spent) and hand the reserved units over."""
    check_transition(OrderState(order.state), OrderState.FULFILLED)
    post = Linked(
        community_id,
        REDEMPTION_KIND,
        f"shop-fulfil:{order.order_id}",
        resolves=order.hold_transfer_id,
        phase=Phase.POST,
        actor_id=actor_id,
    )
    written = write_linked(conn, [post], clock_us=_clock_us(now))
    ok = sql.change_stock(conn, community_id, order.item_id, available=0, reserved=-order.quantity, at=now)
    assert ok, "an open order's units are reserved"
    sql.insert_movement(
        conn, community_id, order.item_id, "fulfilment", order.quantity,
        order_id=order.order_id, actor_id=actor_id, at=now,
    )  # fmt: skip
    _close(conn, community_id, order, OrderState.FULFILLED, written[0].transfer_id, None, 0, actor_id, now)


def release(
    conn: Conn,
    community_id: int,
    order: sql.OrderRow,
    to_state: OrderState,
    *,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """Void the hold and return the units (cancelled, or unclaimed_expired by the job).

    Points the hold took from lots that have expired by now do not return: in the same transaction
    an expiry transfer moves exactly that amount to the expiry sink (domain.md, Points expiry). The
    void is written first and committed with the rest, so the expiry transfer's debit finds the
    restored points in those lots and, taking the soonest-expiring lots first, takes them there.
    """
    check_transition(OrderState(order.state), to_state)
    clock = _clock_us(now)
    void = Linked(
        community_id,
        REDEMPTION_KIND,
        f"shop-void:{order.order_id}",
        resolves=order.hold_transfer_id,
        phase=Phase.VOID,
        actor_id=actor_id,
    )
    voided = write_linked(conn, [void], clock_us=clock)[0].transfer_id
    expired = sql.expired_restored_points(conn, community_id, order.hold_transfer_id, now)
    expiry_id = None
    if expired > 0:
        sink = sql.system_account(conn, community_id, SystemAccount.EXPIRY_SINK.value, Unit.POINTS.value)
        expiry = Linked(
            community_id,
            EXPIRY_KIND,
            f"shop-expire:{order.order_id}",
            postings=(Posting(order.account_id, Unit.POINTS, -expired), Posting(sink, Unit.POINTS, expired)),
            actor_id=actor_id,
            metadata={"order_id": str(order.order_id), "reason": "released_after_expiry"},
        )
        expiry_id = write_linked(conn, [expiry], clock_us=clock)[0].transfer_id
    ok = sql.change_stock(
        conn, community_id, order.item_id, available=order.quantity, reserved=-order.quantity, at=now
    )
    assert ok, "an open order's units are reserved"
    sql.insert_movement(
        conn, community_id, order.item_id, "release", order.quantity,
        order_id=order.order_id, actor_id=actor_id, at=now,
    )  # fmt: skip
    _close(conn, community_id, order, to_state, voided, expiry_id, expired, actor_id, now)


def _close(
    conn: Conn,
    community_id: int,
    order: sql.OrderRow,
    to_state: OrderState,
    resolve_id: uuid.UUID,
    expiry_id: uuid.UUID | None,
    expired_points: int,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> None:
    sql.close_order(
        conn, community_id, order.order_id, to_state.value,
        resolve_transfer_id=resolve_id, expiry_transfer_id=expiry_id,
        expired_points=expired_points or None, at=now, actor_id=actor_id,
    )  # fmt: skip
    detail: dict[str, object] = {"expired_points": expired_points} if expired_points else {}
    sql.insert_event(
        conn,
        community_id,
        order.order_id,
        order.state,
        to_state.value,
        actor_id=actor_id,
        at=now,
        detail=detail,
    )
