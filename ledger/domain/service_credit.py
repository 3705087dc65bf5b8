"""What a posted service record credits: minutes, points (a dated lot) and time coins, under the caps.

All numbers come from the community's rule settings in force on the service date (``ServiceRules``
reads them from a settings version); every amount is an integer in its minor unit. The steps, in
order (docs/service-records.md):

1. served minutes → rounded to the granularity (default 30 minutes, down: 09:00–11:45 is 150);
2. per-activity cap, given the minutes already credited to this volunteer for the activity;
3. daily cap, given the minutes already credited to this volunteer on the service date;
4. points = credited minutes × numerator / (denominator × 60), rounded down (never over-issued),
   as one lot that expires by the points-expiry settings, counted from the service date;
5. coins = credited minutes × coin minutes per hour / 60, rounded down; then the daily coin cap,
   given the coins already earned that day (the excess is not credited);
6. the coin storage cap, given the volunteer's coin balance: the part over the cap goes to the
   community donation pool (``coin_overflow_target = donation_pool``) or is not credited.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Final

from ledger.domain.times import to_us
from ledger.domain.transfers import Posting
from ledger.domain.units import Unit
from ledger.domain.workdays import WorkdayCalendar

__all__ = [
    "CHINA_TZ",
    "CreditAccounts",
    "CreditContext",
    "CreditPlan",
    "Rounding",
    "ServiceRules",
    "apply_cap",
    "china_midnight_us",
    "credit_postings",
    "plan_credit",
    "points_expiry_date",
    "round_minutes",
    "star_rating",
]

# Every community is in mainland China (no daylight saving): local dates and times are UTC+8.
CHINA_TZ: Final = timezone(timedelta(hours=8), "CST")
_MINUTES_PER_HOUR: Final = 60


class Rounding(StrEnum):
    DOWN = "down"
    NEAREST = "nearest"  # halves round up: 45 minutes at a 30-minute granularity is 60
    UP = "up"


def _int(params: Mapping[str, object], key: str) -> int:
    value = params[key]
    assert isinstance(value, int) and not isinstance(value, bool), key
    return value


def _cap(params: Mapping[str, object], key: str) -> int | None:
    value = params[key]
    assert value is None or (isinstance(value, int) and not isinstance(value, bool)), key
    return value


def _str(params: Mapping[str, object], key: str) -> str:
    value = params[key]
    assert isinstance(value, str), key
    return value


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """The parameters of one settings version that service records use (names as in rule_settings)."""

    version: int
    service_granularity_minutes: int
    service_rounding: Rounding
    recording_deadline_working_days: int
    working_day_calendar: WorkdayCalendar
    star_thresholds_hours: tuple[int, ...]
    points_per_hour_numerator: int
    points_per_hour_denominator: int
    per_activity_cap_minutes: int | None
    daily_service_cap_minutes: int | None
    coin_storage_cap_minutes: int | None
    coin_overflow_to_pool: bool
    coin_daily_cap_minutes: int | None
    coin_minutes_per_service_hour: int
    points_expiry_policy: str
    points_expiry_period: str
    points_expiry_rolling_months: int | None

    @classmethod
    def from_params(cls, version: int, params: Mapping[str, object]) -> ServiceRules:
        """From a validated parameter set (``rule_settings.with_defaults`` of a stored version)."""
        stars = params["star_thresholds_hours"]
        assert isinstance(stars, list | tuple)
        return cls(
            version=version,
            service_granularity_minutes=_int(params, "service_granularity_minutes"),
            service_rounding=Rounding(_str(params, "service_rounding")),
            recording_deadline_working_days=_int(params, "recording_deadline_working_days"),
            working_day_calendar=WorkdayCalendar(_str(params, "working_day_calendar")),
            star_thresholds_hours=tuple(int(h) for h in stars),
            points_per_hour_numerator=_int(params, "points_per_hour_numerator"),
            points_per_hour_denominator=_int(params, "points_per_hour_denominator"),
            per_activity_cap_minutes=_cap(params, "per_activity_cap_minutes"),
            daily_service_cap_minutes=_cap(params, "daily_service_cap_minutes"),
            coin_storage_cap_minutes=_cap(params, "coin_storage_cap_minutes"),
            coin_overflow_to_pool=_str(params, "coin_overflow_target") == "donation_pool",
            coin_daily_cap_minutes=_cap(params, "coin_daily_cap_minutes"),
            coin_minutes_per_service_hour=_int(params, "coin_minutes_per_service_hour"),
            points_expiry_policy=_str(params, "points_expiry_policy"),
            points_expiry_period=_str(params, "points_expiry_period"),
            points_expiry_rolling_months=_cap(params, "points_expiry_rolling_months"),
        )


def round_minutes(served_minutes: int, granularity_minutes: int, rounding: Rounding) -> int:
    """Served minutes rounded to a multiple of the granularity."""
    assert served_minutes >= 0 and granularity_minutes >= 1
    steps, rest = divmod(served_minutes, granularity_minutes)
    if rounding is Rounding.UP:
        steps += rest > 0
    elif rounding is Rounding.NEAREST:
        steps += 2 * rest >= granularity_minutes
    return steps * granularity_minutes


def apply_cap(amount: int, cap: int | None, already: int) -> int:
    """The part of ``amount`` that fits under ``cap`` when ``already`` counts against it (None: no cap)."""
    assert amount >= 0 and already >= 0
    if cap is None:
        return amount
    return min(amount, max(0, cap - already))


@dataclass(frozen=True, slots=True)
class CreditContext:
    """What is already credited to the volunteer when a record posts (excluding the record itself)."""

    activity_minutes: int = 0  # service minutes already credited for the same activity
    day_minutes: int = 0  # service minutes already credited on the same service date
    day_coin_minutes: int = 0  # coin minutes already earned on the same service date
    stored_coin_minutes: int = 0  # the volunteer's coin balance


@dataclass(frozen=True, slots=True)
class CreditPlan:
    """What one record credits. ``earned_coin_minutes`` = ``credited_coin_minutes`` (to the volunteer)
    + ``pool_coin_minutes`` (to the donation pool) + ``uncredited_coin_minutes`` (over the storage cap
    with overflow ``not_credited``)."""

    served_minutes: int
    rounded_minutes: int
    credited_minutes: int
    credited_points: int
    points_expire_on: date | None  # the first day the lot is no longer valid; None if no points
    earned_coin_minutes: int
    credited_coin_minutes: int
    pool_coin_minutes: int

    @property
    def uncredited_coin_minutes(self) -> int:
        return self.earned_coin_minutes - self.credited_coin_minutes - self.pool_coin_minutes

    @property
    def is_empty(self) -> bool:
        return not (self.credited_minutes or self.credited_points or self.earned_coin_minutes)


def plan_credit(
    served_minutes: int, rules: ServiceRules, ctx: CreditContext, service_date: date
) -> CreditPlan:
    """Steps 1–6 of the module docstring."""
    rounded = round_minutes(served_minutes, rules.service_granularity_minutes, rules.service_rounding)
    credited = apply_cap(rounded, rules.per_activity_cap_minutes, ctx.activity_minutes)
    credited = apply_cap(credited, rules.daily_service_cap_minutes, ctx.day_minutes)
    points = (credited * rules.points_per_hour_numerator) // (
        rules.points_per_hour_denominator * _MINUTES_PER_HOUR
    )
    coins = (credited * rules.coin_minutes_per_service_hour) // _MINUTES_PER_HOUR
    earned = apply_cap(coins, rules.coin_daily_cap_minutes, ctx.day_coin_minutes)
    to_volunteer = apply_cap(earned, rules.coin_storage_cap_minutes, ctx.stored_coin_minutes)
    to_pool = earned - to_volunteer if rules.coin_overflow_to_pool else 0
    plan = CreditPlan(
        served_minutes=served_minutes,
        rounded_minutes=rounded,
        credited_minutes=credited,
        credited_points=points,
        points_expire_on=points_expiry_date(service_date, rules) if points else None,
        earned_coin_minutes=earned,
        credited_coin_minutes=to_volunteer,
        pool_coin_minutes=to_pool,
    )
    assert 0 <= plan.credited_minutes <= rounded and plan.uncredited_coin_minutes >= 0
    return plan


def _add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months; the day of month is clamped (Jan 31 + 1 = Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def points_expiry_date(earned_on: date, rules: ServiceRules) -> date:
    """The first day points earned on ``earned_on`` are no longer valid.

    ``period_end``: the day after the period (month, quarter, calendar year) containing the service
    date, so points earned any time in 2025 expire at the start of 2026-01-01. ``rolling``: the
    same day N months later.
    """
    if rules.points_expiry_policy == "rolling":
        assert rules.points_expiry_rolling_months is not None
        return _add_months(earned_on, rules.points_expiry_rolling_months)
    first_month = {
        "month": earned_on.month,
        "quarter": 3 * ((earned_on.month - 1) // 3) + 1,
        "year": 1,
    }[rules.points_expiry_period]
    length = {"month": 1, "quarter": 3, "year": 12}[rules.points_expiry_period]
    return _add_months(date(earned_on.year, first_month, 1), length)


def china_midnight_us(day: date) -> int:
    """00:00 China time at the start of ``day``, as ledger microseconds."""
    us = to_us(datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ))
    assert us is not None
    return us


def star_rating(total_minutes: int, thresholds_hours: tuple[int, ...]) -> int:
    """Stars (0–5) for cumulative service minutes: one per threshold reached (100/300/600/1000/1500 h)."""
    assert total_minutes >= 0
    return sum(1 for hours in thresholds_hours if total_minutes >= hours * _MINUTES_PER_HOUR)


@dataclass(frozen=True, slots=True)
class CreditAccounts:
    """The accounts a record's transfer touches: the volunteer's three and the community's."""

    volunteer_minutes: uuid.UUID
    volunteer_points: uuid.UUID
    volunteer_coins: uuid.UUID
    issuance_minutes: uuid.UUID
    issuance_points: uuid.UUID
    issuance_coins: uuid.UUID
    donation_pool: uuid.UUID


