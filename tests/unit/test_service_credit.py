"""What a posted record credits: rounding, caps, rates, the points lot's expiry, coin overflow, stars."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.rule_settings import default_params, validate_params
from ledger.domain.service_credit import (
    CreditAccounts,
    CreditContext,
    Rounding,
    ServiceRules,
    apply_cap,
    china_midnight_us,
    credit_postings,
    plan_credit,
    points_expiry_date,
    round_minutes,
    star_rating,
)
from ledger.domain.times import to_us
from ledger.domain.transfers import check_zero_sum
from ledger.domain.units import Unit
from ledger.domain.workdays import WorkdayCalendar

DEFAULTS = ServiceRules.from_params(0, default_params())
DAY = date(2025, 3, 5)
HOUR = 60


def rules(**params: object) -> ServiceRules:
    return ServiceRules.from_params(1, validate_params(params))


def test_defaults_are_read_from_the_settings() -> None:
    assert DEFAULTS.version == 0
    assert DEFAULTS.service_granularity_minutes == 30
    assert DEFAULTS.service_rounding is Rounding.DOWN
    assert DEFAULTS.working_day_calendar is WorkdayCalendar.CN_OFFICIAL
    assert DEFAULTS.recording_deadline_working_days == 10
    assert DEFAULTS.star_thresholds_hours == (100, 300, 600, 1000, 1500)
    assert DEFAULTS.coin_storage_cap_minutes == 1500 * HOUR
    assert DEFAULTS.coin_overflow_to_pool
    assert DEFAULTS.per_activity_cap_minutes is None
    assert DEFAULTS.daily_service_cap_minutes is None


def test_scenario_2_rounding_and_the_per_activity_cap() -> None:
    # 09:00–11:45 is 165 minutes: 2.5 h at the default 0.5 h granularity rounded down.
    plan = plan_credit(165, DEFAULTS, CreditContext(), DAY)
    assert (plan.served_minutes, plan.rounded_minutes, plan.credited_minutes) == (165, 150, 150)
    capped = plan_credit(165, rules(per_activity_cap_minutes=120), CreditContext(), DAY)
    assert (capped.rounded_minutes, capped.credited_minutes) == (150, 120)
    # The cap counts what the activity already credited this volunteer (an earlier day of it).
    more = plan_credit(165, rules(per_activity_cap_minutes=120), CreditContext(activity_minutes=90), DAY)
    assert more.credited_minutes == 30


@pytest.mark.parametrize(
    ("served", "granularity", "rounding", "expected"),
    [
        (165, 30, Rounding.DOWN, 150),
        (165, 30, Rounding.UP, 180),
        (165, 30, Rounding.NEAREST, 180),  # 15 of 30 is a half: rounds up
        (164, 30, Rounding.NEAREST, 150),
        (29, 30, Rounding.DOWN, 0),
        (29, 30, Rounding.UP, 30),
        (150, 30, Rounding.UP, 150),
        (7, 1, Rounding.DOWN, 7),
        (100, 60, Rounding.NEAREST, 120),
    ],
)
def test_rounding_modes(served: int, granularity: int, rounding: Rounding, expected: int) -> None:
    assert round_minutes(served, granularity, rounding) == expected


def test_daily_cap_counts_the_other_records_of_the_day() -> None:
    daily = rules(daily_service_cap_minutes=240)
    first = plan_credit(180, daily, CreditContext(), DAY)
    second = plan_credit(180, daily, CreditContext(day_minutes=first.credited_minutes), DAY)
    assert (first.credited_minutes, second.credited_minutes) == (180, 60)
    third = plan_credit(60, daily, CreditContext(day_minutes=240), DAY)
    assert third.credited_minutes == 0 and third.is_empty


def test_rates_points_and_coins() -> None:
    plan = plan_credit(165, DEFAULTS, CreditContext(), DAY)
    # 1 point per hour, rounded down: 2.5 h earns 2 points; 1 coin (60 coin minutes) per hour.
    assert (plan.credited_points, plan.earned_coin_minutes, plan.credited_coin_minutes) == (2, 150, 150)
    assert plan_credit(165, rules(points_per_hour_numerator=10), CreditContext(), DAY).credited_points == 25
    half = rules(points_per_hour_numerator=1, points_per_hour_denominator=2)
    assert plan_credit(165, half, CreditContext(), DAY).credited_points == 1
    assert plan_credit(240, half, CreditContext(), DAY).credited_points == 2
    none = plan_credit(165, rules(points_per_hour_numerator=0), CreditContext(), DAY)
    assert none.credited_points == 0 and none.points_expire_on is None


def test_scenario_8_coins_over_the_storage_cap_go_to_the_donation_pool() -> None:
    at_1498_h = CreditContext(stored_coin_minutes=1498 * HOUR)
    plan = plan_credit(3 * HOUR, DEFAULTS, at_1498_h, DAY)
    assert plan.credited_minutes == 3 * HOUR  # the hours record is not capped
    assert (plan.earned_coin_minutes, plan.credited_coin_minutes, plan.pool_coin_minutes) == (180, 120, 60)
    assert plan.uncredited_coin_minutes == 0
    dropped = plan_credit(3 * HOUR, rules(coin_overflow_target="not_credited"), at_1498_h, DAY)
    assert (dropped.credited_coin_minutes, dropped.pool_coin_minutes) == (120, 0)
    assert dropped.uncredited_coin_minutes == 60
    full = plan_credit(3 * HOUR, DEFAULTS, CreditContext(stored_coin_minutes=1600 * HOUR), DAY)
    assert (full.credited_coin_minutes, full.pool_coin_minutes) == (0, 180)


def test_daily_coin_cap() -> None:
    changning = rules(coin_daily_cap_minutes=120)
    plan = plan_credit(3 * HOUR, changning, CreditContext(day_coin_minutes=60), DAY)
    assert (plan.credited_minutes, plan.earned_coin_minutes, plan.credited_coin_minutes) == (180, 60, 60)
    assert plan.pool_coin_minutes == 0  # over the daily cap is simply not earned


@pytest.mark.parametrize(
    ("params", "earned", "expires"),
    [
        ({}, date(2025, 3, 5), date(2026, 1, 1)),
        ({}, date(2025, 12, 31), date(2026, 1, 1)),
        ({"points_expiry_period": "quarter"}, date(2025, 3, 5), date(2025, 4, 1)),
        ({"points_expiry_period": "quarter"}, date(2025, 11, 30), date(2026, 1, 1)),
        ({"points_expiry_period": "month"}, date(2025, 3, 5), date(2025, 4, 1)),
        ({"points_expiry_period": "month"}, date(2025, 12, 5), date(2026, 1, 1)),
        (
            {"points_expiry_policy": "rolling", "points_expiry_rolling_months": 12},
            date(2025, 3, 5),
            date(2026, 3, 5),
        ),
        (
            {"points_expiry_policy": "rolling", "points_expiry_rolling_months": 1},
            date(2025, 1, 31),
            date(2025, 2, 28),
        ),
        (
            {"points_expiry_policy": "rolling", "points_expiry_rolling_months": 1},
            date(2024, 1, 31),
            date(2024, 2, 29),
        ),
        (
            {"points_expiry_policy": "rolling", "points_expiry_rolling_months": 120},
            date(2025, 3, 5),
            date(2035, 3, 5),
        ),
    ],
)
def test_points_expiry(params: dict[str, object], earned: date, expires: date) -> None:
    assert points_expiry_date(earned, rules(**params)) == expires
    assert plan_credit(60, rules(**params), CreditContext(), earned).points_expire_on == expires


def test_expiry_instant_is_midnight_in_china() -> None:
    assert china_midnight_us(date(2026, 1, 1)) == to_us(datetime(2025, 12, 31, 16, tzinfo=UTC))


def test_scenario_5_star_ratings() -> None:
    thresholds = DEFAULTS.star_thresholds_hours
    assert star_rating(0, thresholds) == 0
    assert star_rating(100 * HOUR - 1, thresholds) == 0
    assert star_rating(100 * HOUR, thresholds) == 1
    assert star_rating(299 * HOUR + 30, thresholds) == 1  # 299.5 h
    assert star_rating(300 * HOUR, thresholds) == 2  # one more 0.5 h record
    assert star_rating(1500 * HOUR, thresholds) == 5
    assert star_rating(10_000 * HOUR, thresholds) == 5
    beijing = (100, 200, 500, 800, 1000)
    assert [star_rating(h * HOUR, beijing) for h in (99, 200, 499, 800, 1000)] == [0, 2, 2, 4, 5]


ACCOUNTS = CreditAccounts(*(uuid.uuid4() for _ in range(7)))


def test_postings_for_scenario_8() -> None:
    plan = plan_credit(3 * HOUR, DEFAULTS, CreditContext(stored_coin_minutes=1498 * HOUR), DAY)
    postings = credit_postings(plan, ACCOUNTS)
    by_account = {p.account_id: (p.unit, p.amount, p.expires_at_us) for p in postings}
    assert by_account == {
        ACCOUNTS.issuance_minutes: (Unit.SERVICE_MINUTES, -180, None),
        ACCOUNTS.volunteer_minutes: (Unit.SERVICE_MINUTES, 180, None),
        ACCOUNTS.issuance_points: (Unit.POINTS, -3, None),
        ACCOUNTS.volunteer_points: (Unit.POINTS, 3, china_midnight_us(date(2026, 1, 1))),
        ACCOUNTS.issuance_coins: (Unit.COIN_MINUTES, -180, None),
        ACCOUNTS.volunteer_coins: (Unit.COIN_MINUTES, 120, None),
        ACCOUNTS.donation_pool: (Unit.COIN_MINUTES, 60, None),
    }
    check_zero_sum(postings)


def test_nothing_credited_means_no_postings() -> None:
    plan = plan_credit(20, DEFAULTS, CreditContext(), DAY)  # under half an hour, rounded down
    assert plan.is_empty and credit_postings(plan, ACCOUNTS) == ()


caps = st.one_of(st.none(), st.integers(min_value=1, max_value=2000))
params_strategy = st.fixed_dictionaries(
    {
        "service_granularity_minutes": st.sampled_from([1, 15, 30, 60, 90]),
        "service_rounding": st.sampled_from(["down", "nearest", "up"]),
        "points_per_hour_numerator": st.integers(min_value=0, max_value=20),
        "points_per_hour_denominator": st.integers(min_value=1, max_value=4),
        "per_activity_cap_minutes": caps,
        "daily_service_cap_minutes": st.one_of(st.none(), st.integers(min_value=1, max_value=1440)),
        "coin_storage_cap_minutes": st.one_of(st.none(), st.integers(min_value=1, max_value=100_000)),
        "coin_overflow_target": st.sampled_from(["donation_pool", "not_credited"]),
        "coin_daily_cap_minutes": st.one_of(st.none(), st.integers(min_value=1, max_value=1440)),
        "coin_minutes_per_service_hour": st.sampled_from([0, 30, 60, 90, 120]),
    }
)
contexts = st.builds(
    CreditContext,
    activity_minutes=st.integers(min_value=0, max_value=3000),
    day_minutes=st.integers(min_value=0, max_value=1500),
    day_coin_minutes=st.integers(min_value=0, max_value=1500),
    stored_coin_minutes=st.integers(min_value=0, max_value=120_000),
)


@given(st.integers(min_value=1, max_value=1440), params_strategy, contexts)
def test_plans_respect_every_cap_and_conserve_coins(
    served: int, params: dict[str, object], ctx: CreditContext
) -> None:
    r = rules(**params)
    plan = plan_credit(served, r, ctx, DAY)
    g = r.service_granularity_minutes
    assert plan.rounded_minutes % g == 0
    assert {
        Rounding.DOWN: -g < plan.rounded_minutes - served <= 0,
        Rounding.UP: 0 <= plan.rounded_minutes - served < g,
        Rounding.NEAREST: abs(plan.rounded_minutes - served) <= g / 2,
    }[r.service_rounding]
    assert 0 <= plan.credited_minutes <= plan.rounded_minutes
    assert plan.credited_minutes <= apply_cap(
        plan.rounded_minutes, r.per_activity_cap_minutes, ctx.activity_minutes
    )
    assert plan.credited_minutes <= apply_cap(
        plan.rounded_minutes, r.daily_service_cap_minutes, ctx.day_minutes
    )
    assert (
        plan.credited_points * r.points_per_hour_denominator * HOUR
        <= plan.credited_minutes * r.points_per_hour_numerator
    )
    assert (
        plan.credited_points + 1
    ) * r.points_per_hour_denominator * HOUR > plan.credited_minutes * r.points_per_hour_numerator
    assert plan.earned_coin_minutes <= plan.credited_minutes * r.coin_minutes_per_service_hour // HOUR
    assert plan.earned_coin_minutes <= apply_cap(
        plan.earned_coin_minutes, r.coin_daily_cap_minutes, ctx.day_coin_minutes
    )
    assert (
        plan.credited_coin_minutes + plan.pool_coin_minutes + plan.uncredited_coin_minutes
        == plan.earned_coin_minutes
    )
    assert min(plan.credited_coin_minutes, plan.pool_coin_minutes, plan.uncredited_coin_minutes) >= 0
    if r.coin_storage_cap_minutes is not None:
        assert plan.credited_coin_minutes <= max(0, r.coin_storage_cap_minutes - ctx.stored_coin_minutes)
        if plan.pool_coin_minutes or plan.uncredited_coin_minutes:  # overflow only once the cap is full
            assert ctx.stored_coin_minutes + plan.credited_coin_minutes >= r.coin_storage_cap_minutes
    else:
        assert plan.credited_coin_minutes == plan.earned_coin_minutes
    if not r.coin_overflow_to_pool:
        assert plan.pool_coin_minutes == 0

    postings = credit_postings(plan, ACCOUNTS)
    assert plan.is_empty == (not postings)  # what an import relies on to number the transfers
    check_zero_sum(postings)
    assert all(p.amount != 0 for p in postings)
    credited: dict[uuid.UUID, int] = defaultdict(int)
    for p in postings:
        credited[p.account_id] += p.amount
        assert (p.expires_at_us is not None) == (p.account_id == ACCOUNTS.volunteer_points)
    assert credited[ACCOUNTS.volunteer_minutes] == plan.credited_minutes
    assert credited[ACCOUNTS.volunteer_points] == plan.credited_points
    assert credited[ACCOUNTS.volunteer_coins] == plan.credited_coin_minutes
    assert credited[ACCOUNTS.donation_pool] == plan.pool_coin_minutes


@given(st.integers(min_value=0, max_value=200_000))
def test_stars_never_fall_as_minutes_grow(minutes: int) -> None:
    thresholds = DEFAULTS.star_thresholds_hours
    assert star_rating(minutes, thresholds) <= star_rating(minutes + 30, thresholds)
    assert star_rating(minutes, thresholds) == sum(minutes >= h * HOUR for h in thresholds)


def test_rules_survive_a_replace() -> None:
    # ServiceRules is a plain frozen value: a changed copy leaves the original alone.
    changed = replace(DEFAULTS, service_granularity_minutes=15)
    assert DEFAULTS.service_granularity_minutes == 30 and changed.service_granularity_minutes == 15
