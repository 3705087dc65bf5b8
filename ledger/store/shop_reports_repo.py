"""SQL for the points-supermarket reports: redemptions by item and month, stock levels, value by
funding source. Months are calendar months in China (UTC+8); only fulfilled orders count as
redemptions (a cancelled or expired order spent nothing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.store.db import Conn

REDEMPTIONS = """
SELECT to_char(o.closed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, o.item_id, i.name,
       count(*), sum(o.quantity)::bigint, sum(o.total_points)::bigint, sum(o.reference_value_fen)::bigint
FROM shop_order o JOIN shop_item i ON i.community_id = o.community_id AND i.item_id = o.item_id
WHERE o.community_id = %(c)s AND o.state = 'fulfilled'
  AND (%(since)s::timestamptz IS NULL OR o.closed_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR o.closed_at < %(until)s)
GROUP BY 1, o.item_id, i.name ORDER BY 1, i.name, o.item_id
"""
STOCK = """
SELECT i.item_id, i.name, i.funding_source, i.stock_available, i.stock_reserved,
       coalesce(sum(m.quantity) FILTER (WHERE m.kind = 'restock'), 0)::bigint,
       coalesce(sum(m.quantity) FILTER (WHERE m.kind = 'write_off'), 0)::bigint,
       coalesce(sum(m.quantity) FILTER (WHERE m.kind = 'fulfilment'), 0)::bigint
FROM shop_item i LEFT JOIN shop_stock_movement m ON m.community_id = i.community_id AND m.item_id = i.item_id
WHERE i.community_id = %(c)s
GROUP BY i.item_id, i.name, i.funding_source, i.stock_available, i.stock_reserved ORDER BY i.name, i.item_id
"""
FUNDING = """
SELECT o.funding_source, count(*), sum(o.quantity)::bigint, sum(o.total_points)::bigint,
       sum(o.reference_value_fen)::bigint
FROM shop_order o
WHERE o.community_id = %(c)s AND o.state = 'fulfilled'
  AND (%(since)s::timestamptz IS NULL OR o.closed_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR o.closed_at < %(until)s)
GROUP BY o.funding_source ORDER BY o.funding_source
"""


def _rows(conn: Conn, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    # Sums are cast to bigint in SQL (sum(bigint) is numeric): integers, never decimals.
    return [tuple(row) for row in conn.execute(query, params)]


def redemptions(
    conn: Conn, community_id: int, since: datetime | None, until: datetime | None
) -> list[tuple[Any, ...]]:
    return _rows(conn, REDEMPTIONS, {"c": community_id, "since": since, "until": until})


def stock(conn: Conn, community_id: int) -> list[tuple[Any, ...]]:
    return _rows(conn, STOCK, {"c": community_id})


def funding(
    conn: Conn, community_id: int, since: datetime | None, until: datetime | None
) -> list[tuple[Any, ...]]:
    return _rows(conn, FUNDING, {"c": community_id, "since": since, "until": until})
