"""The schedule runs the unclaimed-order expiry and the points expiry when given their services."""

from __future__ import annotations

from typing import Any, cast

from jobs.schedule import POINTS_EXPIRY_INTERVAL_S, SHOP_EXPIRY_INTERVAL_S, jobs


class _FakeShop:
    def __init__(self) -> None:
        self.runs = 0

    def expire_unclaimed_everywhere(self, *, limit: int = 500) -> int:
        self.runs += 1
        return 0


def test_the_schedule_holds_the_shop_expiry_job_only_with_a_shop() -> None:
    audit, checkpoints = cast(Any, object()), cast(Any, object())
    assert [j.name for j in jobs(audit, checkpoints, checkpoint_interval_s=60)] == ["checkpoints"]
    shop = _FakeShop()
    schedule = jobs(audit, checkpoints, checkpoint_interval_s=60, shop=cast(Any, shop))
    job = next(j for j in schedule if j.name == "shop_unclaimed_orders")
    assert job.every_s == SHOP_EXPIRY_INTERVAL_S
    job.run()
    assert shop.runs == 1


class _FakeExpiry:
    def __init__(self) -> None:
        self.runs = 0

    def run_everywhere(self) -> int:
        self.runs += 1
        return 0


def test_the_schedule_holds_the_points_expiry_job_when_given_one() -> None:
    audit, checkpoints = cast(Any, object()), cast(Any, object())
    expiry = _FakeExpiry()
    schedule = jobs(audit, checkpoints, checkpoint_interval_s=60, expiry=cast(Any, expiry))
    job = next(j for j in schedule if j.name == "points_expiry")
    assert job.every_s == POINTS_EXPIRY_INTERVAL_S
    job.run()
    assert expiry.runs == 1
