"""The four balances the service keeps, each an integer count of its minor unit."""

from __future__ import annotations

from enum import StrEnum


class Unit(StrEnum):
    """A ledger unit. Amounts in different units never mix and never convert to money.

    The value is the stable name written into log leaves and the database.
    """

    SERVICE_MINUTES = "service_minutes"  # 志愿服务时长: cumulative, never spent
    POINTS = "points"  # 志愿积分: spendable in the points supermarket, held in lots that expire
    COIN_MINUTES = "coin_minutes"  # 时间币: time-bank coins, 60 minutes = 1 coin
    SCORE_POINTS = "score_points"  # 户积分: village-rule household score, cleared per period


UNIT_LABELS_ZH: dict[Unit, str] = {
    Unit.SERVICE_MINUTES: "志愿服务时长（分钟）",
    Unit.POINTS: "志愿积分",
    Unit.COIN_MINUTES: "时间币（分钟）",
    Unit.SCORE_POINTS: "户积分",
}
