"""Points supermarket (积分超市) use cases: catalog and stock, orders (place, fulfil by pickup code,
cancel, expire unclaimed), and the reads behind them. Each write is one database transaction.

Rules are in docs/points-supermarket.md; the pure parts in ledger.domain.shop; the steps that move
points and stock together in ledger.services.shop_orders.
"""

from __future__ import annotations

import builtins
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.rule_settings import default_params, with_defaults
from ledger.domain.shop import (
    ItemSpec,
    OrderState,
    check_item,
    check_quantity,
    check_stock_change,
    format_code,
    normalize_code,
    pickup_code_hash,
)
from ledger.domain.transfers import check_idempotency_key, check_text
from ledger.services import shop_orders
from ledger.services.login_limiter import LoginLimiter
from ledger.services.rule_settings import CHINA_TZ
from ledger.services.shop_views import ItemView, OrderView, PlacedOrder, item_view, order_view
from ledger.store import households_repo, settings_repo
from ledger.store import shop_repo as sql
from ledger.store.db import Conn

__all__ = ["ItemView", "OrderView", "PlacedOrder", "Shop"]

MAX_NOTE_CHARS = 500
_CODE_RETRIES = 3  # a fresh code colliding with a stored one (1 in ~10^11 per open order) is retried


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Shop:
    """Thread-safe; share one per process. ``code_key`` keys the pickup-code hash (at least 16
    bytes, kept outside the database); ``code_attempts_per_minute`` limits code checks per
    caller and community (a wrong code costs an attempt, so codes cannot be guessed at the counter)."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        *,
        code_key: bytes,
        clock: Callable[[], datetime] = _utc_now,
        code_attempts_per_minute: int = 10,
    ) -> None:
        assert len(code_key) >= 16
        self._pool = pool
        self._key = code_key
        self._clock = clock
        self._limiter = LoginLimiter(code_attempts_per_minute)

    @contextmanager
    def _tx(self) -> Iterator[Conn]:
        with self._pool.connection() as conn:
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _params(self, conn: Conn, community_id: int, now: datetime) -> dict[str, object]:
        row = settings_repo.in_force(conn, community_id, now.astimezone(CHINA_TZ).date())
        return default_params() if row is None else with_defaults(row[2])

    # ------------------------------------------------------------------------------ catalog

    def create_item(
        self, community_id: int, spec: ItemSpec, *, actor_id: uuid.UUID, stock: int = 0
    ) -> ItemView:
        check_item(spec)
        if stock:
            check_stock_change(stock)
        now = self._clock()
        values = {**_spec_values(spec), "item_id": uuid7(), "stock_available": stock, "stock_reserved": 0}
        values |= {"created_by": actor_id, "created_at": now, "updated_at": now}
        with self._tx() as conn:
            if not settings_repo.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            row = sql.insert_item(conn, community_id, values)
            if stock:
                sql.insert_movement(
                    conn,
                    community_id,
                    row.item_id,
                    "restock",
                    stock,
                    order_id=None,
                    actor_id=actor_id,
                    at=now,
                )
        return item_view(row, now)

    def update_item(self, community_id: int, item_id: uuid.UUID, spec: ItemSpec) -> ItemView:
        """Change an item's terms; orders already placed keep the terms they were placed under."""
        check_item(spec)
        now = self._clock()
        with self._tx() as conn:
            row = sql.update_item(conn, community_id, item_id, {**_spec_values(spec), "updated_at": now})
            if row is None:
                raise LedgerError(ErrorCode.ITEM_NOT_FOUND, item_id=str(item_id))
        return item_view(row, now)

    def restock(
        self, community_id: int, item_id: uuid.UUID, quantity: int, *, actor_id: uuid.UUID, note: str = ""
    ) -> ItemView:
        return self._stock(community_id, item_id, "restock", check_stock_change(quantity), actor_id, note)

    def write_off(
        self, community_id: int, item_id: uuid.UUID, quantity: int, *, actor_id: uuid.UUID, note: str = ""
    ) -> ItemView:
        """Remove damaged or lost units from the free stock (never from units reserved by orders)."""
        return self._stock(community_id, item_id, "write_off", -check_stock_change(quantity), actor_id, note)

    def _stock(
        self, community_id: int, item_id: uuid.UUID, kind: str, delta: int, actor_id: uuid.UUID, note: str
    ) -> ItemView:
        check_text(note, "note")
        if len(note) > MAX_NOTE_CHARS:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="note")
        now = self._clock()
        with self._tx() as conn:
            if sql.get_item(conn, community_id, item_id) is None:
                raise LedgerError(ErrorCode.ITEM_NOT_FOUND, item_id=str(item_id))
            if not sql.change_stock(conn, community_id, item_id, available=delta, reserved=0, at=now):
                raise LedgerError(ErrorCode.OUT_OF_STOCK, item_id=str(item_id))
            sql.insert_movement(
                conn,
                community_id,
                item_id,
                kind,
                abs(delta),
                order_id=None,
                actor_id=actor_id,
                at=now,
                note=note,
            )
            row = sql.get_item(conn, community_id, item_id)
        assert row is not None
        return item_view(row, now)

    def get_item(self, community_id: int, item_id: uuid.UUID, *, on_sale_only: bool = False) -> ItemView:
        """One item; with ``on_sale_only`` (a volunteer's view) an item not on sale does not exist."""
        now = self._clock()
        with self._pool.connection() as conn:
            row = sql.get_item(conn, community_id, item_id)
        view = None if row is None else item_view(row, now)
        if view is None or (on_sale_only and not view.on_sale):
            raise LedgerError(ErrorCode.ITEM_NOT_FOUND, item_id=str(item_id))
        return view

    def list_items(
        self, community_id: int, *, on_sale_only: bool, after: uuid.UUID | None = None, limit: int = 100
    ) -> builtins.list[ItemView]:
        now = self._clock()
        with self._pool.connection() as conn:
            if not settings_repo.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            rows = sql.list_items(conn, community_id, after=after, limit=limit)
        views = [item_view(r, now) for r in rows]
        return [v for v in views if v.on_sale] if on_sale_only else views

    # ------------------------------------------------------------------------------- orders

    def place_order(
        self,
        community_id: int,
        person_id: uuid.UUID,
        item_id: uuid.UUID,
        quantity: int = 1,
        *,
        idempotency_key: str,
        actor_id: uuid.UUID,
    ) -> PlacedOrder:
        """Reserve stock and hold the points in one transaction (see shop_orders.place).

        The same key with the same item and quantity returns the first order (without its code,
        which only the first answer shows); with another request it is IDEMPOTENCY_CONFLICT. A
        placement that failed left nothing behind, so its key may be used again.
        """
        check_idempotency_key(idempotency_key)
        p = shop_orders.Placement(
            community_id, person_id, item_id, check_quantity(quantity), idempotency_key, actor_id
        )
        for attempt in range(_CODE_RETRIES):
            now = self._clock()
            try:
                with self._tx() as conn:
                    placed = shop_orders.place(
                        conn, p, self._params(conn, community_id, now), code_key=self._key, now=now
                    )
            except pg_errors.UniqueViolation as exc:
                name = exc.diag.constraint_name or ""
                if name == "shop_order_pickup_code_uq" and attempt + 1 < _CODE_RETRIES:
                    continue
                if name == "shop_order_key_uq":
                    raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key") from None
                raise
            code = None if placed.pickup_code is None else format_code(placed.pickup_code)
            return PlacedOrder(order_view(placed.order), code, placed.pickup_code is None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def fulfil(self, community_id: int, code_text: str, *, actor_id: uuid.UUID) -> OrderView:
        """Hand an order over by its pickup code: the hold is posted, the reserved units leave.

        RATE_LIMITED once the caller has checked too many codes in a minute (wrong or right);
        PICKUP_CODE_INVALID for a malformed code and for one that names no open order alike.
        """
        wait_s = self._limiter.hit(f"{community_id}:{actor_id}")
        if wait_s is not None:
            raise LedgerError(ErrorCode.RATE_LIMITED, retry_after_s=max(1, math.ceil(wait_s)))
        code = normalize_code(code_text)
        if code is None:
            raise LedgerError(ErrorCode.PICKUP_CODE_INVALID, field="code")
        digest = pickup_code_hash(self._key, community_id, code)
        now = self._clock()
        with self._tx() as conn:
            order = sql.order_by_code(conn, community_id, digest)
            if order is None:
                raise LedgerError(ErrorCode.PICKUP_CODE_INVALID, field="code")
            shop_orders.fulfil(conn, community_id, order, actor_id=actor_id, now=now)
            closed = sql.get_order(conn, community_id, order.order_id)
        assert closed is not None
        return order_view(closed)

    def cancel(
        self, community_id: int, order_id: uuid.UUID, *, actor_id: uuid.UUID, person_id: uuid.UUID | None
    ) -> OrderView:
        """Cancel an open order: void the hold, return the units. ``person_id``: a volunteer
        cancelling, who may cancel only orders they can see (others' are ORDER_NOT_FOUND)."""
        now = self._clock()
        with self._tx() as conn:
            order = sql.get_order(conn, community_id, order_id, lock=True)
            if order is None or not _visible(conn, community_id, order, person_id, now):
                raise LedgerError(ErrorCode.ORDER_NOT_FOUND, order_id=str(order_id))
            shop_orders.release(conn, community_id, order, OrderState.CANCELLED, actor_id=actor_id, now=now)
            closed = sql.get_order(conn, community_id, order_id)
        assert closed is not None
        return order_view(closed)

    def expire_unclaimed(self, community_id: int, *, limit: int = 500) -> int:
        """Close open orders past their pickup deadline as unclaimed_expired (the scheduled job);
        each in its own transaction. Returns how many were closed."""
        now = self._clock()
        with self._pool.connection() as conn:
            ids = sql.expired_open_orders(conn, community_id, now, limit)
        closed = 0
        for order_id in ids:
            with self._tx() as conn:
                order = sql.get_order(conn, community_id, order_id, lock=True)
                if order is None or order.state != OrderState.PLACED or order.pickup_deadline > now:
                    continue  # collected or cancelled meanwhile
                shop_orders.release(
                    conn, community_id, order, OrderState.UNCLAIMED_EXPIRED, actor_id=None, now=now
                )
                closed += 1
        return closed

    def expire_unclaimed_everywhere(self, *, limit: int = 500) -> int:
        with self._pool.connection() as conn:
            communities = sql.communities_with_open_orders(conn, self._clock())
        return sum(self.expire_unclaimed(c, limit=limit) for c in communities)

    def get_order(self, community_id: int, order_id: uuid.UUID, *, person_id: uuid.UUID | None) -> OrderView:
        now = self._clock()
        with self._pool.connection() as conn:
            order = sql.get_order(conn, community_id, order_id)
            if order is None or not _visible(conn, community_id, order, person_id, now):
                raise LedgerError(ErrorCode.ORDER_NOT_FOUND, order_id=str(order_id))
        return order_view(order)

    def list_orders(
        self,
        community_id: int,
        *,
        person_id: uuid.UUID | None,
        state: str | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
    ) -> builtins.list[OrderView]:
        """Newest first. ``person_id``: a volunteer's list, their own orders and their current
        household's household-scope orders; None: every order of the community."""
        if state is not None and state not in set(OrderState):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="state")
        with self._pool.connection() as conn:
            household = None
            if person_id is not None:
                household = households_repo.household_of(conn, community_id, person_id, self._clock())
            rows = sql.list_orders(
                conn, community_id, person_id=person_id, household_id=household,
                state=state, after=after, limit=limit,
            )  # fmt: skip
        return [order_view(r) for r in rows]


def _visible(
    conn: Conn, community_id: int, order: sql.OrderRow, person_id: uuid.UUID | None, now: datetime
) -> bool:
    if person_id is None or order.placed_by_person_id == person_id:
        return True
    if order.household_id is None:
        return False
    return households_repo.household_of(conn, community_id, person_id, now) == order.household_id


def _spec_values(spec: ItemSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "description": spec.description,
        "price_points": spec.price_points,
        "reference_value_fen": spec.reference_value_fen,
        "funding_source": spec.funding_source.value,
        "pickup_point": spec.pickup_point,
        "limit_scope": spec.limit_scope.value,
        "limit_quantity": spec.limit_quantity,
        "limit_period": spec.limit_period.value,
        "once_per_period": spec.once_per_period,
        "min_household_score_points": spec.min_household_score_points,
        "active_from": spec.active_from,
        "active_until": spec.active_until,
        "active": spec.active,
    }
