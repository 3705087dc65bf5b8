"""Working days on the official Chinese calendar (with 调休 make-up days) and recording deadlines."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.workdays import (
    WorkdayCalendar,
    add_working_days,
    covered_years,
    is_working_day,
    recording_deadline,
)

CN = WorkdayCalendar.CN_OFFICIAL
MF = WorkdayCalendar.MON_TO_FRI
YEARS = covered_years(CN)
assert YEARS is not None
FIRST, LAST = date(YEARS.start, 1, 1), date(YEARS.stop - 1, 12, 31)


def refused(code: ErrorCode, fn: object, *args: object) -> LedgerError:
    assert callable(fn)
    with pytest.raises(LedgerError) as caught:
        fn(*args)
    assert caught.value.code is code
    return caught.value


def test_scenario_1_ten_working_days_without_holidays() -> None:
    # Activity ends Friday 2025-03-07; no holiday until Qingming: the deadline is Friday 03-21.
    assert recording_deadline(date(2025, 3, 7), 10, CN) == date(2025, 3, 21)
    assert recording_deadline(date(2025, 3, 7), 10, MF) == date(2025, 3, 21)
    assert recording_deadline(date(2025, 3, 7), 10, "cn_official") == date(2025, 3, 21)


def test_spring_festival_2025_skips_the_holiday_and_counts_both_make_up_days() -> None:
    # 2025 notice: 1/28–2/4 off; Sunday 1/26 and Saturday 2/8 are working days.
    end = date(2025, 1, 24)  # a Friday
    assert recording_deadline(end, 10, CN) == date(2025, 2, 13)
    assert recording_deadline(end, 10, MF) == date(2025, 2, 7)  # the simple calendar ignores both
    assert add_working_days(end, 1, CN) == date(2025, 1, 26)  # the make-up Sunday comes first
    assert add_working_days(date(2025, 1, 27), 1, CN) == date(2025, 2, 5)  # over the whole holiday


def test_national_day_2025() -> None:
    # 10/1–10/8 off (National Day with Mid-Autumn); Sunday 9/28 and Saturday 10/11 are working days.
    end = date(2025, 9, 26)
    assert recording_deadline(end, 10, CN) == date(2025, 10, 16)
    assert recording_deadline(end, 10, MF) == date(2025, 10, 10)
    assert [add_working_days(end, n, CN) for n in (1, 2, 3, 4)] == [
        date(2025, 9, 28),
        date(2025, 9, 29),
        date(2025, 9, 30),
        date(2025, 10, 9),
    ]


def test_a_make_up_saturday_is_a_working_day() -> None:
    saturday = date(2025, 2, 8)
    assert saturday.weekday() == 5
    assert is_working_day(saturday, CN)
    assert not is_working_day(saturday, MF)
    assert add_working_days(date(2025, 2, 7), 1, CN) == saturday
    assert add_working_days(date(2025, 2, 7), 1, MF) == date(2025, 2, 10)
    # An ordinary Saturday and a weekday holiday are not.
    assert not is_working_day(date(2025, 3, 8), CN)
    assert not is_working_day(date(2025, 10, 1), CN)


def test_year_boundary_into_2026() -> None:
    # 2026-01-01..03 off, Sunday 2026-01-04 a working day.
    end = date(2025, 12, 26)
    assert recording_deadline(end, 10, CN) == date(2026, 1, 12)
    assert add_working_days(date(2025, 12, 31), 1, CN) == date(2026, 1, 4)
    assert recording_deadline(date(2025, 12, 31), 10, CN) == date(2026, 1, 15)


def test_uncovered_years_raise_instead_of_guessing() -> None:
    err = refused(ErrorCode.CALENDAR_NOT_COVERED, recording_deadline, date(2027, 1, 8), 10, CN)
    assert err.detail == {"year": 2027, "first_year": FIRST.year, "last_year": LAST.year}
    refused(ErrorCode.CALENDAR_NOT_COVERED, is_working_day, FIRST - timedelta(days=1), CN)
    refused(ErrorCode.CALENDAR_NOT_COVERED, add_working_days, FIRST - timedelta(days=1), 0, CN)
    # A count that would run past the last covered year fails too, even from a covered date.
    err = refused(ErrorCode.CALENDAR_NOT_COVERED, recording_deadline, date(LAST.year, 12, 24), 10, CN)
    assert err.detail["year"] == LAST.year + 1
    # The simple calendar needs no table and covers every year.
    assert covered_years(MF) is None
    assert recording_deadline(date(2030, 3, 1), 10, MF) == date(2030, 3, 15)


def test_bad_arguments_are_invalid_fields() -> None:
    for n in (-1, 366, True, "3"):
        assert refused(ErrorCode.INVALID_FIELD, add_working_days, date(2025, 3, 7), n).field == "working_days"
    assert refused(ErrorCode.INVALID_FIELD, recording_deadline, date(2025, 3, 7), 0, CN).field == (
        "working_days"
    )
    err = refused(ErrorCode.INVALID_FIELD, recording_deadline, date(2025, 3, 7), 10, "sat_to_sun")
    assert err.field == "working_day_calendar"
    err = refused(ErrorCode.INVALID_FIELD, is_working_day, datetime(2025, 3, 7, 12), CN)
    assert err.field == "day"
    assert add_working_days(date(2025, 3, 8), 0, CN) == date(2025, 3, 8)


def test_every_covered_day_agrees_with_the_official_table() -> None:
    """Exhaustive over the covered years: weekends, holidays and make-up days all as published."""
    day = FIRST
    while day <= LAST:
        assert is_working_day(day, CN) == chinese_calendar.is_workday(day), day
        assert is_working_day(day, MF) == (day.weekday() < 5)
        day += timedelta(days=1)


@given(
    st.dates(min_value=FIRST, max_value=LAST - timedelta(days=120)),
    st.integers(min_value=0, max_value=60),
    st.sampled_from([CN, MF]),
)
def test_add_working_days_counts_exactly_n_working_days(
    start: date, n: int, calendar: WorkdayCalendar
) -> None:
    end = add_working_days(start, n, calendar)
    assert end >= start
    span = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(is_working_day(d, calendar) for d in span) == n
    if n:
        assert is_working_day(end, calendar)
        assert add_working_days(start, n - 1, calendar) < end