def credit_postings(plan: CreditPlan, accounts: CreditAccounts) -> tuple[Posting, ...]:
    """The postings of the record's transfer (zero amounts left out; empty if nothing is credited).

    Issuance pays for everything: hours, a points lot with its expiry, coins to the volunteer and,
    over the storage cap, coins to the donation pool.
    """
    out: list[Posting] = []
    if plan.credited_minutes:
        out += [
            Posting(accounts.issuance_minutes, Unit.SERVICE_MINUTES, -plan.credited_minutes),
            Posting(accounts.volunteer_minutes, Unit.SERVICE_MINUTES, plan.credited_minutes),
        ]
    if plan.credited_points:
        assert plan.points_expire_on is not None
        expires_at_us = china_midnight_us(plan.points_expire_on)
        out += [
            Posting(accounts.issuance_points, Unit.POINTS, -plan.credited_points),
            Posting(accounts.volunteer_points, Unit.POINTS, plan.credited_points, expires_at_us),
        ]
    coins = plan.credited_coin_minutes + plan.pool_coin_minutes
    if coins:
        out.append(Posting(accounts.issuance_coins, Unit.COIN_MINUTES, -coins))
        if plan.credited_coin_minutes:
            out.append(Posting(accounts.volunteer_coins, Unit.COIN_MINUTES, plan.credited_coin_minutes))
        if plan.pool_coin_minutes:
            out.append(Posting(accounts.donation_pool, Unit.COIN_MINUTES, plan.pool_coin_minutes))
    return tuple(out)
