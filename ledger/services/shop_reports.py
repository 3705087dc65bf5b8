"""Points-supermarket reports as plain tables (column names in Chinese, integers in minor units):
redemptions by item and month, stock levels, and reference value by funding source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.rule_settings import CHINA_TZ
from ledger.store import settings_repo
from ledger.store import shop_reports_repo as sql
from ledger.store.db import Conn

Cell = str | int


@dataclass(frozen=True, slots=True)
class Report:
    name: str  # redemptions | stock | funding
    title: str
    columns: tuple[str, ...]  # machine names
    headers: tuple[str, ...]  # zh-CN, for exports
    rows: list[tuple[Cell, ...]]


def _start(day: date | None) -> datetime | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)


class ShopReports:
    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self._pool = pool

    def redemptions(
        self, community_id: int, *, since: date | None = None, until: date | None = None
    ) -> Report:
        """Fulfilled orders per calendar month (China time) and item; ``until`` exclusive."""
        rows = self._query(
            community_id, lambda conn: sql.redemptions(conn, community_id, _start(since), _start(until))
        )
        return Report(
            "redemptions",
            "兑换统计（按商品和月份）",
            ("month", "item_id", "item_name", "orders", "units", "points", "reference_value_fen"),
            ("月份", "商品编号", "商品名称", "订单数", "件数", "积分", "参考价值（分）"),
            [(m, str(i), n, o, u, p, v) for m, i, n, o, u, p, v in rows],
        )

    def stock(self, community_id: int) -> Report:
        rows = self._query(community_id, lambda conn: sql.stock(conn, community_id))
        return Report(
            "stock",
            "库存",
            (
                "item_id",
                "item_name",
                "funding_source",
                "available",
                "reserved",
                "restocked",
                "written_off",
                "fulfilled",
            ),
            ("商品编号", "商品名称", "资金来源", "可兑换", "已预留", "累计入库", "累计报损", "累计兑出"),
            [(str(i), *rest) for i, *rest in rows],
        )

    def funding(self, community_id: int, *, since: date | None = None, until: date | None = None) -> Report:
        """Reference value (fen) of fulfilled redemptions by funding source; never a cash amount."""
        rows = self._query(
            community_id, lambda conn: sql.funding(conn, community_id, _start(since), _start(until))
        )
        return Report(
            "funding",
            "兑换价值（按资金来源）",
            ("funding_source", "orders", "units", "points", "reference_value_fen"),
            ("资金来源", "订单数", "件数", "积分", "参考价值（分）"),
            list(rows),
        )

    def _query(
        self, community_id: int, run: Callable[[Conn], list[tuple[Any, ...]]]
    ) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            if not settings_repo.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            rows = run(conn)
            conn.rollback()
        return rows
