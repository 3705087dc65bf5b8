# ruff: noqa: S608 - f-strings join module constants and fixed keys only (note below the docstring)
"""SQL for the points supermarket: items and stock, orders and their events, and what placing an
order reads (accounts, household, score, counts for limits). Nothing here commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ledger.domain.ids import uuid7
from ledger.store.db import Conn

_ITEM_COLUMNS = (
    "item_id, name, description, price_points, reference_value_fen, funding_source, pickup_point,"
    " limit_scope, limit_quantity, limit_period, once_per_period, min_household_score_points,"
    " active_from, active_until, active, stock_available, stock_reserved, created_at, updated_at"
)
_ORDER_COLUMNS = (
    "order_id, item_id, placed_by_person_id, buyer_scope, household_id, account_id, quantity,"
    " price_points, total_points, reference_value_fen, funding_source, state, hold_transfer_id,"
    " resolve_transfer_id, expiry_transfer_id, expired_points, request_hash, placed_at, pickup_deadline,"
    " closed_at, closed_by"
)


@dataclass(frozen=True, slots=True)
class ItemRow:
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
    stock_available: int
    stock_reserved: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderRow:
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
    request_hash: bytes
    placed_at: datetime
    pickup_deadline: datetime
    closed_at: datetime | None
    closed_by: uuid.UUID | None


def _item(row: tuple[Any, ...] | None) -> ItemRow | None:
    return None if row is None else ItemRow(*row)


def _order(row: tuple[Any, ...] | None) -> OrderRow | None:
    if row is None:
        return None
    values = list(row)
    values[16] = bytes(values[16])
    return OrderRow(*values)


# ------------------------------------------------------------------------------------- items


def insert_item(conn: Conn, community_id: int, values: dict[str, object]) -> ItemRow:
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"INSERT INTO shop_item (community_id, {names}) VALUES (%s, {marks}) RETURNING {_ITEM_COLUMNS}",
        (community_id, *values.values()),
    ).fetchone()
    item = _item(row)
    assert item is not None
    return item


def update_item(
    conn: Conn, community_id: int, item_id: uuid.UUID, values: dict[str, object]
) -> ItemRow | None:
    sets = ", ".join(f"{name} = %s" for name in values)
    row = conn.execute(
        f"UPDATE shop_item SET {sets} WHERE community_id = %s AND item_id = %s RETURNING {_ITEM_COLUMNS}",
        (*values.values(), community_id, item_id),
    ).fetchone()
    return _item(row)


def get_item(conn: Conn, community_id: int, item_id: uuid.UUID) -> ItemRow | None:
    row = conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM shop_item WHERE community_id = %s AND item_id = %s",
        (community_id, item_id),
    ).fetchone()
    return _item(row)


def list_items(conn: Conn, community_id: int, *, after: uuid.UUID | None, limit: int) -> list[ItemRow]:
    rows = conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM shop_item WHERE community_id = %s"
        " AND (%s::uuid IS NULL OR item_id > %s) ORDER BY item_id LIMIT %s",
        (community_id, after, after, limit),
    ).fetchall()
    return [ItemRow(*r) for r in rows]


def change_stock(
    conn: Conn, community_id: int, item_id: uuid.UUID, *, available: int, reserved: int, at: datetime
) -> bool:
    """Add the deltas to the counters if neither goes negative; the row stays locked until commit,
    so concurrent reservations queue here and each sees the stock the previous one left."""
    row = conn.execute(
        "UPDATE shop_item SET stock_available = stock_available + %s, stock_reserved = stock_reserved + %s,"
        " updated_at = %s WHERE community_id = %s AND item_id = %s"
        " AND stock_available + %s >= 0 AND stock_reserved + %s >= 0 RETURNING 1",
        (available, reserved, at, community_id, item_id, available, reserved),
    ).fetchone()
    return row is not None


def insert_movement(
    conn: Conn,
    community_id: int,
    item_id: uuid.UUID,
    kind: str,
    quantity: int,
    *,
    order_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    at: datetime,
    note: str = "",
) -> None:
    conn.execute(
        "INSERT INTO shop_stock_movement (community_id, movement_id, item_id, kind, quantity, order_id,"
        " actor_id, at, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (community_id, uuid7(), item_id, kind, quantity, order_id, actor_id, at, note),
    )


# ------------------------------------------------------------------------------------ orders


def insert_order(conn: Conn, community_id: int, values: dict[str, object]) -> None:
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    conn.execute(
        f"INSERT INTO shop_order (community_id, {names}) VALUES (%s, {marks})",
        (community_id, *values.values()),
    )


def get_order(conn: Conn, community_id: int, order_id: uuid.UUID, *, lock: bool = False) -> OrderRow | None:
    row = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM shop_order WHERE community_id = %s AND order_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (community_id, order_id),
    ).fetchone()
    return _order(row)


def order_by_code(conn: Conn, community_id: int, code_hash: bytes) -> OrderRow | None:
    """The open order with this pickup code, locked; None for an unknown or closed one alike."""
    row = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM shop_order WHERE community_id = %s AND pickup_code_hash = %s"
        " AND state = 'placed' FOR UPDATE",
        (community_id, code_hash),
    ).fetchone()
    return _order(row)


def order_by_key(conn: Conn, community_id: int, person_id: uuid.UUID, key: str) -> OrderRow | None:
    row = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM shop_order WHERE community_id = %s AND placed_by_person_id = %s"
        " AND idempotency_key = %s",
        (community_id, person_id, key),
    ).fetchone()
    return _order(row)


def close_order(
    conn: Conn,
    community_id: int,
    order_id: uuid.UUID,
    state: str,
    *,
    resolve_transfer_id: uuid.UUID,
    expiry_transfer_id: uuid.UUID | None,
    expired_points: int | None,
    at: datetime,
    actor_id: uuid.UUID | None,
) -> None:
    conn.execute(
        "UPDATE shop_order SET state = %s, resolve_transfer_id = %s, expiry_transfer_id = %s,"
        " expired_points = %s, closed_at = %s, closed_by = %s WHERE community_id = %s AND order_id = %s",
        (
            state,
            resolve_transfer_id,
            expiry_transfer_id,
            expired_points,
            at,
            actor_id,
            community_id,
            order_id,
        ),
    )


def insert_event(
    conn: Conn,
    community_id: int,
    order_id: uuid.UUID,
    from_state: str | None,
    to_state: str,
    *,
    actor_id: uuid.UUID | None,
    at: datetime,
    detail: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO shop_order_event (community_id, event_id, order_id, from_state, to_state, actor_id, at,"
        " detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (community_id, uuid7(), order_id, from_state, to_state, actor_id, at, Jsonb(detail or {})),
    )


def list_orders(
    conn: Conn,
    community_id: int,
    *,
    person_id: uuid.UUID | None,
    household_id: uuid.UUID | None,
    state: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[OrderRow]:
    """Orders newest first (ids are time-ordered); ``person_id`` restricts to the person's own
    orders and, with ``household_id``, their household's household-scope orders."""
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM shop_order WHERE community_id = %s"
        " AND (%s::uuid IS NULL OR placed_by_person_id = %s"
        "      OR (%s::uuid IS NOT NULL AND buyer_scope = 'household' AND household_id = %s))"
        " AND (%s::text IS NULL OR state = %s) AND (%s::uuid IS NULL OR order_id < %s)"
        " ORDER BY order_id DESC LIMIT %s",
        (community_id, person_id, person_id, household_id, household_id, state, state, after, after, limit),
    ).fetchall()
    return [o for o in (_order(r) for r in rows) if o is not None]


def expired_open_orders(conn: Conn, community_id: int, now: datetime, limit: int) -> list[uuid.UUID]:
    rows = conn.execute(
        "SELECT order_id FROM shop_order WHERE community_id = %s AND state = 'placed'"
        " AND pickup_deadline <= %s ORDER BY pickup_deadline LIMIT %s",
        (community_id, now, limit),
    ).fetchall()
    return [r[0] for r in rows]


def communities_with_open_orders(conn: Conn, now: datetime) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT community_id FROM shop_order WHERE state = 'placed' AND pickup_deadline <= %s",
        (now,),
    ).fetchall()
    return [int(r[0]) for r in rows]


# ----------------------------------------------------------------------- what placing reads


def lock_buyer(conn: Conn, community_id: int, account_id: uuid.UUID) -> None:
    """Serialise one buyer's placements (limits are counted, then an order is added)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"shop-buyer:{community_id}:{account_id}",)
    )


def redeemed(
    conn: Conn,
    community_id: int,
    *,
    item_id: uuid.UUID | None,
    person_id: uuid.UUID,
    household_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
) -> tuple[int, int]:
    """(orders, units) not cancelled or expired, placed in [start, end), of one item or of all,
    by the household (any member) when ``household_id`` is given, else by the person."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(quantity), 0) FROM shop_order WHERE community_id = %s"
        " AND (%s::uuid IS NULL OR item_id = %s) AND state IN ('placed', 'fulfilled')"
        " AND placed_at >= %s AND placed_at < %s"
        " AND CASE WHEN %s::uuid IS NULL THEN placed_by_person_id = %s"
        "          ELSE (household_id = %s OR (buyer_scope = 'person' AND placed_by_person_id IN"
        "                (SELECT person_id FROM household_member WHERE community_id = %s"
        "                 AND household_id = %s AND valid_to IS NULL))) END",
        (
            community_id, item_id, item_id, start, end, household_id, person_id,
            household_id, community_id, household_id,
        ),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0]), int(row[1])


def owner_account(
    conn: Conn, community_id: int, owner_kind: str, owner_id: uuid.UUID, unit: str
) -> uuid.UUID | None:
    row = conn.execute(
        "SELECT account_id FROM account WHERE community_id = %s AND owner_kind = %s AND owner_id = %s"
        " AND unit = %s",
        (community_id, owner_kind, owner_id, unit),
    ).fetchone()
    return None if row is None else row[0]


def account_posted(conn: Conn, community_id: int, account_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(posted), 0) FROM balance WHERE community_id = %s AND account_id = %s",
        (community_id, account_id),
    ).fetchone()
    return 0 if row is None else int(row[0])


def system_account(conn: Conn, community_id: int, code: str, unit: str) -> uuid.UUID:
    row = conn.execute(
        "SELECT account_id FROM account WHERE community_id = %s AND owner_id IS NULL AND code = %s"
        " AND unit = %s",
        (community_id, code, unit),
    ).fetchone()
    assert row is not None, "every community has its points sinks"
    return uuid.UUID(str(row[0]))


def expired_restored_points(conn: Conn, community_id: int, hold_id: uuid.UUID, now: datetime) -> int:
    """How much of what the hold took came from lots that have expired by ``now``: after the hold
    is voided, exactly that much is back in expired lots."""
    row = conn.execute(
        "SELECT coalesce(sum(-m.amount), 0) FROM lot_movement m"
        " JOIN lot l ON l.community_id = m.community_id AND l.lot_id = m.lot_id"
        " WHERE m.community_id = %s AND m.transfer_id = %s AND m.amount < 0 AND l.expires_at <= %s",
        (community_id, hold_id, now),
    ).fetchone()
    return 0 if row is None else int(row[0])
